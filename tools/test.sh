#!/bin/bash
# Run every test of the project on this machine (Debian 12, as root), installing what they need:
#   1. lint: the dependency locks match pyproject.toml (tools/lock.sh --check), ruff (check +
#      format), mypy (webapp/, configured in pyproject.toml), yamllint, ansible-lint (production
#      profile), shellcheck, actionlint (the GitHub workflows), promtool (alert rules checked and
#      unit-tested), vagrant validate (both topologies; --ignore-provider: no VirtualBox or
#      libvirt needed)
#   2. unit and integration tests (pytest; real PostgreSQL and Redis started by the tests)
#   3. the deployment test: Molecule creates a fresh systemd-nspawn Debian 12 host, converges
#      playbooks/site.yml, converges again requiring changed=0, verifies over HTTPS, destroys it.
#      Then the monitoring scenario: Prometheus + exporters, provided TLS, check mode, ACME (pebble).
# Usage: tools/test.sh [lint|python|deploy]...   (default: all three, in that order)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(lint python deploy)

tools/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"

declare -A took
run_phase() {
  local name=$1 t0=$SECONDS
  echo "=== $name ==="
  "phase_$name"
  took[$name]=$((SECONDS - t0))
  echo "=== $name passed in ${took[$name]} s ==="
}

phase_lint() {
  # The locks are what tools/lock.sh writes from pyproject.toml's pins (asks PyPI).
  tools/lock.sh --check
  ruff check .
  ruff format --check .
  mypy
  yamllint --strict .
  ansible-lint
  shellcheck tools/*.sh tools/testbed/*.sh .ci/run
  # The GitHub workflows (.github/workflows; runner labels in .github/actionlint.yaml).
  actionlint
  promtool check rules monitoring/prometheus/chatbot.rules.yml
  (cd monitoring/prometheus && promtool test rules chatbot.rules.test.yml)
  shellcheck molecule/monitoring/*.sh
  VAGRANT_TOPOLOGY="single" vagrant validate --ignore-provider
  VAGRANT_TOPOLOGY="split" vagrant validate --ignore-provider
}

phase_python() {
  # pytest exits 5 when it collected nothing: that must fail, never pass silently.
  local rc=0
  pytest tests/unit tests/integration || rc=$?
  [ $rc -eq 5 ] && echo "pytest collected no tests" >&2
  return $rc
}

# molecule test of one scenario, whose output must hold no Ansible warning: Ansible prints them
# and carries on, so a deprecated option or a temporary directory it had to guess would pass.
molecule_test_warning_free() {
  local log="$root/build/molecule-$1.log"
  mkdir -p "$root/build"
  molecule test --scenario-name "$1" 2>&1 | tee "$log"
  if grep -E '\[(DEPRECATION )?WARNING\]' "$log"; then
    echo "molecule $1: Ansible printed the warnings above (whole output: $log)" >&2
    return 1
  fi
}

phase_deploy() {
  molecule_test_warning_free default
  # split topology: web1, app1, app2, db1; failover with one app host down, firewall port scans
  molecule_test_warning_free multi
  molecule_test_warning_free monitoring
  # upgrade/rollback under load (0 failed requests), backup + restore, secrets rotation
  molecule_test_warning_free ops
}

for p in "${phases[@]}"; do
  declare -F "phase_$p" >/dev/null || { echo "unknown phase: $p (lint|python|deploy)" >&2; exit 2; }
  run_phase "$p"
done
echo "=== all passed: $(for p in "${phases[@]}"; do printf '%s %ss  ' "$p" "${took[$p]}"; done)==="
