"""The planner (analysis.plan): its variance model against the estimator's actual scatter on rare-jump walks, its
σ(Ea) against the Arrhenius fit's own, its proposal against a brute-force search, rates from the ladder's law or a
prior; and `python -m driver plan` on a synthetic study directory."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from analysis.arrhenius import fit_arrhenius
from analysis.diffusion import Diffusivity, estimate, msd_stats
from analysis.plan import (Prior, StateKnowledge, calibrated, ea_stderr, estimator_constant, fitted_noise_factor,
                           noise_check, predict, propose, relative_stderr, with_rates)
from analysis.runs import RunAnalysis
from analysis.study import choose_window
from core.errors import AnalysisError
from core.units import K_B_EV_PER_K
from inputs.study import AnalysisSpec
from tests.synthetic import Ladder, SyntheticStudy, defect_walk

LADDER = Ladder()


def known(t: float, length_ps: float, replicas: int = 2, ladder: Ladder = LADDER, **changes) -> StateKnowledge:
    """A state that saw exactly its expected events (rate from the true law)."""
    events = int(round(ladder.rate(t) * length_ps * replicas))
    return replace(StateKnowledge(t, replicas, length_ps, events, ladder.d_cm2_s(t), None), **changes)


def scatter_of_estimates(events_per_replica: float, replicas: int, seeds: int, spec=AnalysisSpec()):
    """D/D_true of the estimator over seeded one-defect walks (1 event per ps, 4 frames per event, each replica
    ``events_per_replica`` ps), windows by the study's rule: (estimates, reported σ/D)."""
    rng = np.random.default_rng(int(events_per_replica * 100 + replicas))
    n = int(events_per_replica * 4) + 1
    ratios, reported = [], []
    for _ in range(seeds):
        walks = [defect_walk(rng, n, 0.25, 1.0, 1.0) for _ in range(replicas)]
        analyses = [RunAnalysis("", {"li": msd_stats(x, 0.25)}, 1, 1, int(c[-1]), 0.0, 0.0, {}) for x, c in walks]
        window, _ = choose_window(spec, analyses)
        e = estimate([a.stats["li"] for a in analyses], *window, sensitivity=False)
        truth = 1.0 / 6.0 * 1e-4
        ratios.append(e.d_cm2_s / truth)
        reported.append(e.d_stderr_cm2_s / e.d_cm2_s)
    return np.array(ratios), np.array(reported)


@pytest.mark.parametrize("events_per_replica, replicas", [(40, 1), (160, 1), (80, 2)])
def test_the_model_sigma_is_the_estimators_scatter_on_rare_jump_walks(events_per_replica, replicas):
    """200 seeded walks per case through the real estimator: the scatter of D̂/D is the model's σ_D/D within 15-20 %
    (its own sampling error is ~5 %; a constant c off by 2 fails), and D̂ is unbiased. At 40 events in a replica
    the model is a little pessimistic (the scatter is 0.88 of it over 1000 seeds), from ~100 on within ~5 %."""
    ratios, reported = scatter_of_estimates(events_per_replica, replicas, 200)
    model = relative_stderr(events_per_replica, replicas)
    assert abs(ratios.mean() - 1) < 3 * model / math.sqrt(200), ratios.mean()
    assert 0.8 < ratios.std(ddof=1) / model < 1.15, (ratios.std(ddof=1), model)
    # what the estimator reports is the model too (a little low at few events: the noise factor fitted to runs
    # takes only states of >= 100 events)
    assert 0.8 < np.median(reported) / model < 1.1, (np.median(reported), model)


def test_the_estimator_constant_falls_towards_its_asymptote_and_needs_a_window():
    c = [estimator_constant(n) for n in (13, 20, 40, 160, 1000, 5000, 50_000)]
    assert all(a > b for a, b in zip(c[:4], c[1:5])) and 2.2 < c[-1] < 2.55 and c[0] > 3.3
    assert abs(c[-1] / c[-2] - 1) < 0.02
    assert estimator_constant(11.9) == math.inf and relative_stderr(11, 3) == math.inf
    assert relative_stderr(400, 4) == pytest.approx(estimator_constant(400) / 40)
    # a window starting later uses the data less well
    assert estimator_constant(500, 6.0) > 1.25 * estimator_constant(500, 3.0)


