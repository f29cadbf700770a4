import json

import numpy as np
import pytest

from analysis.diffusion import A2_PER_PS_TO_CM2_PER_S, diffusivity_from_msd, estimate_diffusion, main
from analysis.trajectory import Trajectory
from core.errors import AnalysisError
from tests.conftest import random_walk

D_A2_PS = 0.05  # Å²/ps = 5e-6 cm²/s
DT = 0.1


def walk(seed, n_frames=1000, n_walkers=10):
    rng = np.random.default_rng(seed)
    pos = random_walk(n_frames, n_walkers, D_A2_PS, DT, rng)
    t = np.arange(n_frames) * DT
    return Trajectory(pos, t, np.arange(n_frames) * 100, np.arange(1, n_walkers + 1), f"walk{seed}")


def test_exact_line_gives_exact_slope():
    t = np.arange(100) * 0.5
    assert diffusivity_from_msd(t, 6 * 0.3 * t + 1.0, 5, 40) == pytest.approx(0.3 * A2_PER_PS_TO_CM2_PER_S)


def test_random_walk_recovers_known_d_within_two_sigma():
    est = estimate_diffusion([walk(1)])
    truth = D_A2_PS * A2_PER_PS_TO_CM2_PER_S
    assert est.d_stderr_cm2_s is not None and est.d_stderr_cm2_s > 0
    assert abs(est.d_cm2_s - truth) < 2 * est.d_stderr_cm2_s
    assert est.fit_start_ps < est.fit_end_ps <= (1000 // 5 - 1) * DT + 1e-9
    assert est.n_samples == 5


def test_error_bars_are_honest_over_many_seeds():
    """About 95% of the 2σ intervals must contain the true D (binomial sd over 100 seeds is ~2%)."""
    truth = D_A2_PS * A2_PER_PS_TO_CM2_PER_S
    hits, widths = 0, []
    for seed in range(100):
        est = estimate_diffusion([walk(1000 + seed, n_frames=500, n_walkers=5)])
        hits += abs(est.d_cm2_s - truth) < 2 * est.d_stderr_cm2_s
        widths.append(est.d_stderr_cm2_s / truth)
    assert 0.90 <= hits / 100 <= 0.995, hits
    assert np.median(widths) < 0.5  # and informative, not just huge


def test_replicas_pool_their_blocks():
    est = estimate_diffusion([walk(5), walk(6), walk(7)], n_blocks=4)
    assert est.n_replicas == 3 and est.n_samples == 12
    truth = D_A2_PS * A2_PER_PS_TO_CM2_PER_S
    assert abs(est.d_cm2_s - truth) < 2 * est.d_stderr_cm2_s


def test_single_block_single_run_has_no_error():
    est = estimate_diffusion([walk(2)], n_blocks=1)
    assert est.d_stderr_cm2_s is None and est.n_samples == 1


def test_fit_window_outside_the_data_is_an_error():
    with pytest.raises(AnalysisError, match="beyond"):
        estimate_diffusion([walk(3)], n_blocks=5, window_ps=(1.0, 50.0))


def test_cli_json_on_a_real_dump(finished_run, capsys):
    rc = main([str(finished_run / "traj.dump"), "--timestep-fs", "1", "--select", "type 1", "--json", "--n-blocks", "3"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("d_cm2_s", "d_stderr_cm2_s", "fit_start_ps", "fit_end_ps"):
        assert key in out
    assert out["n_atoms"] == 109 and out["fit_end_ps"] > out["fit_start_ps"]


def test_cli_with_data_file_selects_the_interstitial(finished_run, capsys):
    rc = main([str(finished_run / "traj.dump"), "--timestep-fs", "1", "--data", str(finished_run / "data.lmp"),
               "--select", "bynum 217", "--json", "--n-blocks", "3"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["n_atoms"] == 1
