r"""Planning a study's run lengths: how long, how many replicas, at which temperatures, for a target σ(Ea).

The question a user brings is "is this potential's Ea different from that one's, and what does it cost to know?".
This module answers its second half from what is known about each state point (a potential at a temperature):
its defect's migration rate and how precisely the runs so far determined D.

The variance model. A defect hopping at rate λ (events per ps, per replica) with jumps of length ℓ is, for the
estimator of :mod:`analysis.diffusion`, a process whose summed squared displacement has the variance
:math:`V(\tau) = 24 D^2 \tau^2 + \lambda \ell^4 \tau` over a window τ (its module docstring), with D = λℓ²/6. In
units of the mean time between events (1/λ) and of ℓ, the estimate's relative error then depends on nothing but the
events n = λt that one replica of length t saw, and on where the fit window starts (``events_before_window`` mean
times between events, see :func:`analysis.study.choose_window`; it ends at t/2, so a window exists from
n = 4 · events_before_window on). Replicas are pooled into one fit, so with r of them

.. math:: \frac{\sigma_D}{D} = \kappa \, \frac{c(n)}{\sqrt{n\, r}} .

c(n) is not derived by hand: it is the 1σ that the estimator itself (:func:`analysis.diffusion.pooled_fit`, its
GLS with the MSD's covariance) gives on the *expected* MSD and variance of such a walk (:func:`estimator_constant`),
so the planner predicts the error bars the analysis will print. For ``events_before_window = 3`` c falls from 3.6
just above 12 events to 2.5 at 100 and 2.4 from ~500 on (an MSD fit over lags up to t/2 uses the events
2.4² ≈ 5.7 times less well than counting them would). On seeded walks through the real estimator
(tests/test_plan.py) the scatter of D is the model's from ~100 events per replica on (within ~5 %); at 40 it is
0.88 of it, and the σ the estimator prints ~0.85. κ (``noise_factor``) is 1 for the defect's own D of a random
walk; for the all-Li tracer D (each event moves two atoms; thermal vibration) it differs (~0.6 on a synthetic
interstitialcy), so it is fitted to what the study's runs actually gave: the geometric mean, weighted by events,
over the states that saw at least :data:`KAPPA_MIN_EVENTS` events (a pilot without any: at least
:data:`KAPPA_FALLBACK_EVENTS`), of their measured σ(D)/D over the model's at the
events they saw (:func:`noise_check` lists the agreement state by state; 1 where no state qualifies).

Rates. A state's rate is its events over its simulated time where it saw at least :data:`RATE_MIN_EVENTS`; other
states (cold, short or not yet run) take it from the Arrhenius law of the measured rates, ln λ against 1/T
weighted by the events (:func:`rate_law`, fitted with :func:`analysis.arrhenius.fit_arrhenius`), or from a prior
λ(T) = ν₀ exp(-Ea / k_B T) the user gives (:class:`Prior`).

σ(Ea). The weighted Arrhenius fit's covariance depends only on the temperatures and on σ(ln D) = σ_D/D of its
points, not on the D values: :func:`predict` evaluates :func:`analysis.arrhenius.fit_arrhenius` itself on a flat
ladder with the predicted σ_D/D, so :math:`\sigma_{E_a} = \left(\sum_i w_i (x_i - \bar x_w)^2\right)^{-1/2}`,
x = 1/k_B T, w = (D/σ_D)², is the fit's own formula. States whose predicted events stay below the study's
``analysis.min_events`` are left out, as the analysis leaves them out of the fit.

Proposal. :func:`propose` minimises the simulated time Σ r_i t_i subject to σ(Ea) ≤ target, t_i between what was run
(never shortened; and at least what reaches ``min_events`` and a fit window) and the cap. In the weights
w_i ∝ λ_i t_i r_i the problem is convex (σ(Ea)⁻² is a concave function of w); it is solved in ln t_i with SLSQP from a
feasible start (every state stretched to one common length). As for any straight-line slope, the optimum puts the
time at the ends of the ladder: middle temperatures stay at the length that gets them into the fit. A state not yet
in the fit whose cost buys less precision than the others' is left out where that is cheaper (``drop``), and each
state's marginal value (how much σ(Ea) falls per extra ns simulated there) is reported. Where even the cap cannot
reach the target, the proposal says so, with the σ(Ea) the cap would give.

Sequential runs. The rule that extends runs until σ(Ea) ≤ target is the precision loop's,
:func:`driver.precision.decide`: stop on the fit's σ(Ea), else run to the proposal in whole chunks up to the cap.
On synthetic ladders with a known Ea (tests/test_sequential.py, through that same function) the Ea it stops at is
unbiased and its 1σ covers ~68 %.

Everything here is pure numpy/scipy: the study's runs come in through :func:`knowledge_of` (an
:class:`analysis.result.StudyAnalysis`); ``python -m driver plan`` (driver/plan.py) prints the table and writes the
JSON, and ``driver run`` of a study with a ``[precision]`` target (driver/precision.py) follows the proposals.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import numpy as np

from analysis.arrhenius import fit_arrhenius
from analysis.diffusion import Diffusivity, MsdStats, grid_lags, pooled_fit
from core.errors import AnalysisError
from core.units import K_B_EV_PER_K

#: a state's own rate is used where it saw at least this many events (else the ladder's rate law, or the prior)
RATE_MIN_EVENTS = 5
#: κ is fitted to the states that saw at least this many events (fewer: the estimator's own σ runs low, 0.87 of the
#: scatter at 40 events in one replica, and is itself noisy), 1 where none has
KAPPA_MIN_EVENTS = 100
#: where no state saw KAPPA_MIN_EVENTS events, κ is fitted over those that saw at least this many
KAPPA_FALLBACK_EVENTS = 20
#: c(n) is tabulated up to this many events per replica (it has converged to ~1 % there)
C_TABLE_MAX_EVENTS = 8192

RateSource = Literal["measured", "rate-law", "prior", "none"]


# --- the estimator's own constant ----------------------------------------------------------------------------

def _c_exact(n_events: float, window_start_events: float, frames_per_event: float) -> float:
    """c(n) = √n σ_D/D of one replica of a one-defect random walk (jumps of 1, rate 1) with n events, from
    :func:`analysis.diffusion.pooled_fit` on the walk's expected MSD (6Dt) and variance of S (24D²τ² + τ)."""
    duration = float(n_events)
    n_frames = int(round(duration * frames_per_event)) + 1
    dt = duration / (n_frames - 1)
    d = 1.0 / 6.0
    lags = grid_lags(n_frames)
    tau = lags * dt
    stats = MsdStats(dt, 1, 6.0 * d * np.arange(n_frames) * dt, lags, 24.0 * d**2 * tau**2 + tau)
    done = pooled_fit([stats], max(window_start_events, 2 * dt), duration / 2)
    if done is None:
        return math.inf
    fit = done[0]
    return fit.stderr_a2_ps / fit.d_a2_ps * math.sqrt(n_events)


