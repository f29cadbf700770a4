"""Ask for the precision, not the run length: the loop that extends a study's runs until its target is met.

A study with a ``[precision]`` section (:class:`inputs.study.PrecisionSpec`) names what it wants — σ(Ea) of every
Arrhenius series at most ``ea_stderr_ev``, and/or σ(D)/D of every state at most ``d_rel_stderr`` — and a cap on
the production length of a run, ``max_production_ps``. Its runs start with ``md.production_ps`` (the pilot). Then,
round after round:

1. every run of the study runs (or resumes) to its current end of production;
2. the study is analysed (:func:`analysis.study.analyse_study`: each run's numbers are cached beside it);
3. each series is checked against the targets; if all are met the loop stops (``met``);
4. otherwise the planner (``policy``: by default :func:`analysis.plan.propose`) proposes a production length per
   state of each series that misses its target; each run's extension is rounded up to whole chunks of
   ``chunk_ps`` (default: the pilot's length) and capped at ``max_production_ps``; the decision is written to
   ``precision.json`` in the study directory (atomically) and each run is asked to go on
   (:func:`driver.runner.request_extension`), then back to 1. Where nothing can grow any more (every run that
   would need more is at the cap), or after ``max_rounds`` extension rounds, the loop stops (``cap-reached``).

An extension is a resume: the same deck (same fingerprint) runs on from the run's final restart file with
``-var production_end N``, so an extended run is one continuous trajectory — frame for frame the run an
uninterrupted run of that length gives (tests/test_precision.py checks it) — and a run killed during an
extension resumes toward the recorded end. Nothing is lost on a crash: the decisions live in the run summaries
(their new end of production and :class:`core.rundir.PrecisionRecord`) and in ``precision.json``; running
``driver run`` again resumes the runs and goes on with the next round.

On a cluster (driver/cluster.py) the same round is taken by the last array task of the study to finish
(:func:`cluster_round`, under a lock in the study directory, so exactly one task decides); it resubmits the array
tasks whose runs were extended, as a follow-up array (SLURM: ``sbatch --array=<those tasks>``; PBS: the whole
array, whose tasks with nothing to do end at once). A task that reaches the site's time limit is requeued and
resumes, as any run does.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal

from analysis.arrhenius import fit_arrhenius
from analysis.study import StudyAnalysis, analyse_study
from core import rundir
from core.errors import AnalysisError
from core.files import atomic_write_text
from core.rundir import Extension, PrecisionRecord, RunDir, RunSummary
from driver.runner import request_extension, run_lock
from inputs.study import PrecisionSpec, Study, study_of

if TYPE_CHECKING:
    from analysis.plan import StateKnowledge

log = logging.getLogger(__name__)

JOURNAL = "precision.json"  # in the study directory: the targets, every round's check and decision
LOCK = ".precision.lock"

#: a policy: (the study's analysis, an Arrhenius series, the targets) -> production ps per replica, per temperature
Policy = Callable[[StudyAnalysis, str, PrecisionSpec], dict[float, float]]
Decision = Literal["extend", "met", "cap-reached"]


@dataclass(frozen=True)
class SeriesCheck:
    """One Arrhenius series against the targets: σ(Ea) of its fit (None: no fit, fewer than two usable states),
    σ(D)/D of each state (None: no estimate), the states the fit leaves out (as the study's Arrhenius fit leaves
    them out: few events, no diffusive regime; the planner may choose not to bring a middle one in), and whether
    every target is met."""

    series: str
    ea_stderr_ev: float | None
    d_rel_stderr: dict[float, float | None]
    excluded: tuple[float, ...]  # temperatures the Arrhenius fit leaves out (few events, no diffusive regime)
    met: bool


@dataclass(frozen=True)
class Round:
    """One round of the loop: the check of every series after the runs of round ``number`` (0: the pilot), the
    decision, the runs extended (run directory -> new end of production, in steps) and the lengths the planner
    proposed for them before rounding to chunks and the cap (ps per replica)."""

    number: int
    checks: tuple[SeriesCheck, ...]
    decision: Decision
    extended: dict[str, int]
    proposed_ps: dict[str, float] = dataclasses.field(default_factory=dict)  # the planner's length, unrounded

    @property
    def done(self) -> bool:
        return self.decision != "extend"


def check(analysis: StudyAnalysis, spec: PrecisionSpec) -> tuple[SeriesCheck, ...]:
    """Every series of the analysis against the targets (the D the study's Arrhenius fit uses, few-event states
    left out of the fit as the fit leaves them out)."""
    points, excluded = analysis.points()
    out = []
    for series in sorted({r.series for r in analysis.results}):
        ea = None
        if len(points.get(series, [])) >= 2:
            try:
                ea = fit_arrhenius(points[series]).ea_stderr_ev
            except AnalysisError:
                ea = None
        d_rel: dict[float, float | None] = {}
        for r in analysis.results:
            if r.series == series:
                e = r.estimates.get(analysis.selection)
                ok = e is not None and e.d_stderr_cm2_s is not None and e.d_cm2_s > 0
                d_rel[r.temperature_k] = e.d_stderr_cm2_s / e.d_cm2_s if ok else None  # type: ignore[union-attr]
        left_out = tuple(sorted(x.temperature_k for x in excluded.get(series, [])))
        met = (spec.ea_stderr_ev is None or (ea is not None and ea <= spec.ea_stderr_ev)) and \
            (spec.d_rel_stderr is None or all(v is not None and v <= spec.d_rel_stderr for v in d_rel.values()))
        out.append(SeriesCheck(series, ea, d_rel, left_out, met))
    return tuple(out)


def next_end(current: int, proposed: int, chunk: int, cap: int) -> int:
    """The new end of production (steps from the start of production): ``current`` grown by whole ``chunk``s
    until it reaches ``proposed``, never beyond ``cap``; unchanged where ``proposed`` asks for no more."""
    if proposed <= current or current >= cap:
        return current
    return min(current + math.ceil((proposed - current) / chunk) * chunk, cap)


def steps_of(study: Study, ps: float) -> int:
    return int(round(ps * 1000.0 / study.md.timestep_fs))


def chunk_steps(study: Study) -> int:
    """Whole dump intervals: ``precision.chunk_ps`` (checked so at load), or the pilot's length rounded up."""
    dump = study.md.steps(study.md.dump_interval_ps, "dump_interval_ps")
    if study.precision.chunk_ps is not None:
        return steps_of(study, study.precision.chunk_ps)
    return math.ceil(steps_of(study, study.md.production_ps) / dump) * dump


