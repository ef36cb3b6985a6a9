#!/bin/bash
# Bring the whole system up on a local test host, with the offline model:
#   1. install what the controller needs (tools/bootstrap.sh);
#   2. boot a Debian 12 host with systemd (systemd-nspawn, tools/testbed) at 10.231.0.11 on a
#      private bridge with no route out, or reuse it if it already exists;
#   3. run playbooks/site.yml against it (inventories/local);
#   4. check it end to end over HTTPS (register, log in, stream a reply) and print how to use it.
# Re-running re-converges the same host. tools/down.sh removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

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

ansible-playbook -i inventories/local playbooks/site.yml

python tests/deploy/smoke.py --base-url "https://$address" --insecure \
  --admin-email "$admin_email" --admin-password "$admin_password"

cat <<EOT

The chat bot system is up on the local test host $host (offline model).
  Open:     https://$address/api/v1/chat/docs   (API docs; self-signed certificate: curl needs -k)
  API:      https://$address/api/v1/  (see README.md, "Using the API"; a web UI is planned)
  Admin:    $admin_email / $admin_password   (demo values of inventories/local)
  Or register your own account:
    curl -k -X POST https://$address/api/v1/auth/register -H 'Content-Type: application/json' \\
         -d '{"email": "you@example.com", "password": "a long password"}'
  Shell on the host:  tools/testbed/host.sh exec $host bash
  Remove it:          tools/down.sh
EOT
