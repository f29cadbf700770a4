"""Which Ea a ladder gives (issue 26): at zero pressure each temperature runs at its own cell, so the barrier drifts
with the lattice and the fitted slope is an activation enthalpy along a(T); a fixed-volume ladder gives the barrier at
one cell. Checked on ladders whose barrier drifts with a known a(T) (the expansion part is then known exactly), on
the study option that runs the fixed-volume ladder beside the NPT one, and on the labels in tables and report."""

import csv
import json

import numpy as np
import pytest

from analysis.arrhenius import K_B_EV_PER_K, expansion_part, expansion_parts, fit_arrhenius
from analysis.arrhenius.__main__ import main as arrhenius_main
from analysis.diffusion import Diffusivity
from analysis.study import analyse_study
from core.errors import InputError
from core.rundir import RunDir
from driver.render import plan, render_study
from inputs.study import study_from_dict
from tests.conftest import interstitialcy, make_study, study_dict, write_fake_run

T = np.array([400.0, 450, 500, 550, 600])
A_MID, EXPANSION_A_PER_K = 4.135, 2.85e-4  # a(T) = A_MID + α (T - 500 K): the classical model's ~0.06 Å over 200 K
E_MID, DE_DA = 0.08, -0.5  # E(a) = E_MID + E' (a - A_MID): the barrier falls as the lattice expands (eV, eV/Å)
D0 = 1e-3


def lattice(t):
    return A_MID + EXPANSION_A_PER_K * (np.asarray(t) - 500.0)


def barrier(a):
    return E_MID + DE_DA * (np.asarray(a) - A_MID)


def ladder(d, rel_err, rng=None):
    noise = np.ones_like(d) if rng is None else np.exp(rng.normal(0, rel_err, size=d.shape))
    return [Diffusivity(float(t), float(x), float(rel_err * x)) for t, x in zip(T, d * noise)]


def test_a_barrier_that_drifts_with_the_lattice_adds_the_expansion_part_to_the_zero_pressure_ea():
    """D = D0 exp(-E(a(T)) / kT) along a(T): the slope of ln D against 1/kT is E(a(T)) - T E'(a) a'(T) (here,
    with E and a linear, exactly E_MID - 500 K · E' α at every T), while the fixed-volume ladder at a(500 K) gives
    E_MID; their difference, the expansion part, is -T_mid E' α = 0.071 eV."""
    d_npt = D0 * np.exp(-barrier(lattice(T)) / (K_B_EV_PER_K * T))
    d_fixed = D0 * np.exp(-barrier(A_MID) / (K_B_EV_PER_K * T))
    npt, fixed = fit_arrhenius(ladder(d_npt, 0.05)), fit_arrhenius(ladder(d_fixed, 0.05))
    expansion = -500.0 * DE_DA * EXPANSION_A_PER_K
    assert npt.ea_ev == pytest.approx(E_MID + expansion, rel=1e-9)
    assert fixed.ea_ev == pytest.approx(E_MID, rel=1e-9)
    diff, err = expansion_part(npt, fixed)
    assert diff == pytest.approx(expansion, rel=1e-8) and diff > 0.07
    assert err == pytest.approx(np.hypot(npt.ea_stderr_ev, fixed.ea_stderr_ev))


def test_the_expansion_part_and_its_error_cover_the_truth_on_noisy_ladders():
    """200 pairs of noisy ladders (10 % on each D): the difference of the two Ea lies within its 1σ ~68 % of the
    time."""
    rng = np.random.default_rng(26)
    expansion = -500.0 * DE_DA * EXPANSION_A_PER_K
    hits = 0
    for _ in range(200):
        npt = fit_arrhenius(ladder(D0 * np.exp(-barrier(lattice(T)) / (K_B_EV_PER_K * T)), 0.1, rng))
        fixed = fit_arrhenius(ladder(D0 * np.exp(-barrier(A_MID) / (K_B_EV_PER_K * T)), 0.1, rng))
        diff, err = expansion_part(npt, fixed)
        hits += abs(diff - expansion) < err
    assert 0.60 <= hits / 200 <= 0.76, hits


