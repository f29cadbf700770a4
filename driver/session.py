"""LAMMPS from Python for a catalog potential: forces, energies or a few MD steps on a cell of your own.

After ``make lammps``, ``import lammps`` in this environment loads the LAMMPS the project built (ML-IAP with
PYTHON for MACE, KSPACE, PLUGIN with the DeePMD-kit plugin; ``lammps().installed_packages`` lists them). This
module sets up an instance the way the decks do::

    from ase.build import bulk
    from driver.session import evaluate, open_lammps

    atoms = bulk("LiF", "rocksalt", a=4.03, cubic=True).repeat(2)
    energy, forces = evaluate("mace-mpa-0", atoms)          # eV, eV/Å in the atoms' own frame

    with open_lammps("deepmd-lif", atoms) as lmp:           # a lammps.lammps instance, structure and potential set
        lmp.commands_list(["velocity all create 400 1", "fix nve all nve", "run 100"])

What it sets up: ``units metal``, the structure (types in ``type_order``, by default a built-in crystal's order for
its elements, e.g. Li = 1, F = 2; the elements of the model are checked against it), the potential's own lines
from the catalog (as in the decks), MACE's ML-IAP Python coupling (and the project's adapter handle), and the
DeePMD-kit plugin built beside this LAMMPS. LAMMPS works in its own frame (a along x, b in the xy plane):
:func:`evaluate` returns forces rotated back into the atoms' frame.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from core.errors import LammpsError
from inputs.structure import type_order_for, write_atoms_data
from potentials.base import Compute
from potentials.catalog import resolve


def _lammps_module():
    try:
        import lammps
    except ImportError:
        raise LammpsError("the LAMMPS Python module is not installed here: run `make install` and `make lammps`") \
            from None
    return lammps


def plugin_dir() -> Path | None:
    """The DeePMD-kit plugin built beside the LAMMPS that ``import lammps`` loads (``make lammps``), if any."""
    prefix = Path(_lammps_module().__file__).resolve().parents[2]
    d = prefix / "deepmd" / "lib"
    return d if (d / "dpplugin.so").exists() else None


@contextmanager
def open_lammps(potential: str, atoms, cmdargs: list[str] | None = None, compute: Compute | str = "cpu",
                type_order: tuple[str, ...] | None = None) -> Iterator:
    """A ``lammps.lammps`` instance with ``atoms`` (ASE) and the catalog potential set up; closed on exit.
    ``compute``: ``cpu`` or ``cuda`` (MACE on the CUDA device; a :class:`~potentials.base.Compute` also sets
    precision and cuEquivariance). ``type_order``: the species in LAMMPS type order (by default
    :func:`inputs.structure.type_order_for` the atoms' elements: a built-in crystal's order, LiF's for Li and F);
    the potential's elements are checked against it."""
    lammps = _lammps_module()
    order = type_order_for(atoms.get_chemical_symbols()) if type_order is None else tuple(type_order)
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(order))
    if unknown:
        raise LammpsError(f"the cell has {unknown}; the LAMMPS types are {list(order)}")
    compute = Compute.of(compute)
    if compute.accelerator == "kokkos":
        raise LammpsError("driver.session runs the project's LAMMPS (no KOKKOS): use compute 'cpu' or 'cuda'")
    _, block = resolve(potential, order, compute)
    lmp = lammps.lammps(cmdargs=cmdargs if cmdargs is not None else ["-log", "none", "-screen", "none", "-nocite"])
    try:
        missing = [p for p in block.requirements.packages if not lmp.has_package(p)]
        if missing:
            raise LammpsError(f"the LAMMPS that `import lammps` loads ({lammps.__file__}) lacks {missing} for "
                              f"potential {potential!r}: run `make lammps`")
        if "PLUGIN" in block.requirements.packages:
            d = plugin_dir()
            if d is None:
                raise LammpsError(f"no DeePMD-kit plugin beside {lammps.__file__}: run `make lammps`")
            os.environ["DP_BACKEND_PLUGIN_PATH"] = str(d)
            lmp.command(f"plugin load {d / 'dpplugin.so'}")
        if "PYTHON" in block.requirements.packages:  # MACE: ML-IAP's Python coupling, activated by hand from Python
            from lammps.mliap import activate_mliappy

            activate_mliappy(lmp)
        with tempfile.TemporaryDirectory() as tmp:
            charges = None if block.charges is None else [block.charges[s] for s in atoms.get_chemical_symbols()]
            data = write_atoms_data(atoms, Path(tmp) / "cell.lmp", charges=charges, type_order=order)
            lmp.commands_list(["units metal", "boundary p p p", f"atom_style {'charge' if charges else 'atomic'}",
                               f"read_data {data}"])
        lmp.commands_list(list(block.lines))
        yield lmp
    finally:
        lmp.close()


