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

What it sets up: ``units metal``, the structure (types Li = 1, F = 2; the elements of the model are checked against
it), the potential's own lines from the catalog (as in the decks), MACE's ML-IAP Python coupling (and the project's
adapter handle), and the DeePMD-kit plugin built beside this LAMMPS. LAMMPS works in its own frame (a along x, b in
the xy plane): :func:`evaluate` returns forces rotated back into the atoms' frame.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from core.errors import LammpsError
from inputs.structure import TYPE_ORDER, write_atoms_data
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
def open_lammps(potential: str, atoms, cmdargs: list[str] | None = None, compute: Compute | str = "cpu") -> Iterator:
    """A ``lammps.lammps`` instance with ``atoms`` (ASE) and the catalog potential set up; closed on exit.
    ``compute``: ``cpu`` or ``cuda`` (MACE on the CUDA device; a :class:`~potentials.base.Compute` also sets
    precision and cuEquivariance)."""
    lammps = _lammps_module()
    symbols = sorted(set(atoms.get_chemical_symbols()), key=lambda s: TYPE_ORDER.index(s) if s in TYPE_ORDER else 99)
    unknown = [s for s in symbols if s not in TYPE_ORDER]
    if unknown:
        raise LammpsError(f"the cell has {unknown}; this project's LAMMPS types are {list(TYPE_ORDER)}")
    compute = Compute.of(compute)
    if compute.accelerator == "kokkos":
        raise LammpsError("driver.session runs the project's LAMMPS (no KOKKOS): use compute 'cpu' or 'cuda'")
    _, block = resolve(potential, TYPE_ORDER, compute)
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
            data = write_atoms_data(atoms, Path(tmp) / "cell.lmp", charges=charges)
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
