"""The study's result, computed once and stored typed beside the runs (analysis/result.py): reused while the runs
are unchanged, recomputed when one is added, finished or extended, when the host-stability table appears, or when
the file is damaged; the Estimate record; one observable vocabulary; the material named in tables and the report,
the paper's values only for the paper's system; states whose host is not a stable crystal flagged and left out."""

import csv
import json
import logging
import math
from dataclasses import replace

import numpy as np
import pytest

import analysis.study
from analysis.arrhenius import read_table
from analysis.arrhenius.__main__ import main as arrhenius_main
from analysis.diffusion import Diffusivity
from analysis.result import OBSERVABLE_LABELS, RESULT_FILE, material_of
from analysis.runs import OBSERVABLES
from analysis.study import analyse_study, conditions, series_of
from core.estimate import Estimate, ratio
from core.rundir import RunDir
from core.stability import HostStability, StabilityPoint, StabilityScan, write_stability
from inputs.study import SELECTIONS
from tests.conftest import interstitialcy, random_walk, write_fake_run


def small_study(root, temps=(600.0, 700.0), seeds=(1,), potential="my-model"):
    for t in temps:
        for seed in seeds:
            x = interstitialcy(600, 0.5, 0.3, seed=int(t) + seed)
            write_fake_run(root, potential, t, seed, x.positions, 0.5, structure=x.structure, cell=x.cell)
    return root


@pytest.fixture()
def computed(monkeypatch):
    """Counts the computations of the state results (the analyser under every reader)."""
    calls = []
    real = analysis.study.compute_states

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis.study, "compute_states", counting)
    return calls


def _refuse(*_args, **_kwargs):
    raise AssertionError("the runs were analysed again")


# --- computed once, reused, recomputed when something changed --------------------------------------------------

def test_a_second_reader_takes_the_stored_result_without_analysing_again(tmp_path, computed, monkeypatch):
    root = small_study(tmp_path / "s")
    first = analyse_study(root, jobs=1)
    assert len(computed) == 1 and (root / RESULT_FILE).is_file()
    monkeypatch.setattr(analysis.study, "_analyse_runs", _refuse)  # not even the runs' stored analyses are read
    again = analyse_study(root, jobs=1)
    assert len(computed) == 1
    assert again.results == first.results  # every number, window, condition and status, typed as it was
    assert again.results[0].estimates["li"].d_replicas_cm2_s == first.results[0].estimates["li"].d_replicas_cm2_s
    # the same study reached by another path (a link): the stored result is still this study's
    (tmp_path / "link").symlink_to(root)
    linked = analyse_study(tmp_path / "link", jobs=1)
    assert len(computed) == 1
    assert all(d.startswith(str(tmp_path / "link")) for r in linked.results for d in r.run_dirs)
    assert linked.analyses[linked.results[0].run_dirs[0]].n_li == 109  # each run's own analysis, on demand


def test_a_new_finished_or_extended_run_recomputes_the_result(tmp_path, computed):
    root = small_study(tmp_path / "s")
    analyse_study(root, jobs=1)
    # a replica still running is pending: the result stands
    x = interstitialcy(600, 0.5, 0.3, seed=42)
    new = RunDir(write_fake_run(root, "my-model", 600.0, 2, x.positions, 0.5, structure=x.structure, cell=x.cell))
    new.update(status="running")
    a = analyse_study(root, jobs=1)
    assert len(computed) == 1 and [p.run_dir for p in a.pending] == [str(new)]
    # it finishes: recomputed, the state now pools two replicas
    new.update(status="finished")
    b = analyse_study(root, jobs=1)
    assert len(computed) == 2 and not b.pending
    assert {r.temperature_k: len(r.run_dirs) for r in b.results} == {600.0: 2, 700.0: 1}
    analyse_study(root, jobs=1)
    assert len(computed) == 2
    # a run whose trajectory grew (a resumed segment merged in): recomputed, and its D moves
    dump = new.trajectory_of(new.read())
    dump.write_text(dump.read_text().replace(" 1 0.", " 1 1.", 50))
    c = analyse_study(root, jobs=1)
    assert len(computed) == 3
    assert c.results[0].estimates["li"].d_cm2_s != b.results[0].estimates["li"].d_cm2_s


