"""A study directory (``runs/<study>``) → one result per potential and temperature.

Run directories are found by their ``summary.json`` (:func:`core.rundir.find_runs`). Finished runs are analysed
(each once: :mod:`analysis.runs` keeps its numbers beside it); the others are returned as pending, never silently
dropped. Replicas (seeds) of one potential and temperature are pooled.

Each state point gets, from the same fit window:

- D of all Li (the tracer diffusivity), of the defect itself, and the collective (charge) diffusivity;
- per-defect quantities that do not depend on the cell size: N_Li·D_Li per defect, the defect's own D, and the
  Haven ratio H_R = D_tracer / D_σ (the collective diffusivity per Li, D_σ = ⟨|Σ Δr_i|²⟩ / 6 N_Li t, fitted with
  the optical vibration's plateau in its model, see :func:`analysis.diffusion.pooled_fit`), and H_R also as
  N_Li·D_Li / D_defect (the charge moves with the defect: D_σ = D_defect / N_Li), often better determined;
  a collective D or Haven ratio whose 1σ is as large as itself is listed as ``undetermined``, never as a number;
- the ensemble: ``npt`` (each temperature at its own zero-pressure cell: Ea is an activation enthalpy along the
  potential's own a(T)) or ``nvt-fixed`` (one cell for every temperature); a study with
  ``system.fixed_beside_angstrom`` has both ladders, the fixed one as its own series (``<potential> @ a Å``);
- the window, chosen from the data: it starts ``analysis.events_before_window`` mean times between the defect's
  events into the trajectory (no earlier than ``analysis.min_window_start_ps``) and ends at half of it;
- a status: ``ok``; ``few-events`` (fewer than ``analysis.min_events`` events: the Arrhenius fit leaves it out by
  default); ``host-unstable`` (the host is not a stable crystal at this temperature, ``stability.json``: its numbers
  are listed, and left out of the fit); ``no-diffusive-regime`` (no event, or a window shorter than a factor two,
  or a melted host lattice: no number is given).

The result is computed once: :func:`analyse_study` keeps it in ``<study>/study-result.json``, keyed by the runs
it used, and every later call with the same runs and settings takes it from there (see :mod:`analysis.result`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from analysis import result
from analysis.arrhenius import Ensemble
from analysis.diffusion import estimate
from analysis.result import Conditions, PendingRun, StateResult, Status, StudyAnalysis
from analysis.runs import OBSERVABLES, RunAnalysis, cache_key, run_analysis
from analysis.sites import OFF_SITE_ANGSTROM
from core.errors import AnalysisError
from core.estimate import Estimate
from core.rundir import RunDir, RunSummary, find_runs
from core.stability import STABILITY, read_stability
from inputs.structure import structure_of
from inputs.study import AnalysisSpec, study_of

log = logging.getLogger(__name__)

#: a state whose Li spend more than this fraction of their time away from every crystal site has lost its lattice
MELTED_FRACTION = 0.05


def conditions(summaries: list[RunSummary]) -> Conditions | None:
    """The pooled state of replicas (None if a run has no measured state): each quantity's mean, with the larger
    of its propagated error and the replicas' own scatter."""
    states = [s.state for s in summaries]
    if any(st is None for st in states):
        return None

    def pooled(values, errors) -> Estimate | None:
        if any(v is None for v in values):
            return None
        errs = None if any(e is None for e in errors) else float(np.sqrt(np.sum(np.square(errors)))) / len(errors)
        if len(values) > 1:  # the replicas' own scatter, where it is larger
            scatter = float(np.std(values, ddof=1) / np.sqrt(len(values)))
            errs = scatter if errs is None else max(errs, scatter)
        return Estimate(float(np.mean(values)), errs)

    a = pooled([st.lattice_constant_angstrom for st in states], [st.lattice_constant_stderr_angstrom for st in states])
    p = pooled([st.pressure_bar for st in states], [st.pressure_stderr_bar for st in states])
    study = study_of(summaries[0].config, summaries[0].study_source)
    fixed = study.system.volume == "fixed"
    if fixed and a is not None:
        a = Estimate(a.value, None)  # the study's cell: no error
    return Conditions(a, p, None if fixed else study.md.pressure_bar)


