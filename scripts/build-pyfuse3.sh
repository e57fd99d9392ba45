#!/usr/bin/env bash
# Build pyfuse3 with MusicFS's patch into build/pyfuse3/, once per patch, Python and libfuse.
#
# The patch (patches/pyfuse3-3.5.0-listings.patch, written to be offered upstream as is) lets the
# kernel keep folder listings: once opendir answers ENOSYS, readdir is given the folder's inode
# instead of a handle of 0, and opendir may return a FileInfo with cache_readdir. Steps: the pinned
# sdist from PyPI (pip download --no-binary), the patch, a wheel built with Cython from PyPI (pip's
# build isolation; about 25 s), versioned 3.5.0+musicfs.<patch digest> so `pip list` tells it from
# the stock release. Writes build/pyfuse3/requirements.txt naming the wheel, for pip and tox.
# Usage: scripts/build-pyfuse3.sh [PYTHON]   (default .venv/bin/python; prints nothing when up to date)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${1:-.venv/bin/python}
version=3.5.0
patch_file=patches/pyfuse3-$version-listings.patch
out=build/pyfuse3
digest=$(sha256sum "$patch_file" | cut -c1-12)
local_version="$version+musicfs.$digest"
key="$local_version $("$python" -c 'import sys; print(sys.implementation.cache_tag)') libfuse $(pkg-config --modversion fuse3)"

if [ -f "$out/requirements.txt" ] && [ "$(cat "$out/key" 2>/dev/null)" = "$key" ]; then
    exit 0
fi
echo "building pyfuse3 $local_version (patched for kernel-cached listings; about 30 s)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quiet() {  # pip, without the notes about this machine's unused package locations
    "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
    return "${PIPESTATUS[0]}"
}
quiet "$python" -m pip download -q --no-deps --no-binary :all: -d "$work" "pyfuse3==$version"
tar -xzf "$work/pyfuse3-$version.tar.gz" -C "$work"
source_dir="$work/pyfuse3-$version"
patch -s -p1 -d "$source_dir" < "$patch_file"
rm -f "$source_dir/src/pyfuse3/__init__.c"  # generated from the unpatched .pyx: Cython writes it anew
quiet env SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PYFUSE3="$local_version" \
    "$python" -m pip wheel -q --no-deps -w "$work/wheel" "$source_dir"
rm -rf "$out"
mkdir -p "$out"
mv "$work"/wheel/pyfuse3-*.whl "$out/"
wheel=$(ls "$out"/pyfuse3-*.whl)
echo "pyfuse3 @ file://$(realpath "$wheel")" > "$out/requirements.txt"
echo "$key" > "$out/key"