def test_expansion_parts_pairs_each_potentials_two_ladders():
    d = D0 * np.exp(-barrier(A_MID) / (K_B_EV_PER_K * T))
    fits = {"m": fit_arrhenius(ladder(d * np.exp(0.01 * T / 500), 0.05)),
            "m @ 4.1350 Å": fit_arrhenius(ladder(d, 0.05)), "other": fit_arrhenius(ladder(d, 0.05))}
    ens = {"m": {"potential": "m", "ensemble": "npt"}, "other": {"potential": "other", "ensemble": "npt"},
           "m @ 4.1350 Å": {"potential": "m", "ensemble": "nvt-fixed",
                            "lattice_constant_angstrom": {"400": 4.135, "500": 4.135}}}
    (row,) = expansion_parts(fits, ens)
    assert row["potential"] == "m" and row["fixed_series"] == "m @ 4.1350 Å"
    assert row["fixed_lattice_constant_angstrom"] == pytest.approx(4.135)
    assert row["expansion_ev"] == pytest.approx(fits["m"].ea_ev - fits["m @ 4.1350 Å"].ea_ev)


# --- the study option -------------------------------------------------------------------------------------------

def npt_study(**changes):
    return make_study(**{"system.volume": "npt", "md.npt_ps": 0.1, "temperatures_k": [600.0, 700.0],
                         **changes})


def test_a_fixed_volume_ladder_is_rendered_beside_the_npt_one(tmp_path):
    plain = render_study(npt_study(), tmp_path / "plain")
    both = render_study(npt_study(**{"system.fixed_beside_angstrom": 4.12}), tmp_path / "both")
    assert len(both) == 2 * len(plain)
    # the NPT ladder is where and what it was without the option
    rel = lambda paths, root: sorted(str(p.relative_to(root)) for p in paths)  # noqa: E731
    npt_runs = [p for p in both if "fixed-a" not in str(p)]
    assert rel(npt_runs, tmp_path / "both") == rel(plain, tmp_path / "plain")
    for p in npt_runs:
        twin = tmp_path / "plain" / p.relative_to(tmp_path / "both")
        assert (p / "in.lammps").read_text() == (twin / "in.lammps").read_text()
    fixed_runs = sorted(p for p in both if "fixed-a4.1200" in str(p))
    assert [str(p.relative_to(tmp_path / "both" / "tiny")) for p in fixed_runs] == [
        "fumi-tosi/fixed-a4.1200/T600K/seed1", "fumi-tosi/fixed-a4.1200/T700K/seed1"]
    for p in fixed_runs:
        deck = (p / "in.lammps").read_text()
        s = RunDir(p).read()
        assert "fix             npt" not in deck and s.stages.npt_end == 0
        assert s.config["system"]["volume"] == "fixed" and s.config["system"]["lattice_constant_angstrom"] == 4.12
        assert s.structure["lattice_constant_angstrom"] == pytest.approx(4.12)
    # rendering again leaves both ladders alone
    assert render_study(npt_study(**{"system.fixed_beside_angstrom": 4.12}), tmp_path / "both") == both


def test_the_option_is_refused_where_it_cannot_mean_anything():
    with pytest.raises(InputError, match="system.fixed_beside_angstrom.*already"):
        make_study(**{"system.fixed_beside_angstrom": 4.1})  # TINY is already at fixed volume
    with pytest.raises(InputError, match="system.fixed_beside_angstrom.*lattice constant"):
        npt_study(**{"system.fixed_beside_angstrom": -4.1})
    assert npt_study().fixed_ladder() is None
    fixed = npt_study(**{"system.fixed_beside_angstrom": 4.12}).fixed_ladder()
    assert fixed.system.volume == "fixed" and fixed.md.npt_ps == 0 and fixed.system.fixed_beside_angstrom is None
    assert len(plan(fixed, "fixed-a4.1200")) == 2


def test_a_study_file_may_ask_for_both_ladders():
    d = study_dict(**{"system.volume": "npt", "md.npt_ps": 0.1, "system.fixed_beside_angstrom": 4.12})
    assert study_from_dict(d, "x.toml").system.fixed_beside_angstrom == 4.12


# --- the labels in the analysis, the tables and the report ------------------------------------------------------

def two_ladders(root):
    """One potential, three temperatures, at zero pressure (rates along a drifting barrier) and at a fixed cell."""
    k = 8.617333262e-5
    for t in (600.0, 700.0, 800.0):
        for volume, ea, seed in (("npt", 0.30, 1), ("fixed", 0.20, 2)):
            rate = 0.2 * np.exp(-ea / k * (1 / t - 1 / 800.0))
            x = interstitialcy(1200, 0.5, rate, seed=int(t) + seed)
            changes = {"system.volume": "npt", "md.npt_ps": 1.0} if volume == "npt" else \
                {"system.lattice_constant_angstrom": 4.1}
            write_fake_run(root, "my-model", t, seed, x.positions, 0.5, structure=x.structure, cell=x.cell,
                           **changes)
    return root