#: trajectories larger than this in total are analysed in parallel processes (one per run)
PARALLEL_BYTES = 64 * 2**20


def analyse_study(study_dir: str | Path, jobs: int | None = None) -> StudyAnalysis:
    """Every state point of a study directory, computed once: the stored result where the runs it used, their
    settings and the host-stability table are unchanged, else computed now (runs analysed in parallel processes,
    ``jobs``, default: cores, when their trajectories are large and not analysed yet) and stored."""
    study_dir = Path(study_dir)
    runs = find_runs(study_dir)
    finished = [(r, s) for r, s in runs if r.is_finished(s)]
    pending = [PendingRun(str(r), s.status) for r, s in runs if not r.is_finished(s)]
    if not finished:
        raise AnalysisError(f"{study_dir} has no finished runs to analyse"
                            + (f" ({len(pending)} not finished)" if pending else ""))
    first = study_of(finished[0][1].config, str(finished[0][0].summary_file))
    key = study_key(study_dir, finished)
    results = result.load(study_dir, key)
    analyses = None
    if results is None:
        analyses = _analyse_runs(finished, jobs)
        results = compute_states(study_dir, finished, analyses)
        result.save(study_dir, key, results)
    out = StudyAnalysis(study_dir, first.name, first.analysis.selection, results, pending, runs)
    if analyses is not None:
        out.__dict__["analyses"] = analyses  # the cached property, filled with what was just computed
    return out


def study_key(study_dir: Path, finished: list[tuple[RunDir, RunSummary]]) -> dict:
    """What a study's result depends on: per finished run its analysis cache key, its summary file (size,
    modification time) and the study's analysis settings; the host-stability table; the code version."""
    runs = {}
    for r, s in finished:
        st = r.summary_file.stat()
        runs[result.relative(str(r), study_dir)] = {
            "analysis": cache_key(r, s), "summary": [st.st_size, st.st_mtime_ns],
            "settings": asdict(study_of(s.config, str(r.summary_file)).analysis)}
    stab = study_dir / STABILITY
    signature = [stab.stat().st_size, stab.stat().st_mtime_ns] if stab.is_file() else None
    return {"version": result.VERSION, "runs": runs, "stability": signature}


def compute_states(study_dir: Path, finished: list[tuple[RunDir, RunSummary]],
                   analyses: dict[str, RunAnalysis]) -> list[StateResult]:
    """The state results from the finished runs' analyses (replicas of a potential, series and temperature
    pooled), each flagged where the host is not a stable crystal."""
    unstable = host_stability(study_dir)
    groups: dict[tuple[str, str, float], list[tuple[RunDir, RunSummary]]] = {}
    for r, s in finished:
        groups.setdefault((s.potential, series_of(s), float(s.temperature_k)), []).append((r, s))
    both = {pot for pot, series, _ in groups if series == pot} & {pot for pot, series, _ in groups if series != pot}
    return [state_result(pot, t, members, [analyses[str(r)] for r, _ in members], series if pot in both else pot,
                         stability=unstable.get((series, round(t, 6)), ""))
            for (pot, series, t), members in sorted(groups.items())]


def host_stability(study_dir: Path) -> dict[tuple[str, float], str]:
    """(series as :func:`series_of` names it, temperature) → why the host is not a stable crystal there
    (``host-unstable: ...``), from the study's ``stability.json`` (``python -m driver stability``); {} where the
    study has none."""
    scan = read_stability(study_dir)
    if scan is None:
        return {}
    return {(p.series, round(p.temperature_k, 6)): p.flag for p in scan.unstable if p.flag}


