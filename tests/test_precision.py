"""The precision loop (driver/precision.py): the [precision] section, extension of a run from its restart file as
one continuous trajectory, the rounds' decisions and records, and a loop resumed after a kill."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError, LammpsError
from core.rundir import PrecisionRecord, RunDir
from core.units import K_B_EV_PER_K
from driver.dumps import iter_frames
from driver.precision import JOURNAL, check, next_end, run_to_precision, take_round
from inputs.study import study_from_dict
from tests.conftest import random_walk, study_dict, write_fake_run

PRECISION = {"ea_stderr_ev": 0.05, "max_production_ps": 2.4, "chunk_ps": 0.3}


def precise_study(precision: dict | None = None, **changes):
    d = study_dict(**{"temperatures_k": [600.0, 700.0], **changes})
    d["precision"] = dict(PRECISION if precision is None else precision)
    return study_from_dict(d, "test.toml")


# --- the [precision] section -----------------------------------------------------------------------------------

def test_a_study_without_the_section_asks_for_no_precision():
    s = study_from_dict(study_dict(), "test.toml")
    assert not s.precision.enabled


def test_precision_section_is_read():
    s = precise_study()
    assert s.precision.enabled and s.precision.ea_stderr_ev == 0.05 and s.precision.max_production_ps == 2.4
    assert "σ(Ea) <= 0.05 eV" in s.precision.describe() and "2.4 ps" in s.precision.describe()


@pytest.mark.parametrize("precision, match", [
    ({"ea_stderr_ev": 0.02}, "precision.max_production_ps: a precision target needs a cap"),
    ({"ea_stderr_ev": 0.02, "max_production_ps": 0.3}, "shorter than the pilot"),
    ({"ea_stderr_ev": -0.02, "max_production_ps": 2.0}, "precision.ea_stderr_ev: must be a positive"),
    ({"d_rel_stderr": 0.0, "max_production_ps": 2.0}, "precision.d_rel_stderr: must be a positive"),
    ({"ea_stderr_ev": 0.02, "max_production_ps": 2.0, "chunk_ps": 0.0123}, "precision.chunk_ps"),
    ({"ea_stderr_ev": 0.02, "max_production_ps": 2.0, "chunk_ps": 0.007}, "not a whole number of dump intervals"),
    ({"ea_stderr_ev": 0.02, "max_production_ps": 2.0, "max_rounds": 0}, "precision.max_rounds"),
    ({"max_production_ps": 2.0}, "give a target"),
    ({"ea_stderr_ev": 0.02, "max_production_ps": 2.0, "chunks": 1}, "chunks"),
])
def test_bad_precision_sections_are_refused_naming_the_field(precision, match):
    with pytest.raises(InputError, match=match):
        precise_study(precision)


def test_an_ea_target_needs_a_ladder():
    with pytest.raises(InputError, match="precision.ea_stderr_ev: an Arrhenius fit needs at least two temperatures"):
        precise_study(temperatures_k=[700.0])
    with pytest.raises(InputError, match="at least two temperatures"):
        precise_study().restricted(temperatures_k=(700.0,))  # driver run --temperature 700
    assert precise_study({"d_rel_stderr": 0.1, "max_production_ps": 2.0}, temperatures_k=[700.0]).precision.enabled


# --- rounding an extension --------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(1, 10_000), st.integers(0, 40_000), st.integers(1, 3_000), st.integers(1, 40_000))
def test_extensions_are_whole_chunks_up_to_the_cap(current, proposed, chunk, cap):
    new = next_end(current, proposed, chunk, cap)
    if proposed <= current or current >= cap:
        assert new == current
        return
    assert current < new <= cap
    assert new == cap or ((new - current) % chunk == 0 and new >= proposed and new - chunk < proposed)


# --- one round, on runs made of random walks (no LAMMPS) -----------------------------------------------------

def walk_ladder(tmp_path, n_frames=401, dt_ps=0.01, ea_ev=0.3):
    """Three finished runs of one potential at 500, 600, 700 K whose Li walk with an Arrhenius D (Ea = 0.3 eV),
    each with a restart file to be extended from; and the study they belong to."""
    root = tmp_path / "walks"
    rng = np.random.default_rng(7)
    dirs = []
    for t in (500.0, 600.0, 700.0):
        d_a2_ps = 40.0 * math.exp(-ea_ev / (K_B_EV_PER_K * t))
        dirs.append(write_fake_run(root, "fumi-tosi", t, 1, random_walk(n_frames, 20, d_a2_ps, dt_ps, rng), dt_ps,
                                   **{"temperatures_k": [500.0, 600.0, 700.0], "analysis.window_ps": [0.2, 2.0],
                                      "analysis.min_events": 0}))
        (dirs[-1] / "final.restart").write_bytes(b"a restart file")
    config = RunDir(dirs[0]).read().config
    return root, dirs, config


def study_of_walks(config, **precision):
    return study_from_dict({**config, "precision": precision}, "test.toml")


def test_a_round_checks_the_fit_and_extends_by_whole_chunks(tmp_path):
    root, dirs, config = walk_ladder(tmp_path)
    study = study_of_walks(config, ea_stderr_ev=1e-4, max_production_ps=20.0, chunk_ps=1.5)
    asked = []

    def double(analysis, series, spec):
        asked.append(series)
        return {r.temperature_k: 2.0 * 4.0 for r in analysis.results}  # 8 ps: 4 ps more, 3 chunks of 1.5 ps

    # σ(Ea) of the check against an independent weighted least-squares fit of ln D on 1/kT
    from analysis.study import analyse_study

    results = analyse_study(root).results
    x = np.array([1.0 / (K_B_EV_PER_K * r.temperature_k) for r in results])
    y = np.log([r.estimates["li"].d_cm2_s for r in results])
    sig = np.array([r.estimates["li"].d_stderr_cm2_s / r.estimates["li"].d_cm2_s for r in results])
    _, cov = np.polyfit(x, y, 1, w=1 / sig, cov="unscaled")
    chi2 = np.sum(((y - np.polyval(np.polyfit(x, y, 1, w=1 / sig), x)) / sig) ** 2)
    scale = chi2 if chi2 > 3.84 else 1.0  # the fit widens its errors by χ² when the scatter is too large
    rnd = take_round(study, root, dirs, double)
    assert asked == ["fumi-tosi"] and rnd.decision == "extend" and rnd.number == 0
    (c,) = rnd.checks
    assert c.ea_stderr_ev == pytest.approx(math.sqrt(cov[0, 0] * scale), rel=1e-6)
    assert not c.met and c.excluded == ()
    for d in dirs:
        s = RunDir(d).read()
        assert s.status == "interrupted" and s.production_ps == pytest.approx(8.5)  # 4 + 3 × 1.5
        assert s.precision.outcome == "running" and len(s.precision.extensions) == 1
        ext = s.precision.extensions[0]
        assert (ext.round, ext.from_step, ext.to_step) == (1, 400, 850)
    journal = json.loads((root / JOURNAL).read_text())
    assert journal["outcome"] == "running" and [r["decision"] for r in journal["rounds"]] == ["extend"]
    assert journal["rounds"][0]["simulated_ps"] == pytest.approx(12.0)
    assert journal["rounds"][0]["planned_simulated_ps"] == pytest.approx(25.5)


def test_a_met_target_stops_and_every_run_says_so(tmp_path):
    root, dirs, config = walk_ladder(tmp_path)
    study = study_of_walks(config, ea_stderr_ev=10.0, max_production_ps=20.0)
    rnd = take_round(study, root, dirs, lambda *a: pytest.fail("a met target asks the planner nothing"))
    assert rnd.decision == "met" and rnd.checks[0].met and not rnd.extended
    for d in dirs:
        s = RunDir(d).read()
        assert s.status == "finished" and s.precision.outcome == "met" and s.precision.production_ps == 4.0
        assert s.precision.extensions == () and "σ(Ea) <= 10 eV" in s.precision.target
    assert json.loads((root / JOURNAL).read_text())["outcome"] == "met"
    # asked again with nothing changed (a second array task, driver run again): the decision stands, unrecorded
    again = take_round(study, root, dirs, lambda *a: pytest.fail("decided already"))
    assert again.decision == "met" and len(json.loads((root / JOURNAL).read_text())["rounds"]) == 1


def test_runs_at_the_cap_are_not_extended_further(tmp_path):
    root, dirs, config = walk_ladder(tmp_path)
    study = study_of_walks(config, ea_stderr_ev=1e-4, max_production_ps=4.0)
    rnd = take_round(study, root, dirs, lambda analysis, series, spec: {600.0: 1000.0})
    assert rnd.decision == "cap-reached" and not rnd.extended
    assert {RunDir(d).read().precision.outcome for d in dirs} == {"cap-reached"}


def test_where_the_planner_cannot_plan_each_state_grows_as_its_error_asks(tmp_path, caplog):
    """σ ∝ 1/√t: a fit's σ(Ea) 1.5 times the target asks 1.5² = 2.25 times the length, 9 ps; in whole chunks of
    the pilot's 4 ps, 12 ps."""
    from analysis.study import analyse_study
    from driver.precision import planner_policy

    root, dirs, config = walk_ladder(tmp_path)  # no defect in these runs: no events to plan with
    (c,) = check(analyse_study(root), study_of_walks(config, ea_stderr_ev=1.0, max_production_ps=20.0).precision)
    study = study_of_walks(config, ea_stderr_ev=c.ea_stderr_ev / 1.5, max_production_ps=20.0)  # chunk: 4 ps
    rnd = take_round(study, root, dirs, planner_policy)
    assert rnd.decision == "extend" and "the planner cannot plan fumi-tosi" in caplog.text
    assert {RunDir(d).read().production_ps for d in dirs} == {12.0}


