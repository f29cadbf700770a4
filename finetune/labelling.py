"""Training data: LiF configurations, labelled with energies and forces, written for the trainers.

Frames are ASE ``Atoms`` (orthorhombic cells, Å). :func:`label_with_lammps` computes energies (eV) and forces
(eV/Å) and stress (eV/Å³, ASE's sign and Voigt order) for many frames in one LAMMPS process (``rerun`` over a dump), with any potential of the catalog — the
classical baseline labels the tests' data sets; a DFT code through an ASE calculator labels real ones.
The writers for the trainers are in :mod:`finetune.datasets`.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from core.errors import LammpsError, PotentialError
from core.units import BAR_PER_EV_A3
from inputs.defects import add_defect
from inputs.structure import LIF_TYPE_ORDER, rocksalt_lif, write_atoms_data
from potentials.base import PairBlock


def lif_frames(n: int, seed: int, lattice_constant_angstrom: float = 4.01, cells: int = 2,
               rattle_angstrom: float = 0.08, strain: float = 0.02, defect: str = "none") -> list:
    """``n`` rattled and isotropically strained LiF supercells (distinct, reproducible for a seed)."""
    rng = np.random.default_rng(seed)
    base = add_defect(rocksalt_lif(lattice_constant_angstrom, cells), defect)
    frames = []
    for _ in range(n):
        scale = 1.0 + rng.uniform(-strain, strain)
        atoms = base.atoms()
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle_angstrom, atoms.positions.shape)
        atoms.wrap()
        frames.append(atoms)
    return frames


def label_with_lammps(frames: list, block: PairBlock, lmp: str,
                      type_order: tuple[str, ...] = LIF_TYPE_ORDER) -> list:
    """The frames with energy and forces from LAMMPS (attached as ASE single-point results); ``type_order``: the
    species in the LAMMPS type order ``block`` was resolved for (LiF's by default)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from driver.dumps import iter_frames
    from driver.lammps import lammps_env

    if not frames:
        return []
    for a in frames:
        if not np.allclose(a.cell.array, np.diag(np.diag(a.cell.array))):
            raise PotentialError("labelling through LAMMPS takes orthorhombic cells only")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first = frames[0]
        charges = None if block.charges is None else [block.charges[e] for e in first.get_chemical_symbols()]
        write_atoms_data(first, tmp / "d.lmp", charges=charges, type_order=type_order)
        types = {e: i + 1 for i, e in enumerate(type_order)}
        with open(tmp / "frames.dump", "w") as fh:
            for k, a in enumerate(frames):
                lx, ly, lz = (float(v) for v in np.diag(a.cell.array))
                fh.write(f"ITEM: TIMESTEP\n{k}\nITEM: NUMBER OF ATOMS\n{len(a)}\nITEM: BOX BOUNDS pp pp pp\n"
                         f"0 {lx!r}\n0 {ly!r}\n0 {lz!r}\nITEM: ATOMS id type x y z\n")
                for i, (sym, (x, y, z)) in enumerate(zip(a.get_chemical_symbols(), a.positions), start=1):
                    fh.write(f"{i} {types[sym]} {float(x)!r} {float(y)!r} {float(z)!r}\n")
        deck = ["units metal", f"atom_style {'charge' if block.charges else 'atomic'}", "boundary p p p",
                "read_data d.lmp", *block.lines, "compute lif_pv all pressure NULL virial",
                "thermo_style custom step pe " + " ".join(f"c_lif_pv[{i}]" for i in range(1, 7)),
                "thermo_modify format float %.12e",
                "thermo 1", "dump f all custom 1 forces.dump id fx fy fz",
                "dump_modify f sort id format float %.12f", "rerun frames.dump dump x y z box yes"]
        (tmp / "in.label").write_text("\n".join(deck) + "\n")
        out = subprocess.run([lmp, "-in", "in.label", "-log", "none"], cwd=tmp, capture_output=True, text=True,
                             env=lammps_env(lmp), timeout=3600)
        if out.returncode != 0:
            err = [l for l in out.stdout.splitlines() if "ERROR" in l]
            raise LammpsError(f"labelling failed: {err[-1] if err else out.stderr[-500:]}")
        number = r"\s+(-?[0-9.]+(?:e[-+]?\d+)?)"
        rows = {int(m.group(1)): [float(v) for v in m.groups()[1:]]
                for m in re.finditer(r"^\s*(\d+)" + number * 7 + r"\s*$", out.stdout, re.M)}
        forces = [np.array([line.split()[1:4] for line in lines[9:]], dtype=float)
                  for _, lines in iter_frames(tmp / "forces.dump")]
    labelled = []
    for k, a in enumerate(frames):
        a = a.copy()
        energy, *p_bar = rows[k]
        # LAMMPS virial pressure (xx yy zz xy xz yz, bar) -> ASE stress (Voigt xx yy zz yz xz xy, eV/Å³), sign flipped
        pxx, pyy, pzz, pxy, pxz, pyz = p_bar
        stress = -np.array([pxx, pyy, pzz, pyz, pxz, pxy]) / BAR_PER_EV_A3
        a.calc = SinglePointCalculator(a, energy=energy, forces=forces[k], stress=stress)
        labelled.append(a)
    return labelled