def test_sigma_ea_is_the_weighted_fits_own_and_needs_two_temperatures():
    temps, rel = [500.0, 600.0, 700.0, 800.0], [0.1, 0.2, 0.05, 0.3]
    x = 1 / (K_B_EV_PER_K * np.array(temps))
    w = 1 / np.array(rel) ** 2
    xbar = np.dot(w, x) / w.sum()
    assert ea_stderr(temps, rel) == pytest.approx(math.sqrt(1 / np.dot(w, (x - xbar) ** 2)), rel=1e-9)
    # the fit's covariance does not depend on D: a noisy ladder with those errors has the same σ (unwidened)
    noisy = fit_arrhenius([Diffusivity(t, 1e-5 * math.exp(-0.3 / (K_B_EV_PER_K * t)), 1e-5 * e * math.exp(
        -0.3 / (K_B_EV_PER_K * t))) for t, e in zip(temps, rel)])
    assert noisy.ea_stderr_ev == pytest.approx(ea_stderr(temps, rel), rel=1e-9)
    assert ea_stderr([500.0, 500.0], [0.1, 0.1]) is None


def test_predict_counts_events_and_leaves_out_what_the_fit_leaves_out():
    states = with_rates([known(t, 100.0) for t in LADDER.temperatures_k])
    p = predict(states, {800.0: 400.0}, {800.0: 4})
    by_t = {s.temperature_k: s for s in p.states}
    assert by_t[800.0].events == pytest.approx(LADDER.rate(800.0) * 400 * 4)
    assert by_t[800.0].d_rel_stderr == pytest.approx(relative_stderr(LADDER.rate(800.0) * 400, 4))
    assert by_t[700.0].production_ps == 100.0 and by_t[700.0].replicas == 2  # not asked: as run
    assert not by_t[500.0].in_fit and "no fit window" in by_t[500.0].note  # 7 events: no window
    fitted = [s for s in p.states if s.in_fit]
    assert p.ea_stderr_ev == pytest.approx(ea_stderr([s.temperature_k for s in fitted],
                                                     [s.d_rel_stderr for s in fitted]))
    assert p.simulated_ps == pytest.approx(3 * 200 + 1600)
    few = predict(states, {600.0: 150.0}, {600.0: 1}).states[1]  # 17 events: a window, but < min_events = 20
    assert not few.in_fit and "few events" in few.note


def brute_force(states, target, cap, grid=200):
    """The least Σ r t with σ ≤ target over the lengths of the two ends of a ladder (the others as run): for each
    length of the cold end on a fine log grid, the shortest hot end that meets the target (bisection)."""
    cold, hot = states[0], states[-1]
    best = math.inf
    for t_cold in np.geomspace(cold.production_ps, cap, grid):
        def sigma(t_hot):
            return predict(states, {cold.temperature_k: t_cold, hot.temperature_k: t_hot}).ea_stderr_ev or math.inf
        if sigma(cap) > target:
            continue
        lo, hi = hot.production_ps, cap
        for _ in range(40):
            mid = math.sqrt(lo * hi)
            lo, hi = (lo, mid) if sigma(mid) <= target else (mid, hi)
        best = min(best, predict(states, {cold.temperature_k: t_cold, hot.temperature_k: hi}).simulated_ps)
    return best