def test_only_a_finished_run_is_extended(tmp_path):
    from driver.runner import request_extension

    root, dirs, _ = walk_ladder(tmp_path)
    record = PrecisionRecord("σ(Ea) <= 0.01 eV", 8.0)
    with pytest.raises(LammpsError, match="already runs to step 400"):
        request_extension(dirs[0], 400, record)
    request_extension(dirs[0], 800, record)
    with pytest.raises(LammpsError, match="interrupted, not finished"):
        request_extension(dirs[0], 1200, record)
    (dirs[1] / "final.restart").unlink()
    with pytest.raises(LammpsError, match="no restart file"):
        request_extension(dirs[1], 800, record)


def host_unstable(root, dirs, temperatures):
    """stability.json marking the walks at these temperatures host-unstable (as driver/stability.py would)."""
    from analysis.study import series_of
    from core.stability import HostStability, StabilityPoint, StabilityScan, write_stability

    lower = HostStability(False, 0.06, 1.2, (8.0, 8.0, 8.0, 0.0, 0.0, 0.0), 64, 32, 0.1, 0, "a lower structure")
    write_stability(StabilityScan(tuple(
        StabilityPoint("fumi-tosi", series_of(RunDir(d).read()), t, (str(d),), lower)
        for t, d in zip((500.0, 600.0, 700.0), dirs)
        if t in temperatures)), root)


