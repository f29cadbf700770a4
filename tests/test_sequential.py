"""Honest statistics for sequential runs (issue 25, item 5): extending a study until its σ(Ea) meets a target, by
the precision loop's own rule (:func:`driver.precision.decide`: stop on the fit's σ(Ea), else the planner's
lengths in whole chunks of the pilot's length up to the cap, one chunk more where the planner adds nothing, at
most ``max_rounds`` rounds), must not bias Ea nor shrink its error bars; and the σ(Ea) the planner predicts from a
pilot must be the scatter of Ea over repeated studies of the lengths it proposes.

Ground truth: synthetic Arrhenius ladders (tests/synthetic.py) — a defect hopping at λ(T) with a known Ea = 0.3 eV,
four temperatures 500-800 K (the coldest 13.6 times slower than the hottest), two replicas each — analysed by the
project's own estimator and window rule and fitted by its own Arrhenius fit. The z-scores of `compare` on pairs with
equal true Ea are checked in tests/test_compare.py.
"""

import math

import numpy as np

from analysis.plan import calibrated, propose
from driver.precision import SeriesCheck, decide, meets, planned_lengths
from inputs.study import PrecisionSpec
from tests.synthetic import Ladder, SyntheticStudy

LADDER = Ladder()
TRUE_EA = LADDER.ea_ev
TARGET = 0.02
CAP = 5000.0
PILOT = 50.0
SPEC = PrecisionSpec(ea_stderr_ev=TARGET, max_production_ps=CAP)  # the driver's defaults: chunk = pilot, max_rounds


def sequential(seed: int):
    """One study run by the loop's rule: a pilot of PILOT ps per replica, then :func:`decide` (chunks of PILOT,
    the cap, ``SPEC.max_rounds``) until it stops. (fit, the planner's first prediction of the simulated time
    (ps), the simulated time it took (ps), the decision)."""
    study = SyntheticStudy(LADDER, seed, CAP)
    lengths = {t: PILOT for t in LADDER.temperatures_k}
    predicted = None
    for rounds in range(SPEC.max_rounds + 1):
        states, fit = study.analyse(lengths)
        ea = None if fit is None else fit.ea_stderr_ev
        known = calibrated(states)
        done = decide((SeriesCheck("walk", ea, {}, (), meets(SPEC, ea, {})),),
                      {"walk": lengths}, SPEC, PILOT, rounds,  # as asked (a walk's frames round it a little)
                      lambda series: planned_lengths(known, SPEC, series))
        if predicted is None and done.proposed_ps:  # as precision.json's proposed_simulated_ps
            predicted = sum(max(s.production_ps, done.proposed_ps["walk"][s.temperature_k]) * s.replicas
                            for s in states)
        if done.decision != "extend":
            return fit, predicted, sum(s.production_ps * s.replicas for s in states), done.decision
        lengths = {t: done.lengths_ps["walk"].get(t, lengths[t]) for t in lengths}
    raise AssertionError(f"seed {seed}: the rule went on past max_rounds")


def test_sequential_stopping_leaves_ea_unbiased_and_its_error_bars_honest():
    """200 seeded studies: the bias of Ea is below 0.2 σ (its standard error is 0.07 σ), its 1σ interval covers
    60-76 % (68 % ± 2.4 binomial standard deviations), the target is met in ≥ 95 % of them (the others stop at the
    cap or when the rounds are used up), and the simulated time taken is the pilot's prediction within a factor 2
    (median). Measured: bias 0.09 σ, coverage 0.69, met 0.95 (8 studies used up max_rounds, 2 hit the cap); taken
    / predicted 1.67 (median), 1.02-4.6 (10-90 %): a 50 ps pilot sees 3-5 events at 500 K, so its rate there and κ
    are rough and the first plan short."""
    runs = [sequential(1000 + k) for k in range(200)]
    ea = np.array([f.ea_ev for f, *_ in runs])
    sigma = np.array([f.ea_stderr_ev for f, *_ in runs])
    predicted = np.array([p for _, p, _, _ in runs])
    taken = np.array([t for _, _, t, _ in runs])
    assert abs(ea.mean() - TRUE_EA) < 0.2 * sigma.mean(), (ea.mean(), sigma.mean())
    assert 0.60 <= np.mean(np.abs(ea - TRUE_EA) < sigma) <= 0.76, np.mean(np.abs(ea - TRUE_EA) < sigma)
    assert 0.8 < ea.std(ddof=1) / sigma.mean() < 1.25, (ea.std(ddof=1), sigma.mean())
    assert np.mean([d == "met" for *_, d in runs]) >= 0.95, [d for *_, d in runs]
    assert np.mean(sigma <= TARGET) >= 0.95, np.mean(sigma <= TARGET)
    assert 1 / 2 < np.median(taken / predicted) < 2, np.median(taken / predicted)


def test_the_pilots_predicted_sigma_ea_is_the_scatter_of_repeated_studies():
    """A pilot (100 ps per replica), the planner's proposal for σ(Ea) = 0.02 eV, then 150 studies of exactly those
    lengths with fresh seeds: the scatter of their Ea is the predicted σ(Ea) within 20 % (its sampling error is ~6 %;
    a variance model off by a factor 2 in σ_D fails), and so is the mean σ(Ea) their fits report."""
    pilot, _ = SyntheticStudy(LADDER, 7, 100.0).analyse({t: 100.0 for t in LADDER.temperatures_k})
    plan = propose(calibrated(pilot), TARGET, CAP)
    assert plan.reachable and math.isclose(plan.ea_stderr_ev, TARGET, rel_tol=1e-3)
    longest = max(plan.production_ps.values())
    fits = [SyntheticStudy(LADDER, 2000 + k, longest).analyse(plan.production_ps)[1] for k in range(150)]
    ea = np.array([f.ea_ev for f in fits])
    assert 0.8 < ea.std(ddof=1) / plan.ea_stderr_ev < 1.2, (ea.std(ddof=1), plan.ea_stderr_ev)
    assert 0.8 < np.mean([f.ea_stderr_ev for f in fits]) / plan.ea_stderr_ev < 1.2
    assert abs(ea.mean() - TRUE_EA) < 3 * plan.ea_stderr_ev / math.sqrt(150)