@functools.lru_cache(maxsize=32)
def _c_table(window_start_events: float) -> tuple[float, float, float]:
    """ln c(n) as a quadratic in u = 4 s / n (s: ``window_start_events``; u = 1 where the window vanishes, 0 for
    endless runs), fitted to :func:`_c_exact` at 16 n from the first with a window to :data:`C_TABLE_MAX_EVENTS`,
    each the mean over three frame spacings: the lag grid's discreteness moves a single value by a few %, the
    quadratic follows the table to 1.4 % rms (3 % at most)."""
    ns = np.geomspace(4.0 * window_start_events * 1.05, max(C_TABLE_MAX_EVENTS, 100 * window_start_events), 16)
    cs = [np.mean([_c_exact(n, window_start_events, max(4.0, 4000.0 / n) * f) for f in (1.0, 1.31, 1.73)])
          for n in ns]
    a2, a1, a0 = np.polyfit(4.0 * window_start_events / ns, np.log(cs), 2)
    return float(a2), float(a1), float(a0)


def estimator_constant(n_events: float, window_start_events: float = 3.0) -> float:
    """c(n): √n · σ_D/D of the estimator for one replica that saw ``n_events`` events of a one-defect random walk,
    its window starting ``window_start_events`` mean times between events in (inf where there is no window:
    n < 4 · window_start_events)."""
    if not n_events >= 4.0 * window_start_events:
        return math.inf
    a2, a1, a0 = _c_table(round(float(window_start_events), 2))
    u = 4.0 * window_start_events / n_events
    return math.exp(a0 + u * (a1 + u * a2))


def _c_slope(n_events: float, window_start_events: float) -> float:
    """d ln c / d ln n at n events."""
    a2, a1, _ = _c_table(round(float(window_start_events), 2))
    u = 4.0 * window_start_events / n_events
    return -u * (a1 + 2.0 * u * a2)


