#!/usr/bin/env bash
# `make gpu-bundle`: what a GPU machine without network needs to build this project's LAMMPS and run the GPU check,
# prepared here (where the package registries are reachable), into .gpu-bundle/ (tens of MB):
#
#   lammps-src.tar.gz  LAMMPS 4 Jul 2026 (Debian's source archive, sha256-checked by `tools/lammps.sh --fetch-only`),
#                 pruned to the build system and the packages this project builds: src/ (top level, STUBS, ML-IAP,
#                 ML-SNAP, PYTHON, KSPACE, PLUGIN, EXTRA-FIX, EXTRA-COMPUTE, EXTRA-DUMP, MOLECULE; the bundled fmt and
#                 nlohmann headers), cmake/, python/
#   src/          the deepmd-kit sdist (the LAMMPS plugin is built from it, against that machine's torch)
#   wheels/       the Python packages that machine's Python (3.12, with torch, e3nn, CuPy, numpy, scipy ...) lacks:
#                 mace-torch and what it imports, ASE, deepmd-kit, dpdata, cuEquivariance (torch + CUDA 13 ops)
#   MANIFEST      what is in it, with sha256 sums
#
# On the GPU machine, in a copy of this repository with .gpu-bundle/ beside the code (the `device` tool: carry
# ".gpu-bundle"): `bash tools/gpu-check.sh OUT` builds LAMMPS there and runs tools/gpu_check.py.
# Environment: VENV (default .venv), BUNDLE (default .gpu-bundle), GPU_PYTHON (default 3.12).
set -euo pipefail

VENV=${VENV:-.venv}
BUNDLE=${BUNDLE:-.gpu-bundle}
GPU_PYTHON=${GPU_PYTHON:-3.12}
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${LIF_DIFFUSION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lif-diffusion}
say() { printf '\033[1m[gpu-bundle]\033[0m %s\n' "$*" >&2; }
die() { printf '[gpu-bundle] error: %s\n' "$*" >&2; exit 1; }

# Python packages for the GPU machine, at the versions this environment pins (constraints.txt); the ones its image
# has (torch, numpy, scipy, h5py, pyyaml, matplotlib, jinja2, CuPy, ...) are not carried. e3nn is: mace-torch needs
# exactly 0.4.4. cuEquivariance (not installed here) at the version named.
FROM_ENV=(mace-torch e3nn ase matscipy configargparse torch-ema prettytable wcwidth lmdb orjson
          deepmd-kit dpdata dargs wcmatch bracex array-api-compat)
EXTRA=("cuequivariance==0.13.0" "cuequivariance-torch==0.13.0" "cuequivariance-ops-torch-cu13==0.13.0")
PACKAGES=(STUBS ML-IAP ML-SNAP PYTHON KSPACE PLUGIN EXTRA-FIX EXTRA-COMPUTE EXTRA-DUMP MOLECULE fmt nlohmann)

WHEELS=("${EXTRA[@]}")
for n in "${FROM_ENV[@]}"; do
  v=$("$VENV/bin/python" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$n") \
    || die "$n is not installed in $VENV: run 'make install'"
  WHEELS+=("$n==$v")
done

VENV=$VENV bash "$HERE/lammps.sh" --fetch-only
ORIG=$(ls "$CACHE"/src/lammps_*+dfsg.orig.tar.gz | head -1)
DP_SDIST=$(ls "$CACHE"/src/deepmd_kit-*.tar.gz | head -1)

rm -rf "$BUNDLE.tmp" && mkdir -p "$BUNDLE.tmp/lammps-src" "$BUNDLE.tmp/src" "$BUNDLE.tmp/wheels"
trap 'rm -rf "$BUNDLE.tmp"' EXIT
say "pruning $(basename "$ORIG") to the packages this project builds"
members=(cmake python LICENSE README doc/lammps.1)
for p in "${PACKAGES[@]}"; do members+=("src/$p"); done
tar -xzf "$ORIG" -C "$BUNDLE.tmp/lammps-src" "${members[@]}"
# src/'s own files (not its package folders)
tar -tzf "$ORIG" | awk -F/ '$1 == "src" && NF == 2 && $2 != ""' > "$BUNDLE.tmp/src-files"
tar -xzf "$ORIG" -C "$BUNDLE.tmp/lammps-src" -T "$BUNDLE.tmp/src-files"
rm "$BUNDLE.tmp/src-files"
# `cmake --install` copies LAMMPS's bench/ and potentials/ folders: present, empty (the project uses neither)
mkdir -p "$BUNDLE.tmp/lammps-src/bench" "$BUNDLE.tmp/lammps-src/potentials"
tar -czf "$BUNDLE.tmp/lammps-src.tar.gz" -C "$BUNDLE.tmp/lammps-src" . && rm -rf "$BUNDLE.tmp/lammps-src"
cp "$DP_SDIST" "$BUNDLE.tmp/src/"

say "downloading ${#WHEELS[@]} wheels for Python $GPU_PYTHON (manylinux x86_64; cached in $CACHE/wheels)"
mkdir -p "$CACHE/wheels"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
for w in "${WHEELS[@]}"; do
  "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$GPU_PYTHON" --implementation cp "${PLATFORMS[@]}" -d "$CACHE/wheels" "$w" >/dev/null \
    || die "cannot download $w for Python $GPU_PYTHON"
  name=${w%%==*}; version=${w##*==}
  pattern=$(echo "$name" | tr '-' '_' | tr '[:upper:]' '[:lower:]')
  f=$(cd "$CACHE/wheels" && for c in *.whl; do n=$(echo "${c%%-*}" | tr '-' '_' | tr '[:upper:]' '[:lower:]')
        rest=${c#*-}; [ "$n" = "$pattern" ] && [ "${rest%%-*}" = "$version" ] && echo "$c"; done | head -1 || true)
  [ -n "$f" ] || die "downloaded $w but cannot find its wheel in $CACHE/wheels"
  cp "$CACHE/wheels/$f" "$BUNDLE.tmp/wheels/"
done

(cd "$BUNDLE.tmp" && find . -type f ! -name MANIFEST | sort | xargs sha256sum > MANIFEST)
rm -rf "$BUNDLE" && mv "$BUNDLE.tmp" "$BUNDLE"
SIZE=$(du -sk "$BUNDLE" | cut -f1)
[ "$SIZE" -lt 60000 ] || say "warning: $BUNDLE is $((SIZE / 1024)) MiB: with the repository it may not fit a 64 MiB carry"
say "$BUNDLE: $(du -sh "$BUNDLE" | cut -f1) ($(wc -l < "$BUNDLE/MANIFEST") files); on a GPU machine: bash tools/gpu-check.sh OUT"
# what a device call carries: the working tree (tracked and untracked files that git does not ignore) and the bundle
TREE=$(cd "$HERE/.." && git ls-files -z -c -o --exclude-standard 2>/dev/null | xargs -0 -r du -b 2>/dev/null \
       | awk '{s += $1} END {print s + 0}')
CARRY=$(( TREE + $(du -sb "$BUNDLE" | cut -f1) ))
say "carried with the working tree: $(( CARRY / 1048576 )) MiB of the 64 MiB a device call takes"
