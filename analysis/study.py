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
  default); ``no-diffusive-regime`` (no event, or a window shorter than a factor two, or a melted host lattice:
  no number is given).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from analysis.arrhenius import ENSEMBLES, Ensemble, Excluded
from analysis.diffusion import DiffusionEstimate, Diffusivity, estimate
from analysis.runs import OBSERVABLES, RunAnalysis, run_analysis
from analysis.sites import OFF_SITE_ANGSTROM
from core.errors import AnalysisError
from core.rundir import RunDir, RunSummary, find_runs
from inputs.study import AnalysisSpec, study_of

log = logging.getLogger(__name__)

Status = Literal["ok", "few-events", "no-diffusive-regime"]
#: a state whose Li spend more than this fraction of their time away from every crystal site has lost its lattice
MELTED_FRACTION = 0.05
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
    fixed = study.system.volume == "fixed"
    return Conditions(a, None if fixed else a_err, p, p_err, None if fixed else study.md.pressure_bar)


@dataclass(frozen=True)
class Value:
    """A derived quantity with its 1σ standard error."""

    value: float
    stderr: float | None


def _ratio(a: Value | None, b: Value | None) -> Value | None:
    """a / b with its error, the two taken as independent (conservative where they are positively correlated, as
    a tracer and a collective D from the same trajectories are)."""
    if a is None or b is None or b.value <= 0 or a.stderr is None or b.stderr is None:
        return None
    r = a.value / b.value
    return Value(r, abs(r) * math.hypot(a.stderr / a.value if a.value else 0.0, b.stderr / b.value))


def undetermined(v: Value | None) -> bool:
    """A value whose 1σ is as large as itself (or that has none) is not determined, only bounded."""
    return v is not None and (v.stderr is None or v.stderr >= abs(v.value))


@dataclass(frozen=True)
class StateResult:
    """One state point (potential, temperature), its replicas pooled: an estimate per observable (``li``,
    ``defect``, ``collective``; None where there is none), the events and window behind them, and its status."""

    potential: str
    temperature_k: float
    estimates: dict[str, DiffusionEstimate | None]
    run_dirs: tuple[str, ...]
    n_li: int
    n_defects: int
    events: int | None
    window_ps: tuple[float, float] | None
    status: Status
    reason: str
    conditions: Conditions | None = None
    off_site_fraction: float | None = None
    ensemble: Ensemble = "npt"
    series: str = ""  # the Arrhenius series the state belongs to (default: the potential)

    def __post_init__(self) -> None:
        if not self.series:
            object.__setattr__(self, "series", self.potential)

    @property
    def flags(self) -> list[str]:
        out = [self.reason] if self.status != "ok" else []
        if self.conditions is not None and self.conditions.pressure_flag:
            out.append(self.conditions.pressure_flag)
        return out

    def point(self, observable: str) -> Diffusivity | None:
        e = self.estimates.get(observable)
        return None if e is None else Diffusivity(self.temperature_k, e.d_cm2_s, e.d_stderr_cm2_s, e.dof)

    def value(self, observable: str) -> Value | None:
        e = self.estimates.get(observable)
        return None if e is None else Value(e.d_cm2_s, e.d_stderr_cm2_s)

    @property
    def per_defect_d(self) -> Value | None:
        """N_Li · D_Li per defect (cm²/s): the all-Li tracer D of one defect's motion, free of the cell size."""
        v = self.value("li")
        if v is None or not self.n_defects:
            return None
        k = self.n_li / self.n_defects
        return Value(k * v.value, None if v.stderr is None else k * v.stderr)

    @property
    def collective_d(self) -> Value | None:
        """D_σ, the collective (charge) diffusivity per Li (cm²/s): the collective coordinate's D over N_Li."""
        v = self.value("collective")
        if v is None:
            return None
        return Value(v.value / self.n_li, None if v.stderr is None else v.stderr / self.n_li)

    @property
    def haven_ratio(self) -> Value | None:
        """H_R = D_tracer / D_σ."""
        return _ratio(self.value("li"), self.collective_d)

    @property
    def haven_ratio_defect(self) -> Value | None:
        """H_R = N_Li·D_tracer / D_defect per defect: the Haven ratio where the charge moves with the defect
        (D_σ = D_defect / N_Li, as for one interstitial or vacancy), from the two better-determined D."""
        return _ratio(self.per_defect_d, self.value("defect"))

    @property
    def undetermined(self) -> list[str]:
        """The derived quantities whose 1σ is as large as themselves: to be shown as undetermined, not as numbers."""
        return [name for name in ("collective_d", "haven_ratio", "haven_ratio_defect")
                if undetermined(getattr(self, name))]


