"""Ask for the precision, not the run length: the loop that extends a study's runs until its target is met.

A study with a ``[precision]`` section (:class:`inputs.study.PrecisionSpec`) names what it wants — σ(Ea) of every
Arrhenius series at most ``ea_stderr_ev``, and/or σ(D)/D of every state at most ``d_rel_stderr`` — and a cap on
the production length of a run, ``max_production_ps``. Its runs start with ``md.production_ps`` (the pilot). Then,
round after round:

1. every run of the study runs (or resumes) to its current end of production;
2. the hosts are tested (:func:`driver.stability.scan_after_run`: ``stability.json``, seconds) and the study is
   analysed (:func:`analysis.study.analyse_study`: each run's numbers are cached beside it), so a state whose host
   is not a stable crystal is out of the checks as it is out of every Arrhenius fit;
3. each series is checked against the targets (:func:`check`: σ(Ea) of its fit, σ(D)/D of the states the fit
   uses); if all are met the loop stops (``met``);
4. otherwise :func:`decide` — the one rule, pure, that tests/test_sequential.py proves unbiased on synthetic
   ladders — takes the planner's lengths (``policy``: by default :func:`planner_policy`) for each series that
   misses its target, rounds each state's extension up to whole chunks of ``chunk_ps`` (default: the pilot's
   length) and caps it at ``max_production_ps`` (a series the planner would not grow grows by (σ/target)², at
   least one chunk per state); the decision is written to ``precision.json`` in the study directory
   (atomically) and each run is asked to go on (:func:`driver.runner.request_extension`), then back to 1.
   Where nothing can grow any more (every run that would need more is at the cap) the loop stops
   (``cap-reached``); after ``max_rounds`` extension rounds it stops too (``rounds-exhausted``).

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
from core.errors import AnalysisError, InputError
from core.files import atomic_write_text
from core.rundir import Extension, PrecisionRecord, RunDir, RunSummary
from driver.runner import request_extension, run_lock
from driver.stability import scan_after_run
from inputs.study import PrecisionSpec, Study, study_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from analysis.plan import StateKnowledge

log = logging.getLogger(__name__)

JOURNAL = "precision.json"  # in the study directory: the targets, every round's check and decision
LOCK = ".precision.lock"

#: a policy: (the study's analysis, an Arrhenius series, the targets) -> production ps per replica, per temperature
Policy = Callable[[StudyAnalysis, str, PrecisionSpec], dict[float, float]]
Decision = Literal["extend", "met", "cap-reached", "rounds-exhausted"]


@dataclass(frozen=True)
class SeriesCheck:
    """One Arrhenius series against the targets: σ(Ea) of its fit (None: no fit, fewer than two usable states),
    σ(D)/D of each state the fit uses (None: no error estimate), the states the fit leaves out (as the study's
    Arrhenius fit leaves them out: few events, no diffusive regime, an unstable host; the planner may choose not
    to bring a middle one in), and whether every target is met (:func:`meets`)."""

    series: str
    ea_stderr_ev: float | None
    d_rel_stderr: dict[float, float | None]
    excluded: tuple[float, ...]  # temperatures the Arrhenius fit leaves out (few events, no regime, host-unstable)
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


def meets(spec: PrecisionSpec, ea_stderr_ev: float | None, d_rel_stderr: dict[float, float | None]) -> bool:
    """Whether a series meets the targets: σ(Ea) of its fit (None: no fit) and σ(D)/D of the states its fit uses
    (a σ(D)/D target is not met by a series with no state in its fit)."""
    ea_ok = spec.ea_stderr_ev is None or (ea_stderr_ev is not None and ea_stderr_ev <= spec.ea_stderr_ev)
    d_ok = spec.d_rel_stderr is None or (bool(d_rel_stderr) and all(
        v is not None and v <= spec.d_rel_stderr for v in d_rel_stderr.values()))
    return ea_ok and d_ok


def check(analysis: StudyAnalysis, spec: PrecisionSpec) -> tuple[SeriesCheck, ...]:
    """Every series of the analysis against the targets: the points the study's Arrhenius fit uses
    (:meth:`analysis.result.StudyAnalysis.points`: few-event, no-regime and host-unstable states left out), for
    σ(Ea) and σ(D)/D alike."""
    points, excluded = analysis.points()
    out = []
    for series in sorted({r.series for r in analysis.results}):
        ea = None
        if len(points.get(series, [])) >= 2:
            try:
                ea = fit_arrhenius(points[series]).ea_stderr_ev
            except AnalysisError:
                ea = None
        d_rel = {p.temperature_k: None if p.d_stderr_cm2_s is None else p.d_stderr_cm2_s / p.d_cm2_s
                 for p in points.get(series, [])}  # the fit's points have D > 0
        left_out = tuple(sorted(x.temperature_k for x in excluded.get(series, [])))
        out.append(SeriesCheck(series, ea, d_rel, left_out, meets(spec, ea, d_rel)))
    return tuple(out)


def next_end(current: float, proposed: float, chunk: float, cap: float) -> float:
    """The new length of production (steps or ps from the start of production): ``current`` grown by whole
    ``chunk``s until it reaches ``proposed``, never beyond ``cap``; unchanged where ``proposed`` asks for no
    more."""
    if proposed <= current or current >= cap:
        return current
    return min(current + math.ceil((proposed - current) / chunk - 1e-9) * chunk, cap)


@dataclass(frozen=True)
class Decided:
    """What :func:`decide` decided: the decision; per series that grows, the new production length per replica
    of each state that grows (temperature -> ps); per series that missed its target, the planner's lengths
    (temperature -> ps, before chunks and the cap)."""

    decision: Decision
    lengths_ps: dict[str, dict[float, float]]
    proposed_ps: dict[str, dict[float, float]]


def decide(checks: Sequence[SeriesCheck], current_ps: dict[str, dict[float, float]], spec: PrecisionSpec,
           chunk_ps: float, rounds_done: int, plan: Callable[[str], dict[float, float]]) -> Decided:
    """The loop's rule, pure (the driver's rounds and tests/test_sequential.py both take it):

    - every series meets the targets: ``met`` (the fit's σ alone decides; on synthetic ladders the Ea this stops
      at is unbiased and its 1σ covers 68 %, tests/test_sequential.py);
    - ``rounds_done`` extension rounds are ``spec.max_rounds``: ``rounds-exhausted``;
    - else each series that misses a target is grown to ``plan(series)``'s lengths (temperature -> ps per
      replica), each state's extension rounded up to whole ``chunk_ps`` from its ``current_ps`` (series ->
      temperature -> ps) and capped at ``spec.max_production_ps``; a series the plan does not grow (the planner
      thinks the lengths suffice, the fit disagrees; or it cannot plan: ``{}``) grows as its errors ask
      (:func:`_scaled`: σ ∝ 1/√t), at least one chunk more per state.
      ``extend`` where anything grows, else ``cap-reached``."""
    if all(c.met for c in checks):
        return Decided("met", {}, {})
    if rounds_done >= spec.max_rounds:
        return Decided("rounds-exhausted", {}, {})
    cap = float(spec.max_production_ps)  # type: ignore[arg-type]
    lengths: dict[str, dict[float, float]] = {}
    proposed: dict[str, dict[float, float]] = {}
    for c in checks:
        if c.met:
            continue
        now = current_ps[c.series]
        proposed[c.series] = plan(c.series)
        grown = {t: new for t, ps in proposed[c.series].items()
                 if t in now and (new := next_end(now[t], ps, chunk_ps, cap)) > now[t]}
        if not grown:
            grown = {t: new for t, ps in _scaled(c, now, spec, chunk_ps).items()
                     if (new := next_end(now[t], ps, chunk_ps, cap)) > now[t]}
        if grown:
            lengths[c.series] = grown
    return Decided("extend" if lengths else "cap-reached", lengths, proposed)


def steps_of(study: Study, ps: float) -> int:
    return int(round(ps * 1000.0 / study.md.timestep_fs))


def chunk_steps(study: Study) -> int:
    """Whole dump intervals: ``precision.chunk_ps`` (checked so at load), or the pilot's length rounded up."""
    dump = study.md.steps(study.md.dump_interval_ps, "dump_interval_ps")
    if study.precision.chunk_ps is not None:
        return steps_of(study, study.precision.chunk_ps)
    return math.ceil(steps_of(study, study.md.production_ps) / dump) * dump


