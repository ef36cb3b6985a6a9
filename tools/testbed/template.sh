#!/bin/bash
# Build, or reuse when already built, the Debian 12 tree that test hosts boot from.
#
#   template.sh          print the template directory, building it first if it is not cached
#   template.sh --path   print the directory the current definition maps to; build nothing
#
# The directory name carries a hash of this script and its package lists: changing either gives
# a new template (old ones stay until deleted with rm -rf). The tree is built in a temporary
# directory beside the cache and renamed when complete, so an interrupted build never leaves a
# template behind. Concurrent callers wait for one build. Progress goes to stderr, the path to
# stdout. Environment: TESTBED_IMAGES_DIR, TESTBED_BUILD_TIMEOUT (seconds, default 1200).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

readonly SUITE=bookworm
# What every test host needs: systemd as PID 1, SSH and Python for Ansible, the apt modules'
# python3-apt, acl for become_user to unprivileged users, sudo, and the usual base tools.
readonly BASE_PACKAGES=(
  systemd systemd-sysv dbus openssh-server python3 python3-apt python3-venv sudo
  iproute2 procps acl ca-certificates curl
)
# Big packages the roles install anyway. Pre-installed only to make converges fast: the roles
# still declare them, and apt then finds them present.
readonly PRELOADED_PACKAGES=(postgresql-15 redis-server nginx ssl-cert)
# apt's periodic jobs would race Ansible for the dpkg lock; the others cannot work in a container.
readonly MASKED_UNITS=(
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
  e2scrub_all.timer e2scrub_reap.service fstrim.timer
)
BUILD_TIMEOUT=${TESTBED_BUILD_TIMEOUT:-1200}
# Seconds between the progress lines of a running build step (the steps' own output goes to the
# build log: hundreds of lines per step).
readonly PROGRESS_INTERVAL=15

template_name() {
  local hash
  hash=$({
    cat "${BASH_SOURCE[0]}"
    printf '%s\n' "$SUITE" "${BASE_PACKAGES[@]}" "${PRELOADED_PACKAGES[@]}"
  } | sha256sum | cut -c1-12)
  echo "debian12-$hash"
}

remaining() {
  local left=$((deadline - SECONDS))
  ((left > 0)) || testbed_die "template build exceeded ${BUILD_TIMEOUT}s"
  echo "$left"
}

# step CMD...: run one build step within the time left, in the build's own cgroups (whatever it
# leaves running is killed), in the background so that a signal to this script is handled at
# once: cleanup then stops the step. Meanwhile progress() says every PROGRESS_INTERVAL seconds
# how far it is.
step() {
  local left
  left=$(remaining)
  (
    testbed_cgroup_enter "$build_dir.cgroups" "testbed-build-$$"
    exec timeout -k 10 "$left" "$@"
  ) </dev/null >>"$build_log" 2>&1 &
  step_pid=$!
  progress "$left" >&2 &
  progress_pid=$!
  wait "$step_pid"
  step_pid=""
  kill "$progress_pid" 2>/dev/null || true
  wait "$progress_pid" 2>/dev/null || true
  progress_pid=""
  testbed_cgroup_remove "$build_dir.cgroups"
}

# progress SECONDS: until killed, and for at most SECONDS, print the tree's size, the build's
# time so far and the step's latest log line (the package being fetched, unpacked, set up).
progress() {
  local until=$((SECONDS + $1)) size last sleeper=""
  # Killed while it waits: take the sleep along, so nothing outlives the build.
  trap '[[ -z $sleeper ]] || kill "$sleeper" 2>/dev/null; exit 0' TERM
  while ((SECONDS < until)); do
    sleep "$PROGRESS_INTERVAL" &
    sleeper=$!
    wait "$sleeper"
    sleeper=""
    size=$(du -sm --one-file-system "$build_dir" 2>/dev/null | cut -f1)
    last=$(tail -n 1 "$build_log" | tr -d '\r' | cut -c1-70)
    testbed_log "still building: ${size:-?} MB, $((SECONDS - started)) s; ${last}"
  done
}

# Runs on every exit: a build that did not reach the final rename is removed, including anything
# its build container left running or mounted.
cleanup() {
  local rc=$?
  if [[ -n ${progress_pid:-} ]]; then
    kill "$progress_pid" 2>/dev/null || true
  fi
  if [[ -n ${step_pid:-} ]]; then # timeout passes the signal on to the step, then kills it
    kill -TERM "$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  if [[ -n ${build_dir:-} && -d $build_dir ]]; then
    testbed_cgroup_remove "$build_dir.cgroups" || true
    awk -v d="$build_dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
      sort -r | xargs -r -n 1 umount -l
    rm -rf --one-file-system "$build_dir"
    rm -f "$build_dir.cgroups"
    ((rc == 0)) || testbed_log "build failed; log: $build_log"
  fi
  exit "$rc"
}

# Debian's own bootstrap into the build directory, in a private mount namespace so that the
# /proc and /sys it mounts vanish with it whatever happens.
bootstrap() {
  local mirror packages
  : "${build_dir:?}"
  mirror=$(testbed_apt_uri "$SUITE")
  packages=$(IFS=,; echo "${BASE_PACKAGES[*]}")
  testbed_log "debootstrap $SUITE from $mirror (minbase + ${#BASE_PACKAGES[@]} packages)"
  step unshare --mount --propagation private \
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$build_dir" "$mirror"
}

