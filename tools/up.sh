#!/bin/bash
# Bring the whole system up on a local test host, with the offline model:
#   1. install what the controller needs (tools/bootstrap.sh);
#   2. boot a Debian 12 host with systemd (systemd-nspawn, tools/testbed) at 10.231.0.11 on a
#      private bridge with no route out, or reuse it if it already exists;
#   3. run playbooks/site.yml against it (inventories/local);
#   4. check it end to end over HTTPS (register, log in, stream a reply) and print how to use it.
# Re-running re-converges the same host. tools/down.sh removes it.
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

tools/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"

template=$(tools/testbed/template.sh)
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
ansible-playbook -i inventories/local playbooks/site.yml "${playbook_args[@]}"

python tests/deploy/smoke.py --base-url "https://$address" --insecure \
  --admin-email "$admin_email" --admin-password "$admin_password"

if [ -n "$e2e" ]; then
  # E2E_REQUIRED: a skipped browser test fails the run (tests/e2e/conftest.py).
  E2E_REQUIRED=1 E2E_BASE_URL="https://$address" E2E_MODEL_SERVER="$e2e_model_server" \
    E2E_ADMIN_EMAIL="$admin_email" E2E_ADMIN_PASSWORD="$admin_password" \
    python -m pytest tests/e2e -q
fi

cat <<EOT

The chat bot system is up on the local test host $host (offline model).
  Open:     https://$address/   (the web UI; self-signed certificate: accept it in the browser)
  API docs: https://$address/api/v1/chat/docs   (curl needs -k for the certificate)
  API:      https://$address/api/v1/  (see README.md, "Using the API")
  Admin:    $admin_email / $admin_password   (demo values of inventories/local)
  Or register your own account:
    curl -k -X POST https://$address/api/v1/auth/register -H 'Content-Type: application/json' \\
         -d '{"email": "you@example.com", "password": "a long password"}'
  Shell on the host:  tools/testbed/host.sh exec $host bash
  Remove it:          tools/down.sh
EOT
