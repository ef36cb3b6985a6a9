#!/bin/bash
# Print the release name of a source tree: <package version>-<12 hex digits of a hash over
# everything the release's archive is made from: the app's code (webapp/), pyproject.toml, the
# runtime lock (requirements/runtime.lock) and the build recipe (tools/build-wheelhouse.sh,
# tools/lock-for-target.py)>.
#   release-id.sh [SOURCE_DIR]
# Content, not a git revision: uncommitted changes make a new release, a re-run with the same
# tree makes none, and changing any pin of the locked tree (a transitive one too) names a new
# release, so a host never keeps other wheels under a name it already has (roles/app).
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' pyproject.toml)
[ -n "$version" ] || { echo "release-id: no version = \"...\" line in pyproject.toml" >&2; exit 1; }
hash=$(
  {
    find webapp -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum pyproject.toml requirements/runtime.lock tools/build-wheelhouse.sh \
      tools/lock-for-target.py
  } | sha256sum | cut -c1-12
)
echo "$version-$hash"