def relative_stderr(n_events_per_replica: float, replicas: int, window_start_events: float = 3.0,
                    noise_factor: float = 1.0) -> float:
    """The model's σ_D/D: κ c(n) / √(n r) (inf where a replica's n has no window)."""
    if replicas < 1 or not n_events_per_replica > 0:
        return math.inf
    c = estimator_constant(n_events_per_replica, window_start_events)
    return noise_factor * c / math.sqrt(n_events_per_replica * replicas)


# --- what is known about each state ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Prior:
    """A rate law the user gives: λ(T) = ``prefactor_per_ps`` · exp(-``ea_ev`` / k_B T), events per ps."""

    ea_ev: float
    prefactor_per_ps: float

    def rate(self, temperature_k: float) -> float:
        return self.prefactor_per_ps * math.exp(-self.ea_ev / (K_B_EV_PER_K * temperature_k))


@dataclass(frozen=True)
class StateKnowledge:
    """What is known about one state point (a potential at a temperature) for planning.

    ``replicas`` and ``production_ps`` (per replica) are what has been run so far (0 for a state not run yet);
    ``events``: the defect's migration events seen in total over the replicas; ``d_cm2_s``/``d_stderr_cm2_s``: the
    analysis's D of the study's selection and its 1σ (None where there is none). ``rate_per_ps``: events per ps per
    replica (``rate_source`` says where it comes from; None: unknown, the state cannot be planned). The model's
    constants: ``window_start_events`` (where the fit window starts, in mean times between events),
    ``min_events`` (fewer and the state is left out of the fit), ``noise_factor`` (κ, fitted to the runs' σ).
    ``run_dirs``: the finished runs behind it."""

    temperature_k: float
    replicas: int
    production_ps: float
    events: int
    d_cm2_s: float | None
    d_stderr_cm2_s: float | None
    rate_per_ps: float | None = None
    rate_source: RateSource = "none"
    window_start_events: float = 3.0
    min_events: int = 20
    noise_factor: float = 1.0
    potential: str = ""
    run_dirs: tuple[str, ...] = ()

    @property
    def measured_rate(self) -> float | None:
        """Events per ps per replica as the runs saw them, where they saw :data:`RATE_MIN_EVENTS` (else None)."""
        if self.events < RATE_MIN_EVENTS or not self.production_ps > 0 or not self.replicas > 0:
            return None
        return self.events / (self.production_ps * self.replicas)

    @property
    def measured_rel_stderr(self) -> float | None:
        """σ_D/D as the analysis gave it (None where it gave none)."""
        if self.d_cm2_s is None or self.d_stderr_cm2_s is None or not self.d_cm2_s > 0:
            return None
        return self.d_stderr_cm2_s / self.d_cm2_s

    def model_rel_stderr(self, production_ps: float | None = None, replicas: int | None = None,
                         events: float | None = None) -> float:
        """The model's σ_D/D at a length and replica count (default: what was run; ``events``: at these events
        in total instead of the rate's)."""
        t = self.production_ps if production_ps is None else production_ps
        r = self.replicas if replicas is None else replicas
        if events is None:
            if self.rate_per_ps is None:
                return math.inf
            events = self.rate_per_ps * t * r
        return relative_stderr(events / max(r, 1), r, self.window_start_events, self.noise_factor)


def rate_law(states: Sequence[StateKnowledge]):
    """The Arrhenius law of the measured rates (an :class:`analysis.arrhenius.ArrheniusFit` of λ in events/ps,
    σ(ln λ) = 1/√events), or None with fewer than two temperatures of measured rate."""
    points = [Diffusivity(s.temperature_k, s.measured_rate, s.measured_rate / math.sqrt(s.events))
              for s in states if s.measured_rate is not None]
    if len({p.temperature_k for p in points}) < 2:
        return None
    return fit_arrhenius(points)


def with_rates(states: Sequence[StateKnowledge], prior: Prior | None = None) -> list[StateKnowledge]:
    """The states with their rates: measured where they saw :data:`RATE_MIN_EVENTS` events, else from the rate law
    of the others, else from the prior; ``none`` where nothing tells."""
    law = rate_law(states)
    out = []
    for s in states:
        if s.measured_rate is not None:
            rate, source = s.measured_rate, "measured"
        elif law is not None:
            rate, source = float(law.predict(np.array([s.temperature_k]))[0]), "rate-law"
        elif prior is not None:
            rate, source = prior.rate(s.temperature_k), "prior"
        else:
            rate, source = None, "none"
        out.append(replace(s, rate_per_ps=rate, rate_source=source))
    return out


