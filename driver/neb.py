"""Static (0 K) migration barriers of a catalog potential: a climbing-image NEB (ASE) on the project's LAMMPS.

The MD gives an activation energy Ea from D(T); a nudged-elastic-band barrier is the independent static estimate
of the same hop. They need not agree (the MD Ea includes the lattice's expansion with T, several paths, correlation
and anharmonicity), but an MD Ea far from every static barrier of the mechanism is a warning sign.

- :class:`LammpsCalculator`: an ASE calculator that keeps one LAMMPS instance of :func:`driver.session.open_lammps`
  open for a fixed cell and species; each evaluation scatters the positions into it and runs ``run 0``.
- :func:`neb_barrier`: end points relaxed at fixed cell (LAMMPS FIRE, :func:`driver.stability.relax`), the path
  linearly interpolated through ``images`` moving images, a climbing-image NEB (``ase.mep.NEB``) relaxed with FIRE
  until no image has a force above ``fmax_ev_a``.
- :func:`vacancy_barrier`: the nearest-neighbour hop of the mobile species into a vacancy (Li2O antifluorite: Li on
  a simple-cubic sublattice, the hop a/2 along <100>; rock-salt LiF: a/√2 along <110>).
- :func:`interstitialcy_barrier`: the collinear interstitialcy (the interstitial pushes a lattice atom on into the
  next interstitial site in line; rock-salt LiF: the interstitial at a cube centre, ~1.2 Å moves for each atom).

Both hops join two states related by the crystal's symmetry: their end energies must agree (``asymmetry_ev``),
which checks the set-up. A charged defect cell (rigid-ion potentials) keeps Ewald's neutralising background.
Units: Å, eV.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from core.errors import AnalysisError, InputError
from inputs.defects import add_defect
from inputs.structure import Structure

log = logging.getLogger(__name__)

#: NEB convergence: no image force above this (eV/Å); end points are relaxed much tighter
FMAX_EV_A = 0.02
ENDPOINT_FMAX_EV_A = 1e-3
IMAGES = 5
MAX_STEPS = 1000
#: end points whose atoms all move less than this (Å) are one state
MIN_HOP_ANGSTROM = 0.1


class LammpsCalculator(Calculator):
    """An ASE calculator (energy, forces) for a catalog potential on a fixed cell and species: one LAMMPS instance
    (:func:`driver.session.open_lammps`) stays open until :meth:`close`; use it as a context manager."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, potential: str, atoms, type_order: tuple[str, ...] | None = None) -> None:
        from ase.calculators.lammps import Prism

        from driver.session import open_lammps

        super().__init__()
        self._symbols = tuple(atoms.get_chemical_symbols())
        self._cell = atoms.cell.array.copy()
        self._prism = Prism(self._cell)
        self._stack = ExitStack()
        self._lmp = self._stack.enter_context(open_lammps(potential, atoms, type_order=type_order))
        self._lmp.command("thermo_style one")
        self.evaluations = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        super().calculate(atoms, properties, system_changes or all_changes)
        if tuple(self.atoms.get_chemical_symbols()) != self._symbols or \
                not np.allclose(self.atoms.cell.array, self._cell, atol=1e-9):
            raise InputError("LammpsCalculator evaluates the cell and species it was opened with; open another for "
                             "a different cell")
        x = self._prism.vector_to_lammps(self.atoms.positions, wrap=True)
        # serial: every atom is local; LAMMPS may have sorted them, so place each by its id (the atoms' order)
        n = self._lmp.extract_global("nlocal")
        ids = self._lmp.numpy.extract_atom("id")[:n]
        self._lmp.numpy.extract_atom("x")[:n] = x[ids - 1]
        self._lmp.command("run 0")
        f = np.ctypeslib.as_array(self._lmp.gather_atoms("f", 1, 3)).reshape(-1, 3).copy()
        self.results = {"energy": float(self._lmp.get_thermo("pe")), "forces": self._prism.vector_to_ase(f)}
        self.evaluations += 1

    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Barrier:
    """A NEB result. ``barrier_ev``: highest image minus the initial state; ``asymmetry_ev``: final minus initial
    (≈ 0 for a hop between symmetry-equivalent states); ``energies_ev`` along the path (initial = 0);
    ``hop_angstrom``: how far the moving atom goes between the relaxed end points; ``max_force_ev_a``: the largest
    NEB force left (``converged``: below the asked ``fmax_ev_a``)."""

    potential: str
    mechanism: str
    cell_angstrom: tuple[float, float, float, float, float, float]  # LAMMPS's lx ly lz xy xz yz
    n_atoms: int
    barrier_ev: float
    asymmetry_ev: float
    energies_ev: tuple[float, ...]
    hop_angstrom: float
    max_force_ev_a: float
    converged: bool
    steps: int


