"""The system a study simulates, named once: which crystal, which species moves, which species hold the lattice.

A study's ``[system]`` table (:class:`inputs.study.SystemSpec`) chooses the crystal::

    [system]
    structure = "LiF"          # built-in "LiF" (rock salt, the default) | "Li2O" (antifluorite), or a structure file
    lattice_constant_angstrom = 4.01   # built-ins only: where the cell starts (the NPT stage then finds its own)
    supercell = [3, 3, 3]
    mobile = "Li"              # the species whose D is measured and whose sites are tracked
    defect = "interstitial"    # none | interstitial | vacancy | frenkel (of the mobile species)
    interstitial_site = [0.25, 0.25, 0.25]   # optional, fractional; without it the largest void is used
    vacancy_index = 5          # optional (vacancy | frenkel): the 0-based index of the vacant mobile-species site
    defect_seed = 7            # optional, instead: the vacant site drawn with this seed (default: nearest the centre)

A structure file is any periodic file ASE reads (CIF, POSCAR, extxyz, LAMMPS data), its path relative to the study
file; its own cell is repeated ``supercell`` times (orthogonal or triclinic), and with ``volume = "npt"`` each run
finds the potential's own cell from it. The run summary records the file's resolved path and its SHA-256 (in the
structure record, so in the run's fingerprint too): a changed file is a different run.

Everything downstream reads the chemistry from one :class:`System` record (or from a run's structure record, which
holds the same facts): the species in LAMMPS type order (what the potential's elements are checked against), the
mobile species (its atoms are dumped, its sites tracked, the defect is made of it), the host species (every other
one: their centre of mass is the lattice's frame), the formula units and the material's name (the reduced formula of
the perfect crystal: "LiF", "Li2O", "LiCl"), which labels decks, reports, tables and plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError
from inputs.defects import add_defect
from inputs.structure import BUILTINS, Structure, lammps_type, read_structure

if TYPE_CHECKING:
    from inputs.study import Study


@dataclass(frozen=True)
class System:
    """The chemistry of a study's crystal (see the module's description). ``builder`` is the built-in's name or the
    structure file's resolved path; ``cell_label`` names the repeated cell in titles (conventional, primitive, or the
    file's name); ``triclinic``: whether LAMMPS needs a triclinic box."""

    material: str
    type_order: tuple[str, ...]
    mobile: str
    host: tuple[str, ...]
    formula_units: int
    builder: str
    cell_label: str
    triclinic: bool

    def lammps_type(self, element: str) -> int:
        """The LAMMPS atom type of ``element`` (checked, never assumed)."""
        return lammps_type(self.type_order, element, self.material)

    @property
    def mobile_type(self) -> int:
        return self.lammps_type(self.mobile)

    @property
    def host_types(self) -> tuple[int, ...]:
        return tuple(self.lammps_type(e) for e in self.host)


def structure_path(study: "Study") -> Path | None:
    """The resolved path of the study's structure file (relative paths from the study file's folder); None for a
    built-in crystal."""
    name = study.system.structure
    if name in BUILTINS:
        return None
    path = Path(name).expanduser()
    return (path if path.is_absolute() else Path(study.source).parent / path).resolve()


def perfect_crystal(study: "Study") -> Structure:
    """The study's perfect crystal (no defect): a built-in one at its lattice constant, or the structure file's."""
    sy = study.system
    builtin = BUILTINS.get(sy.structure)
    if builtin is not None:
        assert sy.lattice_constant_angstrom is not None  # checked when the study was read
        return builtin.build(sy.lattice_constant_angstrom, sy.supercell, sy.cell)
    path = structure_path(study)
    assert path is not None
    if not path.is_file():
        raise InputError(f"system.structure: {sy.structure!r} is neither a built-in crystal ({', '.join(BUILTINS)}) "
                         f"nor a structure file ({path} does not exist)")
    return read_structure(path, sy.supercell, mobile=sy.mobile)


def build_structure(study: "Study") -> Structure:
    """The crystal the study simulates: :func:`perfect_crystal` with the study's defect of the mobile species
    (:func:`inputs.defects.add_defect`; for rock-salt LiF the same cell, atom for atom, as before other crystals
    existed). Errors name the study file and the ``[system]`` fields."""
    sy = study.system
    try:
        return add_defect(perfect_crystal(study), sy.defect, vacancy=sy.vacancy_index, seed=sy.defect_seed,
                          interstitial_site=sy.interstitial_site)
    except InputError as e:  # name the study file and the fields that made the structure
        a = "" if sy.lattice_constant_angstrom is None else \
            f"lattice_constant_angstrom = {sy.lattice_constant_angstrom}, "
        chosen = "".join(f", {k} = {v}" for k, v in (("vacancy_index", sy.vacancy_index),
                                                      ("defect_seed", sy.defect_seed)) if v is not None)
        raise InputError(f"{study.source}: system (structure = {sy.structure!r}, {a}supercell = "
                         f"{list(sy.supercell)}, cell = {sy.cell!r}, defect = {sy.defect!r}{chosen}): {e}") from None


def system_of(study: "Study", structure: Structure | None = None) -> System:
    """The study's :class:`System`, from its crystal (``structure``: the one already built, with or without its
    defect; else the perfect crystal is built)."""
    s = perfect_crystal(study) if structure is None else structure
    path = structure_path(study)
    return System(material=s.material, type_order=s.type_order, mobile=s.mobile,
                  host=tuple(t for t in s.type_order if t != s.mobile), formula_units=s.n_formula_units,
                  builder=study.system.structure if path is None else str(path),
                  cell_label=study.system.cell if path is None else path.name, triclinic=s.triclinic)
