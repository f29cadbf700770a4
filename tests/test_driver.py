import re
import signal
import subprocess
import time

import numpy as np
import pytest

from analysis.trajectory import read_dump
from core.errors import InputError, PotentialError
from core.rundir import RunDir
from driver.__main__ import main as driver_main
from driver.dumps import iter_frames
from driver.lammps import find_lammps, lammps_env
from driver.render import render_study
from driver.runner import lammps_command, run_one
from tests.conftest import make_study


def test_finished_run_has_a_clean_trajectory_and_a_summary(finished_run):
    s = RunDir(finished_run).read()
    assert s.status == "finished" and s.seed == 1 and s.temperature_k == 700.0
    assert s.inputs["in.lammps"]["sha256"] and s.versions["lammps"] and s.lammps.version
    assert s.stages.production_end == 700 and s.outputs.frames == 121
    assert s.state.lattice_constant_angstrom == pytest.approx(4.01) and s.state.lattice_constant_stderr_angstrom is None
    assert s.state.pressure_bar > 10_000  # NVT at the static lattice constant, 700 K: GPa, what NPT avoids
    steps = [st for st, _ in iter_frames(finished_run / "traj.dump")]
    assert steps == list(range(100, 701, 5))  # production only, every dump interval, nothing twice
    assert not list(finished_run.glob("traj.*.dump")) or (finished_run / "traj.dump").exists()


def test_finished_run_is_not_rerun(finished_run):
    before = (finished_run / "traj.dump").stat().st_mtime_ns
    run_one(finished_run, find_lammps(), progress=False)
    assert (finished_run / "traj.dump").stat().st_mtime_ns == before


def test_driver_output_is_analysed(finished_run):
    from analysis.study import analyse_study

    (r,) = analyse_study(finished_run.parents[2]).results
    assert r.potential == "fumi-tosi" and r.n_li == 109 and np.isfinite(r.estimates["li"].d_cm2_s)
    assert r.estimates["li"].n_walkers == 109 and r.estimates["defect"].n_walkers == 1 and r.events is not None


@pytest.mark.integration
def test_killed_run_resumes_to_a_monotonic_trajectory(tmp_path):
    study = make_study(**{"md.production_ps": 3.0, "md.restart_interval_ps": 0.5, "md.dump_interval_ps": 0.01})
    (run_dir,) = render_study(study, tmp_path)
    lmp = find_lammps()
    proc = subprocess.Popen(lammps_command(lmp, (), 0, None), cwd=run_dir, env=lammps_env(lmp),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dump = run_dir / "traj.0.dump"
    deadline = time.time() + 120
    while time.time() < deadline and not (dump.exists() and dump.stat().st_size > 180 * 110 * 40):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(st for st, _ in iter_frames(dump))
    assert 100 < killed_at < 3100, "the kill should land mid-production"
    summary = run_one(run_dir, lmp, progress=False)
    assert summary.status == "finished" and summary.segments == 2
    steps = [st for st, _ in iter_frames(run_dir / "traj.dump")]
    assert steps == list(range(100, 3101, 10))
    traj = read_dump(run_dir / "traj.dump", 1.0, select="type 1")
    assert traj.n_frames == len(steps) and np.all(np.diff(traj.times_ps) > 0)


@pytest.mark.parametrize("changes, error, match", [
    ({"potentials": ["nope"]}, PotentialError, "unknown potential 'nope'"),
    ({"system.supercell": [2, 2, 2]}, InputError, "less than twice the 6.0 Å cutoff"),
])
def test_bad_input_leaves_no_run_directory(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        render_study(make_study(**changes), tmp_path)
    assert not any(tmp_path.iterdir())


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    assert driver_main(["render", "--study", "nosuch", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown study 'nosuch'") and "Traceback" not in err
    assert driver_main(["render", "--study", "default", "--temperature", "-5", "--root", str(tmp_path)]) == 2
    assert "temperatures_k" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_render_is_idempotent_and_protects_started_runs(tmp_path):
    study = make_study()
    (d,) = render_study(study, tmp_path)
    assert render_study(study, tmp_path) == [d]
    RunDir(d).update(status="finished")
    with pytest.raises(InputError, match="different deck"):
        render_study(make_study(**{"md.thermostat_damping_ps": 0.2}), tmp_path)
    with pytest.raises(InputError, match="different deck, structure"):  # same deck, other lattice constant
        render_study(make_study(**{"system.lattice_constant_angstrom": 4.03}), tmp_path)


def test_a_new_package_version_is_not_a_different_deck(tmp_path, monkeypatch):
    """Provenance (package versions, git revision) is recorded, not part of what a run is: upgrading the package
    leaves a finished study usable by `driver run`."""
    import core.rundir

    study = make_study()
    (d,) = render_study(study, tmp_path)
    RunDir(d).update(status="finished")
    before = RunDir(d).read()
    monkeypatch.setattr(core.rundir, "versions", lambda: {"lif-diffusion": "99.0", "lammps": "elsewhere"})
    monkeypatch.setattr(core.rundir, "git_revision", lambda: "f" * 40)
    assert render_study(study, tmp_path) == [d]
    assert RunDir(d).read() == before  # left alone: still the finished run of the same deck
    assert "99.0" not in (d / "in.lammps").read_text()


def test_rerender_of_a_rendered_run_picks_up_a_new_structure(tmp_path):
    (d,) = render_study(make_study(), tmp_path)
    render_study(make_study(**{"system.lattice_constant_angstrom": 4.03}), tmp_path)
    assert re.search(r"^0.0 +12.09 +xlo xhi", (d / "data.lmp").read_text(), re.M)


def test_status_cli(finished_run, capsys):
    assert driver_main(["status", str(finished_run.parents[2])]) == 0
    assert "finished" in capsys.readouterr().out
