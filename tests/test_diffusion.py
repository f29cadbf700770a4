"""The diffusivity estimator (GLS with the MSD's covariance), checked where the answer is known: random walks
with a known D (Gaussian), jump processes with correlated pairs of movers and thermal vibrations (as an
interstitialcy moves two atoms), and the coverage of its 1σ errors and 95 % intervals over many seeds."""

import json

import numpy as np
import pytest

from analysis.diffusion import (A2_PER_PS_TO_CM2_PER_S, collective, diffusivity_from_msd, estimate, main,
                                msd_stats, overlap_sums, running_d)
from analysis.statistics import block_mean, chi2_quantile, t_quantile
from core.errors import AnalysisError
from tests.conftest import random_walk

D_A2_PS = 0.1  # Å²/ps = 1e-5 cm²/s
DT = 0.1


def walk(seed, n_frames=1000, n_walkers=16):
    return random_walk(n_frames, n_walkers, D_A2_PS, DT, np.random.default_rng(seed))


def jumps(seed, n_frames=2000, n_walkers=50, rate_ps=0.1, dt=0.5, ell=1.7, vibration=0.15, pairs=True):
    """Atoms that sit still but for discrete jumps of length ``ell`` at Poisson times (``rate_ps`` events/ps), each
    event moving two random atoms the same way (``pairs``) or one; plus Gaussian vibrations about their sites.
    The true tracer D is rate · movers · ell² / 6 / n_walkers."""
    rng = np.random.default_rng(seed)
    dirs = np.vstack([np.eye(3), -np.eye(3)]) * ell
    disp = np.zeros((n_frames, n_walkers, 3))
    frames = np.nonzero(rng.poisson(rate_ps * dt, size=n_frames - 1))[0] + 1
    for k in frames:
        disp[k, rng.choice(n_walkers, 2 if pairs else 1, replace=False)] += dirs[rng.integers(6)]
    return np.cumsum(disp, axis=0) + rng.normal(0, vibration, size=disp.shape)


def coverage(estimates, truth):
    d = np.array([e.d_cm2_s for e in estimates])
    s = np.array([e.d_stderr_cm2_s for e in estimates])
    lo = np.array([e.d_ci95_low_cm2_s for e in estimates])
    hi = np.array([e.d_ci95_high_cm2_s for e in estimates])
    rms = np.sqrt(np.mean((d / truth - 1) ** 2))
    return np.mean(np.abs(d - truth) < s), np.mean((lo < truth) & (truth < hi)), rms, np.mean(s) / truth


def test_exact_line_gives_exact_slope():
    t = np.arange(100) * 0.5
    assert diffusivity_from_msd(t, 6 * 0.3 * t + 1.0, 5, 40) == pytest.approx(0.3 * A2_PER_PS_TO_CM2_PER_S)


def test_overlap_sums_equal_a_brute_force_count():
    n = 23
    lags = np.array([1, 3, 7, 11])
    s1, s2 = overlap_sums(lags, n)
    for i, a in enumerate(lags):
        for j, b in enumerate(lags):
            o = [max(0, min(k + a, m + b) - max(k, m)) for k in range(n - a) for m in range(n - b)]
            assert s1[i, j] == sum(o) and s2[i, j] == sum(x * x for x in o)


def test_random_walk_recovers_known_d_within_its_interval():
    st = msd_stats(walk(1), DT)
    e = estimate([st], 1.0, st.duration_ps / 2)
    truth = D_A2_PS * A2_PER_PS_TO_CM2_PER_S
    assert e.d_ci95_low_cm2_s < truth < e.d_ci95_high_cm2_s
    assert e.d_stderr_cm2_s / truth < 0.05 and e.n_walkers == 16 and e.dof == 97  # 100 ps / 1 ps, less 2
    assert e.d_half_start_cm2_s is not None and e.d_double_start_cm2_s is not None
    assert e.window_sensitivity < 0.1


def test_errors_cover_the_truth_on_random_walks():
    """200 seeds: the 1σ error covers ~68 % and the 95 % interval ~95 % (binomial sd 3.3 % and 1.5 %), and the
    reported σ is the actual scatter of D."""
    truth = D_A2_PS * A2_PER_PS_TO_CM2_PER_S
    ests = []
    for seed in range(200):
        st = msd_stats(walk(1000 + seed, n_frames=600, n_walkers=8), DT)
        ests.append(estimate([st], 0.1, st.duration_ps / 2, sensitivity=False))
    one, ninety_five, rms, reported = coverage(ests, truth)
    assert 0.60 <= one <= 0.77 and 0.91 <= ninety_five <= 0.985, (one, ninety_five)
    assert 0.8 < reported / rms < 1.25, (reported, rms)