def evaluate(potential: str, atoms, compute: Compute | str = "cpu") -> tuple[float, np.ndarray]:
    """(energy in eV, forces (N, 3) in eV/Å in the atoms' frame and order) of a catalog potential on ``atoms``."""
    from ase.calculators.lammps import Prism

    with open_lammps(potential, atoms, compute=compute) as lmp:
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
        # gathered in id order, which is the atoms' order (the data file writes them so)
        forces = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3).copy()
    return energy, Prism(atoms.cell.array).vector_to_ase(forces)


# --- the run-0 check: LAMMPS judges a potential's lines before a study starts ------------------------------------

#: what the run-0 deck prints before the energy, to find it among LAMMPS's output
RUN0_MARK = "LIF_DIFFUSION_RUN0"


def run_zero(potential: str, data_file: Path, type_order: tuple[str, ...], lmp: str | None = None,
             compute: Compute | str = "cpu") -> float:
    """``run 0`` of a catalog potential's own lines on a LAMMPS data file (types in ``type_order``; ``atom_style
    charge`` where the potential has charges), in the LAMMPS executable ``lmp`` (default: the one ``driver run``
    finds). Returns the potential energy (eV); where LAMMPS refuses the lines, a one-line
    :class:`~core.errors.PotentialError` naming the entry, its catalog file and LAMMPS's ERROR (and the command it
    stopped at)."""
    import subprocess

    from core.errors import PotentialError
    from driver.lammps import find_lammps, lammps_env

    lmp = find_lammps(lmp)
    entry, block = resolve(potential, tuple(type_order), compute)
    deck = ["units metal", "boundary p p p", f"atom_style {'charge' if block.charges is not None else 'atomic'}",
            "read_data cell.lmp", *block.lines, "thermo_style custom step pe", "run 0",
            f'print "{RUN0_MARK} $(pe:%.15g)"']
    with tempfile.TemporaryDirectory() as tmp:  # the data file copied in: any path (spaces, $) stays out of the deck
        shutil.copyfile(data_file, Path(tmp) / "cell.lmp")
        (Path(tmp) / "in.run0").write_text("\n".join(deck) + "\n")
        try:
            proc = subprocess.run([lmp, "-in", "in.run0", "-log", "none", "-nocite"], cwd=tmp, capture_output=True,
                                  text=True, timeout=600, env=lammps_env(lmp))
            out = proc.stdout + proc.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PotentialError(f"potential {potential!r} ({entry.catalog}): cannot run LAMMPS {lmp} to check its "
                                 f"lines: {e}") from None
    found = [line.split()[1] for line in out.splitlines() if line.startswith(RUN0_MARK + " ")]
    if proc.returncode == 0 and found:
        return float(found[-1])
    lines = out.splitlines()
    error = next((line.strip() for line in lines if line.startswith("ERROR")), None)
    last = next((line.split(":", 1)[1].strip() for line in lines if line.startswith(("Last input line:",
                                                                                    "Last command:"))), None)
    what = error or (lines[-1].strip() if lines else f"exit status {proc.returncode}, no output")
    raise PotentialError(f"potential {potential!r} ({entry.catalog}): LAMMPS refused its lines: {what}"
                         + (f" (at: {last})" if last else ""))


def check_potential(potential: str, structure, lmp: str | None = None, compute: Compute | str = "cpu",
                    compensation: str = "background") -> float:
    """:func:`run_zero` of a catalog potential on a :class:`~inputs.structure.Structure` (its own type order; the
    potential's charges with the study's ``compensation``). Returns the energy (eV)."""
    from inputs.structure import charges_for, write_lammps_data

    _, block = resolve(potential, structure.type_order, compute)
    charges = None if block.charges is None else charges_for(structure, block.charges, compensation)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_lammps_data(structure, Path(tmp) / "cell.lmp", charges=charges, type_order=structure.type_order)
        return run_zero(potential, data, structure.type_order, lmp, compute)


def check_runs(run_dirs: list[Path], lmp: str | None = None) -> list[str]:
    """Before a study starts: :func:`run_zero` on the first rendered run of each potential whose family is cheap on
    a CPU (``CHEAP_ON_CPU``: the ML families would load their models), with that run's own data file, so a bad line
    stops the study with one message before any run is marked started. Returns the potentials checked."""
    from core.rundir import RunDir
    from inputs.structure import structure_of
    from potentials.catalog import family

    checked: list[str] = []
    for d in run_dirs:
        run = RunDir(d)
        s = run.read()
        if s.potential in checked or not family(s.family).CHEAP_ON_CPU:
            continue
        run_zero(s.potential, run.data, structure_of(s.structure).type_order, lmp)
        checked.append(s.potential)
    return checked
