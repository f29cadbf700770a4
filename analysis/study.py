"""A study directory (``runs/<study>``) → one diffusivity estimate per potential, temperature and atom selection.

Run directories are found by their ``summary.json`` (:func:`core.rundir.find_runs`). Finished runs are analysed
(each once: :mod:`analysis.runs` keeps its numbers beside it); the others are returned as pending, never
silently dropped. Replicas (seeds) of one potential and temperature are pooled (see :mod:`analysis.diffusion`).
Selections: ``li`` (every Li: the tracer diffusivity of Li) and ``defect`` (the atom that started as the
interstitial); the study's ``analysis.selection`` says which one the Arrhenius fit uses. Each result carries the
number of hops behind it (:mod:`analysis.hops`) and a flag when they are too few to trust D.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.diffusion import DiffusionEstimate, Diffusivity, estimate_from_curves
from analysis.hops import MIN_HOPS, too_few
from analysis.runs import RunAnalysis, run_analysis
from core.errors import AnalysisError
from core.rundir import RunDir, RunSummary, find_runs
from inputs.study import study_of

log = logging.getLogger(__name__)


#: a production pressure further than this from the study's target is flagged (1 kbar is ~0.25 % of volume in
#: LiF, ~0.1 % of the lattice constant: a few meV on a migration barrier)
PRESSURE_TOLERANCE_BAR = 1000.0


@dataclass(frozen=True)
class Conditions:
    """The thermodynamic state of a state point's runs (their :class:`core.rundir.StatePoint`, pooled over
    replicas): mean lattice constant and production pressure with 1σ standard errors; ``target_pressure_bar`` is
    the NPT stage's pressure, None where the study fixed the volume."""

    lattice_constant_angstrom: float
    lattice_constant_stderr_angstrom: float | None
    pressure_bar: float
    pressure_stderr_bar: float | None
    target_pressure_bar: float | None

    @property
    def pressure_flag(self) -> str:
        if self.target_pressure_bar is None:
            return ""
        off = abs(self.pressure_bar - self.target_pressure_bar)
        if off > PRESSURE_TOLERANCE_BAR and off > 3 * (self.pressure_stderr_bar or 0.0):
            return (f"production pressure {self.pressure_bar:.0f} bar is far from the target "
                    f"{self.target_pressure_bar:g} bar")
        return ""


def conditions(summaries: list[RunSummary]) -> Conditions | None:
    """The pooled state of replicas (None if a run has no measured state)."""
    states = [s.state for s in summaries]
    if any(st is None for st in states):
        return None

    def pooled(values, errors):
        errs = None if any(e is None for e in errors) else float(np.sqrt(np.sum(np.square(errors)))) / len(errors)
        if len(values) > 1:  # the replicas' own scatter, where it is larger
            scatter = float(np.std(values, ddof=1) / np.sqrt(len(values)))
            errs = scatter if errs is None else max(errs, scatter)
        return float(np.mean(values)), errs

    a, a_err = pooled([st.lattice_constant_angstrom for st in states],
                      [st.lattice_constant_stderr_angstrom for st in states])
    p, p_err = pooled([st.pressure_bar for st in states], [st.pressure_stderr_bar for st in states])
    study = study_of(summaries[0].config, summaries[0].study_source)
    target = study.md.pressure_bar if study.system.volume == "npt" else None
    if study.system.volume == "fixed":
        a_err = None  # fixed by the study: no uncertainty
    return Conditions(a, a_err, p, p_err, target)


@dataclass(frozen=True)
class StateResult:
    """The estimate of one state point (potential, temperature) for one atom selection."""

    potential: str
    temperature_k: float
    selection: str
    estimate: DiffusionEstimate
    run_dirs: tuple[str, ...]
    n_hops: int
    flag: str = ""
    conditions: Conditions | None = None

    @property
    def point(self) -> Diffusivity:
        e = self.estimate
        return Diffusivity(self.temperature_k, e.d_cm2_s, e.d_stderr_cm2_s, e.n_samples)