@dataclass(frozen=True)
class NoiseCheck:
    """One state's measured σ_D/D beside the model's at the events it saw (κ = 1), and their ratio."""

    temperature_k: float
    events: int
    measured_rel_stderr: float
    model_rel_stderr: float

    @property
    def ratio(self) -> float:
        return self.measured_rel_stderr / self.model_rel_stderr


def noise_check(states: Sequence[StateKnowledge]) -> list[NoiseCheck]:
    """Measured against modelled σ_D/D for every state that has both and saw at least ``min_events`` and
    :data:`KAPPA_MIN_EVENTS` events; where none saw that many (a short pilot), those with at least
    :data:`KAPPA_FALLBACK_EVENTS`: a noisier κ is better than none, since κ for the all-Li D (~0.6) is far from 1 and
    would make a pilot's plan ~1/κ² too long."""
    for floor in (KAPPA_MIN_EVENTS, KAPPA_FALLBACK_EVENTS):
        out = []
        for s in states:
            m = s.measured_rel_stderr
            model = replace(s, noise_factor=1.0).model_rel_stderr(events=s.events)
            if m is not None and s.events >= max(s.min_events, floor) and math.isfinite(model):
                out.append(NoiseCheck(s.temperature_k, s.events, m, model))
        if out:
            return out
    return []


def fitted_noise_factor(states: Sequence[StateKnowledge]) -> float | None:
    """κ: the geometric mean of measured / modelled σ_D/D over :func:`noise_check`'s states, weighted by their
    events (a measured σ rests on ~events/3 independent windows per replica: its scatter falls as 1/√events);
    None: none."""
    checks = noise_check(states)
    if not checks:
        return None
    return float(math.exp(np.average([math.log(c.ratio) for c in checks], weights=[c.events for c in checks])))


def calibrated(states: Sequence[StateKnowledge], prior: Prior | None = None,
               min_window_start_ps: float = 0.0) -> list[StateKnowledge]:
    """The states with rates (:func:`with_rates`), their window's start in event units no earlier than
    ``min_window_start_ps`` (the study's ``analysis.min_window_start_ps``: that many ps times the rate), and κ
    fitted to their measured errors (1 where none can be)."""
    states = [replace(s, window_start_events=max(s.window_start_events, min_window_start_ps * s.rate_per_ps))
              if s.rate_per_ps is not None else s for s in with_rates(states, prior)]
    kappa = fitted_noise_factor(states)
    return [replace(s, noise_factor=1.0 if kappa is None else kappa) for s in states]


def knowledge_of(analysis, potential: str, prior: Prior | None = None) -> list[StateKnowledge]:
    """Per temperature of one series (a potential, or ``<potential> @ a Å`` for a fixed-volume ladder) of an
    :class:`analysis.result.StudyAnalysis`: what its finished runs tell (replicas, production per replica, events,
    D ± σ of the study's selection), with rates and κ (:func:`calibrated`). Temperatures whose runs are not
    finished yet are included with nothing run (their rate from the others or the prior); temperatures where the
    host is not a stable crystal (status ``host-unstable``) are left out, as every Arrhenius fit leaves them."""
    from analysis.study import series_of
    from inputs.study import study_of

    summaries = {str(run): s for run, s in analysis.runs}
    by_t: dict[float, StateKnowledge] = {}
    for r in analysis.results:
        if r.series != potential or r.status == "host-unstable":  # out of every fit: nothing to plan there
            continue
        if r.events is None:
            raise AnalysisError(f"{potential} at {r.temperature_k:g} K: no defect followed on the crystal's sites, "
                                "so no events to plan with (the planner needs a study with a defect)")
        est = r.estimates.get(analysis.selection)
        by_t[r.temperature_k] = StateKnowledge(
            r.temperature_k, len(r.run_dirs), float(np.mean([summaries[d].production_ps for d in r.run_dirs])),
            int(r.events), None if est is None else est.d_cm2_s, None if est is None else est.d_stderr_cm2_s,
            potential=potential, run_dirs=r.run_dirs)
    # a run's series: its potential, unless the study has both ladders of it (then "<potential> @ a Å" for the
    # fixed-volume one, as analysis.study names them)
    two_ladders = {r.potential for r in analysis.results if r.series != r.potential}
    spec = None
    for run, s in analysis.runs:
        if (series_of(s) if s.potential in two_ladders else s.potential) == potential:
            spec = spec or study_of(s.config, s.study_source).analysis
            if float(s.temperature_k) not in by_t and not run.is_finished(s):  # not run yet, or not finished
                by_t[float(s.temperature_k)] = StateKnowledge(float(s.temperature_k), 0, 0.0, 0, None, None,
                                                              potential=potential)
    if spec is None or not by_t:
        raise AnalysisError(f"{analysis.study_dir}: no runs of {potential!r} to plan from (series: "
                            f"{', '.join(sorted({r.series for r in analysis.results})) or 'none'})")
    return calibrated([replace(s, window_start_events=spec.events_before_window, min_events=spec.min_events)
                       for _, s in sorted(by_t.items())], prior, spec.min_window_start_ps)