def neb_barrier(potential: str, initial, final, mechanism: str, *, images: int = IMAGES,
                fmax_ev_a: float = FMAX_EV_A, max_steps: int = MAX_STEPS,
                type_order: tuple[str, ...] | None = None) -> Barrier:
    """A climbing-image NEB between ``initial`` and ``final`` (ASE Atoms, same cell, species and atom order;
    ``type_order``: their species in LAMMPS type order, see :func:`driver.session.open_lammps`): see the module's
    description."""
    from ase.mep import NEB
    from ase.optimize import FIRE

    from driver.stability import relax, six_numbers

    if images < 1:
        raise InputError(f"a NEB needs at least one moving image, got {images}")
    ends = []
    for atoms in (initial, final):
        relaxed = relax(potential, atoms, fmax_ev_a=ENDPOINT_FMAX_EV_A, type_order=type_order)
        end = atoms.copy()
        end.positions = relaxed.positions
        ends.append(end)
    frac = (ends[1].positions - ends[0].positions) @ np.linalg.inv(ends[0].cell.array)
    ends[1].positions = ends[0].positions + (frac - np.round(frac)) @ ends[0].cell.array  # shortest images
    hop = float(np.linalg.norm(ends[1].positions - ends[0].positions, axis=1).max())
    if hop < MIN_HOP_ANGSTROM:
        raise InputError(f"the {mechanism} end points relax into the same state (no atom moves more than {hop:.3f} "
                         "Å between them): there is no hop to follow")
    path = [ends[0]] + [ends[0].copy() for _ in range(images)] + [ends[1]]
    with LammpsCalculator(potential, ends[0], type_order) as calc:
        for image in path:
            image.calc = calc
        neb = NEB(path, climb=True, method="improvedtangent", allow_shared_calculator=True)
        neb.interpolate()
        opt = FIRE(neb, logfile=None)
        converged = bool(opt.run(fmax=fmax_ev_a, steps=max_steps))
        energies = np.array([image.get_potential_energy() for image in path])
        max_force = float(np.sqrt((neb.get_forces() ** 2).sum(axis=1).max()))
        log.info("%s %s NEB: %d steps, %d evaluations", potential, mechanism, opt.nsteps, calc.evaluations)
    energies -= energies[0]
    return Barrier(potential=potential, mechanism=mechanism, cell_angstrom=six_numbers(ends[0].cell.array),
                   n_atoms=len(ends[0]), barrier_ev=float(energies.max()), asymmetry_ev=float(energies[-1]),
                   energies_ev=tuple(float(e) for e in energies), hop_angstrom=hop,
                   max_force_ev_a=max_force, converged=converged, steps=int(opt.nsteps))


def vacancy_barrier(potential: str, structure_builder: Callable[..., Structure], a: float, supercell,
                    **neb_options) -> Barrier:
    """The nearest-neighbour vacancy hop of the mobile species in ``structure_builder(a, supercell)`` (a perfect
    crystal, e.g. :func:`inputs.structure.antifluorite_li2o`): the vacancy at the mobile site nearest the cell
    centre, filled by its nearest mobile neighbour."""
    host = structure_builder(a, supercell)
    initial = add_defect(host, "vacancy")
    site = np.asarray(initial.defect.vacancy_site) @ initial.cell
    hopper = _nearest_of(initial, initial.mobile, site)
    positions = initial.positions.copy()
    positions[hopper] = _image_near(initial, positions[hopper], site)
    return _barrier(potential, initial, positions, "vacancy", **neb_options)


def interstitialcy_barrier(potential: str, structure_builder: Callable[..., Structure], a: float, supercell,
                           **neb_options) -> Barrier:
    """The collinear interstitialcy in ``structure_builder(a, supercell)``: the interstitial (at the void nearest
    the cell centre) takes the site of its nearest lattice atom of the mobile species, which moves on, in line, to
    the interstitial site beyond (rock-salt LiF: cube centre → lattice site → next cube centre along <111>)."""
    host = structure_builder(a, supercell)
    initial = add_defect(host, "interstitial")
    mover = initial.n_atoms - 1  # the added atom has the last id
    start = initial.positions[mover]
    pushed = _nearest_of(initial, initial.mobile, start, exclude=mover)
    lattice = _image_near(initial, start, initial.positions[pushed])
    beyond = 2 * lattice - start
    sites = host.interstitial_sites @ host.cell
    gap = np.linalg.norm(_min_image(host, sites - beyond), axis=1).min()
    if gap > 0.1:
        raise InputError(f"no interstitial site lies in line beyond the pushed atom ({gap:.2f} Å off): this crystal "
                         "has no collinear interstitialcy")
    positions = initial.positions.copy()
    positions[mover], positions[pushed] = lattice, beyond
    return _barrier(potential, initial, positions, "interstitialcy", **neb_options)


def _barrier(potential: str, initial: Structure, final_positions: np.ndarray, mechanism: str,
             **neb_options) -> Barrier:
    start = initial.atoms()
    end = start.copy()
    end.positions = final_positions
    result = neb_barrier(potential, start, end, mechanism, type_order=initial.type_order, **neb_options)
    if not result.converged:
        raise AnalysisError(f"{mechanism} NEB of {potential} did not converge in {result.steps} steps (largest force "
                            f"{result.max_force_ev_a:.3f} eV/Å)")
    return result


def _min_image(structure: Structure, d: np.ndarray) -> np.ndarray:
    frac = d @ np.linalg.inv(structure.cell)
    return (frac - np.round(frac)) @ structure.cell


def _image_near(structure: Structure, point: np.ndarray, position: np.ndarray) -> np.ndarray:
    """The periodic image of ``position`` nearest ``point``."""
    return point + _min_image(structure, position - point)


def _nearest_of(structure: Structure, species: str, point: np.ndarray, exclude: int | None = None) -> int:
    """Index of the atom of ``species`` nearest ``point`` (the first of equals)."""
    idx = [i for i, s in enumerate(structure.species) if s == species and i != exclude]
    d = np.linalg.norm(_min_image(structure, structure.positions[idx] - point), axis=1)
    return idx[int(np.argmin(np.round(d, 6)))]
