#!/bin/bash
# Build a release wheelhouse archive: the app's wheel plus binary wheels of every package the
# locked runtime tree (requirements/runtime.lock) holds for the target's CPython version and CPU
# architecture (not the controller's), each checked against the lock's hashes.
#   build-wheelhouse.sh SOURCE_DIR ARCHIVE [PYTHON] [TARGET_PY_VERSION] [TARGET_ARCH]
# PYTHON must have the dev tree installed (tools/bootstrap.sh): its setuptools builds the app's
# wheel and its packaging evaluates the lock's markers. TARGET_PY_VERSION is the target's full
# version (3.11.2): markers such as python_full_version < "3.11.3" are evaluated for it.
# Nothing is resolved here: the same source tree and lock give the same bytes.
# The archive holds wheels/*.whl and wheels/requirements.txt (the lock's entries for this target
# and the app's wheel, all with hashes), which hosts install with
#   pip install --no-index --require-hashes --find-links wheels -r wheels/requirements.txt
# The archive is written atomically: a failed build never leaves a partial one behind.
set -euo pipefail
src=${1:?source dir}; archive=${2:?archive path}
python=${3:-python3}; pyver=${4:-3.11}; arch=${5:-$(uname -m)}
IFS=. read -r py_major py_minor _ <<<"$pyver"
abi="cp${py_major}${py_minor}"
tools=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/wheels"
# Build from a clean copy: setuptools' in-tree build/ cache can carry deleted modules into a wheel.
cp -a "$src/pyproject.toml" "$src/README.md" "$src/webapp" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
# Reproducible archive members (setuptools honours SOURCE_DATE_EPOCH). No build isolation: the
# locked setuptools of PYTHON builds the wheel, not whichever one an index offers today.
export SOURCE_DATE_EPOCH=315532800 PIP_DISABLE_PIP_VERSION_CHECK=1
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/wheels" "$work/src"
app_wheel=$(cd "$work/wheels" && echo *.whl)

# The lock's entries for the target, with their hashes.
"$python" "$tools/lock-for-target.py" "$src/requirements/runtime.lock" "$pyver" "$arch" \
  > "$work/locked.txt"

platforms=()
for tag in manylinux_2_36 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_17 manylinux2014 \
           manylinux_2_5 manylinux1; do
  platforms+=(--platform "${tag}_${arch}")
done
# --require-hashes: a file the lock does not name (say, a wheel uploaded after it was written)
# is never picked, and a downloaded file with another hash fails the build.
"$python" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
  --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none \
  "${platforms[@]}" --dest "$work/wheels" --requirement "$work/locked.txt"

app_hash=$(sha256sum "$work/wheels/$app_wheel" | cut -d' ' -f1)
app_name=$(cut -d- -f1 <<<"$app_wheel" | tr _ -); app_version=$(cut -d- -f2 <<<"$app_wheel")
{
  echo "# The release's requirements for CPython $pyver on $arch: the app and the entries of"
  echo "# requirements/runtime.lock (sha256 $(sha256sum "$src/requirements/runtime.lock" | cut -c1-64))"
  echo "# for that target. Install with --no-index --require-hashes --find-links <this directory>."
  echo "$app_name==$app_version --hash=sha256:$app_hash"
  cat "$work/locked.txt"
} > "$work/wheels/requirements.txt"

mkdir -p "$(dirname "$archive")"
tar -C "$work" --sort=name --mtime=@315532800 --owner=0 --group=0 --numeric-owner --mode=go-w,a+rX \
  -cf "$work/archive.tar" wheels
mv "$work/archive.tar" "$archive.partial.$$"
mv "$archive.partial.$$" "$archive"
echo "built $archive ($(find "$work/wheels" -name '*.whl' | wc -l) wheels)"