# --- prediction -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StatePrediction:
    """One state at a length (per replica) and replica count: the events expected in total, σ_D/D (None: no fit
    window), whether the Arrhenius fit takes it, and why not."""

    temperature_k: float
    production_ps: float
    replicas: int
    events: float | None
    d_rel_stderr: float | None
    in_fit: bool
    note: str = ""

    @property
    def simulated_ps(self) -> float:
        return self.production_ps * self.replicas


@dataclass(frozen=True)
class Prediction:
    """Per temperature a :class:`StatePrediction`, and the ladder's σ(Ea) in eV (None: fewer than two
    temperatures in the fit)."""

    states: tuple[StatePrediction, ...]
    ea_stderr_ev: float | None

    @property
    def simulated_ps(self) -> float:
        """Production simulated in total (every state, every replica), ps."""
        return float(sum(s.simulated_ps for s in self.states))


def _state_prediction(s: StateKnowledge, t: float, r: int) -> StatePrediction:
    if s.rate_per_ps is None:
        return StatePrediction(s.temperature_k, t, r, None, None, False, "no rate known (no events, no prior)")
    if r < 1 or not t > 0:
        return StatePrediction(s.temperature_k, t, r, 0.0, None, False, "not run")
    events = s.rate_per_ps * t * r
    rel = s.model_rel_stderr(t, r)
    if not math.isfinite(rel):
        return StatePrediction(s.temperature_k, t, r, events, None, False,
                               f"{events:.3g} events: no fit window (a replica needs "
                               f"{4 * s.window_start_events:.3g})")
    if events < s.min_events:
        return StatePrediction(s.temperature_k, t, r, events, rel, False,
                               f"few events ({events:.3g} < {s.min_events}): left out of the fit")
    return StatePrediction(s.temperature_k, t, r, events, rel, True)


def ea_stderr(temperatures_k: Sequence[float], rel_stderr: Sequence[float]) -> float | None:
    """σ(Ea) in eV of the weighted Arrhenius fit of points with these σ_D/D: the fit itself
    (:func:`analysis.arrhenius.fit_arrhenius`) on a flat ladder (its covariance does not depend on D)."""
    if len(set(temperatures_k)) < 2:
        return None
    fit = fit_arrhenius([Diffusivity(t, 1.0, e) for t, e in zip(temperatures_k, rel_stderr)])
    return fit.ea_stderr_ev


def predict(states: Sequence[StateKnowledge], production_ps: dict[float, float] | None = None,
            replicas: dict[float, int] | None = None) -> Prediction:
    """The events, σ_D/D and σ(Ea) of the ladder if each temperature ran ``production_ps[T]`` per replica with
    ``replicas[T]`` replicas (a temperature missing from them: what was run). Every σ is the model's (κ from the
    runs), also where a state is not extended: a prediction that used a state's own measured σ would carry its
    noise into the decision to stop."""
    production_ps, replicas = production_ps or {}, replicas or {}
    preds = tuple(_state_prediction(s, float(production_ps.get(s.temperature_k, s.production_ps)),
                                    int(replicas.get(s.temperature_k, s.replicas))) for s in states)
    fitted = [p for p in preds if p.in_fit]
    sigma = ea_stderr([p.temperature_k for p in fitted], [p.d_rel_stderr for p in fitted])
    return Prediction(preds, sigma)


# --- the proposal -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StateProposal:
    """One temperature of a :class:`Proposal`: the length per replica to run to (≥ what was run) and the replicas,
    what was run so far, the simulated time to add (all replicas), the prediction there, the marginal value
    (how much σ(Ea) falls per extra ns simulated at this temperature, eV/ns; None: not in the fit), the rate it
    rests on (events per ps per replica, and where it comes from) and a note."""

    temperature_k: float
    production_ps: float
    replicas: int
    run_ps: float
    run_replicas: int
    added_ps: float
    events: float | None
    d_rel_stderr: float | None
    in_fit: bool
    marginal_ev_per_ns: float | None
    rate_per_ps: float | None = None
    rate_source: RateSource = "none"
    note: str = ""


