"""Nothing lost, nothing silent: LAMMPS faults end a run with a classified status while the study goes on; a run
killed (SIGKILL) at 20 random points resumes every time to the trajectory of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from analysis.trajectory import read_dump
from core.rundir import RunDir
from driver.__main__ import main as driver_main
from driver.dumps import iter_frames
from driver.lammps import find_lammps
from driver.render import render_study
from driver.runner import classify_failure, run_many, run_one
from tests.conftest import assert_same_d_within_error, make_study

# error lines as LAMMPS, Kokkos and CUDA print them
LINES = [
    ("ERROR: Lost atoms: original 217 current 160 (src/thermo.cpp:494)", "lost-atoms"),
    ("ERROR: Out of range atoms - cannot compute PPPM (src/KSPACE/pppm.cpp:1964)", "lost-atoms"),
    ("ERROR on proc 0: Neighbor list overflow, boost neigh_modify one (src/npair_full_bin.cpp:95)", "neighbor-list"),
    ("ERROR: Kokkos::View allocation of size 40.0 GB failed: cudaErrorMemoryAllocation(2) out of memory",
     "out-of-memory"),
    ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", "out-of-memory"),
    ("ERROR: Unrecognized pair style 'mliap/kk' (src/force.cpp:279)", "missing-style"),
    ("non-finite thermo output at step 40: 40 0.04 nan nan nan nan", "non-finite"),
    ("killed by signal 9", "interrupted"),
    ("ERROR: Something else entirely (src/x.cpp:1)", "lammps-error"),
]


@pytest.mark.parametrize("line, kind", LINES)
def test_failures_are_classified(line, kind):
    assert classify_failure(line) == kind


@pytest.mark.integration
def test_lost_atoms_fail_one_run_and_the_study_goes_on(tmp_path, capsys):
    study = make_study(temperatures_k=[700.0, 200000.0], **{"md.timestep_fs": 2.0, "md.equilibration_ps": 0.2,
                       "md.production_ps": 1.2, "md.dump_interval_ps": 0.01, "md.thermo_interval_ps": 0.01,
                       "md.restart_interval_ps": 0.2})
    runs = render_study(study, tmp_path)
    failed = run_many(runs, find_lammps(), progress=False)
    assert len(failed) == 1 and "lost-atoms" in failed[0]
    by_t = {RunDir(r).read().temperature_k: r for r in runs}
    hot = RunDir(by_t[200000.0]).read()
    assert hot.status == "failed" and hot.failure_class == "lost-atoms" and "Lost atoms" in hot.error
    assert RunDir(by_t[700.0]).read().status == "finished"
    assert driver_main(["status", str(tmp_path / study.name)]) == 0
    assert "failed (lost-atoms)" in capsys.readouterr().out


@pytest.mark.integration
def test_a_model_returning_nan_is_stopped_and_classified(tmp_path, monkeypatch):
    import torch

    from tests.models import tiny_mace

    path = tiny_mace(tmp_path / "nan.model")
    model = torch.load(str(path), weights_only=False)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "readout" in n).fill_(float("nan"))
    torch.save(model, path)
    (tmp_path / "cat.toml").write_text(f'[nan-mace]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{path}"\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(tmp_path / "cat.toml"))
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))
    nan_study = make_study(potentials=["nan-mace"], **{"system.supercell": [2, 2, 2], "md.production_ps": 0.1,
                           "md.dump_interval_ps": 0.002, "md.thermo_interval_ps": 0.01,
                           "md.restart_interval_ps": 0.05, "md.equilibration_ps": 0.02})
    (run,) = render_study(nan_study, tmp_path / "a")
    t0 = time.monotonic()
    with pytest.raises(Exception, match="non-finite"):
        run_one(run, find_lammps(), progress=False)
    s = RunDir(run).read()
    assert s.status == "failed" and s.failure_class == "non-finite" and "nan" in s.error.lower()
    assert time.monotonic() - t0 < 120  # stopped at the first NaN, not run to the end


def _resumable_study():
    return make_study(**{"md.production_ps": 8.0, "md.restart_interval_ps": 0.1, "md.dump_interval_ps": 0.02,
                         "analysis.window_ps": [1.0, 4.0]})  # past the vibrations: an honest error to compare by


@pytest.mark.integration
def test_twenty_random_sigkills_resume_to_the_uninterrupted_trajectory(tmp_path):
    """SIGKILL the whole driver (python and LAMMPS) at random moments, 20 times, resuming after each; then finish.
    Every frame once, in order; D equal to an uninterrupted run's within its error."""
    lmp = find_lammps()
    study = _resumable_study()
    (whole,) = render_study(study, tmp_path / "whole")
    run_one(whole, lmp, progress=False)
    (run,) = render_study(study, tmp_path / "killed")
    rng = np.random.default_rng(2026)
    cmd = [sys.executable, "-m", "driver", "run-task", str(run), "--lmp", lmp]
    kills = 0
    for attempt in range(20):
        before = set(run.glob("traj.*.dump"))
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt % 4 == 0:  # anywhere: Python start-up, the lock, LAMMPS reading its restart ...
            time.sleep(float(rng.uniform(0.05, 1.5)))
        else:  # mid-production, after a random number of new frames
            want = int(rng.integers(2, 20))
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                new = [p for p in run.glob("traj.*.dump") if p not in before]
                if new and new[0].read_bytes().count(b"ITEM: TIMESTEP") >= want:
                    break
                time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert RunDir(run).read().status != "finished", "the run outpaced the kills"
    assert kills == 20
    assert run_one(run, lmp, progress=False).status == "finished"
    steps = [st for st, _ in iter_frames(run / "traj.dump")]
    assert steps == list(range(100, 8101, 20))
    a = read_dump(run / "traj.dump", 1.0, select="type 1")
    b = read_dump(whole / "traj.dump", 1.0, select="type 1")
    # bit-equal at first; later, where LAMMPS rebuilt neighbour lists at other steps after a resume, round-off
    # grows chaotically (as between any two machines): the same statistics, not the same numbers
    np.testing.assert_allclose(a.positions[:50], b.positions[:50], atol=1e-6)
    assert_same_d_within_error(tmp_path / "killed" / study.name, tmp_path / "whole" / study.name)


@pytest.mark.integration
def test_kill_between_merge_and_finish_loses_no_frames(tmp_path, monkeypatch):
    """The merge of dump segments, then their deletion, then the summary: a kill after the deletion must not cost
    the frames of the deleted segments."""
    lmp = find_lammps()
    study = make_study(**{"md.production_ps": 1.0, "md.restart_interval_ps": 0.1})
    (run,) = render_study(study, tmp_path)
    real = RunDir.update

    def killed_at_finish(self, **changes):
        if changes.get("status") == "finished":
            raise KeyboardInterrupt("killed after the merge")
        return real(self, **changes)

    monkeypatch.setattr(RunDir, "update", killed_at_finish)
    with pytest.raises(KeyboardInterrupt):
        run_one(run, lmp, progress=False)
    monkeypatch.setattr(RunDir, "update", real)
    assert not list(run.glob("traj.*.dump")) and (run / "traj.dump").is_file()
    assert run_one(run, lmp, progress=False).status == "finished"
    steps = [st for st, _ in iter_frames(run / "traj.dump")]
    assert steps == list(range(100, 1101, 5))
    assert len(list(run.glob("log.*.lammps"))) == 2  # the second attempt did not overwrite the first's log
