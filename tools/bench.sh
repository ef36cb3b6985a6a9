#!/bin/bash
# Benchmark streamed replies on the local test host (run on demand; the figures depend on the
# machine). Brings the host up (tools/up.sh), re-converges it with tests/bench/vars.yml (model =
# the OpenAI-compatible test server on the bridge address, limits lifted), then runs
# tests/bench/stream_bench.py: TTFT and whole-reply time at 1, 50 and 200 concurrent streams,
# through the stack and against the model server directly, CPU per reply, open streams.
# Arguments are passed to stream_bench.py (e.g. --levels 1,50 --open-streams 100,500).
# Afterwards `tools/up.sh` puts the host back to its normal settings (offline model, limits).
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_BRIDGE=${TESTBED_BRIDGE:-cblocal0}
export TESTBED_SUBNET=${TESTBED_SUBNET:-10.231.0.0/24}

tools/up.sh
export PATH="$PWD/.venv/bin:$PATH"
ansible-playbook -i inventories/local playbooks/site.yml -e @tests/bench/vars.yml
mkdir -p build
python tests/bench/stream_bench.py --base-url https://10.231.0.11 --insecure \
  --model-host 10.231.0.1 --model-port 18080 --host chatbot1 \
  --json build/bench-results.json "$@"
echo "figures written to build/bench-results.json"
