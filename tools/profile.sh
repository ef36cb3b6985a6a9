#!/bin/bash
# Profile the chat service during a C=1 run on the local test host and print the phase
# breakdown of a reply's CPU time (run on demand, not in CI). Expects the host deployed with the
# benchmark settings (tools/bench.sh does that; or run it with --deploy). py-spy (pinned) is
# installed into its own virtualenv, build/py-spy-venv, and its binary copied into the host.
#   tools/profile.sh [--deploy] [tests/bench/profile.py arguments, e.g. --replies 500]
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_BRIDGE=${TESTBED_BRIDGE:-cblocal0}
export TESTBED_SUBNET=${TESTBED_SUBNET:-10.231.0.0/24}
py_spy_version=0.4.3
export PATH="$PWD/.venv/bin:$PATH"

if [ "${1:-}" = --deploy ]; then
  shift
  tools/up.sh
  ansible-playbook -i inventories/local playbooks/site.yml -e @tests/bench/vars.yml
fi

venv=build/py-spy-venv
if [ ! -f "$venv/.installed-$py_spy_version" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "py-spy==$py_spy_version"
  touch "$venv/.installed-$py_spy_version"
fi

mkdir -p build
python -m tests.bench.profile --base-url https://10.231.0.11 --insecure \
  --model-host 10.231.0.1 --model-port 18080 --host chatbot1 \
  --py-spy "$venv/bin/py-spy" --json build/profile-results.json "$@"
