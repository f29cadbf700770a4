"""Rock-salt LiF supercells (their point defects: :mod:`inputs.defects`), built with ASE and written as LAMMPS data
files.

Lengths are in Å. Two cells of the rock-salt lattice (lattice constant ``a``) can be repeated:

- ``conventional``: the cubic cell of side ``a`` (4 Li + 4 F); n×n×n of them is an orthogonal box;
- ``primitive``: the two-atom rhombohedral cell (fcc vectors of length a/√2, 60° apart); 6×6×6 of them is the
  432-ion cell of arXiv 2510.05020, a triclinic LAMMPS box.

Both come from ``ase.build.bulk("LiF", "rocksalt", a)`` and ``repeat``; ASE's LAMMPS data writer rotates the cell
into LAMMPS's frame (a along x, b in the xy plane). Atom ids are 1-based: all Li first, then all F, then an added
interstitial, so the defect is easy to select (``id N``).

Sites. Every Li lattice site and every interstitial site of the perfect crystal is kept, in fractional coordinates
of the cell (the same in any frame, and under the isotropic scaling of a zero-pressure equilibration): the
analysis assigns Li atoms to them to follow the defect itself. The interstitial sites of rock salt are the
tetrahedral (cube-centre) sites (¼,¼,¼)·a of the conventional cell, equidistant (√3·a/4) from 4 Li and 4 F; there
are two per formula unit (each Li site ± (¼,¼,¼)·a).

Beyond rock-salt LiF: :func:`antifluorite_li2o` builds Li2O (O on the fcc sites, Li on the tetrahedral sites; its
empty sites are the octahedral (½,½,½)·a sites) and :func:`read_structure` takes any periodic structure file ASE
reads (CIF, POSCAR, extxyz, LAMMPS data) with a supercell repeat. Both find their interstitial sites with the void
search of :mod:`inputs.voids` and give the same :class:`Structure` record, which then knows its own species order
(``type_order``), its mobile species (whose lattice sites are kept in ``li_sites``), its formula units and its
material (the reduced formula of the perfect crystal). Defects for any structure: :mod:`inputs.defects`.

This module is where the built-in crystals' chemistry is written down, once: :data:`BUILTINS` (LiF, the default,
and Li2O) gives each one's species in LAMMPS type order, mobile species, builder and the rule from volume per formula
unit to its cubic lattice constant. Everything else reads the species from a structure or its record (the
architecture test forbids element literals elsewhere); studies choose the crystal through :mod:`inputs.system`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, get_args

import numpy as np

from core.errors import InputError
from core.files import atomic_copy, atomic_write_text, sha256_file

DefectKind = Literal["none", "interstitial", "vacancy", "frenkel"]
DEFECT_KINDS: tuple[str, ...] = get_args(DefectKind)
CellKind = Literal["conventional", "primitive"]
#: rock-salt LiF, the default crystal: its species in LAMMPS type order and its mobile species
LIF_TYPE_ORDER: tuple[str, ...] = ("Li", "F")
LIF_MOBILE = "Li"
#: Li2O (antifluorite) at room temperature (Å), what a Li2O potential must reproduce
LI2O_LATTICE_CONSTANT_ANGSTROM = 4.61
#: the Li2O species in LAMMPS type order, and its mobile species
LI2O_TYPE_ORDER: tuple[str, ...] = ("Li", "O")
LI2O_MOBILE = "Li"
#: Closest approach allowed between two atoms (Å); anything nearer is a broken structure.
MIN_SEPARATION_ANGSTROM = 1.0
#: atoms in one conventional (cubic) or primitive rock-salt cell
ATOMS_PER_CELL: dict[str, int] = {"conventional": 8, "primitive": 2}
#: atoms in one conventional (cubic) or primitive antifluorite cell
LI2O_ATOMS_PER_CELL: dict[str, int] = {"conventional": 12, "primitive": 3}
#: the largest cell the driver builds: far beyond what one LAMMPS run of an ML potential can hold on a GPU
MAX_ATOMS = 1_000_000


def atoms_in(cell: str, supercell: tuple[int, ...], structure: str = "LiF") -> int:
    """How many atoms the perfect ``supercell`` of a ``cell`` of a built-in crystal has (before a defect)."""
    n = BUILTINS[structure].atoms_per_cell[cell]
    for k in supercell:
        n *= int(k)
    return n


@dataclass(frozen=True)
class Defect:
    kind: DefectKind
    atom_ids: tuple[int, ...] = ()  # 1-based ids of the defect atoms (the interstitial Li)
    vacancy_site: tuple[float, float, float] | None = None  # fractional


@dataclass(frozen=True)
class Structure:
    """A periodic cell: ``positions`` (N, 3) and ``cell`` (rows a, b, c) in Å, ``species`` one symbol per atom,
    the perfect crystal's Li sites and interstitial sites (fractional).

    Beyond LiF: ``type_order`` is the species in LAMMPS type order, ``mobile`` the species whose lattice sites
    ``li_sites`` holds (named for LiF; for another mobile species they are that species' sites), and
    ``formula_units`` the perfect crystal's formula units (None: counted as the atoms of the last species in type
    order, the rock-salt rule). A structure read from a file has ``cell_kind`` "file", as ``lattice_constant_angstrom``
    the length of the file cell's first vector, and as ``source`` the file and its checksum."""

    positions: np.ndarray
    species: tuple[str, ...]
    cell: np.ndarray
    lattice_constant_angstrom: float
    cell_kind: CellKind | Literal["file"]
    supercell: tuple[int, int, int]
    li_sites: np.ndarray
    interstitial_sites: np.ndarray
    defect: Defect = field(default_factory=lambda: Defect("none"))
    type_order: tuple[str, ...] = LIF_TYPE_ORDER
    mobile: str = LIF_MOBILE
    formula_units: int | None = None
    material: str = "LiF"  # the reduced formula of the perfect crystal (the label of reports and tables)
    source: tuple[str, str] | None = None  # (resolved path, sha256) of the structure file it was read from

    @property
    def n_atoms(self) -> int:
        return len(self.species)

    @property
    def n_formula_units(self) -> int:
        """Formula units of the host crystal (a defect does not change them)."""
        return self.count(self.type_order[-1]) if self.formula_units is None else self.formula_units

    @property
    def triclinic(self) -> bool:
        """Whether LAMMPS needs a triclinic box for this cell (it is not orthogonal)."""
        c = lammps_cell(self.cell)
        return bool(np.any(np.abs(c[np.tril_indices(3, -1)]) > 1e-9))

    def count(self, symbol: str) -> int:
        return sum(1 for s in self.species if s == symbol)

    def widths_angstrom(self) -> np.ndarray:
        """Distances between opposite faces of the cell (what a cutoff must fit in twice)."""
        volume = abs(np.linalg.det(self.cell))
        a, b, c = self.cell
        return volume / np.linalg.norm([np.cross(b, c), np.cross(c, a), np.cross(a, b)], axis=1)

    def atoms(self, charges: dict[str, float] | None = None):
        """The structure as ASE Atoms (charges as initial charges)."""
        from ase import Atoms

        atoms = Atoms(symbols=list(self.species), positions=self.positions, cell=self.cell, pbc=True)
        if charges is not None:
            atoms.set_initial_charges([charges[s] for s in self.species])
        return atoms

    def describe(self) -> dict:
        """The record kept as ``structure.json``; that of LiF is exactly as it was before other crystals existed
        (``mobile`` and ``material`` are written only where they differ from the default crystal's, which records
        without them are; ``source`` only for a structure read from a file)."""
        out = {
            "formula": "".join(f"{s}{self.count(s)}" for s in self.type_order),
            "formula_units": self.n_formula_units,  # of the host crystal: the interstitial is not one
            "n_atoms": self.n_atoms,
            "lattice_constant_angstrom": self.lattice_constant_angstrom,
            "cell_kind": self.cell_kind,
            "supercell": list(self.supercell),
            "cell_angstrom": np.round(lammps_cell(self.cell), 10).tolist(),
            "type_order": list(self.type_order),
            "defect": {"kind": self.defect.kind, "atom_ids": list(self.defect.atom_ids),
                       "vacancy_site": None if self.defect.vacancy_site is None else list(self.defect.vacancy_site)},
            "sites": {"li": np.round(self.li_sites, 10).tolist(),
                      "interstitial": np.round(self.interstitial_sites, 10).tolist()},
        }
        default = BUILTINS[DEFAULT_STRUCTURE]
        if self.mobile != default.mobile:
            out["mobile"] = self.mobile
        if self.material != default.name:
            out["material"] = self.material
        if self.source is not None:
            out["source"] = {"path": self.source[0], "sha256": self.source[1]}
        return out


