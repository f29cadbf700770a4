"""One run's analysis, computed once and kept beside the run (``analysis.json`` + ``analysis.npz``).

Reading a trajectory and computing its MSD over all time origins is the expensive part of every estimate; the
Arrhenius table, the report and ``driver run`` all need the same numbers. :func:`run_analysis` computes them once
per run directory and stores them there, keyed by the trajectory file (name, size, modification time) and by the
analysis settings and code version: a run is recomputed only when its trajectory or the settings changed.

For each atom selection (``li``: every Li; ``defect``: the atom that started as the interstitial) it keeps the MSD
curves (:class:`analysis.diffusion.MsdCurves`) and the hops behind them (:mod:`analysis.hops`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.diffusion import MsdCurves, msd_curves
from analysis.hops import count_hops
from analysis.trajectory import Trajectory, ids_of_type, read_dcd, read_dump
from core.errors import AnalysisError
from core.files import atomic_copy, atomic_write_text
from core.rundir import RunDir, RunSummary
from inputs.study import study_of

log = logging.getLogger(__name__)

#: bump when what is stored, or how it is computed, changes: older caches are then recomputed
VERSION = 2


@dataclass(frozen=True)
class SelectionAnalysis:
    """The numbers of one atom selection of one run."""

    selection: str
    curves: MsdCurves
    n_hops: int


@dataclass(frozen=True)
class RunAnalysis:
    run: str
    selections: dict[str, SelectionAnalysis]
    key: dict


def selections_of(summary: RunSummary) -> list[str]:
    """``li`` and, where the structure has an interstitial atom, ``defect``."""
    return ["li"] + (["defect"] if summary.structure["defect"].get("atom_ids") else [])


def cache_key(run: RunDir, summary: RunSummary) -> dict:
    path = run.trajectory_of(summary)
    st = path.stat()
    an = study_of(summary.config, str(run.summary_file)).analysis
    fcom = run.fcom.stat() if run.fcom.is_file() else None
    return {"version": VERSION, "trajectory": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "fcom": [fcom.st_size, fcom.st_mtime_ns] if fcom else None, "n_blocks": an.n_blocks,
            "timestep_fs": summary.timestep_fs}


def read_li(run: RunDir, summary: RunSummary) -> Trajectory:
    """The run's Li trajectory (text dump or DCD, as the study dumped it), atoms in id order, in the frame of the
    host lattice: the displacement of the F sublattice's centre of mass since the first frame is subtracted
    (``fcom.txt``; runs without one are taken as they are)."""
    li_type = summary.structure["type_order"].index("Li") + 1
    path = run.trajectory_of(summary)
    if summary.dump_format == "dcd":
        traj = read_dcd(path, summary.timestep_fs, atom_ids=ids_of_type(run.data, li_type))
    else:
        traj = read_dump(path, summary.timestep_fs, select=f"type {li_type}")
    return in_host_frame(traj, read_fcom(run.fcom)) if run.fcom.is_file() else traj


def read_fcom(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, centre of mass (n, 3) in Å) from an ``fcom.txt`` table."""
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.shape[1] != 4:
        raise AnalysisError(f"{path}: expected rows of step x y z")
    return data[:, 0].astype(np.int64), data[:, 1:]


def in_host_frame(traj: Trajectory, fcom: tuple[np.ndarray, np.ndarray]) -> Trajectory:
    """The trajectory with the host lattice's drift (the F centre of mass's displacement since the first frame)
    removed, so that a slow drift of the whole crystal cannot pose as diffusion."""
    steps, com = fcom
    idx = np.searchsorted(steps, traj.steps)
    if np.any(idx >= len(steps)) or np.any(steps[np.minimum(idx, len(steps) - 1)] != traj.steps):
        raise AnalysisError(f"{traj.source}: the F centre-of-mass table does not cover every frame "
                            f"(steps {traj.steps[0]}..{traj.steps[-1]})")
    drift = com[idx] - com[idx[0]]
    return Trajectory(traj.positions - drift[:, None, :].astype(traj.positions.dtype), traj.times_ps, traj.steps,
                      traj.atom_ids, traj.source)


def subset(traj: Trajectory, atom_ids) -> Trajectory:
    want = np.asarray(atom_ids)
    idx = np.searchsorted(traj.atom_ids, want)
    if np.any(idx >= len(traj.atom_ids)) or np.any(traj.atom_ids[np.minimum(idx, len(traj.atom_ids) - 1)] != want):
        raise AnalysisError(f"{traj.source}: atoms {want.tolist()} are not in the trajectory")
    return Trajectory(traj.positions[:, idx], traj.times_ps, traj.steps, want, traj.source)


def compute(run: RunDir, summary: RunSummary) -> RunAnalysis:
    """Read the trajectory once and analyse every selection."""
    an = study_of(summary.config, str(run.summary_file)).analysis
    li = read_li(run, summary)
    out = {}
    for name in selections_of(summary):
        traj = li if name == "li" else subset(li, summary.structure["defect"]["atom_ids"])
        out[name] = SelectionAnalysis(name, msd_curves(traj, an.n_blocks), count_hops(traj.positions))
    return RunAnalysis(str(run), out, cache_key(run, summary))


def save(result: RunAnalysis, run: RunDir) -> None:
    arrays = {}
    meta = {"key": result.key, "selections": {}}
    for name, s in result.selections.items():
        arrays[f"{name}_full"] = s.curves.full
        arrays[f"{name}_blocks"] = s.curves.blocks
        meta["selections"][name] = {"frame_interval_ps": s.curves.frame_interval_ps, "n_atoms": s.curves.n_atoms,
                                    "n_hops": s.n_hops}
    atomic_copy(lambda tmp: np.savez(tmp, **arrays), run.analysis_npz)
    atomic_write_text(run.analysis_json, json.dumps(meta, indent=1) + "\n")  # written last: the key validates both


def load(run: RunDir, key: dict) -> RunAnalysis | None:
    """The stored analysis if it was made from this trajectory with these settings, else None."""
    try:
        meta = json.loads(run.analysis_json.read_text())
        if meta.get("key") != key:
            return None
        with np.load(run.analysis_npz) as z:
            sel = {name: SelectionAnalysis(name, MsdCurves(m["frame_interval_ps"], m["n_atoms"],
                                                           z[f"{name}_full"], z[f"{name}_blocks"]), m["n_hops"])
                   for name, m in meta["selections"].items()}
    except (OSError, ValueError, KeyError):
        return None
    return RunAnalysis(str(run), sel, key)


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