def plan_extensions(study: Study, analysis: StudyAnalysis, runs: list[tuple[RunDir, RunSummary]],
                    checks: tuple[SeriesCheck, ...], policy: Policy) -> tuple[dict[str, int], dict[str, float]]:
    """Run directory -> new production end (step) for the runs of the series that miss a target, and run
    directory -> the length (ps) the planner proposed for it. A series the planner would not extend at all (its
    prediction was met, the target not; or it could not plan) gets one chunk more per state."""
    spec = study.precision
    chunk, cap = chunk_steps(study), steps_of(study, spec.max_production_ps)  # type: ignore[arg-type]
    by_state: dict[tuple[str, float], list[tuple[RunDir, RunSummary]]] = {}
    series_of_run = {d: r.series for r in analysis.results for d in r.run_dirs}
    for run, s in runs:
        by_state.setdefault((series_of_run[str(run)], float(s.temperature_k)), []).append((run, s))
    out: dict[str, int] = {}
    proposed: dict[str, float] = {}

    def grow(series: str, wanted: dict[float, int]) -> dict[str, int]:  # T -> steps asked: the runs that grow
        grown = {}
        for (of, t), members in by_state.items():
            for run, s in members if of == series and t in wanted else ():
                now = s.stages.production_end - s.stages.equilibration_end
                if (new := next_end(now, wanted[t], chunk, cap)) > now:
                    grown[str(run)] = s.stages.equilibration_end + new
        return grown

    for c in checks:
        if c.met:
            continue
        proposal = policy(analysis, c.series, spec)
        proposed |= {str(run): float(proposal[t]) for (series, t), members in by_state.items()
                     if series == c.series and t in proposal for run, _ in members}
        grown = grow(c.series, {t: steps_of(study, ps) for t, ps in proposal.items()})
        if not grown:  # the planner thinks the lengths suffice (or cannot plan), the data disagree: a chunk more
            grown = grow(c.series, {t: max(s.stages.production_end - s.stages.equilibration_end for _, s in members) + chunk
                          for (series, t), members in by_state.items() if series == c.series})
        out |= grown
    return out, proposed


@contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """One decider at a time per study directory (array tasks finishing together): a blocking lock."""
    with open(Path(study_dir) / LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_journal(study_dir: Path) -> dict:
    path = Path(study_dir) / JOURNAL
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"rounds": []}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnalysisError(f"{path} is damaged ({e}): remove it to start the precision record again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rounds"), list):
        raise AnalysisError(f"{path} is not a precision record: remove it to start again")
    return doc


def take_round(study: Study, study_dir: Path, run_dirs: list[Path], policy: Policy) -> Round:
    """Check the finished runs ``run_dirs`` of ``study`` against its targets and decide: stop (``met``,
    ``cap-reached``: every run's record says so) or extend (the runs' summaries and ``precision.json`` say how
    far). Every run must be finished."""
    with study_lock(study_dir):
        return _take_round(study, study_dir, run_dirs, policy)