def test_a_round_tests_the_hosts_first_and_a_stale_met_is_checked_again(tmp_path, monkeypatch):
    """The host test runs inside the round, before the analysis; a "met" decided before a state's host was found
    unstable is not reused: the fit without 600 and 700 K has one point, no σ(Ea), the target is missed."""
    import driver.precision as precision

    root, dirs, config = walk_ladder(tmp_path)
    study = study_of_walks(config, ea_stderr_ev=10.0, max_production_ps=20.0)
    scans = []
    monkeypatch.setattr(precision, "scan_after_run", lambda study_dir: scans.append(study_dir))
    assert take_round(study, root, dirs, lambda *a: {}).decision == "met" and scans == [root]
    monkeypatch.setattr(precision, "scan_after_run", lambda study_dir: host_unstable(root, dirs, (600.0, 700.0)))
    rnd = take_round(study, root, dirs, lambda *a: {})  # same lengths, same target: only the fresh check differs
    (c,) = rnd.checks
    assert rnd.decision == "extend" and c.ea_stderr_ev is None and c.excluded == (600.0, 700.0) and not c.met
    assert [r["decision"] for r in json.loads((root / JOURNAL).read_text())["rounds"]] == ["met", "extend"]


def test_d_rel_stderr_is_checked_on_the_states_the_fit_uses(tmp_path):
    from analysis.study import analyse_study

    root, dirs, config = walk_ladder(tmp_path)
    host_unstable(root, dirs, (700.0,))
    spec = study_of_walks(config, d_rel_stderr=1.0, max_production_ps=20.0).precision
    (c,) = check(analyse_study(root), spec)
    assert set(c.d_rel_stderr) == {500.0, 600.0} and c.excluded == (700.0,) and c.met
    tight = dataclasses.replace(spec, d_rel_stderr=min(c.d_rel_stderr.values()) * 0.99)
    assert not check(analyse_study(root), tight)[0].met


