import json

import numpy as np
import pytest

from analysis.arrhenius import K_B_EV_PER_K, arrhenius, fit_arrhenius, main
from analysis.diffusion import Diffusivity
from core.errors import AnalysisError

EA, D0 = 0.22, 3e-3
TEMPS = np.array([400.0, 450, 500, 550, 600])


def points(t, d, err=None):
    return [Diffusivity(float(ti), float(di), None if err is None else float(ei), 5)
            for ti, di, ei in zip(t, d, err if err is not None else [None] * len(t))]


def synthetic(seed, rel_err=0.1):
    rng = np.random.default_rng(seed)
    d = arrhenius(TEMPS, D0, EA)
    err = rel_err * d
    return d * np.exp(rng.normal(0, rel_err, size=d.shape)), err


def test_model_is_arrhenius():
    assert arrhenius(500.0, 1.0, 0.1) == pytest.approx(np.exp(-0.1 / (K_B_EV_PER_K * 500)))


def test_exact_data_give_exact_parameters():
    f = fit_arrhenius(points(TEMPS, arrhenius(TEMPS, D0, EA), 0.05 * arrhenius(TEMPS, D0, EA)))
    assert f.ea_ev == pytest.approx(EA, rel=1e-10) and f.d0_cm2_s == pytest.approx(D0, rel=1e-9)
    assert f.chi2_reduced == pytest.approx(0, abs=1e-12)


def test_noisy_data_recover_ea_within_two_sigma():
    d, err = synthetic(3)
    f = fit_arrhenius(points(TEMPS, d, err))
    assert abs(f.ea_ev - EA) < 2 * f.ea_stderr_ev
    assert f.n_points == 5 and f.weighted and f.cov_ln_d0_ea is not None


def test_ea_error_bars_cover_the_truth_about_95_percent():
    hits = sum(abs((f := fit_arrhenius(points(TEMPS, *synthetic(100 + s)))).ea_ev - EA) < 2 * f.ea_stderr_ev
               for s in range(200))
    assert 0.90 <= hits / 200 <= 1.0


def test_one_temperature_is_an_error():
    with pytest.raises(AnalysisError, match="two temperatures"):
        fit_arrhenius(points([400.0, 400.0], [1e-6, 1.1e-6], [1e-7, 1e-7]))


def test_non_positive_d_is_dropped_with_a_warning():
    d, err = synthetic(4)
    d[0] = -1e-9
    with pytest.warns(UserWarning, match="D <= 0"):
        f = fit_arrhenius(points(TEMPS, d, err))
    assert f.n_points == 4


def test_cli_on_a_csv(tmp_path, capsys):
    rows = ["potential,temperature_k,d_cm2_s,d_stderr_cm2_s"]
    for pot, ea in (("a", 0.2), ("b", 0.3)):
        for t in TEMPS:
            d = arrhenius(t, D0, ea)
            rows.append(f"{pot},{t},{d},{0.05 * d}")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert main([str(tmp_path / "d.csv"), "--json"]) == 0
    fits = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert {f["potential"]: round(f["ea_ev"], 6) for f in fits} == {"a": 0.2, "b": 0.3}
    assert all(k in fits[0] for k in ("ea_ev", "ea_stderr_ev", "d0_cm2_s"))
    png = tmp_path / "arrhenius.png"
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "arrhenius.csv").exists() and (tmp_path / "arrhenius.json").exists()


def test_cli_reports_bad_csv(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("t,d\n1,2\n")
    assert main([str(tmp_path / "bad.csv")]) == 2
    assert "columns" in capsys.readouterr().err
