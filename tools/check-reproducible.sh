#!/bin/bash
# Check that a release is reproducible: build the wheelhouse of this repository's HEAD commit in
# two fresh clones and require byte-identical wheels, archives and release names; then move one
# transitive pin of the runtime lock in the second clone (tools/lock.sh --upgrade-package),
# require a different release name and show which wheels its build changes.
#   tools/check-reproducible.sh [TARGET_PY_VERSION] [TARGET_ARCH]   (default 3.11.2 x86_64)
# Needs tools/bootstrap.sh's .venv (its pip, setuptools, packaging and uv build the releases) and
# PyPI (the wheels); leaves its clones in /tmp/lockcheck-*/ for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD; python=$repo/.venv/bin/python
pyver=${1:-3.11.2}; arch=${2:-x86_64}
work=$(mktemp -d /tmp/lockcheck-XXXXXX)
commit=$(git rev-parse HEAD)

# build CLONE NAME: the wheelhouse of clone CLONE as NAME.tar, unpacked in NAME.x, hashes in
# NAME.sums; pip's output in NAME.log, shown if the build fails.
build() {
  "$work/$1/tools/build-wheelhouse.sh" "$work/$1" "$work/$2.tar" "$python" "$pyver" "$arch" \
    >"$work/$2.log" 2>&1 || { cat "$work/$2.log" >&2; exit 1; }
  mkdir "$work/$2.x" && tar -C "$work/$2.x" -xf "$work/$2.tar"
  (cd "$work/$2.x/wheels" && sha256sum -- * >"$work/$2.sums")
}

for clone in a b; do
  git clone --quiet --no-hardlinks "$repo" "$work/$clone"
  git -C "$work/$clone" checkout --quiet --detach "$commit"
  t0=$SECONDS
  build "$clone" "$clone"
  echo "clone $clone: release $("$work/$clone/tools/release-id.sh" "$work/$clone")," \
    "$(grep -c '\.whl$' "$work/$clone.sums") wheels, archive sha256" \
    "$(sha256sum "$work/$clone.tar" | cut -c1-16)…, built in $((SECONDS - t0)) s"
done

status=0
if cmp -s "$work/a.sums" "$work/b.sums" && cmp -s "$work/a.tar" "$work/b.tar"; then
  echo "same: every wheel, requirements.txt and the archive are byte-identical"
else
  diff "$work/a.sums" "$work/b.sums" || true
  echo "DIFFERENT: the two builds of $commit differ" >&2; status=1
fi
[ "$("$work/a/tools/release-id.sh" "$work/a")" = "$("$work/b/tools/release-id.sh" "$work/b")" ] \
  || { echo "DIFFERENT release names for one commit" >&2; status=1; }

# One transitive pin moved, as a real lock change would: annotated-types (pulled in by pydantic
# only) down to its previous release.
before=$("$work/b/tools/release-id.sh" "$work/b")
UV=$repo/.venv/bin/uv "$work/b/tools/lock.sh" --upgrade-package annotated-types==0.7.0
after=$("$work/b/tools/release-id.sh" "$work/b")
echo "one transitive pin moved: $(git -C "$work/b" diff --numstat -- requirements/runtime.lock \
  | awk '{print "+" $1 " -" $2 " lines in runtime.lock"}'); release $before -> $after"
[ "$before" != "$after" ] || { echo "the release name did not change with the lock" >&2; status=1; }
build b b-moved
echo "its wheelhouse: wheels that differ from the first build:" \
  "$(diff "$work/a.sums" "$work/b-moved.sums" | grep -c '^>.*\.whl$') (" \
  "$(diff "$work/a.sums" "$work/b-moved.sums" | sed -n 's/^> [0-9a-f]*  \(.*\.whl\)$/\1/p' | tr '\n' ' '))"
exit $status
