#!/bin/bash
# The lab network of the test hosts: a bridge, and an apt proxy on the bridge's address.
#
#   net.sh up       create the bridge (first address of TESTBED_SUBNET on TESTBED_BRIDGE) and
#                   start apt-cacher-ng on that address; does nothing for what already runs
#   net.sh down     stop the proxy and delete the bridge; refuses while hosts are attached
#   net.sh status   show the bridge, its address, the proxy and the attached hosts
#
# The hosts get NO route out of the lab: no NAT, and forwarding is off on the bridge. Debian
# packages reach them through the proxy, which fetches from the mirror this machine's apt uses
# (and only from it); Python packages come as wheels shipped by the controller.
# Environment: TESTBED_BRIDGE, TESTBED_SUBNET, TESTBED_STATE_DIR, TESTBED_CACHE_DIR,
# TESTBED_APT_PROXY_PORT (see README.md).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

# Bounded far above a start on a busy machine.
readonly PROXY_START_TIMEOUT=120
readonly PROXY_STOP_TIMEOUT=10
proxy_dir=$TESTBED_STATE_DIR/net/$TESTBED_BRIDGE/apt-proxy
proxy_cache=$TESTBED_CACHE_DIR/apt-proxy/$TESTBED_BRIDGE
proxy_pidfile=$proxy_dir/run/pid