def _take_round(study: Study, study_dir: Path, run_dirs: list[Path], policy: Policy) -> Round:
    unfinished = [str(d) for d in run_dirs if not RunDir(d).is_finished(RunDir(d).read())]
    if unfinished:
        raise AnalysisError(f"{study_dir}: a precision round needs every run finished; not yet: "
                            f"{', '.join(unfinished)}")
    wanted = {Path(d).resolve() for d in run_dirs}
    full = analyse_study(study_dir)
    results = [r for r in full.results if {Path(d).resolve() for d in r.run_dirs} <= wanted]
    analysis = dataclasses.replace(full, results=results)
    runs = [(run, s) for run, s in full.runs if run.path.resolve() in wanted]
    journal = read_journal(study_dir)
    number = sum(1 for r in journal["rounds"] if r.get("decision") == "extend")
    checks = check(analysis, study.precision)
    last = journal["rounds"][-1] if journal["rounds"] else {}
    lengths = {run.path.relative_to(study_dir).as_posix(): s.production_ps for run, s in runs}
    if last.get("decision") in ("met", "cap-reached") and last.get("production_ps") == lengths \
            and journal.get("target") == study.precision.describe():
        return Round(number, checks, last["decision"], {})  # decided already (another task, an earlier run)
    extended: dict[str, int] = {}
    proposed: dict[str, float] = {}
    if all(c.met for c in checks):
        decision: Decision = "met"
    elif number >= study.precision.max_rounds:
        decision = "cap-reached"
    else:
        extended, proposed = plan_extensions(study, analysis, runs, checks, policy)
        decision = "extend" if extended else "cap-reached"
    result = Round(number, checks, decision, extended, proposed)
    _record(study, Path(study_dir), journal, result, runs)  # the decision first: a crash after it is resumed
    _apply(study, result, runs, checks, analysis)
    return result


def _record(study: Study, study_dir: Path, journal: dict, rnd: Round, runs: list[tuple[RunDir, RunSummary]]) -> None:
    """Append the round to ``precision.json``: the checks, each run's length now and the one decided (ps), and
    the simulated time in all (now, and planned for the next round)."""
    now = {run.path.relative_to(study_dir).as_posix(): s.production_ps for run, s in runs}
    to = {run.path.relative_to(study_dir).as_posix(): (rnd.extended[str(run)] - s.stages.equilibration_end)
          * s.timestep_fs / 1000.0 for run, s in runs if str(run) in rnd.extended}
    entry = {
        "round": rnd.number, "decided": rundir.now(), "decision": rnd.decision,
        "checks": [{"series": c.series, "ea_stderr_ev": c.ea_stderr_ev, "met": c.met, "excluded_k": c.excluded,
                    "d_rel_stderr": {f"{t:g}": v for t, v in sorted(c.d_rel_stderr.items())}} for c in rnd.checks],
        "production_ps": now, "simulated_ps": sum(now.values()),
        "extend_to_ps": to, "planned_simulated_ps": sum(to.get(d, v) for d, v in now.items()),
        # the planner's own prediction of the simulated time the target needs (before chunks and the cap)
        "proposed_simulated_ps": sum(max(s.production_ps, rnd.proposed_ps.get(str(run), 0.0)) for run, s in runs)
        if rnd.proposed_ps else None,
    }
    doc = {"target": study.precision.describe(), "spec": dataclasses.asdict(study.precision),
           "rounds": [*journal["rounds"], entry], "outcome": "running" if rnd.decision == "extend" else rnd.decision}
    atomic_write_text(study_dir / JOURNAL, json.dumps(doc, indent=1) + "\n")


def _apply(study: Study, rnd: Round, runs: list[tuple[RunDir, RunSummary]], checks: tuple[SeriesCheck, ...],
           analysis: StudyAnalysis) -> None:
    """Extend the runs of an ``extend`` round; at the end, give every run its outcome."""
    target = study.precision.describe()
    met = {c.series for c in checks if c.met}
    series_of_run = {d: r.series for r in analysis.results for d in r.run_dirs}
    for run, s in runs:
        old = s.precision or PrecisionRecord(target=target, production_ps=s.production_ps)
        end = rnd.extended.get(str(run))
        if end is not None:
            ext = Extension(rnd.number + 1, s.stages.production_end, end, rundir.now())
            ps = (end - s.stages.equilibration_end) * s.timestep_fs / 1000.0
            request_extension(run.path, end, dataclasses.replace(old, target=target, production_ps=ps,
                                                                  outcome="running",
                                                                  extensions=(*old.extensions, ext)))
        elif rnd.done or s.precision is None:
            outcome = "running" if not rnd.done else ("met" if series_of_run[str(run)] in met else "cap-reached")
            with run_lock(run):
                run.update(precision=dataclasses.replace(old, target=target, production_ps=s.production_ps,
                                                         outcome=outcome))


