#!/bin/bash
# Build a release wheelhouse archive: the app's wheel plus binary wheels of every pinned runtime
# dependency, for the target's CPython version and CPU architecture (not the controller's).
#   build-wheelhouse.sh SOURCE_DIR ARCHIVE [PYTHON] [TARGET_PY_VERSION] [TARGET_ARCH]
# TARGET_PY_VERSION is the target's full version (3.11.2): dependency markers such as
# python_full_version < "3.11.3" are evaluated for it.
# The archive is written atomically: a failed build never leaves a partial one behind.
set -euo pipefail
src=${1:?source dir}; archive=${2:?archive path}
python=${3:-python3}; pyver=${4:-3.11}; arch=${5:-$(uname -m)}
IFS=. read -r py_major py_minor _ <<<"$pyver"
abi="cp${py_major}${py_minor}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/wheels"
# Build from a clean copy: setuptools' in-tree build/ cache can carry deleted modules into a wheel.
cp -a "$src/pyproject.toml" "$src/README.md" "$src/webapp" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
# Reproducible archive members (wheel honours SOURCE_DATE_EPOCH).
export SOURCE_DATE_EPOCH=315532800 PIP_DISABLE_PIP_VERSION_CHECK=1
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$work/src"

# Resolve the dependency tree for the target interpreter, not the controller's: pip evaluates
# markers such as python_full_version < "3.11.3" with its own interpreter even under
# --python-version; uv resolves them for the version and platform it is given.
"$python" -m uv pip compile --quiet --no-header --no-annotate --python-version "$pyver" \
  --python-platform "${arch}-manylinux_2_36" --output-file "$work/wheels/requirements.txt" \
  "$work/src/pyproject.toml"

platforms=()
for tag in manylinux_2_36 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_17 manylinux2014 \
           manylinux_2_5 manylinux1; do
  platforms+=(--platform "${tag}_${arch}")
done
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" \
  --implementation cp --abi "$abi" --abi abi3 --abi none "${platforms[@]}" \
  --dest "$work/wheels" --requirement "$work/wheels/requirements.txt"

mkdir -p "$(dirname "$archive")"
tar -C "$work" --sort=name --mtime=@315532800 --owner=0 --group=0 --numeric-owner \
  -cf "$work/archive.tar" wheels
mv "$work/archive.tar" "$archive.partial.$$"
mv "$archive.partial.$$" "$archive"
echo "built $archive ($(find "$work/wheels" -name '*.whl' | wc -l) wheels)"
