"""The study analysis as its users meet it: every number computed once and kept beside its run, unfinished runs
listed as pending, and `python -m analysis.arrhenius` on a study directory and on the table it writes."""

import csv
import json

import pytest

import analysis.runs
from analysis.arrhenius.__main__ import main as arrhenius_main
from analysis.study import analyse_study
from core.rundir import RunDir
from tests.conftest import interstitialcy, write_fake_run
from tests.test_report import synthetic_study


def _refuse(*_args, **_kwargs):
    raise AssertionError("computed again")


def test_a_run_is_analysed_once_and_again_only_when_its_trajectory_changes(tmp_path, monkeypatch):
    x = interstitialcy(800, 0.5, 0.2, seed=5)
    run = RunDir(write_fake_run(tmp_path / "s", "my-model", 600.0, 1, x.positions, 0.5, structure=x.structure,
                                cell=x.cell))
    first = analyse_study(tmp_path / "s", jobs=1).results[0].estimates["li"]
    assert run.analysis_json.is_file() and run.analysis_npz.is_file()
    monkeypatch.setattr(analysis.runs, "compute", _refuse)
    again = analyse_study(tmp_path / "s", jobs=1).results[0].estimates["li"]  # from the stored analysis
    assert again.d_cm2_s == first.d_cm2_s and again.d_stderr_cm2_s == first.d_stderr_cm2_s
    # a trajectory rewritten (a resumed run merged its segments, say) is analysed afresh
    summary = run.read()
    dump = run.trajectory_of(summary)
    dump.write_text(dump.read_text().replace(" 1 0.", " 1 1.", 50))
    with pytest.raises(AssertionError, match="computed again"):
        analyse_study(tmp_path / "s", jobs=1)
    monkeypatch.undo()
    changed = analyse_study(tmp_path / "s", jobs=1).results[0].estimates["li"]
    assert changed.d_cm2_s != first.d_cm2_s
    assert json.loads(run.analysis_json.read_text())["key"]["mtime_ns"] == dump.stat().st_mtime_ns


def test_unfinished_runs_are_pending_not_results(tmp_path):
    for seed in (1, 2):
        x = interstitialcy(600, 0.5, 0.2, seed=seed)
        write_fake_run(tmp_path / "s", "my-model", 600.0, seed, x.positions, 0.5, structure=x.structure, cell=x.cell)
    running = RunDir(tmp_path / "s" / "my-model" / "T600K" / "seed2")
    running.update(status="interrupted")
    a = analyse_study(tmp_path / "s", jobs=1)
    assert [(p.run_dir, p.status) for p in a.pending] == [(str(running), "interrupted")]
    (r,) = a.results
    assert [str(d) for d in r.run_dirs] == [str(RunDir(tmp_path / "s" / "my-model" / "T600K" / "seed1"))]


def test_arrhenius_on_a_study_directory_and_on_the_table_it_writes(tmp_path, capsys):
    root = synthetic_study(tmp_path / "synthetic", ea_ev=0.3)
    assert arrhenius_main([str(root), "--json", "--no-plot"]) == 0
    from_study = {f["potential"]: f for f in map(json.loads, capsys.readouterr().out.splitlines())}
    table = root / "diffusivity.csv"
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    statuses = {(r["potential"], float(r["temperature_k"])): r["status"] for r in rows}
    assert len(statuses) == 8 and "ok" in statuses.values()
    for pot, f in from_study.items():
        fitted = set(f["fit"]["temperatures_k"])
        left_out = {e["temperature_k"] for e in f["excluded"]}
        assert fitted == {t for (p, t), s in statuses.items() if p == pot and s == "ok"}
        assert left_out == {t for (p, t), s in statuses.items() if p == pot and s != "ok"}
        assert abs(f["fit"]["ea_ev"] - 0.3) < 3 * f["fit"]["ea_stderr_ev"]
    # the table is a valid input: the same points, the same states left out, the same Ea
    assert arrhenius_main([str(table), "--json", "--no-plot", "--out", str(tmp_path / "from-table")]) == 0
    from_table = {f["potential"]: f for f in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(from_table) == set(from_study)
    for pot, f in from_table.items():
        assert f["fit"]["ea_ev"] == pytest.approx(from_study[pot]["fit"]["ea_ev"], rel=1e-9)
        assert f["fit"]["temperatures_k"] == from_study[pot]["fit"]["temperatures_k"]
        assert [e["temperature_k"] for e in f["excluded"]] == [e["temperature_k"] for e in from_study[pot]["excluded"]]


def test_a_table_with_states_that_have_no_d(tmp_path, capsys):
    rows = ["potential,temperature_k,d_cm2_s,d_stderr_cm2_s,n_samples,status,flag"]
    for t, d, status in ((500, "", "no-diffusive-regime"), (600, 1e-6, "few-events"), (700, 2e-6, "ok"),
                         (800, 4e-6, "ok"), (900, 7e-6, "ok")):
        rows.append(f"m,{t},{d},{0.05 * d if d else ''},10,{status},{'' if status == 'ok' else 'why: ' + status}")
    path = tmp_path / "d.csv"
    path.write_text("\n".join(rows) + "\n")
    assert arrhenius_main([str(path), "--json", "--no-plot"]) == 0
    (f,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert f["fit"]["temperatures_k"] == [700.0, 800.0, 900.0]
    assert [(e["temperature_k"], e["reason"]) for e in f["excluded"]] == [
        (500.0, "why: no-diffusive-regime"), (600.0, "why: few-events")]
    assert arrhenius_main([str(path), "--json", "--no-plot", "--with-few-events"]) == 0
    (f,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert f["fit"]["temperatures_k"] == [600.0, 700.0, 800.0, 900.0]
    # a D missing where nothing says why is refused, not dropped
    path.write_text("potential,temperature_k,d_cm2_s,d_stderr_cm2_s\nm,700,,\nm,800,1e-6,1e-7\n")
    assert arrhenius_main([str(path), "--no-plot"]) == 2
    assert "not a number" in capsys.readouterr().err