def test_rounds_used_up_are_told_apart_from_the_cap(tmp_path):
    root, dirs, config = walk_ladder(tmp_path)
    study = study_of_walks(config, ea_stderr_ev=1e-4, max_production_ps=20.0, max_rounds=1)
    (root / JOURNAL).write_text(json.dumps({"rounds": [{"round": 0, "decision": "extend"}]}))  # one round done
    rnd = take_round(study, root, dirs, lambda *a: pytest.fail("no rounds left to plan"))
    assert rnd.decision == "rounds-exhausted" and not rnd.extended
    assert {RunDir(d).read().precision.outcome for d in dirs} == {"rounds-exhausted"}
    assert json.loads((root / JOURNAL).read_text())["outcome"] == "rounds-exhausted"


def test_decide_rounds_to_chunks_under_the_cap_and_stops_for_the_right_reason():
    from driver.precision import SeriesCheck, decide
    from inputs.study import PrecisionSpec

    spec = PrecisionSpec(ea_stderr_ev=0.02, max_production_ps=100.0, max_rounds=3)
    missed = (SeriesCheck("a", 0.04, {}, (), False), SeriesCheck("b", 0.01, {}, (), True))
    now = {"a": {500.0: 10.0, 600.0: 10.0}, "b": {500.0: 10.0, 600.0: 10.0}}
    plan = {"a": {500.0: 31.0, 600.0: 10.0}}
    done = decide(missed, now, spec, 10.0, 0, plan.__getitem__)  # b met: never planned
    assert (done.decision, done.lengths_ps, done.proposed_ps) == ("extend", {"a": {500.0: 40.0}}, plan)
    capped = decide(missed, {**now, "a": {500.0: 100.0, 600.0: 100.0}}, spec, 10.0, 0, lambda s: {500.0: 200.0})
    assert capped.decision == "cap-reached" and capped.lengths_ps == {}
    # the planner adds nothing, the fit misses by 2: σ ∝ 1/√t asks 4 times the length (a chunk more at least)
    assert decide(missed, now, spec, 10.0, 0, lambda s: {}).lengths_ps == {"a": {500.0: 40.0, 600.0: 40.0}}
    nofit = (SeriesCheck("a", None, {}, (), False),)
    assert decide(nofit, now, spec, 10.0, 2, lambda s: {}).lengths_ps == {"a": {500.0: 20.0, 600.0: 20.0}}
    assert decide(nofit, now, spec, 10.0, 3, lambda s: {}).decision == "rounds-exhausted"
    assert decide(missed[1:], now, spec, 10.0, 3, lambda s: {}).decision == "met"


def test_a_single_temperature_series_is_refused_before_any_run(tmp_path):
    root, dirs, config = walk_ladder(tmp_path)
    study = study_of_walks(config, ea_stderr_ev=0.01, max_production_ps=20.0)
    with pytest.raises(InputError, match="precision.ea_stderr_ev: the series fumi-tosi .* runs only at 700 K"):
        run_to_precision(study, root, dirs[2:], lambda d: pytest.fail("nothing runs"), lambda *a: {})