@dataclass(frozen=True)
class PendingRun:
    run_dir: str
    status: str

    def __str__(self) -> str:
        return f"{self.run_dir} ({self.status})"


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything known about a study directory: finished results, runs not finished yet, and the runs' summaries
    and analyses (for the report's curves and provenance)."""

    study_dir: Path
    study_name: str
    selection: str  # the study's choice for the Arrhenius fit
    results: list[StateResult]
    pending: list[PendingRun]
    runs: list[tuple[RunDir, RunSummary]] = field(default_factory=list)
    analyses: dict[str, RunAnalysis] = field(default_factory=dict)

    def chosen(self) -> list[StateResult]:
        """The results of the study's own selection (what the Arrhenius fit uses)."""
        return [r for r in self.results if r.selection == self.selection]

    def lammps_builds(self) -> dict[str, list[str]]:
        """The LAMMPS builds the runs used (version and build id -> run directories); more than one in a study is
        worth a look (a cluster's LAMMPS for some runs, another for others)."""
        out: dict[str, list[str]] = {}
        for r, s in self.runs:
            if s.lammps is not None:
                out.setdefault(f"{s.lammps.version} ({s.lammps.build or s.lammps.executable})", []).append(str(r))
        return out

    def points(self, selection: str | None = None) -> dict[str, list[Diffusivity]]:
        """(T, D, σ, n) per potential, for the Arrhenius fit."""
        out: dict[str, list[Diffusivity]] = {}
        for r in self.results:
            if r.selection == (selection or self.selection):
                out.setdefault(r.potential, []).append(r.point)
        return out


#: trajectories larger than this in total are analysed in parallel processes (one per run)
PARALLEL_BYTES = 64 * 2**20


def analyse_study(study_dir: str | Path, jobs: int | None = None) -> StudyAnalysis:
    """Every state point of a study directory; runs are analysed in parallel processes (``jobs``, default: cores)
    when their trajectories are large and not analysed yet."""
    study_dir = Path(study_dir)
    runs = find_runs(study_dir)
    finished = [(r, s) for r, s in runs if r.is_finished(s)]
    pending = [PendingRun(str(r), s.status) for r, s in runs if not r.is_finished(s)]
    if not finished:
        raise AnalysisError(f"{study_dir} has no finished runs to analyse"
                            + (f" ({len(pending)} not finished)" if pending else ""))
    analyses = _analyse_runs(finished, jobs)
    groups: dict[tuple[str, float], list[tuple[RunDir, RunSummary]]] = {}
    for r, s in finished:
        groups.setdefault((s.potential, float(s.temperature_k)), []).append((r, s))
    results = []
    for (pot, t), members in sorted(groups.items()):
        an = study_of(members[0][1].config, str(members[0][0].summary_file)).analysis
        for name in analyses[str(members[0][0])].selections:
            sel = [analyses[str(r)].selections[name] for r, _ in members if name in analyses[str(r)].selections]
            est = estimate_from_curves([a.curves for a in sel], n_blocks=an.n_blocks,
                                       start_fraction=an.fit_start_fraction, end_fraction=an.fit_end_fraction)
            hops = sum(a.n_hops for a in sel)
            flag = f"few hops ({hops} < {MIN_HOPS}): D rests on too few events" if too_few(hops) else ""
            results.append(StateResult(pot, t, name, est, tuple(str(r) for r, _ in members), hops, flag,
                                       conditions([s for _, s in members])))
    first = study_of(finished[0][1].config, str(finished[0][0].summary_file))
    return StudyAnalysis(study_dir, first.name, first.analysis.selection, results, pending, runs, analyses)


def _analyse_runs(runs: list[tuple[RunDir, RunSummary]], jobs: int | None) -> dict[str, RunAnalysis]:
    size = sum(r.trajectory_of(s).stat().st_size for r, s in runs)
    jobs = min(len(runs), jobs if jobs is not None else (os.cpu_count() or 1))
    if jobs > 1 and size > PARALLEL_BYTES:  # worth the start-up of worker processes
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("forkserver")) as pool:
            done = list(pool.map(run_analysis, [r.path for r, _ in runs]))
    else:
        done = [run_analysis(r.path, s) for r, s in runs]
    return {str(r): a for (r, _), a in zip(runs, done)}
