"""``<study_dir>/stability.json``: is each state point's host still the crystal it claims to be?

A classical potential fitted at one density can lose its crystal when the lattice expands: Fumi–Tosi LiF, at the
4.15-4.16 Å that its NPT runs reach at 550-600 K, is no longer a minimum of its own energy (a rattled rock-salt cell
relaxes to another arrangement ~0.06 eV per formula unit lower), so the "defect diffusion" measured there is not
that of a rock-salt crystal. :mod:`driver.stability` decides it for each (potential, temperature) of a study by a
static relaxation of the perfect host at the mean NVT cell of the replicas, and writes this file
(``python -m driver stability STUDY_DIR``); the analysis reads it with :func:`read_stability` and flags the state
points whose :attr:`StabilityPoint.flag` is set.

This module holds the records and the file, below every layer that reads them (the analysis) or writes them (the
driver). Units: Å, eV; energies per formula unit of the host crystal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.config import from_dict, to_dict
from core.errors import InputError
from core.files import atomic_write_text, json_dumps

#: the file in a study directory
STABILITY = "stability.json"
SCHEMA = 1
#: the flag a state point gets where its host is not a stable crystal
HOST_UNSTABLE = "host-unstable"


@dataclass(frozen=True)
class HostStability:
    """One static test: the perfect host at ``cell_angstrom`` (LAMMPS lx ly lz xy xz yz), every atom displaced by
    ``rattle_angstrom`` in a random direction (``seed``), relaxed at fixed cell, compared with the relaxed perfect
    crystal. ``energy_drop_ev_per_fu`` = E(perfect) - E(rattled, relaxed) per formula unit (> 0: a lower structure
    was found); ``max_displacement_angstrom``: the largest distance of a relaxed atom from its perfect site after
    the mean shift is removed. ``stable``: no structure lower than the perfect crystal by more than the energy
    tolerance was found (a rattled start that ends away from the sites in a minimum no lower is inconclusive, not
    unstable; its message says so)."""

    stable: bool
    energy_drop_ev_per_fu: float
    max_displacement_angstrom: float
    cell_angstrom: tuple[float, float, float, float, float, float]
    n_atoms: int
    formula_units: int
    rattle_angstrom: float
    seed: int
    message: str


@dataclass(frozen=True)
class StabilityPoint:
    """The host test of one state point: its potential, Arrhenius series (as the study analysis names it) and
    temperature, the finished runs whose mean NVT cell was tested, and the result, or why there is none
    (``skipped``: e.g. an ML potential, too costly to relax here)."""

    potential: str
    series: str
    temperature_k: float
    run_dirs: tuple[str, ...]
    result: HostStability | None = None
    skipped: str | None = None

    @property
    def flag(self) -> str | None:
        """``host-unstable: ...`` where the test found the host not a stable crystal, else None."""
        if self.result is None or self.result.stable:
            return None
        return f"{HOST_UNSTABLE}: {self.result.message}"


@dataclass(frozen=True)
class StabilityScan:
    """Every state point of a study that was tested (or skipped, with why)."""

    points: tuple[StabilityPoint, ...]
    schema: int = SCHEMA

    def point(self, series: str, temperature_k: float) -> StabilityPoint | None:
        """The test of one state point (series as :class:`analysis.study.StateResult` names it), if any."""
        for p in self.points:
            if p.series == series and abs(p.temperature_k - temperature_k) < 1e-6:
                return p
        return None

    @property
    def unstable(self) -> tuple[StabilityPoint, ...]:
        return tuple(p for p in self.points if p.flag is not None)


def write_stability(scan: StabilityScan, study_dir: str | Path) -> Path:
    """Write the scan, or leave the file untouched where it already says the same: the study's stored analysis is
    keyed by this file's size and modification time (analysis.study.study_key), and a rescan after every `driver
    run` or precision round that finds the same verdicts must not invalidate it."""
    path = Path(study_dir) / STABILITY
    text = json_dumps(to_dict(scan), indent=1) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass  # absent or unreadable: written below
    return atomic_write_text(path, text)


def read_stability(study_dir: str | Path) -> StabilityScan | None:
    """The study's host tests, or None where none were made (no ``stability.json``)."""
    path = Path(study_dir) / STABILITY
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} is not valid JSON ({e}): run `python -m driver stability {study_dir}` again") \
            from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(f"{path} has schema {doc.get('schema') if isinstance(doc, dict) else '?'}, this "
                         f"lif-diffusion reads {SCHEMA}: run `python -m driver stability {study_dir}` again")
    return from_dict(StabilityScan, doc, str(path))
