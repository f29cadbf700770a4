"""Cluster job scripts: rendered for SLURM and PBS, linted (bash -n, shellcheck), and their task logic run here
through stand-ins for sbatch / scontrol / module (tests/standins), including a task killed mid-run and requeued."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.study import analyse_study
from analysis.trajectory import read_dump
from core.errors import InputError
from core.rundir import RunDir
from driver.__main__ import main as driver_main
from driver.cluster import load_site, site_from_dict, write_cluster_scripts
from driver.dumps import iter_frames
from driver.lammps import find_lammps
from driver.render import render_study
from tests.conftest import make_study

STANDINS = Path(__file__).parent / "standins"
SHELLCHECK = Path(sys.prefix) / "bin" / "shellcheck"
NASTY = "runs 'q' \"dq\" $(touch pwned) `touch pwned2` ;x"


def site_file(tmp_path, scheduler="slurm", **extra) -> Path:
    lines = [f'scheduler = "{scheduler}"', f"python = {json.dumps(sys.executable)}",
             f"lmp = {json.dumps(find_lammps())}", 'modules = ["cuda/12.4", "lammps kokkos \'x\' $(touch pwned3)"]',
             "[cpu]", "cpus_per_task = 1"]
    lines[-2:-2] = [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    p = tmp_path / f"site-{scheduler}.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def lint(path: Path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)
    out = subprocess.run([str(SHELLCHECK), "-x", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def standin_env(tmp_path) -> dict:
    return dict(os.environ, PATH=f"{STANDINS}{os.pathsep}{os.environ['PATH']}", STANDIN_LOG=str(tmp_path / "standin.log"))


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_scripts_pass_bash_n_and_shellcheck(tmp_path, scheduler):
    study = make_study(temperatures_k=[600.0, 700.0], seeds=[1, 2])
    root = tmp_path / "r"
    runs = render_study(study, root)
    site = load_site(site_file(tmp_path, scheduler, partition="gpu-a100", account="proj_1", max_parallel=2,
                               extra=["--constraint=a100"] if scheduler == "slurm" else ["-l place=scatter"]))
    files = write_cluster_scripts(root / study.name, runs, site)
    scripts = [f for f in files if f.suffix == ".sh"]
    assert {f.name for f in scripts} == {"job-cpu.sh", "submit.sh"}
    for f in scripts:
        lint(f)
    job = (root / study.name / "cluster" / "job-cpu.sh").read_text()
    if scheduler == "slurm":
        assert "#SBATCH --array=0-3%2\n" in job and "#SBATCH --partition=gpu-a100\n" in job
        assert "#SBATCH --constraint=a100\n" in job and "#SBATCH --account=proj_1\n" in job
    else:
        assert "#PBS -J 0-3\n" in job and "#PBS -q gpu-a100\n" in job and "#PBS -l place=scatter\n" in job
    tasks = (root / study.name / "cluster" / "tasks-cpu").read_bytes().split(b"\0")[:-1]
    assert sorted(t.decode() for t in tasks) == sorted(str(r.relative_to(root / study.name)) for r in runs)


def test_gpu_runs_get_gpu_resources_and_kokkos_flags(tmp_path, monkeypatch):
    from tests.models import tiny_mace

    model = tiny_mace(tmp_path / "t.model")
    cat = tmp_path / "cat.toml"
    cat.write_text(f'[tiny-mace]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{model}"\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))
    assert driver_main(["render", "--study", str(write_study(tmp_path, ["fumi-tosi", "tiny-mace"])),
                        "--root", str(tmp_path / "r"), "--accelerator", "gpu", "--site", "generic-slurm"]) == 0
    out = tmp_path / "r" / "tiny" / "cluster"
    gpu = (out / "job-gpu.sh").read_text()
    assert "#SBATCH --gpus-per-task=1\n" in gpu and "-k on g 1 -sf kk -pk kokkos newton on neigh half" in gpu
    assert "--gpus-per-task" not in (out / "job-cpu.sh").read_text()
    assert (out / "tasks-gpu").read_bytes() == b"tiny-mace/T700K/seed1\0"
    for f in ("job-gpu.sh", "job-cpu.sh", "submit.sh"):
        lint(out / f)


def write_study(tmp_path, potentials) -> Path:
    from tests.conftest import study_toml

    p = tmp_path / "study.toml"
    p.write_text(study_toml(potentials=potentials))
    return p


@pytest.mark.parametrize("key, value, match", [
    ("partition", "gpu\n#SBATCH --wrap=rm", "control characters"),
    ("partition", "gpu a100", "not a plain name"),
    ("account", "x;rm -rf ~", "not a plain name"),
    ("time", "forever", "not a time limit"),
    ("extra", ["--constraint=a100\necho hi"], "control characters"),
    ("scheduler", "lsf", "not one of"),
    ("gpus", 2, "unknown key"),
])
def test_site_values_that_could_break_a_script_are_refused(key, value, match):
    with pytest.raises(InputError, match=match):
        site_from_dict({key: value}, "site.toml")


@pytest.mark.integration
def test_nasty_names_and_paths_stay_data_through_submit(tmp_path, monkeypatch):
    """A root with spaces, quotes and $(...), a potential named likewise, modules likewise: the scripts lint, the
    array runs every task through the stand-in sbatch, nothing is executed from a name."""
    nasty_pot = "fumi 'tosi' \"x\" $(touch pwned4)"
    cat = tmp_path / "cat.toml"
    cat.write_text((Path(__file__).parents[1] / "potentials" / "catalog.toml").read_text().split("\n[mace-mpa-0]")[0]
                   .replace("[fumi-tosi]", f"[{json.dumps(nasty_pot)}]"))
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    root = tmp_path / NASTY
    study = make_study(potentials=["fumi-tosi", nasty_pot], **{"md.production_ps": 0.2, "md.restart_interval_ps": 0.1,
                                                              "md.dump_interval_ps": 0.002})
    runs = render_study(study, root)
    files = write_cluster_scripts(root / study.name, runs, load_site(site_file(tmp_path)))
    for f in files:
        if f.suffix == ".sh":
            lint(f)
    out = subprocess.run(["bash", str(root / study.name / "cluster" / "submit.sh")], env=standin_env(tmp_path),
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("4242")
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))
    log = (tmp_path / "standin.log").read_text()
    assert "module [load] [lammps kokkos 'x' $(touch pwned3)]" in log and "exited" not in log
    states = {RunDir(r).read().status for r in runs}
    assert states == {"finished"}
    assert {r.potential for r in analyse_study(root / study.name).results} == {"fumi-tosi", nasty_pot}


def run_task(study_dir: Path, env: dict, task: int = 0, **popen) -> subprocess.Popen:
    return subprocess.Popen(["bash", "cluster/job-cpu.sh"], cwd=study_dir, start_new_session=True,
                            env=dict(env, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID="77"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.integration
def test_task_killed_midway_is_requeued_resumes_and_matches_an_uninterrupted_run(tmp_path):
    study = make_study(**{"md.production_ps": 3.0, "md.restart_interval_ps": 0.5, "md.dump_interval_ps": 0.01})
    env = standin_env(tmp_path)
    site = load_site(site_file(tmp_path))
    dirs = {}
    for name in ("killed", "whole"):
        (run,) = render_study(study, tmp_path / name)
        write_cluster_scripts(tmp_path / name / study.name, [run], site)
        dirs[name] = run
    # the whole run, through its task
    assert run_task(dirs["whole"].parents[2], env).wait(timeout=600) == 0
    # the other: TERM to the batch shell mid-production, as SLURM does before a time limit or preemption
    proc = run_task(dirs["killed"].parents[2], env)
    dump = dirs["killed"] / "traj.0.dump"
    deadline = time.time() + 300
    while time.time() < deadline and not (dump.exists() and dump.stat().st_size > 150 * 110 * 40):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output
    s = RunDir(dirs["killed"]).read()
    assert s.status == "interrupted" and "resumed" in s.error
    assert "scontrol requeue 77_0" in (tmp_path / "standin.log").read_text()
    killed_at = max(st for st, _ in iter_frames(dump))
    assert 100 < killed_at < 3100
    status = subprocess.run([sys.executable, "-m", "driver", "status", str(dirs["killed"].parents[2])],
                            capture_output=True, text=True).stdout
    assert "interrupted" in status and "/3100 steps" in status
    # the requeued task resumes and finishes; a third start changes nothing
    assert run_task(dirs["killed"].parents[2], env).wait(timeout=600) == 0
    s = RunDir(dirs["killed"]).read()
    assert s.status == "finished" and s.segments == 2
    stamp = (dirs["killed"] / "traj.dump").stat().st_mtime_ns
    assert run_task(dirs["killed"].parents[2], env).wait(timeout=120) == 0
    assert (dirs["killed"] / "traj.dump").stat().st_mtime_ns == stamp
    # the resumed trajectory: clean, monotonic, and the same as the uninterrupted one
    steps = [st for st, _ in iter_frames(dirs["killed"] / "traj.dump")]
    assert steps == list(range(100, 3101, 10))
    a = read_dump(dirs["killed"] / "traj.dump", 1.0, select="type 1")
    b = read_dump(dirs["whole"] / "traj.dump", 1.0, select="type 1")
    assert np.array_equal(a.times_ps, b.times_ps)
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)  # dumps keep 8 decimals
    (ra,) = analyse_study(dirs["killed"].parents[2]).results
    (rb,) = analyse_study(dirs["whole"].parents[2]).results
    assert ra.estimates["li"].d_cm2_s == pytest.approx(rb.estimates["li"].d_cm2_s, rel=1e-6)
    # copied back from the cluster (rsync -a): the same analysis anywhere
    import shutil

    copy = tmp_path / "back home" / study.name
    shutil.copytree(dirs["killed"].parents[2], copy, ignore=shutil.ignore_patterns("analysis.*", "study-result.json"))
    (rc,) = analyse_study(copy).results  # computed afresh there: no stored analysis was copied
    assert rc.estimates == ra.estimates and rc.events == ra.events


def test_pbs_task_runs_with_pbs_variables(tmp_path):
    study = make_study(**{"md.production_ps": 0.2, "md.restart_interval_ps": 0.1, "md.dump_interval_ps": 0.002})
    (run,) = render_study(study, tmp_path / "r")
    write_cluster_scripts(tmp_path / "r" / study.name, [run], load_site(site_file(tmp_path, "pbs")))
    env = dict(standin_env(tmp_path), PBS_ARRAY_INDEX="0", PBS_O_WORKDIR=str(tmp_path / "r" / study.name))
    out = subprocess.run(["bash", str(tmp_path / "r" / study.name / "cluster" / "job-cpu.sh")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert RunDir(run).read().status == "finished"
