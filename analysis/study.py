"""A study directory (``runs/<study>``) → one diffusivity estimate per potential and temperature.

Run directories are found by their ``summary.json``; only finished runs are analysed (others are listed in a
warning). Replicas (seeds) of one potential and temperature are pooled (see :mod:`analysis.diffusion`). The
atoms analysed follow the study's ``analysis.selection``: ``li`` (every Li: the tracer diffusivity of Li) or
``defect`` (the tagged interstitial atom); ``selections="both"`` gives both where the structure has a defect atom
(the report shows both; the Arrhenius fit uses the study's choice). Each result carries the number of hops
behind it (:mod:`analysis.hops`) and a flag when they are too few to trust D.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.diffusion import DiffusionEstimate, estimate_diffusion
from analysis.hops import MIN_HOPS, count_hops, too_few
from analysis.trajectory import Trajectory, ids_of_type, read_dcd, read_dump
from inputs.errors import AnalysisError
from inputs.io import atomic_write_text

log = logging.getLogger(__name__)
DUMP = "traj.dump"
DCD = "traj.dcd"


@dataclass(frozen=True)
class StateResult:
    potential: str
    temperature_k: float
    estimate: DiffusionEstimate
    run_dirs: tuple[str, ...]
    selection: str
    n_hops: int = -1
    flag: str = ""


def find_runs(study_dir: Path) -> list[tuple[Path, dict]]:
    runs = []
    for s in sorted(Path(study_dir).glob("**/summary.json")):
        if any(part.startswith(".") for part in s.relative_to(study_dir).parts):
            continue  # a staging directory left by a killed render
        try:
            runs.append((s.parent, json.loads(s.read_text())))
        except json.JSONDecodeError:
            warnings.warn(f"skipping {s}: not valid JSON", stacklevel=2)
    if not runs:
        raise AnalysisError(f"{study_dir} holds no run directories (no summary.json below it)")
    return runs


def selection_for(summary: dict, choice: str | None = None) -> tuple[str, str]:
    """(name, MDAnalysis selection) for a choice of atoms (default: the study's)."""
    choice = choice or summary["config"]["analysis"]["selection"]
    li_type = summary["structure"]["type_order"].index("Li") + 1
    if choice == "defect":
        ids = summary["structure"]["defect"]["atom_ids"]
        if not ids:
            raise AnalysisError("selection 'defect' but the structure has no interstitial atom")
        return choice, "id " + " ".join(map(str, ids))
    return choice, f"type {li_type}"


def trajectory_of(run_dir: Path, summary: dict, choice: str | None = None) -> Trajectory:
    """The run's trajectory of the chosen atoms (text dump or DCD, as the study dumped it)."""
    fmt = summary["config"]["md"].get("dump_format", "text")
    dt = summary["config"]["md"]["timestep_fs"]
    name, sel = selection_for(summary, choice)
    if fmt != "dcd":
        return read_dump(run_dir / DUMP, dt, select=sel)
    li_type = summary["structure"]["type_order"].index("Li") + 1
    li_ids = ids_of_type(run_dir / "data.lmp", li_type)  # the DCD holds the Li group in atom-ID order
    if name == "defect":
        want = np.array(summary["structure"]["defect"]["atom_ids"])
        idx = np.searchsorted(li_ids, want)
        if np.any(idx >= len(li_ids)) or np.any(li_ids[np.minimum(idx, len(li_ids) - 1)] != want):
            raise AnalysisError(f"{run_dir}: defect atoms {want.tolist()} are not Li atoms of the data file")
        return read_dcd(run_dir / DCD, dt, indices=idx, atom_ids=want)
    return read_dcd(run_dir / DCD, dt, atom_ids=li_ids)


def trajectory_path(run_dir: Path, summary: dict) -> Path:
    return run_dir / (DCD if summary["config"]["md"].get("dump_format", "text") == "dcd" else DUMP)


def selections_of(summary: dict, selections: str | None) -> list[str]:
    """The study's choice; with ``"both"``, ``li`` and (if there is a defect atom) ``defect``."""
    if selections is None:
        return [summary["config"]["analysis"]["selection"]]
    if selections != "both":
        raise AnalysisError(f"selections must be None or 'both', not {selections!r}")
    return ["li"] + (["defect"] if summary["structure"]["defect"].get("atom_ids") else [])


def analyse_study(study_dir: Path, selections: str | None = None, jobs: int | None = None) -> list[StateResult]:
    """One result per (potential, temperature[, selection]); state points in parallel processes (``jobs``,
    default: cores) when the trajectories are large."""
    groups: dict[tuple[str, float], list[tuple[Path, dict]]] = {}
    pending = []
    for run_dir, summary in find_runs(study_dir):
        if summary.get("status") != "finished" or not trajectory_path(run_dir, summary).exists():
            pending.append(f"{run_dir} ({summary.get('status')})")
            continue
        groups.setdefault((summary["potential"], float(summary["temperature_k"])), []).append((run_dir, summary))
    if pending:
        warnings.warn(f"{len(pending)} run(s) not finished and left out: {', '.join(pending[:5])}"
                      + (" ..." if len(pending) > 5 else ""), stacklevel=2)
    if not groups:
        raise AnalysisError(f"{study_dir} has no finished runs to analyse")
    tasks = [(pot, t, runs, choice) for (pot, t), runs in sorted(groups.items())
             for choice in selections_of(runs[0][1], selections)]
    size = sum(trajectory_path(d, s).stat().st_size for runs in groups.values() for d, s in runs)
    jobs = min(len(tasks), jobs if jobs is not None else (os.cpu_count() or 1))
    if jobs > 1 and size > PARALLEL_BYTES:  # worth the start-up of worker processes
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("forkserver")) as pool:
            return list(pool.map(_analyse_state, tasks))
    return [_analyse_state(task) for task in tasks]