@dataclass(frozen=True)
class Proposal:
    """The least simulated time that reaches ``target_ea_stderr_ev`` under ``max_production_ps`` per replica:
    per temperature a :class:`StateProposal`, the predicted σ(Ea), whether the target is reachable under the cap
    and the σ(Ea) the cap would give, the simulated time in total and to add (ps, all replicas), and notes
    (temperatures dropped because the target costs less without them, unreachable states)."""

    states: tuple[StateProposal, ...]
    target_ea_stderr_ev: float
    max_production_ps: float
    ea_stderr_ev: float | None
    reachable: bool
    best_ea_stderr_ev: float | None
    simulated_ps: float
    added_ps: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def production_ps(self) -> dict[float, float]:
        return {s.temperature_k: s.production_ps for s in self.states}

    @property
    def replicas(self) -> dict[float, int]:
        return {s.temperature_k: s.replicas for s in self.states}


def _bounds(s: StateKnowledge, r: int, cap: float) -> tuple[float, float]:
    """(shortest, longest) length per replica: what was run, and at least what gets the state into the fit
    (``min_events`` events and a window), up to the cap (or what was run, if longer)."""
    lo = s.production_ps
    if s.rate_per_ps:
        lo = max(lo, s.min_events / (s.rate_per_ps * r) * (1 + 1e-9),
                 4.0 * s.window_start_events / s.rate_per_ps * (1 + 1e-9))
    return lo, max(cap, s.production_ps)


def _sigma(states: Sequence[StateKnowledge], lengths: Sequence[float], reps: Sequence[int]) -> float:
    """σ(Ea) of the ladder at these lengths (inf: fewer than two temperatures in the fit)."""
    fitted = [(s.temperature_k, p.d_rel_stderr) for s, t, r in zip(states, lengths, reps)
              for p in [_state_prediction(s, t, r)] if p.in_fit]
    if len({t for t, _ in fitted}) < 2:
        return math.inf
    return ea_stderr([t for t, _ in fitted], [e for _, e in fitted]) or math.inf


def _ln_sigma_gradient(states: Sequence[StateKnowledge], lengths: Sequence[float], reps: Sequence[int],
                       sigma: float) -> np.ndarray:
    """d ln σ(Ea) / d ln t_i. σ(Ea)⁻² = P = Σ w (x - x̄_w)² (x = 1/k_B T, w = (D/σ_D)²) has ∂P/∂w_i = (x_i - x̄_w)²,
    and w_i ∝ n_i / c(n_i)² with n_i ∝ t_i, so d ln w_i / d ln t_i = 1 - 2 d ln c / d ln n."""
    preds = [_state_prediction(s, t, r) for s, t, r in zip(states, lengths, reps)]
    inside = [k for k, p in enumerate(preds) if p.in_fit]
    x = np.array([1.0 / (K_B_EV_PER_K * states[k].temperature_k) for k in inside])
    w = np.array([preds[k].d_rel_stderr ** -2 for k in inside])
    xbar = np.dot(w, x) / w.sum()
    grad = np.zeros(len(states))
    for j, k in enumerate(inside):
        n = states[k].rate_per_ps * lengths[k]
        slope = 1.0 - 2.0 * _c_slope(n, states[k].window_start_events)
        grad[k] = -0.5 * sigma**2 * (x[j] - xbar) ** 2 * w[j] * slope
    return grad


