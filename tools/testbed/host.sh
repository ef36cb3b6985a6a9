#!/bin/bash
# Disposable Debian 12 test hosts with systemd as PID 1 (systemd-nspawn), on the lab bridge.
#
#   host.sh create  NAME IP [TEMPLATE]  overlay over the template, per-host settings, boot;
#                                       returns once systemd runs and SSH answers on IP:22
#   host.sh start   NAME                boot a stopped host again (its changes are kept)
#   host.sh stop    NAME...             orderly poweroff, then whatever is left is killed
#   host.sh destroy NAME...             stop, unmount, remove cgroups and state
#   host.sh exec    NAME CMD...         run CMD inside the host (no SSH needed)
#   host.sh ip      NAME                print the host's address
#   host.sh key                         print the path of root's SSH key (generated if missing)
#   host.sh list                        one line per host: NAME IP STATE TEMPLATE
#
# NAME: 1-32 characters [a-z0-9-], the host name (nspawn's machine name, which names the host's
# interface vb-MACHINE and cgroups, is derived from it and the state directory). IP: in the
# bridge's subnet (net.sh up first). TEMPLATE: default $TESTBED_TEMPLATE, else template.sh's.
# Hosts live in $TESTBED_STATE_DIR/hosts/NAME; the key in $TESTBED_STATE_DIR/ssh.
# Environment: TESTBED_STATE_DIR, TESTBED_BRIDGE, TESTBED_TEMPLATE, TESTBED_APT_PROXY_PORT,
# TESTBED_BOOT_TIMEOUT (seconds, default 120), TESTBED_STOP_TIMEOUT (default 30).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

BOOT_TIMEOUT=${TESTBED_BOOT_TIMEOUT:-120}
STOP_TIMEOUT=${TESTBED_STOP_TIMEOUT:-30}
hosts_dir=$TESTBED_STATE_DIR/hosts
key_file=$TESTBED_STATE_DIR/ssh/id_ed25519

host_dir() {
  echo "$hosts_dir/$1"
}

check_name() {
  [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,31}$ ]] ||
    testbed_die "bad host name '$1': 1-32 characters a-z 0-9 -"
}

# machine NAME: nspawn's machine name of the host. It is unique per state directory and host
# name, so that two labs may both have a host "chatbot1" (its interface vb-MACHINE and cgroups
# testbed-MACHINE must not collide), and short enough for vb-MACHINE to fit 15 characters.
# Chosen at create and kept in the host's directory.
machine() {
  local file
  file=$(host_dir "$1")/machine
  if [[ -s $file ]]; then cat "$file"; else echo "$1"; fi
}

new_machine() {
  echo "tb$(printf '%s' "$(host_dir "$1")" | sha256sum | cut -c1-10)"
}

check_exists() {
  [[ -d $(host_dir "$1") ]] || testbed_die "no host '$1' in $hosts_dir"
}

# nspawn_pid NAME: PID of the host's systemd-nspawn, if it runs.
nspawn_pid() {
  local file pid
  file=$(host_dir "$1")/nspawn.pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == systemd-nspawn ]] || return 1
  # A killed nspawn stays a zombie until init reaps it.
  [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  echo "$pid"
}