@dataclass(frozen=True)
class StructureRecord:
    """What a run's ``structure.json`` (kept in ``summary.json`` as ``structure``) says, typed: the record
    :meth:`Structure.describe` writes, read back by :func:`structure_of`. ``formula_units`` and the sites are None
    in records that lack them (the analysis then has no sites to follow a defect on); ``mobile`` and ``material``
    absent are the default crystal's (every record written before other crystals existed is LiF)."""

    type_order: tuple[str, ...]
    defect_kind: str
    defect_atom_ids: tuple[int, ...]
    formula_units: int | None
    li_sites: np.ndarray | None  # fractional coordinates of the perfect crystal's Li sites
    interstitial_sites: np.ndarray | None
    mobile: str = LIF_MOBILE  # absent from old records (all LiF): Li
    material: str = "LiF"  # absent from old records and from LiF's: LiF
    cell_kind: str = "conventional"

    def lammps_type(self, element: str) -> int:
        """The LAMMPS atom type of ``element`` (checked, never assumed)."""
        return lammps_type(self.type_order, element, "the structure")


def lammps_type(type_order: tuple[str, ...], element: str, what: str) -> int:
    """The LAMMPS atom type (1-based) of ``element`` in ``type_order``; an error says ``what`` lacks it."""
    if element not in type_order:
        raise InputError(f"{what} has no {element} (types {list(type_order)})")
    return type_order.index(element) + 1