def _optimise(states: Sequence[StateKnowledge], reps: Sequence[int], lo: np.ndarray, hi: np.ndarray,
              target: float) -> tuple[np.ndarray, bool]:
    """The lengths (between lo and hi) of least Σ r t with σ(Ea) ≤ target, and whether it is reachable (if not:
    hi, the most precise)."""
    if _sigma(states, lo, reps) <= target:
        return lo.copy(), True
    if not _sigma(states, hi, reps) <= target:
        return hi.copy(), False
    # a feasible start: every state stretched to one common length (bisection on it, in ln t)
    a, b = math.log(lo.min()), math.log(hi.max())
    for _ in range(16):  # to ~1e-4 in ln t: a start, which SLSQP refines
        mid = 0.5 * (a + b)
        if _sigma(states, np.clip(math.exp(mid), lo, hi), reps) <= target:
            b = mid
        else:
            a = mid
    best = np.clip(math.exp(b), lo, hi)
    free = hi > lo * (1 + 1e-9)
    if free.any():
        from scipy.optimize import minimize

        r = np.asarray(reps, float)
        scale = float(np.sum(r * best))

        def lengths(u):
            t = lo.copy()
            t[free] = np.exp(u)
            return t

        def margin(u):
            s = _sigma(states, lengths(u), reps)
            return math.log(target) - math.log(s) if math.isfinite(s) else -10.0

        def margin_gradient(u):
            t = lengths(u)
            s = _sigma(states, t, reps)
            return -_ln_sigma_gradient(states, t, reps, s)[free] if math.isfinite(s) else np.zeros(free.sum())

        done = minimize(lambda u: float(np.sum(r * lengths(u))) / scale, np.log(best[free]),
                        jac=lambda u: (r * lengths(u))[free] / scale, method="SLSQP",
                        bounds=list(zip(np.log(lo[free]), np.log(hi[free]))),
                        constraints=[{"type": "ineq", "fun": margin, "jac": margin_gradient}],
                        options={"maxiter": 200, "ftol": 1e-10})
        t = np.clip(lengths(done.x), lo, hi)
        if _sigma(states, t, reps) <= target * (1 + 1e-6) and np.sum(r * t) < np.sum(r * best):
            best = t
    return best, True


def propose(states: Sequence[StateKnowledge], target_ea_stderr_ev: float, max_production_ps: float,
            replicas: int | None = None, temperatures: Sequence[float] | None = None,
            drop: bool = False) -> Proposal:
    """The lengths per replica (and replicas) that reach σ(Ea) ≤ ``target_ea_stderr_ev`` with the least simulated
    time, each between what was run and ``max_production_ps`` (see the module docstring).

    ``replicas``: replicas per temperature (default: each state's own; never fewer than were run). The simulated
    time a target needs hardly depends on how it is split into replicas (σ_D/D ∝ 1/√(n r) once a replica sees
    ~100 events; below that c(n) rises and fewer, longer runs are cheaper); more replicas cut the wall time, as
    they run side by side.
    ``temperatures``: the ladder to plan (default: the states'); a temperature no state has is added with nothing
    run and its rate from the rate law of the others. A temperature not yet in the fit whose absence would make
    the target cheaper is named in a note with what it would save; ``drop``: leave it out (not run further)."""
    if not target_ea_stderr_ev > 0:
        raise AnalysisError(f"the target σ(Ea) must be positive, got {target_ea_stderr_ev}")
    if not max_production_ps > 0:
        raise AnalysisError(f"the cap on production per replica must be positive, got {max_production_ps}")
    if not states:
        raise AnalysisError("nothing known to plan from: no state points")
    states = _ladder(states, temperatures)
    usual = max(s.replicas for s in states)
    reps = [max(replicas or s.replicas or usual, s.replicas, 1) for s in states]
    notes: list[str] = []
    bounds = [_bounds(s, r, max_production_ps) for s, r in zip(states, reps)]
    plannable = []
    for k, (s, (lo, hi)) in enumerate(zip(states, bounds)):
        if s.rate_per_ps is None:
            notes.append(f"{s.temperature_k:g} K: no rate known (no events here, no rate law, no prior): left as run")
        elif lo > hi * (1 + 1e-9):
            notes.append(f"{s.temperature_k:g} K: {s.min_events} events would need {lo:.4g} ps per replica, beyond "
                         f"the cap of {max_production_ps:g} ps: left as run")
        else:
            plannable.append(k)
    lo = np.array([bounds[k][0] if k in plannable else s.production_ps for k, s in enumerate(states)])
    hi = np.array([bounds[k][1] if k in plannable else s.production_ps for k, s in enumerate(states)])
    lo, hi = np.maximum(lo, 1e-9), np.maximum(hi, 1e-9)
    best_sigma = _sigma(states, hi, reps)
    lengths, reachable = _optimise(states, reps, lo, hi, target_ea_stderr_ev)
    trials = _drop_trials(states, reps, lo, hi, lengths, target_ea_stderr_ev) if reachable else []
    while drop and trials:  # leave out, one at a time, the state whose absence saves the most
        _, k, lengths, lo, hi = min(trials, key=lambda x: x[0])
        notes.append(f"{states[k].temperature_k:g} K: left out (not run further): the target costs less simulated "
                     "time without it")
        trials = _drop_trials(states, reps, lo, hi, lengths, target_ea_stderr_ev)
    if not drop:
        for cost, k, *_ in trials:
            notes.append(f"{states[k].temperature_k:g} K: not in the fit yet; the target without it would need "
                         f"{(float(np.dot(reps, lengths)) - cost) / 1000:.3g} ns less simulated time")
    sigma = _sigma(states, lengths, reps)
    out = []
    lengths = np.where(lengths <= lo * (1 + 1e-9), lo, lengths)  # the optimiser's round-off: exactly the bound
    lengths = np.where(lengths <= 1e-9, [s.production_ps for s in states], lengths)
    for k, (s, t, r) in enumerate(zip(states, lengths, reps)):
        p = _state_prediction(s, float(t), r)
        marginal = None
        if p.in_fit and math.isfinite(sigma):
            bumped = lengths.copy()
            bumped[k] = t * 1.01
            marginal = float((sigma - _sigma(states, bumped, reps)) / (0.01 * t * r / 1000.0))
        out.append(StateProposal(s.temperature_k, float(t), r, s.production_ps, s.replicas,
                                 float(r * t - s.replicas * s.production_ps), p.events, p.d_rel_stderr, p.in_fit,
                                 marginal, s.rate_per_ps, s.rate_source, p.note))
    if not reachable:
        notes.append(f"unreachable under the cap: every state at {max_production_ps:g} ps per replica gives σ(Ea) = "
                     + (f"{best_sigma:.3g} eV" if math.isfinite(best_sigma) else "no fit")
                     + f" > {target_ea_stderr_ev:g} eV (more replicas or a higher cap)")
    return Proposal(tuple(out), float(target_ea_stderr_ev), float(max_production_ps),
                    sigma if math.isfinite(sigma) else None, reachable,
                    best_sigma if math.isfinite(best_sigma) else None,
                    float(sum(o.production_ps * o.replicas for o in out)),
                    float(sum(o.added_ps for o in out)), tuple(notes))