def _scaled(c: SeriesCheck, now: dict[float, float], spec: PrecisionSpec, chunk_ps: float) -> dict[float, float]:
    """Where the planner adds nothing to a series that misses its target: errors fall as 1/√t, so each state's
    length times (σ / target)² of the target it misses (σ(Ea) for all, σ(D)/D for its own), at least a chunk
    more."""
    ea = (c.ea_stderr_ev / spec.ea_stderr_ev) ** 2 if spec.ea_stderr_ev and c.ea_stderr_ev else 1.0
    out = {}
    for t, ps in now.items():
        d = c.d_rel_stderr.get(t)
        own = (d / spec.d_rel_stderr) ** 2 if spec.d_rel_stderr and d else 1.0
        out[t] = max(ps * max(ea, own), ps + chunk_ps)
    return out


def decide_runs(study: Study, analysis: StudyAnalysis, runs: list[tuple[RunDir, RunSummary]],
                checks: tuple[SeriesCheck, ...], rounds_done: int,
                policy: Policy) -> tuple[Decision, dict[str, int], dict[str, float]]:
    """:func:`decide` on the study's runs (a state's length: its longest replica's): the decision, run directory
    -> new production end (step) for the runs that grow, and run directory -> the length (ps) the planner
    proposed for its state."""
    series_of_run = analysis.series_of_run
    current: dict[str, dict[float, float]] = {}
    for run, s in runs:
        of, t = current.setdefault(series_of_run[str(run)], {}), float(s.temperature_k)
        of[t] = max(of.get(t, 0.0), s.production_ps)
    done = decide(checks, current, study.precision, chunk_steps(study) * study.md.timestep_fs / 1000.0, rounds_done,
                  lambda series: policy(analysis, series, study.precision))
    extended: dict[str, int] = {}
    proposed: dict[str, float] = {}
    for run, s in runs:
        series, t = series_of_run[str(run)], float(s.temperature_k)
        if t in done.proposed_ps.get(series, {}):
            proposed[str(run)] = float(done.proposed_ps[series][t])
        if t in done.lengths_ps.get(series, {}):
            end = s.stages.equilibration_end + steps_of(study, done.lengths_ps[series][t])
            if end > s.stages.production_end:
                extended[str(run)] = end
    return ("cap-reached" if done.decision == "extend" and not extended else done.decision), extended, proposed


