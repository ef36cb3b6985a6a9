#!/bin/bash
# Write the dependency locks from pyproject.toml's pins, with uv (the version pinned there):
#   requirements/runtime.lock  the app's whole runtime tree: what every release ships and installs
#   requirements/dev.lock      the runtime tree plus the dev extra: the controller and the tests
#                              (tools/bootstrap.sh); constrained to runtime.lock, so the tests run
#                              exactly the versions that ship
# Both are universal (every platform's environment markers; the hashes of every file of every
# pinned version), for CPython 3.11, so one lock serves x86_64 and aarch64 hosts alike.
# A pin already in a lock is kept while it still fits pyproject.toml: re-running changes nothing.
#   tools/lock.sh                          after changing a pin in pyproject.toml
#   tools/lock.sh --upgrade-package NAME   move one transitive package to its newest fitting version
#   tools/lock.sh --check                  fail if a lock is not what this would write (lint phase)
set -euo pipefail
cd "$(dirname "$0")/.."

uv=${UV:-.venv/bin/uv}
check=""
if [ "${1:-}" = --check ]; then check=1; shift; fi
extra=("$@")

out=requirements
if [ -n "$check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  # The committed locks are the starting point (uv keeps their pins), as for a real run.
  cp requirements/runtime.lock requirements/dev.lock "$out/"
fi
mkdir -p "$out"

compile() {
  "$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command tools/lock.sh "${extra[@]}" "$@"
}
same() {
  [ -z "$check" ] && return
  diff -u "requirements/$1" "$out/$1" \
    || { echo "lock: requirements/$1 is stale: run tools/lock.sh and commit the result" >&2; exit 1; }
}
compile pyproject.toml --output-file "$out/runtime.lock"
same runtime.lock
# Constrained by the runtime lock in the repository (its path appears in the annotations); in
# check mode that is the one just found up to date.
compile pyproject.toml --extra dev --constraint requirements/runtime.lock --output-file "$out/dev.lock"
same dev.lock
[ -z "$check" ] || echo "lock: requirements/runtime.lock and requirements/dev.lock match pyproject.toml"
