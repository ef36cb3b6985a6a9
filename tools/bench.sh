#!/bin/bash
# Benchmark streamed replies on the local test host, side by side with the LiteLLM proxy (run on
# demand, not in CI; the figures depend on the machine: run it on a quiet one).
#   1. brings the host up (tools/up.sh) and re-converges it with tests/bench/vars.yml (model =
#      the OpenAI-compatible test server on the bridge address, limits lifted);
#   2. installs the pinned LiteLLM proxy into its own virtualenv, build/litellm-venv (once);
#   3. runs tests/bench/stream_bench.py: ours (https://10.231.0.11, through nginx), the mock
#      model directly and LiteLLM (2 workers, on the controller's loopback, in front of the same
#      mock), rounds alternated; then the cached reply, the API call against a bare gunicorn
#      "hello" on the test host, the capacity ramp, 1,000 open streams and the services' PSS.
#      It prints the Markdown table of issue 13 and writes build/bench-results.json.
# Arguments are passed to stream_bench.py; without any, the full run (about 15 minutes):
#   tools/bench.sh --levels 1,10,50 --rounds 4 --min-replies 200 \
#     --capacity 5,10,20,40,60,80,100,130,160,200 --open-streams 1000
# A quick check that everything works (a few minutes):
#   tools/bench.sh --levels 1,10 --rounds 2 --min-replies 40 --cached 10 --api-requests 500 \
#     --capacity 5,10,20 --open-streams 100
# Afterwards `tools/up.sh` puts the host back to its normal settings (offline model, limits).
# The profile of the chat service during a C=1 run: tools/profile.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_BRIDGE=${TESTBED_BRIDGE:-cblocal0}
export TESTBED_SUBNET=${TESTBED_SUBNET:-10.231.0.0/24}
litellm_version=1.108.7   # tests/bench/litellm_proxy.py: LITELLM_VERSION

if [ $# -eq 0 ]; then
  set -- --levels 1,10,50 --rounds 4 --min-replies 200 \
    --capacity 5,10,20,40,60,80,100,130,160,200 --open-streams 1000
fi

tools/up.sh
export PATH="$PWD/.venv/bin:$PATH"
ansible-playbook -i inventories/local playbooks/site.yml -e @tests/bench/vars.yml

# LiteLLM and its proxy extras in a virtualenv of their own: never the project's dependencies.
venv=build/litellm-venv
if [ ! -f "$venv/.installed-$litellm_version" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  echo "bench: installing litellm[proxy]==$litellm_version into $venv (a few minutes, once)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$litellm_version"
  touch "$venv/.installed-$litellm_version"
fi

mkdir -p build
python -m tests.bench.stream_bench --base-url https://10.231.0.11 --insecure \
  --model-host 10.231.0.1 --model-port 18080 --host chatbot1 \
  --litellm "$venv/bin/litellm" --json build/bench-results.json "$@"
echo "figures written to build/bench-results.json"
