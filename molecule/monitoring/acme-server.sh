#!/bin/bash
# Start or stop a local ACME server for the scenario's acme test: Debian's pebble (an RFC 8555
# test CA) and pebble-challtestsrv as its DNS server, answering every name with the test host's
# address, so pebble checks the HTTP-01 challenge on that host's port 80. Both listen on the lab
# bridge's address only and are stopped by their recorded PIDs.
#   acme-server.sh start STATE_DIR BRIDGE_ADDRESS HOST_ADDRESS PKI_DIR
#   acme-server.sh stop STATE_DIR
set -euo pipefail

action=${1:?usage: acme-server.sh start|stop STATE_DIR [BRIDGE_ADDRESS HOST_ADDRESS PKI_DIR]}
dir=${2:?state directory missing}/acme-server

# Waits are for the event itself, bounded far above any real delay (the machine may be busy).
readonly WAIT_SECONDS=120

stop() {
  local name pid deadline
  for name in pebble challtestsrv; do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      deadline=$((SECONDS + WAIT_SECONDS))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "acme-server: $name ($pid) still running after ${WAIT_SECONDS}s" >&2
        return 1
      fi
      echo "acme-server: stopped $name ($pid)" >&2
    fi
    rm -f "$dir/$name.pid"
  done
}

wait_port() {
  local address=$1 port=$2 deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "acme-server: nothing listens on $address:$port after ${WAIT_SECONDS}s; see $dir/*.log" >&2
  return 1
}

case $action in
  start)
    bridge=${3:?bridge address missing} host=${4:?host address missing} pki=${5:?PKI directory missing}
    stop
    mkdir -p "$dir"
    cat > "$dir/pebble-config.json" <<JSON
{"pebble": {"listenAddress": "$bridge:14000", "managementListenAddress": "$bridge:15000",
 "certificate": "$pki/pebble.crt", "privateKey": "$pki/pebble.key",
 "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
    pebble-challtestsrv -defaultIPv4 "$host" -defaultIPv6 "" -dns01 "$bridge:8053" \
      -http01 "" -https01 "" -tlsalpn01 "" -management "$bridge:8055" \
      > "$dir/challtestsrv.log" 2>&1 &
    echo $! > "$dir/challtestsrv.pid"
    # No sleeping between validation attempts, no random nonce rejections: a quick, steady test.
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
      pebble -config "$dir/pebble-config.json" -dnsserver "$bridge:8053" > "$dir/pebble.log" 2>&1 &
    echo $! > "$dir/pebble.pid"
    wait_port "$bridge" 8053
    wait_port "$bridge" 14000
    echo "acme-server: pebble on https://$bridge:14000/dir" >&2
    ;;
  stop) stop ;;
  *) echo "usage: acme-server.sh start|stop STATE_DIR ..." >&2; exit 2 ;;
esac