def test_both_ladders_are_analysed_as_two_series_with_their_ensembles(tmp_path, capsys):
    root = two_ladders(tmp_path / "both")
    analysis = analyse_study(root)
    series = {(r.series, r.ensemble) for r in analysis.results}
    assert series == {("my-model", "npt"), ("my-model @ 4.1000 Å", "nvt-fixed")}
    ens = analysis.ensembles()
    assert ens["my-model"]["ensemble"] == "npt" and "enthalpy" in ens["my-model"]["meaning"]
    assert set(ens["my-model"]["lattice_constant_angstrom"]) == {"600", "700", "800"}  # a(T) shown per T
    assert arrhenius_main([str(root), "--json", "--no-plot", "--with-few-events"]) == 0
    out = capsys.readouterr().out.splitlines()
    printed = {d["potential"]: d for d in map(json.loads, (line for line in out if line.startswith("{")))}
    assert printed["my-model"]["ensemble"]["ensemble"] == "npt"
    assert any("Ea at zero pressure - Ea at fixed volume" in line for line in out)
    doc = json.loads((root / "arrhenius.json").read_text())
    (exp,) = doc["expansion"]
    assert exp["expansion_ev"] == pytest.approx(doc["fits"]["my-model"]["ea_ev"] -
                                                doc["fits"]["my-model @ 4.1000 Å"]["ea_ev"])
    assert abs(exp["expansion_ev"] - 0.10) < 3 * exp["expansion_stderr_ev"]
    with open(root / "arrhenius.csv", newline="") as fh:
        rows = {r["potential"]: r for r in csv.DictReader(fh)}
    assert rows["my-model"]["ensemble"] == "npt" and "600:4.1000" in rows["my-model"]["lattice_constants_angstrom"]
    assert rows["my-model @ 4.1000 Å"]["ensemble"] == "nvt-fixed"
    assert "undetermined_temperatures_k" in rows["my-model"] and "undetermined_temperatures_k" in doc
    # the diffusivity table keeps the ladders apart when fitted again
    with open(root / "diffusivity.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert {(r["series"], r["ensemble"]) for r in table} == series
    assert arrhenius_main([str(root / "diffusivity.csv"), "--json", "--no-plot", "--with-few-events",
                           "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "arrhenius.json").read_text())
    assert set(again["fits"]) == set(doc["fits"]) and len(again["expansion"]) == 1


def test_the_report_labels_ea_and_shows_the_expansion_part(tmp_path):
    from analysis.report import build_report

    index = build_report(two_ladders(tmp_path / "both"))
    doc = json.loads((index.parent / "report.json").read_text())
    fits = {f["potential"]: f for f in doc["fits"]}
    assert fits["my-model"]["ensemble"]["ensemble"] == "npt"
    assert fits["my-model @ 4.1000 Å"]["ensemble"]["ensemble"] == "nvt-fixed"
    text = index.read_text()
    assert "activation enthalpy along the potential" in text and "expansion part" in text
    assert "a(T): 4.1000 Å at 600 K" in text and "Haven ratio" in text


def test_an_undetermined_collective_d_and_haven_ratio_are_flagged_never_printed_plain():
    from analysis.diffusion import DiffusionEstimate
    from analysis.output import diffusivity_rows
    from analysis.report import _determined
    from analysis.study import StateResult

    def est(d, err):
        return DiffusionEstimate(d, err, d - 2 * err, d + 2 * err, 50, 1.0, 15.0, None, None, 2, 1, 60.0, None, "t")

    r = StateResult(potential="m", temperature_k=400.0, estimates={"li": est(1e-7, 1e-8), "defect": est(1e-5, 1e-6),
                                                                     "collective": est(1e-5, 3e-5)},
                    run_dirs=("a", "b"), n_li=109, n_defects=1, events=40, window_ps=(1.0, 15.0), status="ok",
                    reason="")
    assert r.undetermined == ["collective_d", "haven_ratio"]  # the defect's Haven ratio is determined
    (row,) = diffusivity_rows([r], "li")
    assert row["undetermined"] == "collective_d haven_ratio" and row["ensemble"] == "npt" and row["series"] == "m"
    assert row["haven_ratio_defect"] == pytest.approx(109 * 1e-7 / 1e-5)
    cell = _determined(row, "haven_ratio", row["haven_ratio"], row["haven_ratio_stderr"], ".2f")
    assert cell["flag"] and cell["text"].startswith("undetermined (")
    assert not _determined(row, "haven_ratio_defect", row["haven_ratio_defect"], 0.1, ".2f")["flag"]
