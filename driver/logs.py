"""What a run's LAMMPS logs say about its state: the thermo table (``step time temp pe etotal press vol lx ly lz xy
xz yz``, the deck's ``thermo_style``) and the cell of the NVT stages (the deck's ``LIF_DIFFUSION_CELL`` line),
measured into a :class:`core.rundir.StatePoint` for the run summary.

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
from inputs.structure import structure_of

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


def lattice_constant(volume_a3, formula_units: int):
    """The rock-salt lattice constant of a cell of ``formula_units`` LiF at ``volume_a3`` (4 formula units per
    cubic cell of side a)."""
    return (4.0 * np.asarray(volume_a3) / formula_units) ** (1.0 / 3.0)


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
    fu = structure_of(summary.structure).formula_units
    if not fu:
        raise LammpsError(f"{run}: its structure record has no formula units: cannot give a lattice constant")
    volume = lx * ly * lz
    a_err = None
    if st.npt_end:
        npt = table[(table[:, col["step"]] > st.npt_half) & (table[:, col["step"]] <= st.npt_end)]
        if len(npt):
            a_err = block_mean(lattice_constant(npt[:, col["vol"]], fu)).stderr
    if not len(prod):
        raise LammpsError(f"{run}: no production rows in the LAMMPS thermo output")
    p, t = block_mean(prod[:, col["press"]]), block_mean(prod[:, col["temp"]])
    return StatePoint(cell_angstrom=(lx, ly, lz, xy, xz, yz), origin_angstrom=tuple(origin),  # type: ignore[arg-type]
                      volume_a3=volume, lattice_constant_angstrom=float(lattice_constant(volume, fu)),
                      lattice_constant_stderr_angstrom=a_err, pressure_bar=p.mean, pressure_stderr_bar=p.stderr,
                      temperature_k=t.mean, temperature_stderr_k=t.stderr, samples=len(prod))