def ladder_check(study: Study, run_dirs: Sequence[Path]) -> None:
    """Refuse (one line) a σ(Ea) target for runs where a series has fewer than two temperatures: no Arrhenius
    fit, so every run would be extended to the cap for a target it cannot reach."""
    from analysis.study import series_of

    if study.precision.ea_stderr_ev is None:
        return
    temperatures: dict[str, set[float]] = {}
    for d in run_dirs:
        s = RunDir(d).read()
        temperatures.setdefault(series_of(s), set()).add(float(s.temperature_k))
    for series, ts in sorted(temperatures.items()):
        if len(ts) < 2:
            raise InputError(f"{study.source}: precision.ea_stderr_ev: the series {series} runs only at "
                             f"{', '.join(f'{t:g} K' for t in sorted(ts))}; an Arrhenius fit needs at least two "
                             "temperatures (run the ladder, or give d_rel_stderr alone)")


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
    """Test the hosts, check the finished runs ``run_dirs`` of ``study`` against its targets and decide: stop
    (``met``, ``cap-reached``, ``rounds-exhausted``: every run's record says so) or extend (the runs' summaries
    and ``precision.json`` say how far). Every run must be finished."""
    with study_lock(study_dir):
        return _take_round(study, study_dir, run_dirs, policy)


