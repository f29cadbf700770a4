"""Rock-salt LiF supercells with point defects, written as LAMMPS data files.

Lengths are in Å. A conventional rock-salt cell (lattice constant ``a``) holds 4 Li on the fcc sites
(0,0,0), (½,½,0), (½,0,½), (0,½,½) and 4 F on the octahedral sites shifted by (½,0,0). The tetrahedral
interstitial site sits at (¼,¼,¼): the centre of a small cube of side a/2, equidistant (√3·a/4) from 4 Li and 4 F.

Atom ids are 1-based and follow the order of :attr:`Structure.species`; an added interstitial always gets the
last id, so the defect is easy to select (``id N``). The ids of defect atoms are recorded in
:attr:`Structure.defect` and in the ``structure.json`` the driver writes beside the data file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from core.errors import InputError
from core.files import atomic_write_text

DefectKind = Literal["none", "interstitial", "vacancy", "frenkel"]
DEFECT_KINDS: tuple[str, ...] = get_args(DefectKind)

MASSES_AMU = {"Li": 6.941, "F": 18.998403}
TYPE_ORDER: tuple[str, ...] = ("Li", "F")

_LI_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
_F_BASIS = _LI_BASIS + np.array([0.5, 0, 0])
_TETRAHEDRAL = np.array([0.25, 0.25, 0.25])
#: Closest approach allowed between two atoms (Å); anything nearer is a broken structure.
MIN_SEPARATION_ANGSTROM = 1.0


@dataclass(frozen=True)
class Defect:
    kind: DefectKind
    atom_ids: tuple[int, ...] = ()  # 1-based ids of the defect atoms (the interstitial Li)
    vacancy_site_angstrom: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class Structure:
    """An orthorhombic periodic cell. ``positions`` (N, 3) in Å, ``species`` one symbol per atom."""

    positions: np.ndarray
    species: tuple[str, ...]
    box_angstrom: tuple[float, float, float]
    lattice_constant_angstrom: float
    supercell: tuple[int, int, int]
    defect: Defect = field(default_factory=lambda: Defect("none"))

    @property
    def n_atoms(self) -> int:
        return len(self.species)

    def count(self, symbol: str) -> int:
        return sum(1 for s in self.species if s == symbol)

    def min_width_angstrom(self) -> float:
        return float(min(self.box_angstrom))

    def describe(self) -> dict:
        d = asdict(self.defect)
        return {
            "formula": f"Li{self.count('Li')}F{self.count('F')}",
            "n_atoms": self.n_atoms,
            "lattice_constant_angstrom": self.lattice_constant_angstrom,
            "supercell": list(self.supercell),
            "box_angstrom": list(self.box_angstrom),
            "type_order": list(TYPE_ORDER),
            "defect": d,
        }


def rocksalt_lif(lattice_constant_angstrom: float, supercell: int | tuple[int, int, int]) -> Structure:
    """Perfect rock-salt LiF: ``supercell`` conventional cells (n or (nx, ny, nz)), Li first, then F."""
    a = float(lattice_constant_angstrom)
    if not np.isfinite(a) or a <= 0:
        raise InputError(f"lattice constant must be a positive length in Å, got {lattice_constant_angstrom!r}")
    reps = (supercell,) * 3 if isinstance(supercell, int) else tuple(supercell)
    if len(reps) != 3 or any(not isinstance(n, int) or n < 1 for n in reps):
        raise InputError(f"supercell must be a positive integer or three of them, got {supercell!r}")
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in reps), indexing="ij"), axis=-1).reshape(-1, 3)
    li = (grid[:, None, :] + _LI_BASIS[None]).reshape(-1, 3) * a
    f = (grid[:, None, :] + _F_BASIS[None]).reshape(-1, 3) * a
    box = tuple(float(n * a) for n in reps)
    positions = np.vstack([li, f]) % np.array(box)  # F sites at x = a belong to the next cell: wrap into [0, L)
    species = ("Li",) * len(li) + ("F",) * len(f)
    return Structure(positions, species, box, a, reps)  # type: ignore[arg-type]


def with_defect(structure: Structure, kind: str) -> Structure:
    """Add one point defect near the cell centre: ``interstitial`` Li, Li ``vacancy`` or Li ``frenkel`` pair."""
    if kind not in DEFECT_KINDS:
        raise InputError(f"unknown defect {kind!r}; choose one of {', '.join(DEFECT_KINDS)}")
    if kind == "none":
        return structure
    a = structure.lattice_constant_angstrom
    centre_cell = np.array([n // 2 for n in structure.supercell], dtype=float)
    site_tet = (centre_cell + _TETRAHEDRAL) * a
    positions, species = structure.positions, list(structure.species)
    if kind == "interstitial":
        positions = np.vstack([positions, site_tet])
        species.append("Li")
        defect = Defect("interstitial", atom_ids=(len(species),))
    else:
        li_idx = _nearest(structure, centre_cell * a, "Li")
        vac_site = tuple(float(x) for x in positions[li_idx])
        if kind == "vacancy":
            positions = np.delete(positions, li_idx, axis=0)
            del species[li_idx]
            defect = Defect("vacancy", vacancy_site_angstrom=vac_site)  # type: ignore[arg-type]
        else:  # frenkel: the removed Li goes to a tetrahedral site half a box away, so it does not recombine at once
            far = (np.floor(centre_cell + np.array(structure.supercell) / 2) % structure.supercell + _TETRAHEDRAL) * a
            moved = np.delete(positions, li_idx, axis=0)
            del species[li_idx]
            positions = np.vstack([moved, far])
            species.append("Li")
            defect = Defect("frenkel", atom_ids=(len(species),), vacancy_site_angstrom=vac_site)  # type: ignore[arg-type]
    out = Structure(positions, tuple(species), structure.box_angstrom, a, structure.supercell, defect)
    check_separation(out)
    return out


def _nearest(structure: Structure, point: np.ndarray, symbol: str) -> int:
    idx = [i for i, s in enumerate(structure.species) if s == symbol]
    d = _minimum_image(structure.positions[idx] - point, structure.box_angstrom)
    return idx[int(np.argmin(np.einsum("ij,ij->i", d, d)))]


def _minimum_image(delta: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    L = np.asarray(box)
    return delta - L * np.round(delta / L)


def check_separation(structure: Structure, min_angstrom: float = MIN_SEPARATION_ANGSTROM) -> float:
    """Smallest interatomic distance under periodic images; raises if atoms overlap."""
    pos = structure.positions
    best = np.inf
    for i in range(len(pos) - 1):  # O(N²) in chunks of rows: fine for the few thousand atoms we build
        d = _minimum_image(pos[i + 1 :] - pos[i], structure.box_angstrom)
        best = min(best, float(np.sqrt(np.einsum("ij,ij->i", d, d).min())))
    if best < min_angstrom:
        raise InputError(f"atoms overlap: closest pair is {best:.3f} Å apart (minimum {min_angstrom} Å)")
    return best


def check_cutoff(structure: Structure, cutoff_angstrom: float, who: str = "the potential") -> None:
    """The box must be at least twice the cutoff wide, or an atom would see its own periodic image."""
    width = structure.min_width_angstrom()
    if width < 2 * cutoff_angstrom:
        cells = int(np.ceil(2 * cutoff_angstrom / structure.lattice_constant_angstrom))
        raise InputError(
            f"supercell {'x'.join(map(str, structure.supercell))} is {width:.2f} Å wide, less than twice the "
            f"{cutoff_angstrom} Å cutoff of {who}; use at least {cells} conventional cells per direction"
        )


def write_lammps_data(
    structure: Structure,
    path: str | Path,
    *,
    charges: dict[str, float] | None = None,
    type_order: tuple[str, ...] = TYPE_ORDER,
) -> Path:
    """Write a LAMMPS data file (``atom_style charge`` when ``charges`` is given, else ``atomic``)."""
    unknown = sorted(set(structure.species) - set(type_order))
    if unknown:
        raise InputError(f"species {unknown} have no LAMMPS type; type order is {list(type_order)}")
    type_of = {s: i + 1 for i, s in enumerate(type_order)}
    lx, ly, lz = structure.box_angstrom
    style = "charge" if charges is not None else "atomic"
    defect = structure.defect
    lines = [
        f"LiF rock-salt {'x'.join(map(str, structure.supercell))}, a = {structure.lattice_constant_angstrom} A, "
        f"defect {defect.kind}{' atoms ' + ' '.join(map(str, defect.atom_ids)) if defect.atom_ids else ''} "
        f"(units metal, types {' '.join(f'{t}={s}' for s, t in type_of.items())})",
        "",
        f"{structure.n_atoms} atoms",
        f"{len(type_order)} atom types",
        "",
        f"0.0 {lx:.10f} xlo xhi",
        f"0.0 {ly:.10f} ylo yhi",
        f"0.0 {lz:.10f} zlo zhi",
        "",
        "Masses",
        "",
        *(f"{type_of[s]} {MASSES_AMU[s]} # {s}" for s in type_order),
        "",
        f"Atoms # {style}",
        "",
    ]
    for i, (s, (x, y, z)) in enumerate(zip(structure.species, structure.positions), start=1):
        q = f" {charges[s]:.6f}" if charges is not None else ""
        lines.append(f"{i} {type_of[s]}{q} {x:.10f} {y:.10f} {z:.10f}")
    return atomic_write_text(Path(path), "\n".join(lines) + "\n")


def write_structure_json(structure: Structure, path: str | Path) -> Path:
    return atomic_write_text(Path(path), json.dumps(structure.describe(), indent=2) + "\n")
