#!/bin/bash
# Prepare this machine (Debian 12, as root) as a controller and test machine: the Debian packages
# the tests and the local test hosts need, and the Python virtualenv .venv with the pinned
# dependencies (requirements/dev.lock). Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "bootstrap: run as root (it installs Debian packages)" >&2; exit 1; }

# What the tooling needs: systemd-nspawn test hosts, their apt proxy, and real PostgreSQL and
# Redis servers for the integration tests (started by the tests themselves, never as daemons).
packages=(
  python3 python3-venv git curl openssl ca-certificates rsync
  systemd-container debootstrap apt-cacher-ng iproute2
  postgresql-15 redis-server shellcheck
  prometheus   # promtool: checks and unit-tests the shipped alert rules
  chromium chromium-driver   # headless browser for the web UI tests (tests/e2e)
  pebble       # local ACME server for the nginx acme-mode test (molecule/monitoring)
  vagrant      # `vagrant validate` of the Vagrantfile (VMs themselves run on people's machines)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  apt-get update -qq
  # Package scripts must not start daemons on the controller (the tests start their own):
  # a policy-rc.d that denies every start, for the duration of the install only.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
fi

# The test hosts run nftables firewalls in their own network namespaces, on this kernel: load
# nf_tables unless it is built in or loaded already.
if [ ! -e /sys/module/nf_tables ] && ! zgrep -qs '^CONFIG_NF_TABLES=y' /proc/config.gz \
  && ! grep -qs '^CONFIG_NF_TABLES=y' "/boot/config-$(uname -r)"; then
  modprobe nf_tables \
    || echo "bootstrap: warning: no nf_tables in this kernel; the test hosts' firewalls cannot start" >&2
fi

# The virtualenv holds exactly requirements/dev.lock (the whole tree, hash-checked) and the project
# itself, editable. A changed lock makes a new virtualenv: installing over the old one would keep
# packages the lock no longer names. A changed pyproject.toml alone reinstalls the project only.
python=${PYTHON:-python3}
lock_stamp=.venv/.installed-lock-$(sha256sum requirements/dev.lock | cut -c1-16)
if [ ! -f "$lock_stamp" ]; then
  rm -rf .venv
  "$python" -m venv .venv
  echo "bootstrap: installing requirements/dev.lock into .venv from PyPI (1-3 minutes)"
  # pip's full output (a few hundred lines) goes to a log; shown are a line every 10 packages
  # collected and the start of the install, or the log's end if pip fails.
  pip_log=.venv/pip-install.log
  if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off \
    --require-hashes --requirement requirements/dev.lock 2>&1 | tee "$pip_log" | awk '
      /^Collecting / { n++; if (n % 10 == 0) printf "bootstrap: pip: %d packages collected\n", n }
      /^Installing collected packages/ { printf "bootstrap: pip: installing them (%d)\n", n }
      { fflush() }'; then
    tail -n 30 "$pip_log" >&2
    echo "bootstrap: pip failed; full output: $pip_log" >&2
    exit 1
  fi
  touch "$lock_stamp"
fi
project_stamp=.venv/.installed-project-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$project_stamp" ]; then
  # The project, built by the locked setuptools (no build isolation: nothing unlocked is
  # fetched), without dependencies (the lock has them all).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation --editable . >.venv/pip-install-project.log 2>&1 \
    || { cat .venv/pip-install-project.log >&2; echo "bootstrap: installing the project failed" >&2; exit 1; }
  rm -f .venv/.installed-project-*
  touch "$project_stamp"
fi
echo "bootstrap: ready ($(.venv/bin/ansible --version | sed -n 1p), $(.venv/bin/python --version))"