def describe_round(rnd: Round, spec: PrecisionSpec) -> str:
    """One line per round: where each series stands against the target, and what was decided."""
    parts = []
    for c in rnd.checks:
        ea = "no fit" if c.ea_stderr_ev is None else f"{c.ea_stderr_ev:.3g} eV"
        d = list(c.d_rel_stderr.values())
        worst = "?" if any(v is None for v in d) or not d else f"{max(d):.2g}"  # type: ignore[type-var]
        parts.append(f"{c.series}: σ(Ea) {ea}" + (f" (target {spec.ea_stderr_ev:g})" if spec.ea_stderr_ev else "")
                     + (f", worst σ(D)/D {worst} (target {spec.d_rel_stderr:g})" if spec.d_rel_stderr else "")
                     + (f", left out of the fit: {', '.join(f'{k:g} K' for k in c.excluded)}" if c.excluded else "")
                     + (" met" if c.met else ""))
    what = {"met": "target met", "cap-reached": "stopped: the runs that need more are at the cap "
            f"(max_production_ps = {spec.max_production_ps:g}) or the rounds are used up",
            "extend": f"extending {len(rnd.extended)} run(s)"}[rnd.decision]
    return f"precision round {rnd.number}: " + "; ".join(parts) + f" — {what}"


def planner_policy(analysis: StudyAnalysis, series: str, spec: PrecisionSpec) -> dict[float, float]:
    """The lengths :mod:`analysis.plan` proposes for a series: the least simulated time that reaches the σ(Ea)
    target (:func:`analysis.plan.propose`), and for a σ(D)/D target each state's shortest length whose modelled
    σ(D)/D reaches it; both within the cap. Empty where the planner cannot plan (no events to plan with): the loop
    then extends the series by one chunk."""
    from analysis.plan import knowledge_of, propose

    cap = float(spec.max_production_ps)  # type: ignore[arg-type]
    try:
        states = knowledge_of(analysis, series)
        out = {s.temperature_k: s.production_ps for s in states}
        if spec.ea_stderr_ev is not None:
            proposal = propose(states, spec.ea_stderr_ev, cap)
            out = proposal.production_ps
            for note in proposal.notes:
                log.info("  planner, %s: %s", series, note)
    except AnalysisError as e:
        log.warning("the planner cannot plan %s (%s): one chunk more per state", series, e)
        return {}
    if spec.d_rel_stderr is not None:
        for s in states:
            out[s.temperature_k] = max(out.get(s.temperature_k, 0.0), _length_for(s, spec.d_rel_stderr, cap))
    return out


def _length_for(state: StateKnowledge, d_rel_stderr: float, cap: float) -> float:
    """The shortest length per replica (ps, at most ``cap``) whose modelled σ(D)/D is at most ``d_rel_stderr``
    (what was run where nothing is known about the state's rate)."""
    lo = state.production_ps
    if state.rate_per_ps is None or state.model_rel_stderr(lo) <= d_rel_stderr:
        return lo
    if state.model_rel_stderr(cap) > d_rel_stderr:
        return cap
    hi = cap
    for _ in range(50):  # σ(D)/D falls with the length: bisection in ln t
        mid = math.sqrt(max(lo, 1e-9) * hi)
        lo, hi = (mid, hi) if state.model_rel_stderr(mid) > d_rel_stderr else (lo, mid)
    return hi


def run_to_precision(study: Study, study_dir: Path, run_dirs: list[Path], run: Callable[[list[Path]], list[str]],
                     policy: Policy, stopped: Callable[[], bool] = lambda: False) -> Round | None:
    """The local loop: ``run`` (e.g. :func:`driver.runner.run_many` bound to a LAMMPS) every run, take a round,
    repeat while it extends. Returns the last round; None where runs failed or ``stopped()`` (TERM): the study is
    left resumable (running ``driver run`` again goes on)."""
    while True:
        failed = run(run_dirs)
        if failed or stopped():
            return None
        rnd = take_round(study, study_dir, run_dirs, policy)
        log.info("%s", describe_round(rnd, study.precision))
        for d, end in sorted(rnd.extended.items()):
            s = RunDir(d).read()
            log.info("  %s: production to %g ps (step %d)", d, s.production_ps, end)
        if rnd.done:
            return rnd


def cluster_round(study_dir: Path, policy: Policy) -> Round | None:
    """What the last array task of a study does after its runs: None while another run of the study is not
    finished (its task decides later); else the round taken over every run of the study directory."""
    with study_lock(study_dir):  # tasks that finish together: the first decides, the others see extended runs
        runs = rundir.find_runs(study_dir)
        if any(not run.is_finished(s) for run, s in runs):
            return None
        study = study_of(runs[0][1].config, str(runs[0][0].summary_file))
        return _take_round(study, Path(study_dir), [run.path for run, _ in runs], policy)