def _drop_trials(states: Sequence[StateKnowledge], reps: Sequence[int], lo: np.ndarray, hi: np.ndarray,
                 lengths: np.ndarray, target: float) -> list[tuple[float, int, np.ndarray, np.ndarray, np.ndarray]]:
    """For each state not in the fit at what it has run and free to grow, the plan without it where that still
    reaches the target and costs less: (its simulated ps, the state, its lengths, its bounds)."""
    out = []
    for k, s in enumerate(states):
        if hi[k] <= lo[k] * (1 + 1e-9) or _state_prediction(s, s.production_ps, reps[k]).in_fit:
            continue
        lo2, hi2 = lo.copy(), hi.copy()
        lo2[k] = hi2[k] = max(s.production_ps, 1e-9)
        t2, ok = _optimise(states, reps, lo2, hi2, target)
        if ok and np.dot(reps, t2) < np.dot(reps, lengths) * (1 - 1e-6):
            out.append((float(np.dot(reps, t2)), k, t2, lo2, hi2))
    return out


def _ladder(states: Sequence[StateKnowledge], temperatures: Sequence[float] | None) -> list[StateKnowledge]:
    """The states of the temperatures asked for; one not among them is added with nothing run and its rate from
    the others' rate law (or the rates the states already carry, e.g. from a prior)."""
    states = sorted(states, key=lambda s: s.temperature_k)
    if temperatures is None:
        return states
    by_t = {s.temperature_k: s for s in states}
    template = states[0]
    law = rate_law(states)
    known = [(s.temperature_k, s.rate_per_ps) for s in states if s.rate_per_ps]
    out = []
    for t in sorted({float(x) for x in temperatures}):
        if t in by_t:
            out.append(by_t[t])
            continue
        if law is not None:
            rate, source = float(law.predict(np.array([t]))[0]), "rate-law"
        elif len({k for k, _ in known}) >= 2:  # rates from a prior: their own Arrhenius line
            x = np.array([1 / k for k, _ in known])
            slope, icpt = np.polyfit(x, np.log([v for _, v in known]), 1)
            rate, source = float(math.exp(icpt + slope / t)), "prior"
        else:
            rate, source = None, "none"
        out.append(StateKnowledge(t, 0, 0.0, 0, None, None, rate, source, template.window_start_events,
                                  template.min_events, template.noise_factor, template.potential))
    return out