def test_errors_cover_the_truth_on_jumps_of_correlated_pairs_with_vibrations():
    """Discrete jumps moving two atoms at once (summed squared displacements carry the pair's correlation), with
    vibrations; 150 seeds."""
    rate, ell, w = 0.1, 1.7, 50
    truth = rate * 2 * ell**2 / 6 / w * A2_PER_PS_TO_CM2_PER_S
    ests = []
    for seed in range(150):
        st = msd_stats(jumps(seed, n_walkers=w, rate_ps=rate, ell=ell), 0.5)
        ests.append(estimate([st], 30.0, st.duration_ps / 2, sensitivity=False))
    one, ninety_five, rms, reported = coverage(ests, truth)
    assert 0.58 <= one <= 0.78 and 0.90 <= ninety_five <= 0.99, (one, ninety_five)
    assert 0.75 < reported / rms < 1.3, (reported, rms)


def test_replicas_are_combined_and_their_scatter_is_checked():
    stats = [msd_stats(walk(s), DT) for s in (5, 6, 7)]
    e = estimate(stats, 0.1, 40.0)
    singles = [estimate([s], 0.1, 40.0, sensitivity=False) for s in stats]
    assert e.n_replicas == 3 and e.chi2_replicas is not None
    assert e.d_stderr_cm2_s < min(s.d_stderr_cm2_s for s in singles)
    assert min(s.d_cm2_s for s in singles) <= e.d_cm2_s <= max(s.d_cm2_s for s in singles)
    truth = D_A2_PS * A2_PER_PS_TO_CM2_PER_S
    assert abs(e.d_cm2_s - truth) < 3 * e.d_stderr_cm2_s


def test_no_motion_gives_no_number_and_bad_windows_are_refused():
    still = np.zeros((200, 4, 3))
    assert estimate([msd_stats(still, DT)], 0.5, 5.0) is None
    st = msd_stats(walk(3), DT)
    with pytest.raises(AnalysisError, match="beyond"):
        estimate([st], 1.0, 500.0)
    with pytest.raises(AnalysisError, match="empty or starts at zero"):
        estimate([st], 0.0, 5.0)


def test_collective_coordinate_of_independent_walkers_diffuses_like_one_of_them():
    """Σ r_i of N independent walkers has MSD 6 N D t: its D per walker is D, as for the tracer (Haven ratio 1)."""
    st = msd_stats(collective(walk(8, n_frames=3000, n_walkers=6)), DT)
    e = estimate([st], 0.1, st.duration_ps / 2)
    assert st.n_walkers == 1
    per_walker = e.d_cm2_s / 6
    assert abs(per_walker - D_A2_PS * 1e-4) < 3 * e.d_stderr_cm2_s / 6


def test_running_d_is_flat_for_a_random_walk():
    t, d = running_d(msd_stats(walk(9, n_frames=4000, n_walkers=32), DT))
    mid = (t > 1) & (t < 100)
    assert np.allclose(d[mid], D_A2_PS * 1e-4, rtol=0.15)


def test_student_t_and_chi2_quantiles_against_scipy():
    from scipy import stats

    for dof in (1, 2, 3, 5, 10, 30, 200):
        assert t_quantile(0.975, dof) == pytest.approx(stats.t.ppf(0.975, dof), rel=1e-3)
        assert t_quantile(0.84, dof) == pytest.approx(stats.t.ppf(0.84, dof), rel=1e-3)
        assert chi2_quantile(0.95, dof) == pytest.approx(stats.chi2.ppf(0.95, dof), rel=0.03)
    assert t_quantile(0.975, float("inf")) == pytest.approx(1.959964, rel=1e-6)


def test_block_mean_of_correlated_samples():
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=50), 20)  # 50 independent values, each repeated: 1000 correlated samples
    b = block_mean(x)
    assert b.n_blocks == 10 and b.stderr == pytest.approx(1 / np.sqrt(50), rel=0.5)
    assert block_mean(x[:8]).stderr is None


def test_cli_json_on_a_real_dump(finished_run, capsys):
    rc = main([str(finished_run / "traj.dump"), "--timestep-fs", "1", "--select", "type 1", "--json",
               "--fit-start-ps", "0.02", "--fit-end-ps", "0.05"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("d_cm2_s", "d_stderr_cm2_s", "d_ci95_low_cm2_s", "d_ci95_high_cm2_s", "dof", "fit_start_ps"):
        assert key in out
    assert out["n_atoms"] == 109 and out["fit_end_ps"] == 0.05


def test_cli_with_data_file_selects_the_interstitial(finished_run, capsys):
    rc = main([str(finished_run / "traj.dump"), "--timestep-fs", "1", "--data", str(finished_run / "data.lmp"),
               "--select", "bynum 217", "--json", "--fit-start-ps", "0.05"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["n_atoms"] == 1