@pytest.mark.parametrize("damage", ["truncated", "wrong type", "unknown status"])
def test_a_damaged_result_file_is_recomputed_with_a_warning(tmp_path, computed, caplog, damage):
    root = small_study(tmp_path / "s", temps=(600.0,))
    first = analyse_study(root, jobs=1)
    path = root / RESULT_FILE
    doc = json.loads(path.read_text())
    if damage == "truncated":
        path.write_text(path.read_text()[: len(path.read_text()) // 2])
    else:  # the key still matches: only the content is wrong
        if damage == "wrong type":
            doc["results"][0]["estimates"]["li"] = "1e-6"
        else:
            doc["results"][0]["status"] = "great"
        path.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="analysis.result"):
        again = analyse_study(root, jobs=1)
    assert len(computed) == 2 and again.results == first.results
    assert any(f"{RESULT_FILE} is damaged" in r.getMessage() for r in caplog.records)
    analyse_study(root, jobs=1)  # the file was written whole again: taken as it is
    assert len(computed) == 2


def test_the_stored_result_is_strict_json(tmp_path):
    root = small_study(tmp_path / "s", temps=(600.0,))
    analyse_study(root, jobs=1)

    def refuse(name):
        raise ValueError(f"{name} in strict JSON")

    doc = json.loads((root / RESULT_FILE).read_text(), parse_constant=refuse)
    (state,) = doc["results"]
    assert state["run_dirs"] == ["my-model/T600K/seed1"]  # relative: the study may move
    assert state["conditions"]["lattice_constant_angstrom"]["value"] == pytest.approx(4.1)


# --- the host's stability ---------------------------------------------------------------------------------------

def unstable_at(root, t: float) -> None:
    host = HostStability(stable=False, energy_drop_ev_per_fu=0.065, max_displacement_angstrom=1.5,
                         cell_angstrom=(12.3, 12.3, 12.3, 0.0, 0.0, 0.0), n_atoms=216, formula_units=108,
                         rattle_angstrom=0.15, seed=0, message="a rattled cell relaxes 0.065 eV/f.u. lower")
    # the scan names a series as series_of does (a fixed-volume ladder by its cell too), as driver.stability does
    series = series_of(RunDir(root / "my-model" / f"T{t:g}K" / "seed1").read())
    assert series.startswith("my-model @ ")
    write_stability(StabilityScan((StabilityPoint("my-model", series, t, (), result=host),)), root)


def test_a_state_whose_host_is_not_a_stable_crystal_is_listed_flagged_and_left_out(tmp_path, computed, capsys):
    root = small_study(tmp_path / "s", temps=(600.0, 700.0, 800.0))
    assert all(r.status == "ok" for r in analyse_study(root, jobs=1).results)
    unstable_at(root, 800.0)  # the table appears: the result is recomputed
    a = analyse_study(root, jobs=1)
    assert len(computed) == 2
    hot = next(r for r in a.results if r.temperature_k == 800.0)
    assert hot.status == "host-unstable" and hot.estimates["li"] is not None  # its D is kept, and shown
    assert hot.flags == [hot.reason] and hot.reason.startswith("host-unstable: a rattled cell relaxes")
    assert [r.temperature_k for r in a.unstable] == [800.0]
    points, excluded = a.points(include_few_events=True)
    assert [p.temperature_k for p in points["my-model"]] == [600.0, 700.0]
    assert [(e.temperature_k, e.reason) for e in excluded["my-model"]] == [(800.0, hot.reason)]
    # the table says it, and a fit from the table leaves it out as well
    assert arrhenius_main([str(root), "--no-plot", "--json"]) == 0
    from_table, left = read_table(root / "diffusivity.csv", include_few_events=True)
    assert [p.temperature_k for p in from_table["my-model"]] == [600.0, 700.0]
    assert [e.temperature_k for e in left["my-model"]] == [800.0]
    from analysis.report import build_report

    index = build_report(root)
    doc = json.loads((index.parent / "report.json").read_text())
    assert doc["host_unstable"] == [{"series": "my-model", "temperature_k": 800.0, "reason": hot.reason}]
    assert "not a stable crystal at these temperatures" in index.read_text()
    assert "my-model at 800 K: host-unstable" in index.read_text()


# --- material, paper values, one writer -------------------------------------------------------------------------

def test_materials_are_named_from_the_structure_record():
    from inputs.defects import add_defect
    from inputs.structure import antifluorite_li2o, rocksalt_lif

    lif = material_of(add_defect(rocksalt_lif(4.03, 2), "interstitial").describe())
    assert (lif.label, lif.paper_system) == ("Li in LiF (interstitial)", True)
    li2o = material_of(add_defect(antifluorite_li2o(4.61, 2), "vacancy").describe())
    assert (li2o.label, li2o.paper_system) == ("Li in Li2O (vacancy)", False)
    assert material_of(rocksalt_lif(4.03, 2).describe()).label == "Li in LiF"
    assert not material_of(add_defect(rocksalt_lif(4.03, 2), "vacancy").describe()).paper_system


def test_paper_values_only_for_the_papers_system_and_the_material_in_every_title(tmp_path):
    """A perfect LiF crystal (no defect, a fixed window) run with a potential that has a paper value: the material
    is named, the paper's Ea is not shown (it is the value for an interstitial)."""
    from analysis.report import build_report

    rng = np.random.default_rng(3)
    for t, d in ((600.0, 0.02), (700.0, 0.05), (800.0, 0.1)):
        write_fake_run(tmp_path / "perfect", "mace-mpa-0", t, 1, random_walk(400, 20, d, 0.5, rng), 0.5,
                       **{"analysis.window_ps": (5.0, 90.0)})
    index = build_report(tmp_path / "perfect")
    doc = json.loads((index.parent / "report.json").read_text())
    assert doc["material"] == "Li in LiF" and not doc["paper_system"]
    assert doc["fits"][0]["paper_ea_ev"] is None and doc["fits"][0]["fit"] is not None
    html = index.read_text()
    assert "arXiv 2510.05020" not in html and "<h1>Diffusion of Li in LiF" in html
    with open(index.parent / "diffusivity.csv", newline="") as fh:
        assert {r["material"] for r in csv.DictReader(fh)} == {"Li in LiF"}


def test_one_writer_gives_the_same_diffusivity_table_to_every_reader(tmp_path, capsys):
    from analysis.report import build_report

    root = small_study(tmp_path / "s")
    assert arrhenius_main([str(root), "--no-plot"]) == 0
    index = build_report(root)
    study_table = (root / "diffusivity.csv").read_text()
    assert study_table == (index.parent / "diffusivity.csv").read_text()
    assert "Li in LiF (interstitial)" in study_table
    fits = json.loads((root / "arrhenius.json").read_text())
    assert fits["material"] == "Li in LiF (interstitial)" and fits["observable"] == "li"


def test_one_observable_vocabulary(capsys):
    assert OBSERVABLES == SELECTIONS == tuple(OBSERVABLE_LABELS)
    with pytest.raises(SystemExit):
        arrhenius_main(["x", "--observable", "atoms"])
    err = capsys.readouterr().err
    assert all(repr(o) in err for o in OBSERVABLES), err


# --- Estimate and conditions ------------------------------------------------------------------------------------

def test_estimate_helpers():
    e = Estimate(2.0, 0.5, 10.0)
    assert e.relative_error == 0.25 and not e.undetermined
    assert Estimate(1.0, 1.0).undetermined and Estimate(-1.0, None).undetermined
    assert e.scaled(-3.0) == Estimate(-6.0, 1.5, 10.0)
    assert Estimate.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    assert Diffusivity(500.0, 1e-6, 1e-7).estimate == Estimate(1e-6, 1e-7, None)
    assert ratio(e, Estimate(0.0, 0.1)) is None and ratio(e, Estimate(1.0, None)) is None


def test_the_error_of_a_ratio_matches_sampling():
    """a/b of two independent estimates with 2 % and 3 % errors: the propagated 1σ against the spread of sampled
    ratios."""
    a, b = Estimate(3.0, 0.06, 20.0), Estimate(1.5, 0.045, 40.0)
    r = ratio(a, b)
    rng = np.random.default_rng(1)
    sampled = rng.normal(a.value, a.stderr, 200_000) / rng.normal(b.value, b.stderr, 200_000)
    assert r.value == 2.0 and r.dof == 20.0
    assert r.stderr == pytest.approx(np.std(sampled), rel=0.02)
    assert r.stderr == pytest.approx(2.0 * math.hypot(0.02, 0.03))


def test_conditions_without_a_cubic_lattice_constant(tmp_path):
    x = interstitialcy(100, 0.5, 0.3, seed=1)
    run = RunDir(write_fake_run(tmp_path / "s", "my-model", 600.0, 1, x.positions, 0.5, structure=x.structure,
                                cell=x.cell))
    s = run.read()
    c = conditions([replace(s, state=replace(s.state, lattice_constant_angstrom=None))])
    assert c.lattice_constant_angstrom is None and c.pressure_bar.value == 0.0
    assert c.columns()["lattice_constant_angstrom"] is None
    assert type(c).from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert conditions([s]).lattice_constant_angstrom == Estimate(4.1, None)  # fixed by the study: no error
