"""Training data: LiF configurations, labelled with energies and forces, written for the trainers.

Frames are ASE ``Atoms`` (orthorhombic cells, Å). :func:`label_with_lammps` computes energies (eV) and forces
(eV/Å) for many frames in one LAMMPS process (``rerun`` over a dump), with any potential of the catalog — the
classical baseline labels the tests' data sets; a DFT code through an ASE calculator labels real ones.
Writers: DeePMD-kit npy systems (``type_map.raw``, ``type.raw``, ``set.000/{box,coord,energy,force}.npy``) and
extended XYZ for MACE (``REF_energy``, ``REF_forces``).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from inputs.errors import LammpsError, PotentialError
from inputs.structure import Structure, TYPE_ORDER, rocksalt_lif, with_defect, write_lammps_data
from potentials.base import PairBlock


def structure_to_atoms(s: Structure):
    from ase import Atoms

    return Atoms(symbols=list(s.species), positions=s.positions, cell=s.box_angstrom, pbc=True)


def lif_frames(n: int, seed: int, lattice_constant_angstrom: float = 4.01, cells: int = 2,
               rattle_angstrom: float = 0.08, strain: float = 0.02, defect: str = "none") -> list:
    """``n`` rattled and isotropically strained LiF supercells (distinct, reproducible for a seed)."""
    rng = np.random.default_rng(seed)
    base = with_defect(rocksalt_lif(lattice_constant_angstrom, cells), defect)
    frames = []
    for _ in range(n):
        scale = 1.0 + rng.uniform(-strain, strain)
        atoms = structure_to_atoms(base)
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle_angstrom, atoms.positions.shape)
        atoms.wrap()
        frames.append(atoms)
    return frames


def label_with_lammps(frames: list, block: PairBlock, lmp: str) -> list:
    """The frames with energy and forces from LAMMPS (attached as ASE single-point results)."""
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
        s = Structure(first.positions, tuple(first.get_chemical_symbols()), tuple(np.diag(first.cell.array)),
                      0.0, (1, 1, 1))
        write_lammps_data(s, tmp / "d.lmp", charges=block.charges)
        types = {e: i + 1 for i, e in enumerate(TYPE_ORDER)}
        with open(tmp / "frames.dump", "w") as fh:
            for k, a in enumerate(frames):
                lx, ly, lz = (float(v) for v in np.diag(a.cell.array))
                fh.write(f"ITEM: TIMESTEP\n{k}\nITEM: NUMBER OF ATOMS\n{len(a)}\nITEM: BOX BOUNDS pp pp pp\n"
                         f"0 {lx!r}\n0 {ly!r}\n0 {lz!r}\nITEM: ATOMS id type x y z\n")
                for i, (sym, (x, y, z)) in enumerate(zip(a.get_chemical_symbols(), a.positions), start=1):
                    fh.write(f"{i} {types[sym]} {float(x)!r} {float(y)!r} {float(z)!r}\n")
        deck = ["units metal", f"atom_style {'charge' if block.charges else 'atomic'}", "boundary p p p",
                "read_data d.lmp", *block.lines, "thermo_style custom step pe", "thermo_modify format float %.12f",
                "thermo 1", "dump f all custom 1 forces.dump id fx fy fz",
                "dump_modify f sort id format float %.12f", "rerun frames.dump dump x y z box yes"]
        (tmp / "in.label").write_text("\n".join(deck) + "\n")
        out = subprocess.run([lmp, "-in", "in.label", "-log", "none"], cwd=tmp, capture_output=True, text=True,
                             env=lammps_env(lmp), timeout=3600)
        if out.returncode != 0:
            err = [l for l in out.stdout.splitlines() if "ERROR" in l]
            raise LammpsError(f"labelling failed: {err[-1] if err else out.stderr[-500:]}")
        energies = {int(m.group(1)): float(m.group(2))
                    for m in re.finditer(r"^\s*(\d+)\s+(-?[0-9.]+(?:e[-+]?\d+)?)\s*$", out.stdout, re.M)}
        forces = [np.array([line.split()[1:4] for line in lines[9:]], dtype=float)
                  for _, lines in iter_frames(tmp / "forces.dump")]
    labelled = []
    for k, a in enumerate(frames):
        a = a.copy()
        a.calc = SinglePointCalculator(a, energy=energies[k], forces=forces[k])
        labelled.append(a)
    return labelled


def write_deepmd_npy(frames: list, directory: Path, type_map: tuple[str, ...] = TYPE_ORDER) -> Path:
    """A DeePMD-kit system (all frames share one atom order)."""
    directory = Path(directory)
    symbols = frames[0].get_chemical_symbols()
    if any(a.get_chemical_symbols() != symbols for a in frames):
        raise PotentialError("a DeePMD system needs the same atoms in the same order in every frame")
    unknown = sorted(set(symbols) - set(type_map))
    if unknown:
        raise PotentialError(f"elements {unknown} are not in the type map {list(type_map)}")
    sets = directory / "set.000"
    sets.mkdir(parents=True, exist_ok=True)
    (directory / "type_map.raw").write_text("\n".join(type_map) + "\n")
    (directory / "type.raw").write_text("\n".join(str(type_map.index(s)) for s in symbols) + "\n")
    np.save(sets / "box.npy", np.array([a.cell.array.reshape(9) for a in frames]))
    np.save(sets / "coord.npy", np.array([a.positions.reshape(-1) for a in frames]))
    np.save(sets / "energy.npy", np.array([a.get_potential_energy() for a in frames]))
    np.save(sets / "force.npy", np.array([a.get_forces().reshape(-1) for a in frames]))
    return directory


def write_extxyz(frames: list, path: Path) -> Path:
    """Extended XYZ with ``REF_energy`` and ``REF_forces`` (the keys ``mace_run_train`` is told to read)."""
    from ase.io import write

    out = []
    for a in frames:
        b = a.copy()
        b.info["REF_energy"] = a.get_potential_energy()
        b.arrays["REF_forces"] = a.get_forces()
        b.calc = None
        out.append(b)
    write(str(path), out, format="extxyz")
    return Path(path)
