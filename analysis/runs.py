"""One run's analysis, computed once and kept beside the run (``analysis.json`` + ``analysis.npz``).

Reading a trajectory, following its defect and computing its MSD statistics is the expensive part of every
estimate; the Arrhenius table, the report and ``driver run`` all need the same numbers. :func:`run_analysis`
computes them once per run directory and stores them there, keyed by the trajectory and host-centre-of-mass files
(name, size, modification time) and by the analysis settings and code version: a run is recomputed only when one
of those changed.

Three observables, each as :class:`analysis.diffusion.MsdStats`, of the mobile species (the structure record's
``mobile``: Li in every built-in crystal; named ``li`` throughout, for the observable as for the counts):

- ``li``: every mobile atom — its tracer diffusivity (with one defect among N_Li atoms it scales as 1/N_Li);
- ``defect``: the defect itself, followed on the crystal's sites (:mod:`analysis.sites`), with its events;
- ``collective``: the sum of all mobile positions — its MSD / (6 N_Li t) is the collective (charge) diffusivity.

All positions are in the host lattice's frame: the displacement of the host species' centre of mass (F in LiF, O
in Li2O) since the first frame (``fcom.txt``) is subtracted.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.diffusion import MsdStats, collective, msd_stats
from analysis.sites import track_defect
from analysis.trajectory import Trajectory, ids_of_type, read_dcd, read_dump
from core.errors import AnalysisError
from core.files import atomic_copy, atomic_write_text
from core.rundir import RunDir, RunSummary
from inputs.structure import structure_of
from inputs.study import SELECTIONS, study_of

log = logging.getLogger(__name__)

#: bump when what is stored, or how it is computed, changes: older caches are then recomputed
VERSION = 3
#: the observables, by the names the study file's ``analysis.selection`` and every table use
OBSERVABLES: tuple[str, ...] = SELECTIONS


@dataclass(frozen=True)
class RunAnalysis:
    """A run's numbers: MSD statistics per observable, its Li and defect counts, the defect's events and the
    site-assignment diagnostics (None where the run has no defect to follow)."""

    run: str
    stats: dict[str, MsdStats]
    n_li: int
    n_defects: int
    events: int | None
    off_site_fraction: float | None
    ambiguous_fraction: float | None
    key: dict

    @property
    def duration_ps(self) -> float:
        return self.stats["li"].duration_ps


def cache_key(run: RunDir, summary: RunSummary) -> dict:
    path = run.trajectory_of(summary)
    st = path.stat()
    fcom = run.fcom.stat() if run.fcom.is_file() else None
    an = study_of(summary.config, str(run.summary_file)).analysis
    return {"version": VERSION, "trajectory": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "fcom": [fcom.st_size, fcom.st_mtime_ns] if fcom else None, "residence_ps": an.residence_ps,
            "timestep_fs": summary.timestep_fs}


def read_li(run: RunDir, summary: RunSummary) -> Trajectory:
    """The run's trajectory of its mobile species (text dump or DCD, as the study dumped it), atoms in id order, in
    the frame of the host lattice: the displacement of the host's centre of mass since the first frame is subtracted
    (``fcom.txt``; runs without one are taken as they are)."""
    record = structure_of(summary.structure)
    li_type = record.lammps_type(record.mobile)
    path = run.trajectory_of(summary)
    if summary.dump_format == "dcd":
        traj = read_dcd(path, summary.timestep_fs, atom_ids=ids_of_type(run.data, li_type))
    else:
        traj = read_dump(path, summary.timestep_fs, select=f"type {li_type}")
    return in_host_frame(traj, read_fcom(run.fcom)) if run.fcom.is_file() else traj


def read_fcom(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, centre of mass (n, 3) in Å) from an ``fcom.txt`` table."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": refused below
            data = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError as e:
        raise AnalysisError(f"{path}: not a table of step x y z rows ({e})") from None
    if data.ndim != 2 or data.shape[1] != 4 or len(data) == 0:
        raise AnalysisError(f"{path}: expected rows of step x y z")
    if not np.isfinite(data).all():
        raise AnalysisError(f"{path}: a centre-of-mass row is not finite (nan or inf): the run blew up")
    if np.any(data[:, 0] != np.round(data[:, 0])) or np.any(np.diff(data[:, 0]) <= 0):
        raise AnalysisError(f"{path}: the steps (first column) must be increasing integers")
    return data[:, 0].astype(np.int64), data[:, 1:]


def in_host_frame(traj: Trajectory, fcom: tuple[np.ndarray, np.ndarray]) -> Trajectory:
    """The trajectory with the host lattice's drift (the host's centre of mass's displacement since the first frame)
    removed, so that a slow drift of the whole crystal cannot pose as diffusion."""
    steps, com = fcom
    idx = np.searchsorted(steps, traj.steps)
    if np.any(idx >= len(steps)) or np.any(steps[np.minimum(idx, len(steps) - 1)] != traj.steps):
        raise AnalysisError(f"{traj.source}: the host centre-of-mass table does not cover every frame "
                            f"(steps {traj.steps[0]}..{traj.steps[-1]})")
    drift = com[idx] - com[idx[0]]
    return Trajectory(traj.positions - drift[:, None, :].astype(traj.positions.dtype), traj.times_ps, traj.steps,
                      traj.atom_ids, traj.source, traj.cell, traj.origin)


def production_cell(summary: RunSummary) -> tuple[np.ndarray, np.ndarray] | None:
    """(cell rows a, b, c in LAMMPS's frame, origin) of the NVT stages, from the run's measured state."""
    if summary.state is None:
        return None
    lx, ly, lz, xy, xz, yz = summary.state.cell_angstrom
    return np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]]), np.asarray(summary.state.origin_angstrom)


def compute(run: RunDir, summary: RunSummary) -> RunAnalysis:
    """Read the trajectory once and analyse every observable."""
    an = study_of(summary.config, str(run.summary_file)).analysis
    li = read_li(run, summary)
    dt = li.frame_interval_ps
    stats = {"li": msd_stats(li.positions, dt), "collective": msd_stats(collective(li.positions), dt)}
    st, box = structure_of(summary.structure), production_cell(summary)
    events = off = ambiguous = None
    n_defects = 0
    if st.defect_kind != "none" and st.li_sites is not None and box is not None:
        track = track_defect(li.positions, box[0], box[1], st.li_sites, st.interstitial_sites, st.defect_kind,
                             max(1, int(round(an.residence_ps / dt))))
        stats["defect"] = msd_stats(track.positions[:, None, :], dt)
        events, off, ambiguous, n_defects = track.n_events, track.off_site_fraction, track.ambiguous_fraction, 1
    return RunAnalysis(str(run), stats, li.positions.shape[1], n_defects, events, off, ambiguous,
                       cache_key(run, summary))


def save(result: RunAnalysis, run: RunDir) -> None:
    arrays, meta = {}, {"key": result.key, "n_li": result.n_li, "n_defects": result.n_defects,
                        "events": result.events, "off_site_fraction": result.off_site_fraction,
                        "ambiguous_fraction": result.ambiguous_fraction, "observables": {}}
    for name, s in result.stats.items():
        arrays |= {f"{name}_msd": s.msd, f"{name}_lags": s.lags, f"{name}_s_var": s.s_var}
        meta["observables"][name] = {"frame_interval_ps": s.frame_interval_ps, "n_walkers": s.n_walkers}
    atomic_copy(lambda tmp: np.savez(tmp, **arrays), run.analysis_npz)
    atomic_write_text(run.analysis_json, json.dumps(meta, indent=1) + "\n")  # written last: the key validates both


def load(run: RunDir, key: dict) -> RunAnalysis | None:
    """The stored analysis if it was made from this trajectory with these settings, else None."""
    try:
        meta = json.loads(run.analysis_json.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("key") != key:  # a damaged file is recomputed, never trusted
            return None
        with np.load(run.analysis_npz) as z:
            stats = {name: MsdStats(m["frame_interval_ps"], m["n_walkers"], z[f"{name}_msd"], z[f"{name}_lags"],
                                    z[f"{name}_s_var"]) for name, m in meta["observables"].items()}
        return RunAnalysis(str(run), stats, meta["n_li"], meta["n_defects"], meta["events"],
                           meta["off_site_fraction"], meta["ambiguous_fraction"], key)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def run_analysis(run_dir: str | Path, summary: RunSummary | None = None) -> RunAnalysis:
    """The analysis of a finished run: from its cache when the trajectory is unchanged, else computed and kept."""
    run = RunDir(run_dir)
    summary = summary or run.read()
    if not run.is_finished(summary):
        raise AnalysisError(f"{run} is not finished ({summary.status}); nothing to analyse yet")
    key = cache_key(run, summary)
    cached = load(run, key)
    if cached is not None:
        return cached
    result = compute(run, summary)
    try:
        save(result, run)
    except OSError as e:  # a read-only copy of a study: analyse it all the same
        log.warning("cannot keep the analysis of %s (%s); it will be recomputed next time", run, e)
    return result