def test_propose_finds_the_least_simulated_time_that_meets_the_target():
    states = calibrated([known(t, 100.0) for t in (500.0, 650.0, 800.0)])
    p = propose(states, 0.02, 5000.0)
    assert p.reachable and p.ea_stderr_ev == pytest.approx(0.02, rel=1e-4)
    assert predict(states, p.production_ps, p.replicas).ea_stderr_ev == pytest.approx(p.ea_stderr_ev)
    cost = brute_force(states, 0.02, 5000.0)
    assert cost * 0.97 < p.simulated_ps < cost * 1.001, (p.simulated_ps, cost)
    assert all(s.production_ps >= s.run_ps for s in p.states)
    assert p.added_ps == pytest.approx(p.simulated_ps - 3 * 2 * 100.0)
    # at the optimum the ends of the ladder buy σ(Ea) at the same price (Lagrange); the middle one, in the fit
    # already, at a lower one: it is not run further
    ends = [s.marginal_ev_per_ns for s in p.states if s.temperature_k in (500.0, 800.0)]
    middle = next(s for s in p.states if s.temperature_k == 650.0)
    assert ends[0] == pytest.approx(ends[1], rel=0.05) and middle.marginal_ev_per_ns < 0.5 * ends[0]
    assert middle.production_ps == 100.0 and middle.in_fit
    # a middle state short of min_events is either just brought into the fit or left out, whichever is cheaper
    short = calibrated([known(t, 50.0) for t in (500.0, 650.0, 800.0)])
    q = propose(short, 0.02, 5000.0, drop=True)
    kept = propose(short, 0.02, 5000.0)
    rate = short[1].rate_per_ps  # 20 events in two replicas, and 4 x 3 events in each for a fit window
    assert kept.states[1].production_ps == pytest.approx(max(20 / (rate * 2), 12 / rate), rel=1e-6)
    assert q.simulated_ps <= kept.simulated_ps


def test_propose_never_shortens_respects_the_cap_and_says_when_the_target_is_out_of_reach():
    states = calibrated([known(t, 50.0) for t in (500.0, 650.0, 800.0)] + [known(700.0, 3000.0)])
    p = propose(states, 0.001, 2000.0)
    assert not p.reachable and p.best_ea_stderr_ev > 0.001
    assert p.ea_stderr_ev == pytest.approx(p.best_ea_stderr_ev)
    by_t = {s.temperature_k: s for s in p.states}
    assert by_t[700.0].production_ps == 3000.0  # beyond the cap already: kept, never shortened
    assert all(s.production_ps == pytest.approx(2000.0) for t, s in by_t.items() if t != 700.0)
    assert any("unreachable under the cap" in n and f"{p.best_ea_stderr_ev:.3g}" in n for n in p.notes)
    met = propose(states, 1.0, 2000.0, drop=True)  # met already: nothing to add
    assert met.reachable and met.added_ps == 0.0 and len(met.notes) == 2  # 500 and 650 K left out
    every = propose(states, 1.0, 2000.0)  # the ladder as asked: each temperature just into the fit
    assert all(s.in_fit for s in every.states) and every.added_ps > 0
    assert any(n.startswith("500 K: not in the fit yet; the target without it would need") for n in every.notes)
    with pytest.raises(AnalysisError, match="target"):
        propose(states, 0.0, 2000.0)


def test_more_replicas_and_new_temperatures_are_planned_from_the_rate_law():
    states = calibrated([known(t, 200.0) for t in (600.0, 700.0, 800.0)])
    p = propose(states, 0.02, 5000.0, replicas=4, temperatures=[550.0, 600.0, 800.0])
    assert [s.temperature_k for s in p.states] == [550.0, 600.0, 800.0]
    assert all(s.replicas == 4 for s in p.states)
    new = p.states[0]
    assert new.run_ps == 0.0 and new.run_replicas == 0
    assert new.events == pytest.approx(LADDER.rate(550.0) * new.production_ps * 4, rel=0.1)  # the law's rate
    assert p.reachable and p.ea_stderr_ev == pytest.approx(0.02, rel=1e-4)


def test_a_temperature_not_yet_in_the_fit_is_dropped_where_the_target_costs_less_without_it():
    ladder = Ladder(temperatures_k=(350.0, 600.0, 700.0, 800.0))
    states = calibrated([known(t, 50.0, ladder=ladder) for t in ladder.temperatures_k])
    p = propose(states, 0.03, 1e6, drop=True)
    cold = p.states[0]
    assert not cold.in_fit and cold.production_ps == 50.0 and any("350 K: left out" in n for n in p.notes)
    kept = propose(states, 0.03, 1e6)  # by default every temperature of the ladder is brought into the fit
    assert kept.states[0].in_fit and kept.simulated_ps > p.simulated_ps
    saving = (kept.simulated_ps - p.simulated_ps) / 1000
    assert any(n == f"350 K: not in the fit yet; the target without it would need {saving:.3g} ns less simulated "
               "time" for n in kept.notes)