def choose_window(spec: AnalysisSpec, analyses: list[RunAnalysis]) -> tuple[tuple[float, float] | None, str]:
    """The fit window (ps) from the defect's event rate, or the study's fixed one; None with why where there is
    no diffusive regime."""
    shortest = min(a.duration_ps for a in analyses)
    dt = max(a.stats["li"].frame_interval_ps for a in analyses)
    end = shortest / 2
    if spec.window_ps is not None:
        start, end = spec.window_ps
        if end > shortest:
            raise AnalysisError(f"analysis.window_ps ends at {end:g} ps, beyond the {shortest:g} ps of the runs")
        return (start, end), ""
    events = sum(a.events or 0 for a in analyses)
    if any(a.events is None for a in analyses):
        return None, "no defect to follow on the crystal's sites: give analysis.window_ps"
    if events == 0:
        return None, f"no migration event in {sum(a.duration_ps for a in analyses):g} ps: no diffusive regime"
    between = sum(a.duration_ps for a in analyses) / events
    start = max(spec.events_before_window * between, spec.min_window_start_ps, 2 * dt)
    if start > end / 2:
        return None, (f"{events} events, {between:.3g} ps apart: the diffusive regime would start at {start:.3g} ps, "
                      f"too close to half the run ({end:g} ps) for a window")
    return (start, end), ""


def ensemble_of(summary: RunSummary) -> Ensemble:
    """``npt`` where the run found its own zero-pressure cell, ``nvt-fixed`` where the study fixed the volume."""
    return "nvt-fixed" if study_of(summary.config, summary.study_source).system.volume == "fixed" else "npt"


def series_of(summary: RunSummary) -> str:
    """The Arrhenius series of a run: its potential, and for a fixed-volume ladder the cell beside it."""
    if ensemble_of(summary) == "npt":
        return summary.potential
    a = study_of(summary.config, summary.study_source).system.lattice_constant_angstrom
    return summary.potential if a is None else f"{summary.potential} @ {a:.4f} Å"  # None: a structure file's cell


def state_result(potential: str, temperature_k: float, members: list[tuple[RunDir, RunSummary]],
                 analyses: list[RunAnalysis], series: str = "", stability: str = "") -> StateResult:
    """One state point from its replicas' analyses; ``stability``: why its host is not a stable crystal (then
    its status is ``host-unstable`` unless it has no diffusive regime at all)."""
    spec = study_of(members[0][1].config, str(members[0][0].summary_file)).analysis
    window, why = choose_window(spec, analyses)
    events = None if any(a.events is None for a in analyses) else sum(a.events for a in analyses)
    off = [a.off_site_fraction for a in analyses if a.off_site_fraction is not None]
    off_site = max(off) if off else None
    common = dict(potential=potential, temperature_k=temperature_k, run_dirs=tuple(str(r) for r, _ in members),
                  n_li=analyses[0].n_li, n_defects=analyses[0].n_defects, events=events,
                  conditions=conditions([s for _, s in members]), off_site_fraction=off_site,
                  ensemble=ensemble_of(members[0][1]), series=series or potential, stability=stability)
    if off_site is not None and off_site > MELTED_FRACTION:
        return StateResult(estimates={}, window_ps=None, status="no-diffusive-regime",
                           reason=f"{100 * off_site:.0f} % of the {structure_of(members[0][1].structure).mobile} "
                                  "time is spent off every crystal site "
                                  f"(> {OFF_SITE_ANGSTROM} Å away): the host lattice has melted", **common)
    if window is None:
        return StateResult(estimates={}, window_ps=None, status="no-diffusive-regime", reason=why, **common)
    estimates = {}
    for name in OBSERVABLES:
        stats = [a.stats[name] for a in analyses if name in a.stats]
        estimates[name] = estimate(stats, *window, plateau=name == "collective") \
            if len(stats) == len(analyses) else None
    status: Status = "ok"
    reason = ""
    if events is not None and events < spec.min_events:
        status, reason = "few-events", f"few events ({events} < {spec.min_events}): D rests on too few migrations"
    if stability:
        status, reason = "host-unstable", "; ".join(filter(None, (stability, reason)))
    return StateResult(estimates=estimates, window_ps=window, status=status, reason=reason, **common)


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