# Install the preloaded packages and bring the tree up to date, using this machine's network
# (the lab has no route out; the template is built before any lab exists).
install_packages() {
  local main_uri security_uri
  : "${build_dir:?}"
  main_uri=$(testbed_apt_uri "$SUITE")
  security_uri=$(testbed_apt_uri "$SUITE-security")
  cat >"$build_dir/etc/apt/sources.list" <<EOF
deb $main_uri $SUITE main
deb $main_uri $SUITE-updates main
deb $security_uri $SUITE-security main
EOF
  # No daemon starts while packages are installed.
  printf '#!/bin/sh\nexit 101\n' >"$build_dir/usr/sbin/policy-rc.d"
  chmod 0755 "$build_dir/usr/sbin/policy-rc.d"
  testbed_log "installing ${PRELOADED_PACKAGES[*]}"
  # LANG: postgresql-15 creates its cluster now; make it UTF-8 as on an installed system.
  # shellcheck disable=SC2016 # the script runs in the container and expands there
  step systemd-nspawn --quiet --register=no --keep-unit --settings=no \
    --directory="$build_dir" --machine="testbed-build-$$" \
    --resolv-conf=replace-host --timezone=off --link-journal=no \
    --setenv=DEBIAN_FRONTEND=noninteractive --setenv=LANG=C.UTF-8 \
    --setenv=MASKED_UNITS="${MASKED_UNITS[*]}" \
    /bin/sh -euxc '
      apt-get update
      apt-get -y dist-upgrade
      apt-get -y install --no-install-recommends "$@"
      systemctl enable systemd-networkd.service
      systemctl mask $MASKED_UNITS
      apt-get clean' \
    sh "${PRELOADED_PACKAGES[@]}"
  rm -f "$build_dir/usr/sbin/policy-rc.d"
}

# Make the tree a clean, host-neutral template. Per-host settings (name, address, apt proxy,
# SSH keys) are written into each host's overlay by host.sh.
customise() {
  : "${build_dir:?}"
  # Test hosts reach the archive only through the lab's apt proxy, which maps these canonical
  # URIs to the mirror this machine uses.
  cat >"$build_dir/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian $SUITE main
deb http://deb.debian.org/debian $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  # Empty lists with a fresh mtime would make the apt module's cache_valid_time skip the update
  # and then find no package: make the empty cache look ancient.
  rm -rf "$build_dir"/var/lib/apt/lists/*
  touch -d @0 "$build_dir/var/lib/apt/lists"
  # Empty machine-id: every boot gets its own. No fstab: there are no block devices to mount.
  : >"$build_dir/etc/machine-id"
  rm -f "$build_dir/var/lib/dbus/machine-id"
  : >"$build_dir/etc/fstab"
  # Host keys are per host (host.sh generates them); never shared through the template.
  rm -f "$build_dir"/etc/ssh/ssh_host_*
  echo testbed >"$build_dir/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$build_dir/etc/hosts"
  # The lab has no DNS server: with no nameserver, lookups fail at once instead of timing out.
  printf '# No DNS in the test lab: names come from /etc/hosts.\n' >"$build_dir/etc/resolv.conf"
  echo 'LANG=C.UTF-8' >"$build_dir/etc/default/locale"
  rm -rf "$build_dir"/tmp/* "$build_dir"/var/tmp/* "$build_dir"/var/log/journal/*
  find "$build_dir/var/log" -type f -exec truncate -s 0 {} +
}

main() {
  case ${1:-} in
    "") ;;
    --path)
      echo "$TESTBED_IMAGES_DIR/$(template_name)"
      return 0
      ;;
    *)
      sed -n '2,11p' "$0" >&2
      exit 2
      ;;
  esac
  local name template
  name=$(template_name)
  template=$TESTBED_IMAGES_DIR/$name
  if [[ -d $template ]]; then
    testbed_log "reusing $template"
    echo "$template"
    return 0
  fi
  testbed_require_root
  testbed_require_commands debootstrap systemd-nspawn unshare timeout flock
  deadline=$((SECONDS + BUILD_TIMEOUT))
  mkdir -p "$TESTBED_IMAGES_DIR"
  exec 9>"$TESTBED_IMAGES_DIR/.$name.lock"
  flock -w "$(remaining)" 9 || testbed_die "timed out waiting for another build of $name"
  if [[ -d $template ]]; then # built by the caller we waited for
    echo "$template"
    return 0
  fi
  build_log=$TESTBED_IMAGES_DIR/$name.build.log
  : >"$build_log"
  build_dir=$(mktemp -d "$TESTBED_IMAGES_DIR/.build-$name.XXXXXX")
  chmod 0755 "$build_dir"
  started=$SECONDS
  testbed_log "building $name (a few minutes, once; full log: $build_log)"
  bootstrap
  install_packages
  customise
  mv -T "$build_dir" "$template"
  build_dir=""
  testbed_log "built $template in $((SECONDS - started))s ($(du -sh "$template" | cut -f1))"
  echo "$template"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
main "$@"