#: trajectories larger than this in total are analysed in parallel processes (one per state point and selection)
PARALLEL_BYTES = 64 * 2**20


def _analyse_state(task: tuple) -> StateResult:
    pot, t, runs, choice = task
    an = runs[0][1]["config"]["analysis"]
    name, _ = selection_for(runs[0][1], choice)
    trajs = [trajectory_of(d, s, choice) for d, s in runs]
    est = estimate_diffusion(trajs, n_blocks=an["n_blocks"], start_fraction=an["fit_start_fraction"],
                             end_fraction=an["fit_end_fraction"])
    hops = sum(count_hops(tr.positions) for tr in trajs)
    flag = f"few hops ({hops} < {MIN_HOPS}): D rests on too few events" if too_few(hops) else ""
    return StateResult(pot, t, est, tuple(str(d) for d, _ in runs), name, hops, flag)


COLUMNS = ("potential", "temperature_k", "d_cm2_s", "d_stderr_cm2_s", "fit_start_ps", "fit_end_ps",
           "n_replicas", "n_blocks", "n_samples", "n_atoms", "simulated_ps", "selection", "method", "n_hops", "flag")


def write_diffusivity_table(results: list[StateResult], path: Path) -> Path:
    """CSV, one row per potential and temperature; D in cm²/s, times in ps."""
    rows = []
    for r in results:
        e = r.estimate
        rows.append({"potential": r.potential, "temperature_k": r.temperature_k, "d_cm2_s": e.d_cm2_s,
                     "d_stderr_cm2_s": "" if e.d_stderr_cm2_s is None else e.d_stderr_cm2_s,
                     "fit_start_ps": e.fit_start_ps, "fit_end_ps": e.fit_end_ps, "n_replicas": e.n_replicas,
                     "n_blocks": e.n_blocks, "n_samples": e.n_samples, "n_atoms": e.n_atoms,
                     "simulated_ps": e.simulated_ps, "selection": r.selection, "method": e.method,
                     "n_hops": r.n_hops, "flag": r.flag})
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(Path(path), buf.getvalue())