def test_rates_come_from_the_runs_the_ladders_law_or_a_prior():
    states = [known(t, 100.0) for t in (600.0, 700.0, 800.0)] + [known(450.0, 100.0)]  # 450 K: 1 event
    rated = {s.temperature_k: s for s in with_rates(states)}
    assert rated[800.0].rate_source == "measured" and rated[450.0].rate_source == "rate-law"
    assert rated[450.0].rate_per_ps == pytest.approx(LADDER.rate(450.0), rel=0.3)
    lone = [known(800.0, 100.0), known(450.0, 100.0)]
    assert {s.rate_source for s in with_rates(lone)} == {"measured", "none"}
    prior = Prior(0.3, LADDER.rate(800.0) / math.exp(-0.3 / (K_B_EV_PER_K * 800.0)))
    by_prior = {s.temperature_k: s for s in with_rates(lone, prior)}
    assert by_prior[450.0].rate_source == "prior"
    assert by_prior[450.0].rate_per_ps == pytest.approx(LADDER.rate(450.0), rel=1e-9)
    p = propose(with_rates(lone), 0.02, 5000.0)
    assert any("450 K: no rate known" in n for n in p.notes) and not p.reachable


def test_the_noise_factor_is_fitted_to_the_runs_and_checked_state_by_state():
    study = SyntheticStudy(LADDER, 3, 800.0)
    states, _ = study.analyse({t: 800.0 for t in LADDER.temperatures_k})
    checks = noise_check(with_rates(states))
    assert [c.temperature_k for c in checks] == [t for t, s in zip(LADDER.temperatures_k, states) if s.events >= 100]
    kappa = fitted_noise_factor(with_rates(states))
    assert 0.7 < kappa < 1.3  # the defect of a pure random walk: the model's own constant
    doubled = [replace(s, d_stderr_cm2_s=2 * s.d_stderr_cm2_s) if s.d_stderr_cm2_s else s for s in states]
    assert fitted_noise_factor(with_rates(doubled)) == pytest.approx(2 * kappa)
    assert [s.noise_factor for s in calibrated(doubled)] == pytest.approx([2 * kappa] * len(states))


def test_a_pilot_without_a_hundred_events_still_fits_the_noise_factor():
    """A short pilot: no state saw KAPPA_MIN_EVENTS events, but those with at least KAPPA_FALLBACK_EVENTS give κ
    (a κ of 1 would make an all-Li plan ~1/κ² too long); below that, none is fitted."""
    from analysis.plan import KAPPA_FALLBACK_EVENTS, KAPPA_MIN_EVENTS

    study = SyntheticStudy(LADDER, 3, 800.0)
    states, _ = study.analyse({t: 800.0 for t in LADDER.temperatures_k})
    few = [replace(s, events=min(s.events, KAPPA_MIN_EVENTS - 1)) for s in states]
    usable = [s for s in few if s.events >= max(s.min_events, KAPPA_FALLBACK_EVENTS)]
    assert usable, "the synthetic pilot must have states between the two floors"
    assert [c.temperature_k for c in noise_check(with_rates(few))] == [s.temperature_k for s in usable]
    halved = [replace(s, d_stderr_cm2_s=0.5 * s.d_stderr_cm2_s) if s.d_stderr_cm2_s else s for s in few]
    assert fitted_noise_factor(with_rates(halved)) == pytest.approx(0.5 * fitted_noise_factor(with_rates(few)))
    none = [replace(s, events=min(s.events, KAPPA_FALLBACK_EVENTS - 1)) for s in states]
    assert fitted_noise_factor(with_rates(none)) is None


def synthetic_study_dir(root, ea_ev=0.3, temps=(500.0, 650.0, 800.0), frames=900, dt=0.5):
    """One potential, three temperatures, two replicas: an interstitialcy (tests/conftest.py) whose events follow
    0.25/ps · exp(-Ea/k (1/T - 1/800 K)); a LAMMPS log with a loop time in each run (10 ns/day)."""
    from tests.conftest import interstitialcy, write_fake_run

    for k, t in enumerate(temps):
        for seed in (1, 2):
            rate = 0.25 * math.exp(-ea_ev / K_B_EV_PER_K * (1 / t - 1 / 800.0))
            x = interstitialcy(frames, dt, rate, seed=10 * k + seed)
            run = write_fake_run(root, "mace-mpa-0", t, seed, x.positions, dt, structure=x.structure, cell=x.cell)
            steps = (frames - 1) * 50  # 10 fs steps
            seconds = steps * 10e-6 / 10.0 * 86400  # at 10 ns/day
            (run / "log.0.lammps").write_text(f"Loop time of {seconds:.6g} on 1 procs for {steps} steps with 109 "
                                              "atoms\n\nPerformance: 10 ns/day\n")
    return root