def structure_of(record: dict) -> StructureRecord:
    """The typed form of a ``structure.json`` record (see :meth:`Structure.describe`)."""
    try:
        defect = record.get("defect") or {}
        sites = record.get("sites")
        fu = record.get("formula_units")
        return StructureRecord(
            type_order=tuple(str(t) for t in record["type_order"]), defect_kind=str(defect.get("kind", "none")),
            defect_atom_ids=tuple(int(i) for i in defect.get("atom_ids", ())),
            formula_units=None if fu is None else int(fu),
            li_sites=None if not sites else np.asarray(sites["li"], dtype=float),
            interstitial_sites=None if not sites else np.asarray(sites["interstitial"], dtype=float),
            mobile=str(record.get("mobile", BUILTINS[DEFAULT_STRUCTURE].mobile)),
            material=str(record.get("material", BUILTINS[DEFAULT_STRUCTURE].name)),
            cell_kind=str(record.get("cell_kind", "conventional")))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"a structure record lacks or garbles {e}: {sorted(record)}") from None


def material_of(record: StructureRecord | dict) -> str:
    """The material a run simulates, as reports, tables and plots name it: the reduced formula of the perfect
    crystal in type order ("LiF", "Li2O", "LiCl"), from a structure record (typed or as ``structure.json``)."""
    return (structure_of(record) if isinstance(record, dict) else record).material


def cubic_lattice_constant(record: StructureRecord, volume_per_formula_unit_a3):
    """The cubic lattice constant (Å) of a built-in crystal at a volume per formula unit (Å³; array or number):
    a = (Z·v)^(1/3) with Z formula units per cubic cell (rock salt and antifluorite: 4). None where the crystal
    has no such rule (a structure read from a file: its cell need not be cubic)."""
    builtin = BUILTINS.get(record.material)
    if builtin is None or record.cell_kind not in get_args(CellKind):
        return None
    return (builtin.formula_units_per_cubic_cell * np.asarray(volume_per_formula_unit_a3)) ** (1.0 / 3.0)