# leader NAME: PID of the host's PID 1 (its systemd) = the child of nspawn that runs in another
# PID namespace.
leader() {
  local pid child children
  pid=$(nspawn_pid "$1") || return 1
  read -r -a children < <(cat /proc/"$pid"/task/*/children 2>/dev/null) || true
  for child in "${children[@]}"; do
    if [[ $(readlink "/proc/$child/ns/pid") != "$(readlink /proc/self/ns/pid)" &&
      $(readlink "/proc/$child/exe") != "$(readlink "/proc/$pid/exe")" ]]; then
      echo "$child"
      return 0
    fi
  done 2>/dev/null
  return 1
}

in_host() {
  local name=$1 pid
  shift
  pid=$(leader "$name") || testbed_die "host $name is not running"
  nsenter --target "$pid" --mount --uts --ipc --net --pid -- \
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

ensure_key() {
  mkdir -p "${key_file%/*}"
  chmod 0700 "${key_file%/*}"
  (
    flock -w 30 9 || testbed_die "timed out waiting for the key lock"
    [[ -s $key_file ]] || ssh-keygen -q -t ed25519 -N '' -C "chatbot-testbed" -f "$key_file"
  ) 9>"$key_file.lock"
}

# check_ip IP: a free host address of the bridge's subnet.
check_ip() {
  local ip=$1 cidr ipint brint prefix mask host_bits other
  cidr=$(testbed_bridge_cidr)
  [[ -n $cidr ]] || testbed_die "bridge $TESTBED_BRIDGE is not up: run net.sh up"
  ipint=$(testbed_ipv4_to_int "$ip") || testbed_die "bad IPv4 address '$ip'"
  brint=$(testbed_ipv4_to_int "${cidr%/*}")
  prefix=${cidr#*/}
  mask=$(((0xffffffff << (32 - prefix)) & 0xffffffff))
  host_bits=$((ipint & ~mask & 0xffffffff))
  if (((ipint & mask) != (brint & mask) || ipint == brint || host_bits == 0 ||
    host_bits == (~mask & 0xffffffff))); then
    testbed_die "$ip is not a free host address of $cidr (bridge $TESTBED_BRIDGE)"
  fi
  for other in "$hosts_dir"/*/ip; do
    [[ -f $other && $(<"$other") == "$ip" ]] && testbed_die "$ip already used by ${other%/ip}"
  done
  return 0
}

# write_host_config NAME IP: what makes the template this host, written into its overlay.
write_host_config() {
  local name=$1 ip=$2 root cidr
  root=$(host_dir "$name")/root
  cidr=$(testbed_bridge_cidr)
  echo "$name" >"$root/etc/hostname"
  printf '127.0.1.1\t%s\n' "$name" >>"$root/etc/hosts"
  mkdir -p "$root/etc/systemd/network"
  # The default route points at the controller, which forwards nothing: the host has a normal
  # network configuration (Ansible's default-interface facts) and still no way out.
  cat >"$root/etc/systemd/network/10-host0.network" <<EOF
[Match]
Name=host0

[Network]
Address=$ip/${cidr#*/}
Gateway=${cidr%/*}
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
  echo "Acquire::http::Proxy \"http://${cidr%/*}:$TESTBED_APT_PROXY_PORT\";" \
    >"$root/etc/apt/apt.conf.d/01proxy"
  install -d -m 0700 "$root/root/.ssh"
  install -m 0600 "$key_file.pub" "$root/root/.ssh/authorized_keys"
  ssh-keygen -q -A -f "$root" >/dev/null
}

mount_overlay() {
  local dir template
  dir=$(host_dir "$1")
  mountpoint -q "$dir/root" && return 0
  template=$(<"$dir/template")
  [[ -d $template ]] || testbed_die "template $template of $1 is gone"
  mount -t overlay overlay -o "lowerdir=$template,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
}

# boot NAME: start nspawn in the host's own cgroups; wait until systemd has finished booting and
# SSH answers on the host's address from here.
boot() {
  local name=$1 dir ip machine state="" pid deadline
  dir=$(host_dir "$name")
  ip=$(<"$dir/ip")
  machine=$(machine "$name")
  ! nspawn_pid "$name" >/dev/null || testbed_die "host $name is already running"
  ip link show dev "$TESTBED_BRIDGE" >/dev/null 2>&1 || testbed_die "bridge $TESTBED_BRIDGE missing: run net.sh up"
  if [[ -e /sys/class/net/vb-$machine ]]; then
    testbed_die "interface vb-$machine exists: host $name is already running?"
  fi
  mount_overlay "$name"
  (
    testbed_cgroup_enter "$dir/cgroups" "testbed-$machine"
    exec setsid systemd-nspawn --quiet --register=no --keep-unit --settings=no --boot \
      --directory="$dir/root" --machine="$machine" --hostname="$name" \
      --network-bridge="$TESTBED_BRIDGE" --resolv-conf=off --timezone=off \
      --link-journal=no --console=read-only </dev/null >"$dir/console.log" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$dir/nspawn.pid"
  deadline=$((SECONDS + BOOT_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/console.log" >&2 || true
      testbed_die "host $name: systemd-nspawn exited (console log above: $dir/console.log)"
    fi
    if leader "$name" >/dev/null; then
      state=$(in_host "$name" systemctl is-system-running 2>/dev/null) || true
      if [[ $state == running || $state == degraded ]] &&
        timeout 1 bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null; then
        if [[ $state == degraded ]]; then
          testbed_log "warning: $name booted degraded; failed units:"
          in_host "$name" systemctl --failed --no-legend >&2 || true
        fi
        testbed_log "$name is up at $ip ($state, nspawn pid $pid)"
        return 0
      fi
    fi
    sleep 0.2
  done
  tail -n 20 "$dir/console.log" >&2
  testbed_die "host $name: not up after ${BOOT_TIMEOUT}s (systemd: ${state:-not started})"
}

# stop_host NAME: orderly poweroff (SIGTERM makes nspawn ask the host's systemd to power off),
# then kill whatever is left (SIGKILL on nspawn alone would leave the host running).
stop_host() {
  local name=$1 dir pid init _
  dir=$(host_dir "$name")
  if pid=$(nspawn_pid "$name"); then
    init=$(leader "$name") || init=""
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((STOP_TIMEOUT * 10))); do
      nspawn_pid "$name" >/dev/null || break
      sleep 0.1
    done
    if nspawn_pid "$name" >/dev/null; then
      testbed_log "$name: no orderly shutdown after ${STOP_TIMEOUT}s, killing it"
      # Killing a PID namespace's init takes every process of the namespace with it.
      [[ -z $init ]] || kill -KILL "$init" 2>/dev/null || true
      sleep 0.5
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/nspawn.pid"
  rm -rf "/run/systemd/nspawn/propagate/$(machine "$name")"
  testbed_cgroup_remove "$dir/cgroups"
}

# destroy_host NAME: never fails half-way silently; the state directory is only removed once
# nothing is mounted on it any more.
destroy_host() {
  local name=$1 dir veth _
  dir=$(host_dir "$name")
  [[ -d $dir ]] || return 0
  veth=vb-$(machine "$name")
  stop_host "$name" || true
  for _ in {1..50}; do
    mountpoint -q "$dir/root" || break
    umount "$dir/root" 2>/dev/null || sleep 0.1
  done
  if mountpoint -q "$dir/root"; then
    testbed_log "error: cannot unmount $dir/root (still busy); left in place"
    return 1
  fi
  # The veth goes with the host's network namespace; remove it if something kept it.
  if [[ $(readlink "/sys/class/net/$veth/master" 2>/dev/null) == */$TESTBED_BRIDGE ]]; then
    ip link del dev "$veth" 2>/dev/null || true
  fi
  rm -rf --one-file-system "$dir"
  testbed_log "destroyed $name"
}

