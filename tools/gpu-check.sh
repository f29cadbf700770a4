#!/usr/bin/env bash
# The GPU check, on a GPU machine without network: `bash tools/gpu-check.sh OUT [build|check|all] [ARGS]`, in a copy of this
# repository with the bundle from `make gpu-bundle` in .gpu-bundle/ (the `device` tool: carry ".gpu-bundle").
#
#   build   installs the bundle's wheels into $LIF_GPU_SITE (default /tmp/lif-site, on PYTHONPATH, ahead of the
#           image's own), then builds LAMMPS with ML-IAP/PYTHON and the DeePMD-kit plugin against this machine's
#           Python and (CUDA) torch with tools/lammps.sh (LAMMPS_SOURCE = the bundle's pruned tree, offline);
#           about 5 minutes on 16 cores; the build lands in $LIF_DIFFUSION_CACHE (default /tmp/lif-cache)
#   check   tools/gpu_check.py --out OUT: parity of LAMMPS against mace-torch and DeepPot on the GPU, and ns/day
#           (MACE with MACE-MPA-0 medium's architecture at 433 and 10,649 atoms, float32/float64, with and without
#           cuEquivariance; DeePMD; k = 1, 2, 4, 8 packed runs); OUT/gpu-check.{json,md} and the logs
#           (ARGS go to gpu_check.py: --sizes 433, --packs 1,2,4,8, --pack-case, --skip-parity, --skip-deepmd)
#   all     both (the default); each step is one command of a few minutes, so they can be two device calls
set -euo pipefail

OUT=${1:?usage: bash tools/gpu-check.sh OUT [build|check|all]}
STEP=${2:-all}
shift $(( $# < 2 ? $# : 2 ))
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUNDLE=${BUNDLE:-$ROOT/.gpu-bundle}
SITE=${LIF_GPU_SITE:-/tmp/lif-site}
export LIF_DIFFUSION_CACHE=${LIF_DIFFUSION_CACHE:-/tmp/lif-cache}
PY=${GPU_PY:-$(command -v python3)}
mkdir -p "$OUT"
say() { printf '[gpu-check] %s\n' "$*" | tee -a "$OUT/gpu-check.log" >&2; }
die() { say "error: $*"; exit 1; }

[ -f "$BUNDLE/MANIFEST" ] || die "no bundle at $BUNDLE: run 'make gpu-bundle' where the package registries are reachable"
(cd "$BUNDLE" && sha256sum -c --quiet MANIFEST) || die "the bundle at $BUNDLE does not match its MANIFEST"
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1  # e3nn 0.4.4's torch.load of its constants, as mace-torch sets it

if [ "$STEP" = build ] || [ "$STEP" = all ]; then
  say "machine: $(nvidia-smi -L 2>/dev/null | head -1 || echo 'no nvidia-smi'); $("$PY" -c 'import sys, torch; print("Python", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda)')"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$BUNDLE"/wheels/*.whl 2>&1 | tee -a "$OUT/gpu-check.log" || die "installing the bundle's wheels failed"
  mkdir -p "$LIF_DIFFUSION_CACHE/src" && cp "$BUNDLE"/src/* "$LIF_DIFFUSION_CACHE/src/"
  rm -rf "$LIF_DIFFUSION_CACHE/lammps-src" && mkdir -p "$LIF_DIFFUSION_CACHE/lammps-src"
  tar -xzf "$BUNDLE/lammps-src.tar.gz" -C "$LIF_DIFFUSION_CACHE/lammps-src"
  # tools/lammps.sh wants <venv>/bin/python: this Python's own prefix is that environment
  VENV=$("$PY" -c 'import sys; print(sys.prefix)') LAMMPS_SOURCE="$LIF_DIFFUSION_CACHE/lammps-src" LIF_DIFFUSION_OFFLINE=1 \
    JOBS=${JOBS:-$(nproc)} bash "$HERE/lammps.sh" 2>&1 | tee -a "$OUT/gpu-check.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || die "the LAMMPS build failed (see $OUT/gpu-check.log)"
fi
if [ "$STEP" = check ] || [ "$STEP" = all ]; then
  LMP=$(ls -d "$LIF_DIFFUSION_CACHE"/lammps/*/bin/lmp 2>/dev/null | head -1)
  [ -n "$LMP" ] || die "no LAMMPS built under $LIF_DIFFUSION_CACHE: run the build step first"
  export LIF_DIFFUSION_LMP=$LMP
  # the build's Python module first (the .pth in the environment does it too, where that environment is writable)
  PREFIX=$(dirname "$(dirname "$LMP")")
  export PYTHONPATH="$PREFIX/python:$PYTHONPATH"
  PYTHONUNBUFFERED=1 "$PY" "$HERE/gpu_check.py" --out "$OUT" "$@" 2>&1 | tee -a "$OUT/gpu-check.log"
  exit "${PIPESTATUS[0]}"
fi