def test_driver_plan_prints_the_table_and_writes_the_plan(tmp_path, capsys):
    from driver.__main__ import main
    from tests.conftest import study_toml

    root = synthetic_study_dir(tmp_path / "runs" / "plantest")
    study = tmp_path / "plantest.toml"
    study.write_text(study_toml(name="plantest", potentials=["mace-mpa-0"], temperatures_k=[500.0, 650.0, 800.0],
                                seeds=[1, 2], **{"analysis.window_ps": None, "analysis.selection": "defect"}))
    assert main(["plan", "--study", str(study), "--root", str(tmp_path / "runs"), "--target-ea-stderr", "0.03",
                 "--max-production-ps", "20000"]) == 0
    out = capsys.readouterr().out
    assert "mace-mpa-0: σ(Ea) target 0.03 eV" in out and "predicted σ(Ea) 0.03 eV" in out
    assert "σ(D)/D measured vs model" in out and f"plan: {root / 'plan.json'}" in out
    doc = json.loads((root / "plan.json").read_text())
    (plan,) = doc["series"]
    prop = plan["proposal"]
    assert prop["reachable"] and prop["ea_stderr_ev"] == pytest.approx(0.03, rel=1e-3)
    assert [s["temperature_k"] for s in plan["states"]] == [500.0, 650.0, 800.0]
    first = plan["states"][0]
    assert first["replicas"] == 2 and first["production_ps"] == pytest.approx(449.5)
    for row in prop["states"]:  # 10 ns/day measured from the logs; device-hours of what is still to simulate
        assert row["ns_per_day"] == pytest.approx(10.0, rel=1e-3)
        assert row["device_hours"] == pytest.approx(row["added_ps"] / 1000 / 10 * 24, rel=1e-3)
    assert plan["device_hours"] == pytest.approx(prop["added_ps"] / 1000 / 10 * 24, rel=1e-3)
    longest = max(r["production_ps"] - r["run_ps"] for r in prop["states"])  # replicas side by side
    assert plan["wall_hours"] == pytest.approx(longest / 1000 / 10 * 24, rel=1e-3)
    # the model against the σ the runs gave: κ is their (event-weighted) geometric mean ratio
    ratios = [c["ratio"] for c in plan["noise_check"]]
    assert ratios and min(ratios) <= plan["noise_factor"] <= max(ratios)
    # the defect's D of an interstitialcy is the model's random walk: κ near 1
    assert 0.6 < plan["noise_factor"] < 1.5
    # a throughput given replaces the measured one
    assert main(["plan", "--study", str(study), "--root", str(tmp_path / "runs"), "--ns-per-day", "20",
                 "--out", str(tmp_path / "p.json")]) == 0
    again = json.loads((tmp_path / "p.json").read_text())["series"][0]
    assert all(r["ns_per_day"] == 20.0 for r in again["proposal"]["states"])
    assert again["proposal"]["target_ea_stderr_ev"] == 0.01  # the default target


