"""What a run's LAMMPS logs say about its state: the thermo table (``step time temp pe etotal press vol lx ly lz xy
xz yz``, the deck's ``thermo_style``) and the cell of the NVT stages (the deck's ``LIF_DIFFUSION_CELL`` line),
measured into a :class:`core.rundir.StatePoint` for the run summary: the cell's lengths, angles and volume per
formula unit for any crystal, and the cubic lattice constant where the crystal has one (a built-in rock salt or
antifluorite: a = (4·V/N_fu)^(1/3); :func:`inputs.structure.cubic_lattice_constant`).

A run resumed from a restart file writes some steps twice (in the killed attempt's log and in the next one's);
the later attempt's rows win, as its trajectory frames do.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from analysis.statistics import block_mean
from core.errors import LammpsError
from core.rundir import CELL_MARK, RunDir, RunSummary, StatePoint
from inputs.structure import cubic_lattice_constant, structure_of

THERMO_COLUMNS = ("step", "time", "temp", "pe", "etotal", "press", "vol", "lx", "ly", "lz", "xy", "xz", "yz")
_ROW = re.compile(r"^\s*\d+(\s+[-+0-9.eE]+|\s+[-+]?(nan|inf))+\s*$", re.I)


def read_thermo(logs: list[Path]) -> np.ndarray:
    """The thermo rows of the logs (attempts in order), one per step, columns :data:`THERMO_COLUMNS`."""
    rows: dict[int, list[float]] = {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if _ROW.match(line):
                values = line.split()
                if len(values) == len(THERMO_COLUMNS):
                    rows[int(values[0])] = [float(v) for v in values]
    return np.array([rows[k] for k in sorted(rows)]).reshape(-1, len(THERMO_COLUMNS))


def read_cell(logs: list[Path]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(origin xlo ylo zlo, cell lx ly lz xy xz yz) of the NVT stages, from the last attempt that printed it."""
    found = None
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(CELL_MARK):
                v = [float(x) for x in line.split()[1:]]
                found = (tuple(v[:3]), tuple(v[3:]))
    return found


def lengths_and_angles(lx: float, ly: float, lz: float, xy: float, xz: float, yz: float
                       ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(a, b, c) in Å and (α, β, γ) in degrees of a LAMMPS box: rows a = (lx, 0, 0), b = (xy, ly, 0),
    c = (xz, yz, lz); α is the angle between b and c, β between a and c, γ between a and b."""
    h = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    n = np.linalg.norm(h, axis=1)

    def angle(i: int, j: int) -> float:
        return float(np.degrees(np.arccos(np.clip(h[i] @ h[j] / (n[i] * n[j]), -1.0, 1.0))))

    return (float(n[0]), float(n[1]), float(n[2])), (angle(1, 2), angle(0, 2), angle(0, 1))


def state_point(run: RunDir, summary: RunSummary) -> StatePoint:
    """The state the production run was made at (see :class:`core.rundir.StatePoint`)."""
    logs = run.logs()
    cell = read_cell(logs)
    table = read_thermo(logs)
    if cell is None or not len(table):
        raise LammpsError(f"{run}: the LAMMPS logs hold no cell line ({CELL_MARK}) or thermo table; was the run "
                          "made by this version's deck?")
    origin, (lx, ly, lz, xy, xz, yz) = cell
    st = summary.stages
    col = {c: k for k, c in enumerate(THERMO_COLUMNS)}
    prod = table[table[:, col["step"]] > st.equilibration_end]
    record = structure_of(summary.structure)
    fu = record.formula_units
    if not fu:
        raise LammpsError(f"{run}: its structure record has no formula units: cannot give a volume per formula unit")
    volume = lx * ly * lz
    a = cubic_lattice_constant(record, volume / fu)
    a_err = v_err = None
    if st.npt_end:
        npt = table[(table[:, col["step"]] > st.npt_half) & (table[:, col["step"]] <= st.npt_end)]
        if len(npt):
            v_err = block_mean(npt[:, col["vol"]] / fu).stderr
            a_err = None if a is None else block_mean(cubic_lattice_constant(record, npt[:, col["vol"]] / fu)).stderr
    if not len(prod):
        raise LammpsError(f"{run}: no production rows in the LAMMPS thermo output")
    p, t = block_mean(prod[:, col["press"]]), block_mean(prod[:, col["temp"]])
    lengths, angles = lengths_and_angles(lx, ly, lz, xy, xz, yz)
    return StatePoint(cell_angstrom=(lx, ly, lz, xy, xz, yz), origin_angstrom=tuple(origin),  # type: ignore[arg-type]
                      volume_a3=volume, lattice_constant_angstrom=None if a is None else float(a),
                      lattice_constant_stderr_angstrom=a_err, pressure_bar=p.mean, pressure_stderr_bar=p.stderr,
                      temperature_k=t.mean, temperature_stderr_k=t.stderr, samples=len(prod),
                      cell_lengths_angstrom=lengths, cell_angles_deg=angles, volume_per_formula_unit_a3=volume / fu,
                      volume_per_formula_unit_stderr_a3=v_err)