create() {
  (($# >= 2 && $# <= 3)) || testbed_die "usage: host.sh create NAME IP [TEMPLATE]"
  local name=$1 ip=$2 template=${3:-${TESTBED_TEMPLATE:-}} dir
  check_name "$name"
  check_ip "$ip"
  [[ -n $template ]] || template=$("$here/template.sh")
  [[ -d $template/etc/systemd ]] || testbed_die "no template at '$template'"
  ensure_key
  dir=$(host_dir "$name")
  mkdir -p "$hosts_dir"
  mkdir "$dir" 2>/dev/null || testbed_die "host $name exists ($dir)"
  creating=$name
  mkdir "$dir/upper" "$dir/work" "$dir/root"
  echo "$ip" >"$dir/ip"
  new_machine "$name" >"$dir/machine"
  realpath "$template" >"$dir/template"
  mount_overlay "$name"
  write_host_config "$name" "$ip"
  boot "$name"
  creating=""
}

list() {
  local dir name state
  for dir in "$hosts_dir"/*/; do
    [[ -d $dir ]] || continue
    name=$(basename "$dir")
    if nspawn_pid "$name" >/dev/null; then state=running; else state=stopped; fi
    printf '%s %s %s %s\n' "$name" "$(cat "$dir/ip" 2>/dev/null)" "$state" \
      "$(basename "$(cat "$dir/template" 2>/dev/null)")"
  done
}

# A create that fails or is interrupted leaves nothing behind.
on_exit() {
  local rc=$?
  if [[ -n ${creating:-} ]]; then
    testbed_log "create $creating failed, cleaning up"
    destroy_host "$creating" || true
  fi
  exit "$rc"
}

main() {
  local cmd=${1:-} name pid rc=0
  shift || true
  case $cmd in
    create | start | stop | destroy)
      testbed_require_root
      testbed_require_commands systemd-nspawn nsenter ssh-keygen ip flock setsid
      ;;
  esac
  case $cmd in
    create) create "$@" ;;
    start)
      (($# == 1)) || testbed_die "usage: host.sh start NAME"
      check_exists "$1"
      boot "$1"
      ;;
    stop | destroy)
      (($# >= 1)) || testbed_die "usage: host.sh $cmd NAME..."
      # Signal every host first, so that they shut down in parallel.
      for name in "$@"; do
        if pid=$(nspawn_pid "$name"); then kill -TERM "$pid" 2>/dev/null || true; fi
      done
      for name in "$@"; do
        if [[ $cmd == stop ]]; then
          stop_host "$name" || rc=1
        else
          destroy_host "$name" || rc=1
        fi
      done
      return "$rc"
      ;;
    exec)
      (($# >= 2)) || testbed_die "usage: host.sh exec NAME CMD..."
      in_host "$@"
      ;;
    ip)
      (($# == 1)) || testbed_die "usage: host.sh ip NAME"
      check_exists "$1"
      cat "$(host_dir "$1")/ip"
      ;;
    key)
      ensure_key
      echo "$key_file"
      ;;
    list) list ;;
    *)
      sed -n '2,19p' "$0" >&2
      exit 2
      ;;
  esac
}

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
main "$@"