# --- extension through LAMMPS ----------------------------------------------------------------------------------

def steps_and_positions(run_dir):
    """The run's Li trajectory as the analysis reads it (text dump or DCD): steps and positions."""
    from analysis.runs import read_li

    run = RunDir(run_dir)
    traj = read_li(run, run.read())
    return traj.steps, traj.positions


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["text", "dcd"])
def test_an_extended_run_is_the_uninterrupted_run_frame_for_frame(tmp_path, fmt):
    """Extending a finished 0.6 ps run to 1.2 ps from its final restart gives the trajectory that one
    uninterrupted 1.2 ps run gives: same steps (no gap, no frame twice), same positions (the dump's 8 decimals;
    the DCD's float32), same F centre of mass — Fumi-Tosi on one thread is deterministic across a restart."""
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import request_extension, run_one

    lmp = find_lammps()
    changes = {"md.dump_format": fmt, "temperatures_k": [700.0]}
    d_only = {"d_rel_stderr": 0.1, "max_production_ps": 2.4}
    (short,) = render_study(precise_study(d_only, **changes), tmp_path / "extended")
    (whole,) = render_study(precise_study(d_only, **changes, **{"md.production_ps": 1.2}), tmp_path / "whole")
    run_one(short, lmp, progress=False)
    assert (RunDir(short).read().outputs.last_step, RunDir(short).read().outputs.frames) == (700, 121)
    request_extension(short, 1300, PrecisionRecord("test", 1.2))
    s = run_one(short, lmp, progress=False)
    run_one(whole, lmp, progress=False)
    assert s.status == "finished" and s.stages.production_end == 1300 and s.segments == 2
    assert s.outputs.frames == 241 and s.outputs.last_step == 1300 and len(s.outputs.logs) == 2
    steps_a, pos_a = steps_and_positions(short)
    steps_b, pos_b = steps_and_positions(whole)
    assert steps_a.tolist() == list(range(100, 1301, 5)) == steps_b.tolist()
    np.testing.assert_allclose(pos_a, pos_b, atol=1e-6 if fmt == "text" else 1e-4)
    fa, fb = np.loadtxt(short / "fcom.txt"), np.loadtxt(whole / "fcom.txt")
    assert fa.shape == fb.shape == (241, 4)
    np.testing.assert_allclose(fa, fb, atol=1e-8)
    assert s.state.samples == RunDir(whole).read().state.samples  # the production thermo of both attempts
    from analysis.study import analyse_study

    (ra,) = analyse_study(tmp_path / "extended" / "tiny").results
    (rb,) = analyse_study(tmp_path / "whole" / "tiny").results
    assert ra.estimates["li"].d_cm2_s == pytest.approx(rb.estimates["li"].d_cm2_s, rel=1e-6)


