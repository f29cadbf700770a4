"""Following the defect itself, checked on a synthetic collinear interstitialcy in rock-salt LiF, whose answers are
known: the defect's path and events, its D = rate·(√3a/2)²/6, the collective D_σ = D_defect / N_Li, and the Haven
ratio f/2 = 1/3 (tracer correlation factor 2/3), through the whole study analysis."""

import numpy as np
import pytest

from analysis.diffusion import MsdStats, running_d
from analysis.sites import residence_filter, track_defect
from analysis.study import analyse_study
from core.units import A2_PER_PS_TO_CM2_PER_S
from tests.conftest import interstitialcy, write_fake_run

RATE, DT = 0.1, 0.5  # events per ps, ps between frames


def sites(x):
    return np.array(x.structure["sites"]["li"]), np.array(x.structure["sites"]["interstitial"])


def test_the_defect_is_followed_site_by_site():
    x = interstitialcy(1500, DT, RATE, seed=1)
    track = track_defect(x.positions, x.cell, np.zeros(3), *sites(x), "interstitial", residence_frames=1)
    np.testing.assert_allclose(track.positions, x.defect_path, atol=1e-6)  # the interstitial site, unwrapped
    assert x.n_events - 5 <= track.n_events <= x.n_events  # events in one frame interval count once
    assert track.off_site_fraction == 0 and track.ambiguous_fraction == 0


def test_the_atom_that_started_as_the_interstitial_is_not_the_defect():
    x = interstitialcy(1500, DT, RATE, seed=2)
    tagged = x.positions[:, -1]  # the last id: the atom placed on the interstitial site
    track = track_defect(x.positions, x.cell, np.zeros(3), *sites(x), "interstitial", residence_frames=1)
    apart = np.linalg.norm(tagged - track.positions, axis=1)
    # the tracker starts on that atom, then follows the defect, not the atom (an ordinary lattice Li after one event)
    assert apart[0] < 0.5 and apart[-1] > 3.0 and np.mean(apart > 1.0) > 0.5
    np.testing.assert_allclose(track.positions, x.defect_path, atol=1e-6)


def test_residence_filter_ignores_short_visits():
    raw = np.array([[0], [0], [5], [0], [0], [7], [7], [7], [7]])
    np.testing.assert_array_equal(residence_filter(raw, 3)[:, 0], [0, 0, 0, 0, 0, 7, 7, 7, 7])
    np.testing.assert_array_equal(residence_filter(raw, 1)[:, 0], raw[:, 0])


def test_a_melted_lattice_is_recognised():
    x = interstitialcy(200, DT, RATE, seed=3)
    melted = x.positions + np.random.default_rng(0).uniform(-2, 2, x.positions.shape)
    track = track_defect(melted, x.cell, np.zeros(3), *sites(x), "interstitial", 1)
    assert track.off_site_fraction > 0.2


def test_the_study_analysis_recovers_defect_collective_and_haven(tmp_path):
    root = tmp_path / "synthetic"
    for seed in (1, 2, 3):
        x = interstitialcy(3000, DT, RATE, seed=10 + seed)
        write_fake_run(root, "my-model", 500.0, seed, x.positions, DT, structure=x.structure, cell=x.cell)
    analysis = analyse_study(root)
    (r,) = analysis.results
    assert r.status == "ok" and r.n_li == 109 and r.n_defects == 1 and r.events > 300
    d_defect = RATE * x.defect_jump**2 / 6 * A2_PER_PS_TO_CM2_PER_S
    e = r.estimates["defect"]
    assert abs(e.d_cm2_s - d_defect) < 3 * e.d_stderr_cm2_s, (e.d_cm2_s, d_defect)
    sigma = r.collective_d  # each event moves the charge by the defect's jump: D_σ = D_defect / N_Li
    assert abs(sigma.value - d_defect / 109) < 3 * sigma.stderr
    h = r.haven_ratio  # D_tracer / D_σ = f (2 movers of half the jump) / 2 = (2/3) / 2
    assert abs(h.value - 1 / 3) < 3 * h.stderr and h.stderr < 0.1, h
    per_defect = r.per_defect_d  # N_Li D_Li = f · 2 · rate (√3a/4)² / 6
    assert abs(per_defect.value - d_defect / 3) < 3 * per_defect.stderr
    start, end = r.window_ps
    assert start == pytest.approx(3 * 3 * (3000 - 1) * DT / r.events) and end == pytest.approx((3000 - 1) * DT / 2)
    # the window lies where the running D(t) is flat: the tracer's D(t) starts ~1.4x higher (single jumps, before
    # the correlated back-jumps of the interstitialcy tell) and levels off at the correlated value after a few events
    for obs in ("li", "defect"):
        st = [a.stats[obs] for a in analysis.analyses.values()]
        pooled = MsdStats(st[0].frame_interval_ps, st[0].n_walkers, np.mean([s.msd for s in st], axis=0), st[0].lags,
                          st[0].s_var)
        t, d_t = running_d(pooled)
        ratio = d_t / r.estimates[obs].d_cm2_s
        inside = (t >= start) & (t <= end)
        assert inside.sum() > 10 and np.all(np.abs(ratio[inside] - 1) < 0.25), (obs, ratio[inside])
        if obs == "li":
            assert np.all(ratio[t < 1 / RATE / 2] > 1.25), ratio[t < 1 / RATE / 2]  # not diffusive yet: left out
