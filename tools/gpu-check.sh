#!/usr/bin/env bash
# The GPU check in one command that fits a device call: `bash tools/gpu-check.sh OUT [all|build|check] [--budget-s N]
# [ARGS]`, in a copy of this repository with the bundle from `make gpu-bundle` in .gpu-bundle/ (the `device` tool:
# carry ".gpu-bundle"; e.g. `bash tools/gpu-check.sh gpu-results all --budget-s 500` in a call of timeout_s 540).
#
#   all     (the default) installs the bundle's wheels into $LIF_GPU_SITE (default /tmp/lif-site, on PYTHONPATH,
#           ahead of the image's own) and unpacks its pruned LAMMPS source, then tools/gpu_check.py --build runs the
#           cases in order within what is left of the budget: the LAMMPS build (ML-IAP/PYTHON, every core, no
#           DeePMD plugin; tools/lammps.sh with the bundle's source, offline, into $LIF_DIFFUSION_CACHE, default
#           /tmp/lif-cache), parity of LAMMPS against mace-torch in float64 and float32, ns/day at 433 atoms
#           (float32/float64, cuEquivariance/e3nn), k = 2, 4, 8 packed runs, 10,649 atoms, then the DeePMD plugin,
#           its parity and ns/day. Cases that cannot finish in the time left are skipped, a case still running when
#           the budget runs out is stopped; OUT/gpu-check.json and OUT/gpu-check.md are rewritten after every case
#           (with OUT/gpu-check.log, the only files in OUT)
#   build   the bundle and the whole build (LAMMPS and the DeePMD plugin), no budget
#   check   the measurements only, with the LAMMPS found as driver.lammps finds it (LIF_DIFFUSION_LMP, ...)
#
# --budget-s N counts from this script's start (default: none). Other ARGS go to gpu_check.py (--quick, --device cpu,
# --packs 2,4,8, --pack-case mace-float32-cueq, --skip-parity, --skip-large, --skip-deepmd). The rehearsal on a CPU:
#   GPU_PY=.venv/bin/python LIF_DIFFUSION_CACHE=~/.cache/lif-diffusion bash tools/gpu-check.sh OUT all \
#     --budget-s 120 --device cpu --quick
# (with --device cpu no bundle is used: the Python environment's packages and the LAMMPS source of `make lammps`,
# whose finished build is reused).
set -euo pipefail
START=$SECONDS

OUT=${1:?usage: bash tools/gpu-check.sh OUT [all|build|check] [--budget-s N] [ARGS]}
STEP=${2:-all}
shift $(( $# < 2 ? $# : 2 ))
case "$STEP" in all|build|check) ;; *) echo "gpu-check: step '$STEP' is not all, build or check" >&2; exit 2 ;; esac
BUDGET=""
ARGS=()
REHEARSAL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-s) BUDGET=${2:?--budget-s wants a number of seconds}; shift 2 ;;
    --budget-s=*) BUDGET=${1#*=}; shift ;;
    --device) [ "${2:-}" = cpu ] && REHEARSAL=1; ARGS+=("$1" "${2:-}"); shift $(( $# < 2 ? 1 : 2 )) ;;
    --device=cpu) REHEARSAL=1; ARGS+=("$1"); shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUNDLE=${BUNDLE:-$ROOT/.gpu-bundle}
SITE=${LIF_GPU_SITE:-/tmp/lif-site}
export LIF_DIFFUSION_CACHE=${LIF_DIFFUSION_CACHE:-/tmp/lif-cache}
PY=${GPU_PY:-$(command -v python3)}
mkdir -p "$OUT"
say() { printf '[gpu-check] %s\n' "$*" | tee -a "$OUT/gpu-check.log" >&2; }
die() { say "error: $*"; exit 1; }

# tools/lammps.sh wants <venv>/bin/python: this Python's own prefix is that environment
VENV=$("$PY" -c 'import sys; print(sys.prefix)')
export VENV JOBS=${JOBS:-$(nproc --all)}
# the bundle's packages ahead of the image's (not in a rehearsal)
if [ -n "$REHEARSAL" ]; then SITE_PATH=""; else SITE_PATH="$SITE:"; fi
export PYTHONPATH="$SITE_PATH$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1  # e3nn 0.4.4's torch.load of its constants, as mace-torch sets it

if [ "$STEP" != check ]; then
  say "machine: $(nvidia-smi -L 2>/dev/null | head -1 || echo 'no nvidia-smi'); $(nproc --all) cores; $("$PY" -c \
    'import sys, torch; print("Python", sys.version.split()[0], "torch", torch.__version__, "CUDA",
    torch.version.cuda)')"
  if [ -n "$REHEARSAL" ]; then
    say "rehearsal (--device cpu): this machine's own packages and LAMMPS source, no bundle"
  elif [ -f "$BUNDLE/MANIFEST" ]; then
    (cd "$BUNDLE" && sha256sum -c --quiet MANIFEST) || die "the bundle at $BUNDLE does not match its MANIFEST"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "$BUNDLE"/wheels/*.whl >> "$OUT/gpu-check.log" 2>&1 \
      || die "installing the bundle's wheels failed (see $OUT/gpu-check.log)"
    mkdir -p "$LIF_DIFFUSION_CACHE/src" && cp "$BUNDLE"/src/* "$LIF_DIFFUSION_CACHE/src/"
    rm -rf "$LIF_DIFFUSION_CACHE/lammps-src" && mkdir -p "$LIF_DIFFUSION_CACHE/lammps-src"
    tar -xzf "$BUNDLE/lammps-src.tar.gz" -C "$LIF_DIFFUSION_CACHE/lammps-src"
    # the bundle's source, offline, without the packages MACE and DeePMD do not use (tools/lammps.sh)
    export LAMMPS_SOURCE="$LIF_DIFFUSION_CACHE/lammps-src" LIF_DIFFUSION_OFFLINE=1 LAMMPS_LEAN=1
    say "bundle installed in $(( SECONDS - START )) s"
  else
    die "no bundle at $BUNDLE: run 'make gpu-bundle' where the package registries are reachable"
  fi
fi
if [ "$STEP" = build ]; then
  bash "$HERE/lammps.sh" 2>&1 | tee -a "$OUT/gpu-check.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || die "the build failed (see $OUT/gpu-check.log)"
  say "built in $(( SECONDS - START )) s"
  exit 0
fi
BUDGET_ARGS=()
if [ -n "$BUDGET" ]; then
  LEFT=$(( ${BUDGET%.*} - (SECONDS - START) ))
  [ "$LEFT" -gt 0 ] || die "the budget of $BUDGET s is spent before the check began"
  BUDGET_ARGS=(--budget-s "$LEFT")
fi
BUILD_ARGS=()
[ "$STEP" = all ] && BUILD_ARGS=(--build)
PYTHONUNBUFFERED=1 exec "$PY" "$HERE/gpu_check.py" --out "$OUT" "${BUILD_ARGS[@]}" "${BUDGET_ARGS[@]}" "${ARGS[@]}"
