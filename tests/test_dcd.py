"""Binary trajectories (md.dump_format = "dcd") and the bounded-memory MSD: same physics as the text path, the
same MSD as MDAnalysis's EinsteinMSD on the same file, resumable runs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from analysis.msd import msd, msd_by_particle
from analysis.runs import read_li
from analysis.study import analyse_study
from analysis.trajectory import read_dcd
from core.rundir import RunDir
from driver.dumps import dcd_steps
from driver.lammps import find_lammps
from driver.render import render_study
from driver.runner import run_one
from tests.conftest import assert_same_d_within_error, make_study


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunked_msd_equals_the_whole_at_once(chunk):
    x = np.cumsum(np.random.default_rng(chunk).normal(size=(700, 23, 3)), axis=0)
    whole = msd_by_particle(x).mean(axis=1)
    np.testing.assert_allclose(msd(x, chunk=chunk), whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(msd(x.astype(np.float32)), msd_by_particle(x.astype(np.float32)).mean(axis=1),
                               rtol=1e-12)


@pytest.fixture(scope="module")
def dcd_and_text(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmt")
    lmp = find_lammps()
    out = {}
    for fmt in ("dcd", "text"):
        (run,) = render_study(make_study(**{"md.dump_format": fmt}), root / fmt)
        run_one(run, lmp, progress=False)
        out[fmt] = run
    return out


@pytest.mark.integration
def test_dcd_run_gives_the_text_runs_trajectory_and_d(dcd_and_text):
    dcd, text = dcd_and_text["dcd"], dcd_and_text["text"]
    assert (dcd / "traj.dcd").is_file() and not (dcd / "traj.dump").exists()
    assert dcd_steps(dcd / "traj.dcd") == (100, 5, 121)
    s_dcd = RunDir(dcd).read()
    s_txt = RunDir(text).read()
    a, b = read_li(RunDir(dcd), s_dcd), read_li(RunDir(text), s_txt)
    assert a.positions.dtype == np.float32 and np.array_equal(a.steps, b.steps)
    assert np.array_equal(a.atom_ids, b.atom_ids)
    np.testing.assert_allclose(a.positions, b.positions, atol=2e-5)  # float32 vs 8 decimals
    d = a.subset(s_dcd.structure["defect"]["atom_ids"])
    assert d.positions.shape[1] == 1 and d.atom_ids.tolist() == s_dcd.structure["defect"]["atom_ids"]
    np.testing.assert_allclose(d.positions[:, 0], b.positions[:, list(b.atom_ids).index(d.atom_ids[0])], atol=2e-5)
    (ra,) = analyse_study(dcd.parents[2]).results
    (rb,) = analyse_study(text.parents[2]).results
    for name in ("li", "defect", "collective"):
        assert ra.estimates[name].d_cm2_s == pytest.approx(rb.estimates[name].d_cm2_s, rel=1e-4)
    assert ra.events == rb.events


@pytest.mark.integration
def test_msd_from_dcd_equals_mdanalysis_einstein_msd(dcd_and_text):
    import MDAnalysis as mda
    from MDAnalysis.analysis.msd import EinsteinMSD

    path = dcd_and_text["dcd"] / "traj.dcd"
    ours = msd(read_dcd(path, 1.0).positions)
    natoms = read_dcd(path, 1.0).positions.shape[1]
    u = mda.Universe.empty(natoms, trajectory=True)
    u.load_new(str(path), format="DCD")
    theirs = EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run().results.timeseries
    np.testing.assert_allclose(ours[1:], theirs[1:], rtol=1e-10)


@pytest.mark.integration
def test_killed_dcd_run_resumes_to_one_monotonic_trajectory(tmp_path):
    lmp = find_lammps()
    study = make_study(**{"md.dump_format": "dcd", "md.production_ps": 4.0, "md.restart_interval_ps": 0.1,
                          "md.dump_interval_ps": 0.01, "analysis.window_ps": [0.5, 2.0]})
    (whole,) = render_study(study, tmp_path / "whole")
    run_one(whole, lmp, progress=False)
    (run,) = render_study(study, tmp_path / "killed")
    for want_frames in (40, 90):
        before = set(run.glob("traj.*.dcd"))
        proc = subprocess.Popen([sys.executable, "-m", "driver", "run-task", str(run), "--lmp", lmp],
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            new = [p for p in run.glob("traj.*.dcd") if p not in before]
            if new and new[0].stat().st_size > 300 + want_frames * (109 * 12 + 24 + 56):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the kill"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(list(run.glob("log.*.lammps"))) == 2
    assert run_one(run, lmp, progress=False).status == "finished"
    assert not list(run.glob("traj.*.dcd"))
    assert dcd_steps(run / "traj.dcd") == (100, 10, 401)
    a, b = read_dcd(run / "traj.dcd", 1.0), read_dcd(whole / "traj.dcd", 1.0)
    np.testing.assert_allclose(a.positions[:30], b.positions[:30], atol=1e-5)
    assert_same_d_within_error(tmp_path / "killed" / study.name, tmp_path / "whole" / study.name)


@pytest.mark.integration
def test_parallel_analysis_equals_serial(dcd_and_text, monkeypatch, tmp_path):
    import shutil

    import analysis.study as study_mod

    root = tmp_path / "both"
    for fmt, run in dcd_and_text.items():  # one state point, two replicas: one DCD, one text
        shutil.copytree(run.parents[2], root / fmt)
    serial = analyse_study(root, jobs=1).results
    for p in [*root.rglob("analysis.*"), root / "study-result.json"]:  # the parallel path must compute, not
        p.unlink()  # read what the serial one kept
    monkeypatch.setattr(study_mod, "PARALLEL_BYTES", 0)
    parallel = analyse_study(root, jobs=2).results
    assert len(serial) == 1 and serial == parallel  # one state point pooling a DCD and a text replica
    assert set(serial[0].estimates) == {"li", "defect", "collective"}


@pytest.mark.integration
def test_numpy_dcd_reader_equals_mdanalysis_reader(dcd_and_text, tmp_path):
    """Our memory-mapped reader against MDAnalysis's C reader: on LAMMPS's DCD and on one MDAnalysis wrote."""
    from MDAnalysis.lib.formats.libdcd import DCDFile

    lammps_file = dcd_and_text["dcd"] / "traj.dcd"
    written = tmp_path / "w.dcd"
    rng = np.random.default_rng(3)
    with DCDFile(str(written), "w") as w:
        w.write_header(remarks="t", natoms=11, istart=40, nsavc=20, delta=0.001, is_periodic=False)
        for _ in range(9):
            w.write(rng.normal(size=(11, 3)).astype(np.float32))
    for path, sel in ((lammps_file, None), (lammps_file, [3, 50, 108]), (written, None), (written, [0, 10])):
        with DCDFile(str(path)) as f:
            want = f.readframes().xyz
            istart, nsavc = f.header["istart"], f.header["nsavc"]
        got = read_dcd(path, 1.0, indices=sel)
        assert np.array_equal(got.positions, want if sel is None else want[:, sel])
        assert got.steps[0] == istart and got.steps[1] - got.steps[0] == nsavc
    with open(written, "ab") as fh:  # a frame cut off by a crash
        fh.write(b"\0" * 30)
    assert read_dcd(written, 1.0).n_frames == 9


@pytest.mark.integration
def test_diffusion_command_line_reads_dcd(dcd_and_text, capsys, tmp_path):
    import shutil

    from analysis.diffusion import main

    path = dcd_and_text["dcd"] / "traj.dcd"
    assert main([str(path), "--timestep-fs", "1", "--fit-start-ps", "0.02", "--fit-end-ps", "0.05",
                 "--json"]) == 0  # the study's window
    got = json.loads(capsys.readouterr().out)
    # the command line takes the file as it is; the study also removes the host lattice's motion (fcom.txt)
    raw = tmp_path / "raw"
    shutil.copytree(dcd_and_text["dcd"].parents[2], raw, ignore=shutil.ignore_patterns("fcom.txt", "analysis.*"))
    want = analyse_study(raw).results[0].estimates["li"]
    assert got["d_cm2_s"] == pytest.approx(want.d_cm2_s, rel=1e-12) and got["n_atoms"] == 109
    assert main([str(path), "--timestep-fs", "1", "--select", "type 1"]) == 2
    assert "drop --select" in capsys.readouterr().err