def test_driver_plan_from_a_prior_alone_and_its_refusals(tmp_path, capsys):
    from driver.__main__ import main
    from tests.conftest import study_toml

    study = tmp_path / "fresh.toml"
    study.write_text(study_toml(name="fresh", potentials=["fumi-tosi"], temperatures_k=[500.0, 800.0],
                                seeds=[1, 2, 3]))
    runs = str(tmp_path / "runs")
    assert main(["plan", "--study", str(study), "--root", runs]) == 2
    err = capsys.readouterr().err
    assert "has no finished runs" in err and "Run a short pilot first" in err and "--prior-ea" in err
    assert main(["plan", "--study", str(study), "--root", runs, "--prior-ea", "0.3"]) == 2
    assert "one prefactor" in capsys.readouterr().err
    assert main(["plan", "--study", str(study), "--root", runs, "--prior-ea", "0.3", "--prior-d0", "1e-3"]) == 2
    assert "--jump-angstrom" in capsys.readouterr().err
    assert main(["plan", "--study", str(study), "--root", runs, "--prior-ea", "0.3", "--prior-d0", "1e-3",
                 "--jump-angstrom", "3.5", "--ns-per-day", "5", "--target-ea-stderr", "0.02",
                 "--max-production-ps", "1e5"]) == 0
    (plan,) = json.loads((tmp_path / "runs" / "fresh" / "plan.json").read_text())["series"]
    nu0 = 6 * 1e-3 / 1e-4 / 3.5**2  # events per ps: D0 = ν0 ℓ² / 6
    rates = {s["temperature_k"]: s["rate_per_ps"] for s in plan["states"]}
    assert rates[500.0] == pytest.approx(nu0 * math.exp(-0.3 / (K_B_EV_PER_K * 500.0)))
    assert {s["rate_source"] for s in plan["states"]} == {"prior"} and plan["noise_factor"] == 1.0
    prop = plan["proposal"]
    assert prop["reachable"] and all(s["replicas"] == 3 for s in prop["states"])  # the study's seeds
    assert prop["ea_stderr_ev"] == pytest.approx(0.02, rel=1e-3)
    assert plan["device_hours"] == pytest.approx(prop["added_ps"] / 1000 / 5 * 24)
    assert main(["plan", "--study", str(study), "--root", runs, "--prior-ea", "0.3", "--prior-d0", "1e-3",
                 "--jump-angstrom", "3.5"]) == 0  # the default cap: 50 x md.production_ps = 30 ps
    out = capsys.readouterr().out
    assert "UNREACHABLE under the cap" in out and "500 K: 20 events would need" in out


def test_the_optimisers_gradient_is_the_derivative_of_the_fits_own_sigma():
    from analysis.plan import _ln_sigma_gradient, _sigma

    states = calibrated([known(t, 50.0) for t in LADDER.temperatures_k])
    lengths, reps = np.array([900.0, 300.0, 200.0, 150.0]), [2, 3, 2, 2]
    sigma = _sigma(states, lengths, reps)
    grad = _ln_sigma_gradient(states, lengths, reps, sigma)
    for k in range(4):
        bumped = lengths.copy()
        bumped[k] *= 1.0001
        assert grad[k] == pytest.approx(math.log(_sigma(states, bumped, reps) / sigma) / math.log(1.0001), rel=1e-3)


def test_knowledge_of_a_study_takes_each_state_and_a_temperature_not_run_yet(tmp_path):
    from analysis.plan import knowledge_of
    from analysis.study import analyse_study
    from core.rundir import RunDir

    root = synthetic_study_dir(tmp_path / "knowing", temps=(500.0, 650.0, 800.0), frames=500)
    for seed in (1, 2):  # 500 K rendered, not run yet
        RunDir(root / "mace-mpa-0" / "T500K" / f"seed{seed}").update(status="rendered")
    analysis = analyse_study(root)
    states = knowledge_of(analysis, "mace-mpa-0")
    assert [s.temperature_k for s in states] == [500.0, 650.0, 800.0]
    cold, *run = states
    assert (cold.replicas, cold.production_ps, cold.events, cold.rate_source) == (0, 0.0, 0, "rate-law")
    for s in run:
        r = next(r for r in analysis.results if r.temperature_k == s.temperature_k)
        est = r.estimates[analysis.selection]
        assert (s.replicas, s.events, s.d_cm2_s, s.d_stderr_cm2_s) == (2, r.events, est.d_cm2_s, est.d_stderr_cm2_s)
        assert s.production_ps == pytest.approx(249.5) and s.rate_per_ps == pytest.approx(r.events / 499.0)
        assert s.run_dirs == r.run_dirs and s.min_events == 20 and s.window_start_events == 3.0
    with pytest.raises(AnalysisError, match="no runs of 'nequip'"):
        knowledge_of(analysis, "nequip")
