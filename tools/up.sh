#!/bin/bash
# Bring the whole system up on a local test host, with the offline model:
#   1. install what the controller needs (tools/bootstrap.sh);
#   2. boot a Debian 12 host with systemd (systemd-nspawn, tools/testbed) at 10.231.0.11 on a
#      private bridge with no route out, or reuse it if it already exists;
#   3. run playbooks/site.yml against it (inventories/local);
#   4. check it end to end over HTTPS (tests/deploy/smoke.py: register, log in, stream a reply)
#      and print how to use it, and how long each phase took.
# Re-running re-converges the same host (changed=0) and passes again any number of times: the
# smoke test's account is registered once and kept in inventories/local/.secrets (registration is
# limited to 10 per hour per address). tools/down.sh removes the host.
#
# tools/up.sh --e2e deploys for the browser tests instead: the chat service answers with the
# test model server that tests/e2e runs on the controller (tests/e2e/deploy-vars.yml), and the
# tests run in headless Chromium once the host is up (screenshots in tests/e2e/screenshots/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

e2e=""
case "${1:-}" in
  --e2e) e2e=1 ;;
  "") ;;
  *) echo "usage: tools/up.sh [--e2e]" >&2; exit 2 ;;
esac

export TESTBED_BRIDGE=${TESTBED_BRIDGE:-cblocal0}
export TESTBED_SUBNET=${TESTBED_SUBNET:-10.231.0.0/24}
host=chatbot1
address=10.231.0.11
admin_email=admin@example.com
admin_password=chatbot-demo-admin   # the documented demo value of inventories/local

# Time per phase, printed on exit, also when a phase fails.
phases=()
phase_started=$SECONDS
current_phase=""
phase() {
  [ -z "$current_phase" ] || phases+=("$current_phase $((SECONDS - phase_started)) s")
  current_phase=$1
  phase_started=$SECONDS
  [ -z "$current_phase" ] || echo "up: $current_phase: $2"
}
report_times() {
  local rc=$?
  if [ -n "$current_phase" ] && [ "$rc" -ne 0 ]; then
    echo "up: failed in phase $current_phase (exit $rc)" >&2
  fi
  phase ""
  local times
  times=$(printf '%s, ' "${phases[@]}")
  echo "up: time per phase: ${times%, }; total $SECONDS s"
}
trap report_times EXIT

phase bootstrap "Debian packages and the Python virtualenv .venv (first run: a few minutes)"
tools/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"

phase template "the Debian 12 tree test hosts boot from (first run: debootstrap, a few minutes)"
template=$(tools/testbed/template.sh)
phase host "the lab bridge $TESTBED_BRIDGE and the test host $host at $address"
tools/testbed/net.sh up
if tools/testbed/host.sh list | grep -q "^$host "; then
  if ! tools/testbed/host.sh list | grep -q "^$host .* running"; then
    tools/testbed/host.sh start "$host"
  fi
else
  tools/testbed/host.sh create "$host" "$address" "$template"
fi

bridge_address=${TESTBED_SUBNET%.*}.1   # the controller, as the test host sees it
e2e_model_server=$bridge_address:8911
playbook_args=()
if [ -n "$e2e" ]; then
  playbook_args=(-e @tests/e2e/deploy-vars.yml -e "e2e_model_server=$e2e_model_server")
fi
phase converge "ansible-playbook playbooks/site.yml (first run: a few minutes)"
ansible-playbook -i inventories/local playbooks/site.yml "${playbook_args[@]}"

# The account is saved beside the inventory's generated secrets (gitignored, owner only).
phase smoke "end to end through nginx over HTTPS (tests/deploy/smoke.py)"
python tests/deploy/smoke.py --base-url "https://$address" --insecure \
  --admin-email "$admin_email" --admin-password "$admin_password" \
  --account-file inventories/local/.secrets/smoke_account.json

if [ -n "$e2e" ]; then
  phase e2e "browser tests in headless Chromium (tests/e2e)"
  # E2E_REQUIRED: a skipped browser test fails the run (tests/e2e/conftest.py).
  E2E_REQUIRED=1 E2E_BASE_URL="https://$address" E2E_MODEL_SERVER="$e2e_model_server" \
    E2E_ADMIN_EMAIL="$admin_email" E2E_ADMIN_PASSWORD="$admin_password" \
    python -m pytest tests/e2e -q
fi

cat <<EOT

The chat bot system is up on the local test host $host (offline model).
  Open:     https://$address/   (the web UI; self-signed certificate: accept it in the browser)
  API docs: https://$address/api/v1/auth/docs    (register, log in, tokens, account)
            https://$address/api/v1/chat/docs    (conversations, streamed replies)
            https://$address/api/v1/admin/docs   (users, usage, audit log, webhooks)
  API:      https://$address/api/v1/  (see README.md, "Using the API"; curl needs -k)
  From another computer: $address is on a private bridge of this machine; tunnel to it with
    ssh -L 8443:$address:443 root@THIS-MACHINE   and open https://localhost:8443/
  Admin:    $admin_email / $admin_password   (demo values of inventories/local)
  Or register your own account:
    curl -k -X POST https://$address/api/v1/auth/register -H 'Content-Type: application/json' \\
         -d '{"email": "you@example.com", "password": "a long password"}'
  Shell on the host:  tools/testbed/host.sh exec $host bash
  Remove it:          tools/down.sh
EOT
