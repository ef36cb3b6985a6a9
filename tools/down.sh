#!/bin/bash
# Remove the local test host that tools/up.sh created, and its lab network.
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_BRIDGE=${TESTBED_BRIDGE:-cblocal0}
export TESTBED_SUBNET=${TESTBED_SUBNET:-10.231.0.0/24}
tools/testbed/host.sh destroy chatbot1
tools/testbed/net.sh down
echo "local test host removed"