def reduced_formula(species: tuple[str, ...] | list[str], type_order: tuple[str, ...]) -> str:
    """The reduced formula of a set of atoms in type order: ("Li",)*8 + ("O",)*4 → "Li2O"."""
    counts = [sum(1 for s in species if s == t) for t in type_order]
    g = math.gcd(*counts)
    return "".join(t + (str(n // g) if n // g > 1 else "") for t, n in zip(type_order, counts) if n)


def type_order_for(symbols) -> tuple[str, ...]:
    """A LAMMPS type order for a set of element symbols: a built-in crystal's where it names exactly those elements
    (LiF's for Li and F), else the symbols in the order they first appear."""
    present = tuple(dict.fromkeys(symbols))
    for builtin in BUILTINS.values():
        if set(builtin.type_order) == set(present):
            return builtin.type_order
    return present


def lammps_cell(cell: np.ndarray) -> np.ndarray:
    """The same cell rotated into LAMMPS's frame: rows a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz)."""
    q, r = np.linalg.qr(np.asarray(cell, dtype=float).T)
    r = r * np.sign(np.diag(r))[:, None]
    return r.T


def rocksalt_lif(lattice_constant_angstrom: float, supercell: int | tuple[int, int, int],
                 cell: CellKind = "conventional") -> Structure:
    """Perfect rock-salt LiF: ``supercell`` (n or (nx, ny, nz)) repeats of the conventional or primitive cell."""
    from ase.build import bulk

    a, reps = _checked_cell(lattice_constant_angstrom, supercell, cell, ATOMS_PER_CELL)
    atoms = bulk("LiF", "rocksalt", a=a, cubic=cell == "conventional").repeat(reps)
    atoms.wrap()
    order = np.argsort([LIF_TYPE_ORDER.index(s) for s in atoms.get_chemical_symbols()], kind="stable")
    atoms = atoms[order]
    h = np.array(atoms.cell)
    inv = np.linalg.inv(h)
    li = atoms.positions[np.array(atoms.get_chemical_symbols()) == LIF_MOBILE]
    shift = np.full(3, a / 4)  # (¼,¼,¼)·a in the cubic frame, which ASE's bulk cells share
    tetra = np.vstack([li + shift, li - shift])
    return Structure(atoms.positions.copy(), tuple(atoms.get_chemical_symbols()), h, a, cell, reps,  # type: ignore[arg-type]
                     (li @ inv) % 1.0, (tetra @ inv) % 1.0, formula_units=len(li))


def check_separation(structure: Structure, min_angstrom: float = MIN_SEPARATION_ANGSTROM,
                     search_angstrom: float = 4.0) -> float:
    """Smallest interatomic distance under periodic images (inf if none within ``search_angstrom``); raises if
    atoms overlap (closer than ``min_angstrom``)."""
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", structure.atoms(), max(min_angstrom, search_angstrom))
    closest = float(d.min()) if len(d) else float("inf")
    if closest < min_angstrom:
        raise InputError(f"atoms overlap: closest pair is {closest:.3f} Å apart (minimum {min_angstrom} Å)")
    return closest


def check_cutoff(structure: Structure, cutoff_angstrom: float, who: str = "the potential") -> None:
    """The cell must be at least twice the cutoff wide (between opposite faces), or an atom would see its own
    periodic image."""
    widths = structure.widths_angstrom()
    if widths.min() < 2 * cutoff_angstrom:
        per_cell = widths.min() / max(structure.supercell)
        cells = int(np.ceil(2 * cutoff_angstrom / per_cell - 1e-9))
        raise InputError(
            f"supercell {'x'.join(map(str, structure.supercell))} is {widths.min():.2f} Å wide, less than twice the "
            f"{cutoff_angstrom} Å cutoff of {who}; use at least {cells} {structure.cell_kind} cells per direction"
        )


def charges_for(structure: Structure, charges: dict[str, float], compensation: str = "background"
                ) -> dict[str, float] | np.ndarray:
    """Per-atom charges (e) of a rigid-ion model. ``background``: the ions' own charges (a charged defect cell;
    LAMMPS's Ewald sum adds a uniform neutralising background); ``anion-sublattice``: the net charge is taken off
    the F ions evenly (the anions, the negatively charged species, of any crystal), so the cell is neutral."""
    q = np.array([charges[s] for s in structure.species], dtype=float)
    if compensation == "anion-sublattice":
        f = np.array([charges[s] < 0 for s in structure.species])
        q[f] -= q.sum() / f.sum()
    elif compensation != "background":
        raise InputError(f"unknown charge compensation {compensation!r}; choose background or anion-sublattice")
    return q


def write_lammps_data(structure: Structure, path: str | Path, *, charges=None,
                      type_order: tuple[str, ...] | None = None) -> Path:
    """Write a LAMMPS data file (``atom_style charge`` when ``charges`` are given: per atom, or per element as
    a dict; else ``atomic``); the cell is rotated into LAMMPS's frame, a triclinic box where it is not
    orthogonal. Types in ``type_order``, by default the structure's."""
    if isinstance(charges, dict):
        charges = [charges[s] for s in structure.species]
    return write_atoms_data(structure.atoms(), path, charges=charges,
                            type_order=structure.type_order if type_order is None else type_order)


def write_atoms_data(atoms, path: str | Path, *, charges=None, type_order: tuple[str, ...] | None = None) -> Path:
    """ASE Atoms as a LAMMPS data file, with ASE's writer (types in ``type_order``, by default
    :func:`type_order_for` the atoms' elements; per-atom ``charges`` make it ``atom_style charge``), written
    atomically."""
    from ase.io import write

    if type_order is None:
        type_order = type_order_for(atoms.get_chemical_symbols())

    unknown = sorted(set(atoms.get_chemical_symbols()) - set(type_order))
    if unknown:
        raise InputError(f"species {unknown} have no LAMMPS type; type order is {list(type_order)}")
    atoms = atoms.copy()
    if charges is not None:
        atoms.set_initial_charges(np.asarray(charges, dtype=float))
    atoms.wrap()
    return atomic_copy(lambda tmp: write(tmp, atoms, format="lammps-data", specorder=list(type_order),
                                         atom_style="charge" if charges is not None else "atomic", masses=True,
                                         units="metal"), Path(path))


def write_structure_json(structure: Structure, path: str | Path) -> Path:
    return atomic_write_text(Path(path), json.dumps(structure.describe(), indent=1) + "\n")


def antifluorite_li2o(lattice_constant_angstrom: float = LI2O_LATTICE_CONSTANT_ANGSTROM,
                      supercell: int | tuple[int, int, int] = 1, cell: CellKind = "conventional") -> Structure:
    """Perfect antifluorite Li2O: O on the fcc sites, Li on the tetrahedral sites (¼,¼,¼)·a and (¾,¾,¾)·a;
    ``supercell`` repeats of the conventional (cubic, 8 Li + 4 O) or primitive (fcc vectors, 2 Li + 1 O) cell.
    The interstitial sites are the largest voids (:func:`inputs.voids.find_voids`): the octahedral sites of the O
    lattice, (½,½,½)·a and equivalents, one per formula unit, each √3·a/4 from 8 Li."""
    from ase.build import bulk

    a, reps = _checked_cell(lattice_constant_angstrom, supercell, cell, LI2O_ATOMS_PER_CELL)
    # ASE's "fluorite" puts the first symbol on the fcc sites: "OLi2" is antifluorite ("Li2O" would put Li there)
    unit = bulk("OLi2", "fluorite", a=a, cubic=cell == "conventional")
    s = _from_atoms(unit, reps, LI2O_MOBILE, LI2O_TYPE_ORDER, void_classes=1)
    return replace(s, lattice_constant_angstrom=a, cell_kind=cell)


def read_structure(path: str | Path, supercell: int | tuple[int, int, int] = 1, *, mobile: str = LIF_MOBILE,
                   type_order: tuple[str, ...] | None = None, file_format: str | None = None,
                   void_classes: int = 1) -> Structure:
    """A perfect crystal from any periodic structure file ASE reads (CIF, POSCAR, extxyz, LAMMPS data: format from
    the name, ``.lmp``/``.data``/``data.*`` as LAMMPS data, or ``file_format``), repeated ``supercell`` times,
    orthogonal or triclinic. Species come from the file; ``type_order`` defaults to the ``mobile`` species first,
    then the others as they first appear. The interstitial sites are the ``void_classes`` largest classes of voids
    of the file's cell (:func:`inputs.voids.find_voids`), tiled over the supercell."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise InputError(f"structure file {path} does not exist; give the path of a CIF, POSCAR, extxyz or LAMMPS "
                         "data file")
    fmt = file_format
    if fmt is None and (path.suffix in (".lmp", ".data") or path.name.startswith("data.")):
        fmt = "lammps-data"
    try:
        unit = read(path, format=fmt) if fmt != "lammps-data" else read(path, format=fmt, units="metal")
    except Exception as e:  # ASE raises many kinds for a file it cannot parse
        raise InputError(f"structure file {path}: ASE cannot read it ({type(e).__name__}: {e}); give a CIF, POSCAR, "
                         f"extxyz or LAMMPS data file, or name its format (file_format)") from None
    if isinstance(unit, list):
        unit = unit[-1]
    if unit.cell.rank != 3:
        raise InputError(f"structure file {path} has no periodic cell of three vectors; a crystal needs one")
    partial = sorted({el for site in (unit.info.get("occupancy") or {}).values() for el, occ in site.items()
                      if float(occ) < 1.0})
    if partial:
        raise InputError(f"structure file {path} has partly occupied sites ({', '.join(partial)}); give an ordered "
                         "structure (every site fully occupied)")
    species = unit.get_chemical_symbols()
    if mobile not in species:
        raise InputError(f"structure file {path} has no {mobile} (species {sorted(set(species))}); set the mobile "
                         "species to one of them")
    order = tuple(type_order) if type_order is not None else (mobile,) + tuple(
        dict.fromkeys(s for s in species if s != mobile))
    missing = sorted(set(species) - set(order))
    if missing or len(set(order)) != len(order):
        raise InputError(f"type order {list(order)} must name each species of {path} once (species "
                         f"{sorted(set(species))})")
    _, reps = _checked_cell(1.0, supercell, "conventional", {"conventional": len(unit)})
    s = _from_atoms(unit, reps, mobile, order, void_classes)
    a = float(np.linalg.norm(unit.cell[0]))
    out = replace(s, lattice_constant_angstrom=a, cell_kind="file", source=(str(path.resolve()), sha256_file(path)))
    check_separation(out)
    return out


def _checked_cell(lattice_constant_angstrom: float, supercell, cell: str, atoms_per_cell: dict[str, int]
                  ) -> tuple[float, tuple[int, int, int]]:
    a = float(lattice_constant_angstrom)
    if not np.isfinite(a) or a <= 0:
        raise InputError(f"lattice constant must be a positive length in Å, got {lattice_constant_angstrom!r}")
    reps = (supercell,) * 3 if isinstance(supercell, int) else tuple(supercell)
    if len(reps) != 3 or any(not isinstance(n, int) or n < 1 for n in reps):
        raise InputError(f"supercell must be a positive integer or three of them, got {supercell!r}")
    if cell not in get_args(CellKind):
        raise InputError(f"unknown cell {cell!r}; choose one of {', '.join(get_args(CellKind))}")
    n = atoms_per_cell[cell] * math.prod(reps)
    if n > MAX_ATOMS:
        raise InputError(f"supercell {list(reps)} of the {cell} cell has {n} atoms, more than {MAX_ATOMS}")
    return a, reps  # type: ignore[return-value]


def _from_atoms(unit, reps: tuple[int, int, int], mobile: str, type_order: tuple[str, ...],
                void_classes: int) -> Structure:
    """The Structure of a perfect crystal: the unit cell ``unit`` (ASE Atoms) repeated, atoms sorted by type order,
    the mobile species' sites, and the ``void_classes`` largest void classes of the unit cell as interstitial
    sites."""
    from inputs.voids import find_voids, tile_sites

    if void_classes < 1:
        raise InputError(f"void_classes must be at least 1 (the largest voids), got {void_classes}")
    unit = unit.copy()
    unit.wrap()
    voids = find_voids(np.array(unit.cell), unit.positions)
    interstitial = tile_sites(voids.frac[voids.kind < void_classes], reps)
    atoms = unit.repeat(reps)
    atoms.wrap()
    symbols = atoms.get_chemical_symbols()
    atoms = atoms[np.argsort([type_order.index(s) for s in symbols], kind="stable")]
    h = np.array(atoms.cell)
    frac = atoms.get_scaled_positions() % 1.0
    symbols = atoms.get_chemical_symbols()
    counts = [unit.get_chemical_symbols().count(s) for s in type_order]
    fu = math.gcd(*counts) * math.prod(reps)
    mobile_sites = frac[np.array(symbols) == mobile]
    return Structure(atoms.positions.copy(), tuple(symbols), h, float(np.linalg.norm(h[0]) / reps[0]),
                     "conventional", reps, mobile_sites, interstitial, Defect("none"), type_order, mobile, fu,
                     reduced_formula(unit.get_chemical_symbols(), type_order))


@dataclass(frozen=True)
class Builtin:
    """A crystal the driver builds itself: its name (the study's ``system.structure``), species in LAMMPS type
    order, mobile species, atoms per conventional and primitive cell, formula units per cubic cell (what turns a
    volume per formula unit into its lattice constant) and builder (lattice constant Å, supercell, cell kind)."""

    name: str
    type_order: tuple[str, ...]
    mobile: str
    atoms_per_cell: dict[str, int]
    formula_units_per_cubic_cell: int
    build: Callable[[float, tuple[int, int, int], CellKind], Structure]


#: the built-in crystals by name; the chemistry of LiF and Li2O is written here and nowhere else
BUILTINS: dict[str, Builtin] = {
    "LiF": Builtin("LiF", LIF_TYPE_ORDER, LIF_MOBILE, ATOMS_PER_CELL, 4, rocksalt_lif),  # rock salt
    "Li2O": Builtin("Li2O", LI2O_TYPE_ORDER, LI2O_MOBILE, LI2O_ATOMS_PER_CELL, 4, antifluorite_li2o),  # antifluorite
}
#: what a study simulates unless it names another structure; records without a material are of it
DEFAULT_STRUCTURE = "LiF"