def _take_round(study: Study, study_dir: Path, run_dirs: list[Path], policy: Policy) -> Round:
    unfinished = [str(d) for d in run_dirs if not RunDir(d).is_finished(RunDir(d).read())]
    if unfinished:
        raise AnalysisError(f"{study_dir}: a precision round needs every run finished; not yet: "
                            f"{', '.join(unfinished)}")
    ladder_check(study, run_dirs)
    scan_after_run(study_dir)  # stability.json first: an unstable host's states are out of the checks and fits
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
    if last.get("decision") in ("met", "cap-reached", "rounds-exhausted") and last.get("production_ps") == lengths \
            and journal.get("target") == study.precision.describe() \
            and (last["decision"] == "met") == all(c.met for c in checks):
        return Round(number, checks, last["decision"], {})  # decided already (another task, an earlier run)
    decision, extended, proposed = decide_runs(study, analysis, runs, checks, number, policy)
    result = Round(number, checks, decision, extended, proposed)
    _record(study, Path(study_dir), journal, result, runs)  # the decision first: a crash after it is resumed
    _apply(study, result, runs, checks, analysis)
    return result


def _record(study: Study, study_dir: Path, journal: dict, rnd: Round, runs: list[tuple[RunDir, RunSummary]]) -> None:
    """Append the round to ``precision.json``: the checks, each run's length now and the one decided (ps), and
    the simulated time in all (now, and planned for the next round)."""
    now = {run.path.relative_to(study_dir).as_posix(): s.production_ps for run, s in runs}
    to = {run.path.relative_to(study_dir).as_posix(): s.production_ps_to(rnd.extended[str(run)])
          for run, s in runs if str(run) in rnd.extended}
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
    for run, s in runs:
        old = s.precision or PrecisionRecord(target=target, production_ps=s.production_ps)
        end = rnd.extended.get(str(run))
        if end is not None:
            ext = Extension(rnd.number + 1, s.stages.production_end, end, rundir.now())
            request_extension(run.path, end, dataclasses.replace(old, target=target,
                                                                  production_ps=s.production_ps_to(end),
                                                                  outcome="running",
                                                                  extensions=(*old.extensions, ext)))
        elif rnd.done or s.precision is None:
            outcome = "running" if not rnd.done else \
                ("met" if analysis.series_of_run[str(run)] in met else rnd.decision)
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
            f"(max_production_ps = {spec.max_production_ps:g})",
            "rounds-exhausted": f"stopped: the {spec.max_rounds} extension rounds (max_rounds) are used up",
            "extend": f"extending {len(rnd.extended)} run(s)"}[rnd.decision]
    return f"precision round {rnd.number}: " + "; ".join(parts) + f" — {what}"


def planner_policy(analysis: StudyAnalysis, series: str, spec: PrecisionSpec) -> dict[float, float]:
    """:func:`planned_lengths` of the series' states (:func:`analysis.plan.knowledge_of`). Empty where the
    planner cannot plan (no events to plan with): the loop then extends the series by one chunk."""
    from analysis.plan import knowledge_of

    try:
        return planned_lengths(knowledge_of(analysis, series), spec, series)
    except AnalysisError as e:
        log.warning("the planner cannot plan %s (%s): one chunk more per state", series, e)
        return {}


def planned_lengths(states: Sequence[StateKnowledge], spec: PrecisionSpec, series: str = "") -> dict[float, float]:
    """The lengths per replica (temperature -> ps) :mod:`analysis.plan` proposes for a series' states: the least
    simulated time that reaches the σ(Ea) target (:func:`analysis.plan.propose`), and for a σ(D)/D target each
    state's shortest length whose modelled σ(D)/D reaches it; both within the cap. Raises AnalysisError where it
    cannot plan."""
    from analysis.plan import propose

    cap = float(spec.max_production_ps)  # type: ignore[arg-type]
    out = {s.temperature_k: s.production_ps for s in states}
    if spec.ea_stderr_ev is not None:
        proposal = propose(states, spec.ea_stderr_ev, cap)
        out = proposal.production_ps
        for note in proposal.notes:
            log.info("  planner, %s: %s", series, note)
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
    left resumable (running ``driver run`` again goes on). Raises InputError, before any run, where a series has
    fewer than two temperatures for a σ(Ea) target."""
    ladder_check(study, run_dirs)
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
