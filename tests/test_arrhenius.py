import json

import numpy as np
import pytest

from analysis.arrhenius import K_B_EV_PER_K, arrhenius, fit_arrhenius
from analysis.arrhenius.__main__ import main
from analysis.diffusion import Diffusivity
from core.errors import AnalysisError

EA, D0 = 0.22, 3e-3
TEMPS = np.array([400.0, 450, 500, 550, 600])


def points(t, d, err=None):
    return [Diffusivity(float(ti), float(di), None if err is None else float(ei))  # exact errors: no dof
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


def test_ea_errors_and_intervals_cover_the_truth():
    """400 synthetic ladders with known errors: Ea ± 1σ covers ~68 %, the 95 % interval ~95 % (binomial sd 2.3 %
    and 1.1 %)."""
    one = ninety_five = 0
    for s in range(400):
        f = fit_arrhenius(points(TEMPS, *synthetic(100 + s)))
        one += abs(f.ea_ev - EA) < f.ea_stderr_ev
        ninety_five += f.ea_ci95_low_ev < EA < f.ea_ci95_high_ev
    assert 0.62 <= one / 400 <= 0.75 and 0.92 <= ninety_five / 400 <= 0.98, (one, ninety_five)


def test_the_interval_takes_the_points_degrees_of_freedom():
    d, err = synthetic(5)
    few = fit_arrhenius([Diffusivity(t, di, ei, 4) for t, di, ei in zip(TEMPS, d, err)])
    many = fit_arrhenius([Diffusivity(t, di, ei, 400) for t, di, ei in zip(TEMPS, d, err)])
    assert few.dof == 4 and many.dof == 400 and few.ea_stderr_ev == many.ea_stderr_ev
    assert (few.ea_ci95_high_ev - few.ea_ev) / few.ea_stderr_ev == pytest.approx(2.776, rel=1e-3)  # t(0.975, 4)
    assert (many.ea_ci95_high_ev - many.ea_ev) / many.ea_stderr_ev == pytest.approx(1.966, rel=1e-3)


def test_scatter_beyond_the_errors_widens_them():
    d, err = synthetic(6, rel_err=0.3)
    f = fit_arrhenius(points(TEMPS, d, err / 10))  # errors claimed ten times too small
    assert f.widened and f.chi2_reduced > 10 and f.dof == len(TEMPS) - 2


def test_one_temperature_is_an_error():
    with pytest.raises(AnalysisError, match="two temperatures"):
        fit_arrhenius(points([400.0, 400.0], [1e-6, 1.1e-6], [1e-7, 1e-7]))


def test_non_positive_d_and_missing_errors_are_refused():
    d, err = synthetic(4)
    d[0] = -1e-9
    with pytest.raises(AnalysisError, match=r"D ≤ 0 .* at T = \[400.0\] K has no logarithm"):
        fit_arrhenius(points(TEMPS, d, err))
    d, err = synthetic(4)
    pts = points(TEMPS, d, err)
    pts[2] = Diffusivity(pts[2].temperature_k, pts[2].d_cm2_s, None)
    with pytest.raises(AnalysisError, match=r"no standard error of D at T = \[500.0\] K"):
        fit_arrhenius(pts)
    f = fit_arrhenius(pts, weighted=False)  # asked for: the scale comes from the scatter
    assert not f.weighted and f.dof == 3


def test_cli_on_a_csv(tmp_path, capsys):
    rows = ["potential,temperature_k,d_cm2_s,d_stderr_cm2_s"]
    for pot, ea in (("a", 0.2), ("b", 0.3)):
        for t in TEMPS:
            d = arrhenius(t, D0, ea)
            rows.append(f"{pot},{t},{d},{0.05 * d}")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert main([str(tmp_path / "d.csv"), "--json"]) == 0
    fits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {f["potential"]: round(f["fit"]["ea_ev"], 6) for f in fits} == {"a": 0.2, "b": 0.3}
    assert all(k in fits[0]["fit"] for k in ("ea_ev", "ea_stderr_ev", "ea_ci95_low_ev", "dof", "d0_cm2_s"))
    png = tmp_path / "arrhenius.png"
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "arrhenius.csv").exists() and (tmp_path / "arrhenius.json").exists()


def test_cli_reports_bad_csv(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("t,d\n1,2\n")
    assert main([str(tmp_path / "bad.csv")]) == 2
    assert "columns" in capsys.readouterr().err
