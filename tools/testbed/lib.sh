# shellcheck shell=bash
# Settings and helpers shared by template.sh, net.sh and host.sh (sourced, never executed).
# Every setting can be overridden from the environment; see README.md for what each one does.

# Per-lab state: host overlays and boot logs, the apt proxy's runtime files, the SSH key pair.
TESTBED_STATE_DIR=${TESTBED_STATE_DIR:-/var/lib/chatbot-testbed}
# Built templates and the apt proxy's package cache survive labs: they only make runs faster.
TESTBED_CACHE_DIR=${TESTBED_CACHE_DIR:-/var/cache/chatbot-testbed}
TESTBED_IMAGES_DIR=${TESTBED_IMAGES_DIR:-$TESTBED_CACHE_DIR/images}
# The lab network: one bridge, its first address is the controller (and the apt proxy).
TESTBED_BRIDGE=${TESTBED_BRIDGE:-cbtest0}
TESTBED_SUBNET=${TESTBED_SUBNET:-10.231.0.0/24}
# Not 3142: a system-wide apt-cacher-ng on a developer machine listens there on every address.
TESTBED_APT_PROXY_PORT=${TESTBED_APT_PROXY_PORT:-3143}

testbed_log() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
}

testbed_die() {
  testbed_log "error: $*"
  exit 1
}

testbed_require_root() {
  [[ $EUID -eq 0 ]] || testbed_die "must run as root (mounts, bridges, cgroups)"
}

testbed_require_commands() {
  local cmd missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) || testbed_die "missing commands: ${missing[*]} (see tools/testbed/README.md)"
}

# testbed_apt_uri SUITE: the archive URI this machine's own apt uses for SUITE (bookworm,
# bookworm-security), so that builds and the proxy use a mirror known to be reachable from here.
testbed_apt_uri() {
  local suite=$1 fallback uri
  case $suite in
    *-security) fallback=http://deb.debian.org/debian-security/ ;;
    *) fallback=http://deb.debian.org/debian/ ;;
  esac
  # shellcheck disable=SC2016 # $(...) is apt's format syntax, not the shell's
  uri=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
    awk -v s="$suite" '$1 == s { print $2; exit }') || true
  [[ $uri == http://* || $uri == https://* ]] || uri=$fallback
  printf '%s\n' "$uri"
}

# testbed_ipv4_to_int A.B.C.D -> integer; fails on anything that is not a dotted quad.
testbed_ipv4_to_int() {
  local IFS=. a b c d
  [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  read -r a b c d <<<"$1"
  ((a < 256 && b < 256 && c < 256 && d < 256)) || return 1
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

testbed_int_to_ipv4() {
  echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"
}

# testbed_bridge_cidr: the bridge's IPv4 address with prefix (e.g. 10.231.1.1/24), or nothing.
testbed_bridge_cidr() {
  { ip -4 -o addr show dev "$TESTBED_BRIDGE" 2>/dev/null || true; } | awk '{ print $4; exit }'
}

# Every container gets its own cgroup in every hierarchy. Without that, nspawn --keep-unit leaves
# all containers in the caller's cgroup, where their systemd instances fight over one tree; and
# with a cgroup per container, whatever survives a container (nspawn killed hard) can be found
# and killed. The cgroups are created below the caller's, so limits imposed on it still apply.

# testbed_cgroup_enter RECORD LEAF: move this (sub)shell into LEAF below its current cgroup in
# every hierarchy, appending each directory created to RECORD. Run it in the subshell that then
# execs systemd-nspawn.
testbed_cgroup_enter() {
  local record=$1 leaf=$2 lines line controllers path mount target options wanted matches dir
  # Read it all first: the file changes as this shell moves.
  mapfile -t lines </proc/self/cgroup
  for line in "${lines[@]}"; do
    line=${line#*:}
    controllers=${line%%:*}
    path=${line#*:}
    mount=""
    if [[ -z $controllers ]]; then
      mount=$(findmnt -rn -t cgroup2 -o TARGET | head -n 1)
    else
      while read -r target options; do
        matches=1
        for wanted in ${controllers//,/ }; do
          [[ ,$options, == *",$wanted,"* ]] || matches=0
        done
        if ((matches)); then
          mount=$target
          break
        fi
      done < <(findmnt -rn -t cgroup -o TARGET,OPTIONS)
    fi
    [[ -n $mount ]] || continue
    dir=$mount${path%/}/$leaf
    echo "$dir" >>"$record"
    mkdir -p "$dir"
    if [[ -f $dir/cpuset.cpus && -z $(<"$dir/cpuset.cpus") ]]; then
      cat "${dir%/*}/cpuset.cpus" >"$dir/cpuset.cpus"
      cat "${dir%/*}/cpuset.mems" >"$dir/cpuset.mems"
    fi
    echo "$BASHPID" >"$dir/cgroup.procs"
  done
}

# testbed_cgroup_remove RECORD: SIGKILL whatever is still in the cgroups listed in RECORD, then
# remove them; gives exiting processes up to 10 s. Fails if a cgroup could not be removed.
testbed_cgroup_remove() {
  local record=$1 dir pid left=0 _
  [[ -f $record ]] || return 0
  for _ in {1..100}; do
    left=0
    while IFS= read -r dir; do
      [[ -d $dir ]] || continue
      while IFS= read -r pid; do
        kill -KILL "$pid" 2>/dev/null || true
      done < <(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null)
      find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [[ -d $dir ]] && left=1
    done < <(sort -u "$record")
    ((left)) || break
    sleep 0.1
  done
  if ((left)); then
    testbed_log "warning: cgroups still busy: $(sort -u "$record" | tr '\n' ' ')"
    return 1
  fi
  rm -f "$record"
}
