"""Comparing potentials' Ea (analysis.compare): ΔEa ± σ and z on synthetic Arrhenius ladders with known Ea, the
sampling that would resolve a difference, the ensemble check, the command line on tables and on a synthetic study
directory, and the coverage test: on pairs with equal true Ea, z is standard normal."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from analysis.arrhenius import arrhenius, fit_arrhenius
from analysis.cli import compare as main
from analysis.compare import (MAX_FACTOR, Series, compare_all, compare_pair, sampling_factor, two_sided_p,
                              welch_dof)
from analysis.diffusion import Diffusivity
from analysis.study import analyse_study
from core.errors import AnalysisError, InputError
from tests.test_report import synthetic_study

K_B = 8.617333262e-5
TEMPS = (500.0, 600.0, 700.0, 800.0)


def ladder(ea_ev: float, d0_cm2_s: float = 1e-3, rel: float = 0.05, temps=TEMPS, noise=None) -> list[Diffusivity]:
    """D at each temperature (times exp(rel · noise) where noise is given) with the stated error rel · D."""
    noise = np.zeros(len(temps)) if noise is None else np.asarray(noise)
    out = []
    for t, n in zip(temps, noise):
        d = float(arrhenius(t, d0_cm2_s, ea_ev)) * math.exp(rel * n)
        out.append(Diffusivity(t, d, rel * d, 0))
    return out


def series(name: str, points: list[Diffusivity], ensemble: str | None = None, simulated_ps=None) -> Series:
    return Series(name, fit_arrhenius(points), tuple(points), ensemble, simulated_ps)


def write_table(path: Path, ladders: dict[str, list[Diffusivity]], ensemble: str | None = None) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["potential", "temperature_k", "d_cm2_s", "d_stderr_cm2_s"] + (["ensemble"] if ensemble else []))
        for pot, pts in ladders.items():
            for p in pts:
                w.writerow([pot, p.temperature_k, repr(p.d_cm2_s), repr(p.d_stderr_cm2_s)]
                           + ([ensemble] if ensemble else []))
    return path


def test_delta_ea_sigma_and_z_on_exact_ladders():
    a = series("mace-mpa-0", ladder(0.22, rel=0.05))
    b = series("deepmd-lif", ladder(0.24, d0_cm2_s=2e-3, rel=0.08))
    c = compare_pair(a, b)
    assert c.delta_ea_ev == pytest.approx(0.02, abs=1e-9)  # b − a
    # the fits' own σ, independent: added in quadrature; the σ of a weighted slope, by hand
    x = 1 / (K_B * np.array(TEMPS))
    sxx = np.sum((x - x.mean()) ** 2)
    assert c.ea_a_stderr_ev == pytest.approx(0.05 / math.sqrt(sxx), rel=1e-9)
    assert c.delta_ea_stderr_ev == pytest.approx(math.sqrt((0.05**2 + 0.08**2) / sxx), rel=1e-9)
    assert c.z == pytest.approx(0.02 / c.delta_ea_stderr_ev) and c.p_value == pytest.approx(two_sided_p(c.z))
    assert c.text.startswith(f"mace-mpa-0 vs deepmd-lif: ΔEa = +0.02 ± {c.delta_ea_stderr_ev:.2f} eV, "
                             f"{abs(c.z):.1f}σ")
    # D ratios where both ran: D0 ratio × exp(-ΔEa/kT), from the points and from the fits alike
    assert [r.temperature_k for r in c.d_ratios] == list(TEMPS)
    for r in c.d_ratios:
        expected = 2 * math.exp(-0.02 / (K_B * r.temperature_k))
        assert r.d_ratio == pytest.approx(expected, rel=1e-9) and r.fit_d_ratio == pytest.approx(expected, rel=1e-9)
        assert r.ln_d_ratio_stderr == pytest.approx(math.hypot(0.05, 0.08))
        assert 0 < r.fit_ln_d_ratio_stderr < r.ln_d_ratio_stderr  # the fits use every temperature
    # reversed: the sign flips, nothing else
    back = compare_pair(b, a)
    assert back.delta_ea_ev == pytest.approx(-c.delta_ea_ev) and back.delta_ea_stderr_ev == c.delta_ea_stderr_ev
    assert "ΔEa = −0.02" in back.text


def test_only_shared_temperatures_give_ratios():
    a = series("a", ladder(0.3, temps=(500.0, 600.0, 700.0)))
    b = series("b", ladder(0.3, temps=(600.0, 700.0, 800.0, 900.0)))
    assert [r.temperature_k for r in compare_pair(a, b).d_ratios] == [600.0, 700.0]


def test_resolved_unresolved_and_not_resolvable():
    base = ladder(0.25, rel=0.05)
    a = series("a", base)
    resolved = compare_pair(a, series("b", ladder(0.35, rel=0.05)))
    assert resolved.resolved and resolved.sampling_factor is None and "resolved at 2σ (b has the higher Ea)" in \
        resolved.text
    close = compare_pair(a, series("b", ladder(0.253, rel=0.05)))
    assert not close.resolved and close.resolvable_by_sampling
    assert close.sampling_factor == pytest.approx((2 * close.delta_ea_stderr_ev / close.delta_ea_ev) ** 2)
    assert f"~{close.sampling_factor:.2g}× the simulated time" in close.text
    # the claim behind the factor: every σ_D shrinks by √f with f times the simulated time, and then |z| = 2
    f = close.sampling_factor
    longer = compare_pair(series("a", ladder(0.25, rel=0.05 / math.sqrt(f))),
                          series("b", ladder(0.253, rel=0.05 / math.sqrt(f))))
    assert abs(longer.z) == pytest.approx(2.0, rel=1e-6) and longer.resolved
    same = compare_pair(a, series("b", base))
    assert same.delta_ea_ev == pytest.approx(0, abs=1e-12) and not same.resolvable_by_sampling
    assert same.sampling_factor is None and "not resolvable by sampling" in same.text
    assert sampling_factor(0.0, 0.01) == math.inf and sampling_factor(0.01, 0.01) == 4.0
    assert sampling_factor(0.001, 0.01) > MAX_FACTOR


def test_simulated_time_in_words():
    a = series("a", ladder(0.25), simulated_ps=2000.0)
    b = series("b", ladder(0.253), simulated_ps=500.0)
    c = compare_pair(a, b)
    assert f"2 ns → {2 * c.sampling_factor:.3g} ns" in c.text and "500 ps →" in c.text


def test_p_values_and_welch_dof():
    assert two_sided_p(1.959963985) == pytest.approx(0.05, abs=1e-8)
    assert two_sided_p(0.0) == pytest.approx(1.0)
    assert two_sided_p(2.0, 4) > two_sided_p(2.0)  # Student's t has heavier tails
    assert welch_dof(0.01, None, 0.02, None) is None
    assert welch_dof(0.01, 3.0, 0.01, 3.0) == pytest.approx(6.0)
    assert welch_dof(0.01, None, 0.01, 2.0) == pytest.approx(8.0)


def test_different_ensembles_are_not_compared():
    a = series("mace-mpa-0", ladder(0.25), "npt")
    b = series("mace-mpa-0 @ 4.0800 Å", ladder(0.22), "nvt-fixed")
    c = series("deepmd-lif", ladder(0.27), "npt")
    with pytest.raises(AnalysisError, match="npt ladder and .* an nvt-fixed one"):
        compare_pair(a, b)
    pairs, notes = compare_all([a, b, c])
    assert [(p.a, p.b) for p in pairs] == [("mace-mpa-0", "deepmd-lif")] and pairs[0].ensemble == "npt"
    assert len(notes) == 2 and all("different ensembles" in n for n in notes)
    with pytest.raises(AnalysisError, match="different quantities"):
        compare_all([a, b, c], ["mace-mpa-0", "mace-mpa-0 @ 4.0800 Å"])
    with pytest.raises(InputError, match="not among the fitted series"):
        compare_all([a, b, c], ["mace-mpa-0", "nequip"])
    with pytest.raises(InputError, match="at least two"):
        compare_all([a, b, c], ["mace-mpa-0", "mace-mpa-0"])


def test_z_of_pairs_with_equal_true_ea_is_standard_normal():
    """Coverage: 3000 seeded pairs with the same true Ea (3-6 temperatures each, D0 and error bars differing), ln D
    scattered by its stated σ: z has mean ~0 and sd ~1, |z| < 1 in ~68 % and |z| < 2 in ~95 % of pairs, p < 0.05 in
    ~5 %. Where a fit's χ² widened its errors (~10 % of pairs), z shrinks: over all pairs z is a little conservative
    (sd 0.95-0.99, |z| < 1 in 69-71 % over five seeds); over the others it is standard normal."""
    rng = np.random.default_rng(2025)
    z, p, widened = [], [], []
    for _ in range(3000):
        ea = rng.uniform(0.15, 0.45)
        temps_a = tuple(sorted(rng.choice([400.0, 450.0, 500.0, 550.0, 600.0, 700.0, 800.0], rng.integers(3, 7),
                                          replace=False)))
        temps_b = tuple(sorted(rng.choice([450.0, 500.0, 600.0, 650.0, 750.0, 900.0], rng.integers(3, 7),
                                          replace=False)))
        a = series("a", ladder(ea, 10 ** rng.uniform(-4, -2), rng.uniform(0.02, 0.3), temps_a,
                               rng.standard_normal(len(temps_a))))
        b = series("b", ladder(ea, 10 ** rng.uniform(-4, -2), rng.uniform(0.02, 0.3), temps_b,
                               rng.standard_normal(len(temps_b))))
        c = compare_pair(a, b)
        z.append(c.z)
        p.append(c.p_value)
        widened.append(a.fit.widened or b.fit.widened)
    z, p, plain = np.array(z), np.array(p), ~np.array(widened)
    # bounds: ~4 standard errors of each statistic for 3000 (or ~2700) draws
    assert abs(z.mean()) < 0.07, z.mean()
    assert 0.92 < z.std() < 1.04, z.std()
    assert 0.655 < np.mean(np.abs(z) < 1) < 0.74, np.mean(np.abs(z) < 1)
    assert 0.94 < np.mean(np.abs(z) < 2) < 0.975, np.mean(np.abs(z) < 2)
    assert 0.03 < np.mean(p < 0.05) < 0.065, np.mean(p < 0.05)
    assert 0.05 < 1 - plain.mean() < 0.15  # a fit is widened when its χ² is beyond its 95 % quantile
    assert 0.94 < z[plain].std() < 1.06, z[plain].std()
    assert 0.65 < np.mean(np.abs(z[plain]) < 1) < 0.72, np.mean(np.abs(z[plain]) < 1)
    assert 0.935 < np.mean(np.abs(z[plain]) < 2) < 0.97, np.mean(np.abs(z[plain]) < 2)


def test_z_of_pairs_with_different_true_ea_is_centred_on_the_difference():
    """The other side of coverage: with a true ΔEa of 2σ, z scatters about 2 with sd 1 (and is resolved ~half
    the time)."""
    rng = np.random.default_rng(7)
    x = 1 / (K_B * np.array(TEMPS))
    sigma = math.sqrt(2 * 0.1**2 / np.sum((x - x.mean()) ** 2))
    z = np.array([compare_pair(series("a", ladder(0.3, rel=0.1, noise=rng.standard_normal(4))),
                               series("b", ladder(0.3 + 2 * sigma, rel=0.1, noise=rng.standard_normal(4)))).z
                  for _ in range(1000)])
    assert abs(z.mean() - 2.0) < 0.15 and 0.88 < z.std() < 1.1 and 0.42 < np.mean(z >= 2) < 0.58


def test_cli_on_two_tables(tmp_path, capsys):
    one = write_table(tmp_path / "one.csv", {"mace-mpa-0": ladder(0.22, rel=0.03, noise=[0.3, -1, 0.5, 0.1])})
    two = write_table(tmp_path / "two.csv", {"deepmd-lif": ladder(0.30, rel=0.03, noise=[1, 0.2, -0.4, 0.3]),
                                             "fumi-tosi": ladder(0.21, rel=0.04, noise=[-0.5, 0.3, 0.8, -1])})
    assert main([str(one), str(two)]) == 0
    out = capsys.readouterr().out
    assert "mace-mpa-0 vs deepmd-lif: ΔEa = +0.0" in out and "resolved at 2σ (deepmd-lif has the higher Ea)" in out
    assert "mace-mpa-0 vs fumi-tosi" in out and "deepmd-lif vs fumi-tosi" in out
    assert "600 K: D(deepmd-lif) / D(mace-mpa-0) = " in out
    assert main([str(one), str(two), "--json", "--potentials", "fumi-tosi", "mace-mpa-0"]) == 0
    (pair,) = json.loads(capsys.readouterr().out)
    fits = {p: fit_arrhenius(pts) for p, pts in (("m", ladder(0.22, rel=0.03, noise=[0.3, -1, 0.5, 0.1])),
                                                 ("f", ladder(0.21, rel=0.04, noise=[-0.5, 0.3, 0.8, -1])))}
    assert (pair["a"], pair["b"]) == ("fumi-tosi", "mace-mpa-0")
    assert pair["delta_ea_ev"] == pytest.approx(fits["m"].ea_ev - fits["f"].ea_ev, rel=1e-9)
    assert pair["delta_ea_stderr_ev"] == pytest.approx(math.hypot(fits["m"].ea_stderr_ev, fits["f"].ea_stderr_ev))
    assert pair["z"] == pytest.approx(pair["delta_ea_ev"] / pair["delta_ea_stderr_ev"])
    assert len(pair["d_ratios"]) == 4 and pair["text"].startswith("fumi-tosi vs mace-mpa-0: ΔEa = ")


def test_cli_refuses_what_it_cannot_compare(tmp_path, capsys):
    one = write_table(tmp_path / "one.csv", {"mace-mpa-0": ladder(0.22)})
    again = write_table(tmp_path / "again.csv", {"mace-mpa-0": ladder(0.25), "x": ladder(0.3)})
    assert main([str(one), str(again)]) == 2
    assert "'mace-mpa-0' is in both" in capsys.readouterr().err
    assert main([str(one)]) == 2
    assert "at least two series with an Arrhenius fit; have mace-mpa-0" in capsys.readouterr().err
    assert main([str(again), "--potentials", "x", "y"]) == 2
    assert "y not among the fitted series (mace-mpa-0, x)" in capsys.readouterr().err
    npt = write_table(tmp_path / "npt.csv", {"a": ladder(0.22)}, ensemble="npt")
    fixed = write_table(tmp_path / "fixed.csv", {"b": ladder(0.25)}, ensemble="nvt-fixed")
    assert main([str(npt), str(fixed)]) == 2
    err = capsys.readouterr().err
    assert "a (npt) vs b (nvt-fixed) not compared" in err and "no pair of series of one ensemble" in err
    assert main([str(tmp_path / "missing.csv"), str(one)]) == 2
    assert "missing.csv is not a file" in capsys.readouterr().err


def test_cli_on_a_synthetic_study_directory(tmp_path, capsys):
    """Two potentials with the same event law (true Ea 0.3 eV) in one study (tests/test_report.py): their ΔEa is
    within 3σ of 0, each Ea within 3σ of 0.3 eV, the simulated time is named, --json gives the pair, and the
    report shows it."""
    root = synthetic_study(tmp_path / "two", ea_ev=0.3)
    assert main([str(root), "--json"]) == 0
    (pair,) = json.loads(capsys.readouterr().out)
    ensembles = analyse_study(root).ensembles()  # the fake runs' study sets the ensemble; both ladders share it
    assert (pair["a"], pair["b"], pair["ensemble"]) == ("mace-mpa-0", "my-model", ensembles["my-model"]["ensemble"])
    assert abs(pair["z"]) < 3 and 0 < pair["delta_ea_stderr_ev"] < 0.3
    for side in ("a", "b"):  # each Ea is the event law's, within its error
        assert abs(pair[f"ea_{side}_ev"] - 0.3) < 3 * pair[f"ea_{side}_stderr_ev"], pair
    fitted = {s: len(analyse_study(root).points()[0][s]) for s in ("mace-mpa-0", "my-model")}
    assert pair["simulated_ps_a"] == pytest.approx(fitted["mace-mpa-0"] * 749.5, rel=0.01)
    assert pair["simulated_ps_b"] == pytest.approx(fitted["my-model"] * 749.5, rel=0.01)
    assert main([str(root), "--observable", "defect", "--potentials", "my-model", "mace-mpa-0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("my-model vs mace-mpa-0: ΔEa = ") and "D(mace-mpa-0) / D(my-model)" in out
    # the report shows the same comparison: a section with the pair in words, a table and a plot
    from analysis.report import PAIRS_PNG, build_report

    index = build_report(root)
    doc = json.loads((index.parent / "report.json").read_text())
    (shown,) = doc["potentials_compared"]["pairs"]
    assert shown["delta_ea_ev"] == pytest.approx(pair["delta_ea_ev"]) and shown["z"] == pytest.approx(pair["z"])
    assert PAIRS_PNG in doc["figures"] and (index.parent / PAIRS_PNG).stat().st_size > 5000
    html = index.read_text()
    assert "Do the potentials differ?" in html and shown["text"].split(":")[0] in html
    assert html.count("<img ") == len(doc["figures"])  # each figure once (the browser check counts them)