@dataclass(frozen=True)
class PendingRun:
    run_dir: str
    status: str

    def __str__(self) -> str:
        return f"{self.run_dir} ({self.status})"


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything known about a study directory: the state points, runs not finished yet, and the runs'
    summaries and analyses (for the report's curves and provenance)."""

    study_dir: Path
    study_name: str
    selection: str  # the observable the Arrhenius fit uses (the study's analysis.selection)
    results: list[StateResult]
    pending: list[PendingRun]
    runs: list[tuple[RunDir, RunSummary]] = field(default_factory=list)
    analyses: dict[str, RunAnalysis] = field(default_factory=dict)

    def points(self, observable: str | None = None, include_few_events: bool = False
               ) -> tuple[dict[str, list[Diffusivity]], dict[str, list[Excluded]]]:
        """The points an Arrhenius fit takes, per potential, and the states left out with why: states with no
        diffusive regime always, few-event states unless ``include_few_events``."""
        observable = observable or self.selection
        points: dict[str, list[Diffusivity]] = {}
        excluded: dict[str, list[Excluded]] = {}
        for r in self.results:
            p = r.point(observable)
            why = ""
            if r.status == "no-diffusive-regime" or p is None:
                why = r.reason or f"no estimate of the {observable} diffusivity"
            elif r.status == "few-events" and not include_few_events:
                why = r.reason
            elif p.d_cm2_s <= 0:
                why = f"D = {p.d_cm2_s:.3g} cm²/s ≤ 0 has no logarithm (no motion resolved)"
            if why:
                excluded.setdefault(r.series, []).append(Excluded(r.temperature_k, why))
            else:
                points.setdefault(r.series, []).append(p)
        return points, excluded

    def ensembles(self) -> dict[str, dict]:
        """Per Arrhenius series: its potential, ensemble and what its Ea means, and the lattice constant (Å) at
        each temperature (the a(T) along which an ``npt`` Ea is taken; one value for ``nvt-fixed``)."""
        out: dict[str, dict] = {}
        for r in self.results:
            e = out.setdefault(r.series, {"potential": r.potential, "ensemble": r.ensemble,
                                          "meaning": ENSEMBLES[r.ensemble], "lattice_constant_angstrom": {}})
            if r.conditions is not None:
                e["lattice_constant_angstrom"][f"{r.temperature_k:g}"] = r.conditions.lattice_constant_angstrom
        return out

    def lammps_builds(self) -> dict[str, list[str]]:
        """The LAMMPS builds the runs used (version and build id -> run directories); more than one in a study is
        worth a look (a cluster's LAMMPS for some runs, another for others)."""
        out: dict[str, list[str]] = {}
        for r, s in self.runs:
            if s.lammps is not None:
                out.setdefault(f"{s.lammps.version} ({s.lammps.build or s.lammps.executable})", []).append(str(r))
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
    groups: dict[tuple[str, str, float], list[tuple[RunDir, RunSummary]]] = {}
    for r, s in finished:
        groups.setdefault((s.potential, series_of(s), float(s.temperature_k)), []).append((r, s))
    both = {pot for pot, series, _ in groups if series == pot} & {pot for pot, series, _ in groups if series != pot}
    results = [state_result(pot, t, members, [analyses[str(r)] for r, _ in members],
                            series if pot in both else pot)
               for (pot, series, t), members in sorted(groups.items())]
    first = study_of(finished[0][1].config, str(finished[0][0].summary_file))
    return StudyAnalysis(study_dir, first.name, first.analysis.selection, results, pending, runs, analyses)


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
    return f"{summary.potential} @ {a:.4f} Å"


def state_result(potential: str, temperature_k: float, members: list[tuple[RunDir, RunSummary]],
                 analyses: list[RunAnalysis], series: str = "") -> StateResult:
    spec = study_of(members[0][1].config, str(members[0][0].summary_file)).analysis
    window, why = choose_window(spec, analyses)
    events = None if any(a.events is None for a in analyses) else sum(a.events for a in analyses)
    off = [a.off_site_fraction for a in analyses if a.off_site_fraction is not None]
    off_site = max(off) if off else None
    common = dict(potential=potential, temperature_k=temperature_k, run_dirs=tuple(str(r) for r, _ in members),
                  n_li=analyses[0].n_li, n_defects=analyses[0].n_defects, events=events,
                  conditions=conditions([s for _, s in members]), off_site_fraction=off_site,
                  ensemble=ensemble_of(members[0][1]), series=series or potential)
    if off_site is not None and off_site > MELTED_FRACTION:
        return StateResult(estimates={}, window_ps=None, status="no-diffusive-regime",
                           reason=f"{100 * off_site:.0f} % of the Li time is spent off every crystal site "
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