def kill_extension_midway(run_dir, lmp) -> int:
    """Start the extension of ``run_dir`` as the driver would (next segment, from its newest restart, to its
    recorded end), SIGKILL LAMMPS mid-way; the step of the last frame it wrote."""
    from driver.lammps import lammps_env
    from driver.runner import lammps_command

    run = RunDir(run_dir)
    s = run.read()
    segment = max(int(p.name.split(".")[1]) for p in run.logs()) + 1
    proc = subprocess.Popen(lammps_command(lmp, (), segment, run.restarts()[0],
                                           production_end=s.stages.production_end),
                            cwd=run_dir, env=lammps_env(lmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dump = run.segment(segment, "text")
    frames_wanted = (s.stages.production_end - s.outputs.last_step) // 5 // 2
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and \
            sum(1 for _ in (iter_frames(dump) if dump.exists() else ())) < frames_wanted:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return max(st for st, _ in iter_frames(dump))


@pytest.mark.integration
def test_the_loop_extends_until_the_target_and_resumes_after_a_kill(tmp_path):
    """A three-temperature ladder: the pilot (0.6 ps) misses a target set below its own σ(Ea); the loop extends
    every state by whole chunks (a planner that asks twice the length), a kill in the middle of an extension
    leaves the study resumable, and running the loop again finishes the round and stops with σ(Ea) at most the
    target, or at the cap; every run's record and precision.json say so."""
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import run_many

    lmp = find_lammps()
    study = precise_study(**{"temperatures_k": [600.0, 700.0, 800.0], "analysis.min_events": 0})
    paths = render_study(study, tmp_path)
    study_dir = tmp_path / study.name
    assert not run_many(paths, lmp, progress=False)  # the pilot
    from analysis.study import analyse_study

    (pilot,) = check(analyse_study(study_dir), study.precision)
    assert pilot.ea_stderr_ev is not None and pilot.excluded == ()
    target = 0.85 * pilot.ea_stderr_ev  # missed by the pilot; about what twice the length gives
    study = dataclasses.replace(study, precision=dataclasses.replace(study.precision, ea_stderr_ev=target))
    asked: list[dict[float, float]] = []

    def twice(analysis, series, spec):
        lengths = {r.temperature_k: 2 * max(RunDir(d).read().production_ps for d in r.run_dirs)
                   for r in analysis.results}
        asked.append(lengths)
        return lengths

    calls = []

    def crash_in_the_extension(dirs):
        calls.append(len(calls))
        if len(calls) == 1:
            return run_many(dirs, lmp, progress=False)  # the pilot: already finished, nothing runs
        killed_at = kill_extension_midway(dirs[0], lmp)
        assert 700 < killed_at < 1300
        raise KeyboardInterrupt  # the driver dies with it

    with pytest.raises(KeyboardInterrupt):
        run_to_precision(study, study_dir, paths, crash_in_the_extension, twice)
    assert asked == [{600.0: 1.2, 700.0: 1.2, 800.0: 1.2}]
    s = RunDir(paths[0]).read()
    assert s.status == "interrupted" and s.stages.production_end == 1300 and s.precision.outcome == "running"
    # running the loop again: the killed extension resumes, the others run, the next round decides
    rnd = run_to_precision(study, study_dir, paths, lambda dirs: run_many(dirs, lmp, progress=False), twice)
    journal = json.loads((study_dir / JOURNAL).read_text())
    decisions = [r["decision"] for r in journal["rounds"]]
    assert decisions[0] == "extend" and decisions[-1] == rnd.decision in ("met", "cap-reached", "rounds-exhausted")
    assert [r["round"] for r in journal["rounds"]] == list(range(len(decisions)))  # no round taken twice
    (last,) = rnd.checks
    if rnd.decision == "met":
        assert last.ea_stderr_ev <= target
    else:
        assert any(RunDir(p).read().production_ps == pytest.approx(2.4) for p in paths) or len(decisions) > 6
    for p in paths:
        s = RunDir(p).read()
        end = s.stages.production_end
        assert s.status == "finished" and s.precision.outcome == rnd.decision
        assert s.precision.production_ps == pytest.approx(s.production_ps) and s.outputs.last_step == end
        assert [e.to_step for e in s.precision.extensions] == [1300, 2500][:len(s.precision.extensions)]
        assert [st for st, _ in iter_frames(p / "traj.dump")] == list(range(100, end + 1, 5))
    assert journal["outcome"] == rnd.decision
    assert journal["rounds"][-1]["simulated_ps"] == pytest.approx(sum(RunDir(p).read().production_ps
                                                                      for p in paths))


# --- on a cluster: the last task decides and resubmits a follow-up array ---------------------------------------

@pytest.mark.integration
def test_a_cluster_array_extends_through_follow_up_arrays(tmp_path):
    """Through the stand-in sbatch (tasks run one after the other): the first task finds the other run unfinished
    and leaves; the last one takes the round, extends both runs (an unreachable σ(D)/D target) and resubmits both
    tasks as a follow-up array (--array=0,1); their last one finds every run at the cap and stops. The script
    with its precision block lints, and the records say what happened."""
    from driver.cluster import load_site, write_cluster_scripts
    from driver.render import render_study
    from tests.test_cluster import lint, site_file, standin_env

    study = precise_study({"d_rel_stderr": 1e-6, "max_production_ps": 1.2, "chunk_ps": 0.6},
                          **{"temperatures_k": [600.0, 700.0]})
    runs = render_study(study, tmp_path / "r")
    study_dir = tmp_path / "r" / study.name
    files = write_cluster_scripts(study_dir, runs, load_site(site_file(tmp_path)))
    job = study_dir / "cluster" / "job-cpu.sh"
    assert "-m driver precision-round ." in job.read_text() and study_dir / "cluster" / "arrays.json" in files
    lint(job)
    out = subprocess.run(["bash", str(study_dir / "cluster" / "submit.sh")], env=standin_env(tmp_path),
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "standin.log").read_text()
    assert "exited" not in log, log
    submitted = [line for line in log.splitlines() if line.startswith("cluster/")]
    assert submitted == ["cluster/job-cpu.sh 0 1", "cluster/job-cpu.sh 0 1"]  # the array, then its follow-up
    first = (study_dir / "cluster" / "logs" / "standin-4242_0.out").read_text()
    assert "not finished yet" in first
    journal = json.loads((study_dir / JOURNAL).read_text())
    assert [r["decision"] for r in journal["rounds"]] == ["extend", "cap-reached"]
    for run in runs:
        s = RunDir(run).read()
        assert s.status == "finished" and s.stages.production_end == 1300 and s.outputs.last_step == 1300
        assert s.precision.outcome == "cap-reached" and [e.to_step for e in s.precision.extensions] == [1300]
        assert [st for st, _ in iter_frames(run / "traj.dump")] == list(range(100, 1301, 5))


@pytest.mark.integration
def test_driver_run_loops_with_the_planner_until_the_target_or_the_cap(tmp_path, capsys):
    """``python -m driver run`` on a study file with [precision]: the pilot, the planner's extensions (or one
    chunk where it cannot plan), until σ(Ea) is at most the target or the runs are at the cap; then the usual
    table. ``driver status`` shows an extension asked as ``extending``."""
    from analysis.study import analyse_study
    from driver.__main__ import main as driver_main
    from tests.conftest import study_toml

    path = tmp_path / "tiny.toml"
    path.write_text(study_toml(**{"temperatures_k": [600.0, 700.0, 800.0], "analysis.min_events": 0})
                    + "[precision]\nea_stderr_ev = 0.004\nmax_production_ps = 1.2\nchunk_ps = 0.3\n")
    root = tmp_path / "runs"
    assert driver_main(["run", "--study", str(path), "--root", str(root), "--no-progress"]) == 0
    study_dir = root / "tiny"
    journal = json.loads((study_dir / JOURNAL).read_text())
    assert journal["outcome"] in ("met", "cap-reached", "rounds-exhausted")
    assert (study_dir / "diffusivity.csv").is_file()
    assert journal["rounds"][0]["production_ps"] == {f"fumi-tosi/T{t}K/seed1": 0.6 for t in (600, 700, 800)}
    (c,) = check(analyse_study(study_dir), study_from_dict(
        {**RunDir(study_dir / "fumi-tosi/T600K/seed1").read().config}, "x").precision)
    lengths = [RunDir(d).read().production_ps for d in sorted(study_dir.glob("fumi-tosi/T*/seed1"))]
    if journal["outcome"] == "met":
        assert c.ea_stderr_ev <= 0.004
    else:
        assert max(lengths) == pytest.approx(1.2)
    assert all(RunDir(d).read().precision.outcome == journal["outcome"] for d in study_dir.glob("fumi-tosi/T*/*"))
    # an extension asked, as driver status shows it
    from driver.runner import request_extension

    run = study_dir / "fumi-tosi/T600K/seed1"
    s = RunDir(run).read()
    request_extension(run, s.stages.production_end + 300, s.precision)
    capsys.readouterr()
    driver_main(["status", str(study_dir)])
    assert "extending" in capsys.readouterr().out


@pytest.mark.parametrize("scheduler, expected", [
    ("slurm", "sbatch --parsable --chdir={study} --array=1,2%2 cluster/job-cpu.sh"),
    ("pbs", "qsub cluster/job-cpu.sh"),  # PBS arrays are ranges: the whole array (finished runs end at once)
])
def test_resubmit_names_the_tasks_that_hold_the_extended_runs(tmp_path, monkeypatch, scheduler, expected):
    from driver.cluster import resubmit

    study = tmp_path / "study"
    (study / "cluster").mkdir(parents=True)
    runs = [f"p/T{t}K/seed{k}" for t in (500, 600, 700) for k in (1, 2)]  # 2 per task: tasks 0, 1, 2
    (study / "cluster" / "tasks-cpu").write_bytes(b"".join(r.encode() + b"\0" for r in runs))
    (study / "cluster" / "arrays.json").write_text(json.dumps([{"script": "job-cpu.sh", "tasks": "tasks-cpu",
                                                                "runs_per_task": 2, "scheduler": scheduler,
                                                                "max_parallel": 2}]))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "qsub"):
        (bin_dir / name).write_text(f'#!/bin/bash\necho "{name} $*" >> "{tmp_path}/submitted"\necho 77\n')
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    said = resubmit(study, [str(study / "p/T600K/seed2"), str(study / "p/T700K/seed1")])
    assert (tmp_path / "submitted").read_text().splitlines() == [expected.format(study=study.resolve())]
    assert said == ["job-cpu.sh: task(s) 1,2 resubmitted: 77"]


@pytest.mark.integration
def test_precision_rounds_on_a_real_slurm(tmp_path_factory, tmp_path):
    """On the one-node SLURM of tests/test_slurm.py: the array's last task takes the round and submits, from
    inside its job, the follow-up array of both tasks (``sbatch --array=0,1``); its last task stops at the cap."""
    from driver.__main__ import main as driver_main
    from tests.conftest import study_toml
    from tests.slurm_cluster import start
    from tests.test_slurm import queued, submit, write_site

    site = write_site(tmp_path / "site.toml", time="10:00")
    path = tmp_path / "prec.toml"
    path.write_text(study_toml(name="prec", temperatures_k=[600.0, 700.0])
                    + "[precision]\nd_rel_stderr = 1e-6\nmax_production_ps = 1.2\nchunk_ps = 0.6\n")
    assert driver_main(["render", "--study", str(path), "--root", str(tmp_path / "runs"), "--site", str(site)]) == 0
    study_dir = tmp_path / "runs" / "prec"
    cluster = start(tmp_path_factory.mktemp("slurm"))
    try:
        first = submit(cluster, study_dir)
        deadline = time.monotonic() + 420
        while True:
            journal = json.loads((study_dir / JOURNAL).read_text()) if (study_dir / JOURNAL).exists() else {}
            if journal.get("outcome") in ("met", "cap-reached", "rounds-exhausted") and not queued(cluster, first) \
                    and not cluster.run("squeue", "-h", check=False).strip():  # the follow-up array too
                break
            assert time.monotonic() < deadline, f"{journal}\n{cluster.logs()}"
            time.sleep(2)
    finally:
        cluster.stop()
    assert [r["decision"] for r in journal["rounds"]] == ["extend", "cap-reached"]
    logs = sorted(p.name for p in (study_dir / "cluster" / "logs").glob("*.out"))
    assert len(logs) == 4 and len({name.split("_")[0] for name in logs}) == 2, logs  # the array and its follow-up
    for run in sorted(study_dir.glob("fumi-tosi/T*/seed1")):
        s = RunDir(run).read()
        assert s.status == "finished" and s.outputs.last_step == 1300 and s.precision.outcome == "cap-reached"
        assert [st for st, _ in iter_frames(run / "traj.dump")] == list(range(100, 1301, 5))