# bridge_cidr_wanted: the bridge address (first host of TESTBED_SUBNET) with its prefix length.
bridge_cidr_wanted() {
  local network=${TESTBED_SUBNET%/*} prefix=${TESTBED_SUBNET#*/} base mask
  if [[ $TESTBED_SUBNET != */* || ! $prefix =~ ^[0-9]+$ ]] || ((prefix < 8 || prefix > 30)); then
    testbed_die "TESTBED_SUBNET must be an IPv4 network /8../30, not '$TESTBED_SUBNET'"
  fi
  base=$(testbed_ipv4_to_int "$network") || testbed_die "bad network address in '$TESTBED_SUBNET'"
  mask=$(((0xffffffff << (32 - prefix)) & 0xffffffff))
  ((base == (base & mask))) || testbed_die "'$TESTBED_SUBNET' has host bits set"
  echo "$(testbed_int_to_ipv4 $((base + 1)))/$prefix"
}

attached_interfaces() {
  ip link show dev "$TESTBED_BRIDGE" >/dev/null 2>&1 || return 0
  ip -o link show master "$TESTBED_BRIDGE" | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'
}

proxy_pid() {
  local pid
  [[ -s $proxy_pidfile ]] || return 1
  pid=$(<"$proxy_pidfile")
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == apt-cacher-ng ]] || return 1
  echo "$pid"
}

bridge_up() {
  local cidr current
  cidr=$(bridge_cidr_wanted)
  ((${#TESTBED_BRIDGE} <= 15)) || testbed_die "bridge name '$TESTBED_BRIDGE' longer than 15"
  if ! ip link show dev "$TESTBED_BRIDGE" >/dev/null 2>&1; then
    ip link add name "$TESTBED_BRIDGE" type bridge
    testbed_log "created bridge $TESTBED_BRIDGE"
  fi
  [[ -d /sys/class/net/$TESTBED_BRIDGE/bridge ]] || testbed_die "$TESTBED_BRIDGE is not a bridge"
  current=$(testbed_bridge_cidr)
  if [[ -z $current ]]; then
    ip addr add "$cidr" dev "$TESTBED_BRIDGE"
  elif [[ $current != "$cidr" ]]; then
    testbed_die "$TESTBED_BRIDGE has address $current, not $cidr: another lab uses this name"
  fi
  # No route out: never forward what the hosts send (whatever the global ip_forward says when
  # this runs), and no IPv6 on the lab at all.
  echo 0 >"/proc/sys/net/ipv4/conf/$TESTBED_BRIDGE/forwarding"
  echo 1 >"/proc/sys/net/ipv6/conf/$TESTBED_BRIDGE/disable_ipv6"
  ip link set dev "$TESTBED_BRIDGE" up
}

# Our own configuration, not the packaged one: the proxy serves only the Debian archive and its
# security archive (ForceManaged), from the mirrors this machine's apt uses.
proxy_configure() {
  local address=$1 conf=$proxy_dir/conf
  mkdir -p "$conf" "$proxy_dir/run" "$proxy_dir/log" "$proxy_cache"
  testbed_apt_uri bookworm >"$conf/backends_debian"
  testbed_apt_uri bookworm-security >"$conf/backends_security"
  cat >"$conf/acng.conf" <<EOF
# Written by tools/testbed/net.sh for bridge $TESTBED_BRIDGE.
CacheDir: $proxy_cache
LogDir: $proxy_dir/log
SupportDir: /usr/lib/apt-cacher-ng
PidFile: $proxy_pidfile
SocketPath: $proxy_dir/run/socket
BindAddress: $address
Port: $TESTBED_APT_PROXY_PORT
ForeGround: 0
ForceManaged: 1
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security ; file:backends_security
ReportPage: acng-report.html
ExThreshold: 4
EOF
  chown -R apt-cacher-ng: "$proxy_dir/run" "$proxy_dir/log" "$proxy_cache"
}

proxy_up() {
  local address=$1 pid _
  if pid=$(proxy_pid); then
    testbed_log "apt proxy already running (pid $pid)"
    return 0
  fi
  id apt-cacher-ng >/dev/null 2>&1 || testbed_die "user apt-cacher-ng missing: apt-get install apt-cacher-ng"
  proxy_configure "$address"
  rm -f "$proxy_pidfile"
  setpriv --reuid=apt-cacher-ng --regid=apt-cacher-ng --init-groups \
    apt-cacher-ng -c "$proxy_dir/conf" </dev/null >>"$proxy_dir/log/start.log" 2>&1 ||
    testbed_die "apt-cacher-ng did not start: $(tail -n 5 "$proxy_dir/log/start.log")"
  for _ in $(seq $((PROXY_START_TIMEOUT * 10))); do
    if pid=$(proxy_pid) && (exec 3<>"/dev/tcp/$address/$TESTBED_APT_PROXY_PORT") 2>/dev/null; then
      testbed_log "apt proxy on http://$address:$TESTBED_APT_PROXY_PORT (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  proxy_down
  testbed_die "apt proxy not listening on $address:$TESTBED_APT_PROXY_PORT after ${PROXY_START_TIMEOUT}s" \
    "(port taken?); logs in $proxy_dir/log"
}

proxy_down() {
  local pid _
  pid=$(proxy_pid) || {
    rm -f "$proxy_pidfile"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((PROXY_STOP_TIMEOUT * 10))); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -d /proc/$pid ]]; then
    testbed_log "apt proxy (pid $pid) ignored SIGTERM for ${PROXY_STOP_TIMEOUT}s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$proxy_pidfile"
  testbed_log "stopped apt proxy (pid $pid)"
}

up() {
  testbed_require_root
  testbed_require_commands ip apt-cacher-ng setpriv
  bridge_up
  proxy_up "$(testbed_bridge_cidr | cut -d/ -f1)"
}

down() {
  local attached
  testbed_require_root
  attached=$(attached_interfaces | tr '\n' ' ')
  [[ -z $attached ]] || testbed_die "hosts still attached to $TESTBED_BRIDGE ($attached): destroy them first"
  proxy_down
  if ip link show dev "$TESTBED_BRIDGE" >/dev/null 2>&1; then
    ip link del dev "$TESTBED_BRIDGE"
    testbed_log "deleted bridge $TESTBED_BRIDGE"
  fi
  rm -rf "${proxy_dir:?}/run"
}

status() {
  local pid
  if ip link show dev "$TESTBED_BRIDGE" >/dev/null 2>&1; then
    echo "bridge:   $TESTBED_BRIDGE $(testbed_bridge_cidr)"
    echo "attached: $(attached_interfaces | tr '\n' ' ')"
  else
    echo "bridge:   $TESTBED_BRIDGE absent"
  fi
  if pid=$(proxy_pid); then
    echo "proxy:    pid $pid, port $TESTBED_APT_PROXY_PORT, cache $proxy_cache"
  else
    echo "proxy:    stopped"
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
