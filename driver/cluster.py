"""Job scripts for clusters: a study's run directories as SLURM (or PBS Pro/Torque) array jobs.

``python -m driver render --study paper --accelerator gpu --site mysite.toml`` renders the runs, then writes into
``<root>/<study>/cluster/``:

- ``tasks-gpu`` / ``tasks-cpu`` — the run directories (relative to the study directory, NUL-separated) of the
  ML potentials (GPU tasks) and of the classical ones (CPU tasks);
- ``job-gpu.sh`` / ``job-cpu.sh`` — one array job each (one task per potential × temperature × replica), with the
  site's resources, modules and environment; each task runs ``python -m driver run-task RUN`` (skip if finished,
  resume from the newest restart file, merge dump segments without repeated frames);
- ``submit.sh`` — submits them, after a preflight of the site's LAMMPS for GPU runs (``python -m driver
  preflight``, run in the Python LAMMPS embeds: CuPy, CUDA torch, Python version, DeePMD plugin), which names
  what is missing before anything is queued; ``site.toml`` — the site file as used.

A study with a precision target (``[precision]``, driver/precision.py) gets a follow-up after each task's runs:
``python -m driver precision-round .``, which does nothing until every run of the study is finished; the task that
finishes last (under a lock in the study directory) checks the target, extends the runs that need it and
resubmits, as a follow-up array, the tasks that hold them (SLURM ``sbatch --array=<those tasks>``; PBS the whole
array, whose tasks with nothing to run end at once), which repeat this when they are done: one round per array,
each task within the site's time limit (a task that reaches it is requeued and resumes, as without a target).
A failed run holds the round back until it is run again (``submit.sh`` again: finished runs are skipped).
``arrays.json`` tells it which script and task list each array has.

``[gpu] runs_per_task = k`` packs k runs into each array task, run at once on the task's GPUs (a 433-atom LiF
run uses a small part of a modern GPU); ``[gpu] launcher`` (``srun``, ``mpirun -n 4``) with ``gpus_per_task = N``
spreads one KOKKOS run of a large cell over N GPUs (``-k on g N``).

The site file (``inputs/sites/generic-slurm.toml`` documents every key) holds what differs between clusters.
Values that end up on ``#SBATCH``/``#PBS`` lines must be plain tokens; every value used by the shell is quoted,
and the run list is read as NUL-separated data, so names and paths with spaces, quotes or ``$(...)`` stay data.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core import config
from core.config import from_dict
from core.errors import InputError, LifDiffusionError
from core.files import atomic_write_bytes, atomic_write_text
from core.rundir import RunDir, versions
from inputs.study import study_of
from potentials.catalog import needs_gpu

TOKEN = re.compile(r"^[A-Za-z0-9_.:,@%+=/-]*$")
TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
MEM = re.compile(r"^(\d+[KMGTkmgt]?[Bb]?)?$")
CLUSTER_DIR = "cluster"
ARRAYS = "arrays.json"  # in CLUSTER_DIR: per array job, its script, task list, runs per task and scheduler


@dataclass(frozen=True)
class Resources:
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem: str = ""
    runs_per_task: int = 1  # runs an array task runs at once (packed onto its GPUs, CPUs shared out)
    launcher: str = ""  # in front of lmp, e.g. "srun" or "mpirun -n 4" (KOKKOS runs over several GPUs)


@dataclass(frozen=True)
class GpuResources(Resources):
    """Resources of a task whose potential runs on a GPU (MACE, DeePMD)."""

    cpus_per_task: int = 8
    gpus_per_task: int = 1
    mem: str = "32G"


@dataclass(frozen=True)
class CpuResources(Resources):
    """Resources of a task of a CPU potential (the classical baseline)."""

    mem: str = "4G"


@dataclass(frozen=True)
class Site:
    """A cluster site file (``inputs/sites/generic-slurm.toml`` documents every key)."""

    scheduler: Literal["slurm", "pbs"] = "slurm"
    partition: str = ""
    account: str = ""
    qos: str = ""
    time: str = "24:00:00"
    max_parallel: int = 0
    modules: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    python: str = "python3"
    lmp: str = "lmp"
    plugin_path: str = ""
    requeue_on_timeout: bool = True
    extra: tuple[str, ...] = ()
    gpu: GpuResources = field(default_factory=GpuResources)
    cpu: CpuResources = field(default_factory=CpuResources)
    source: str = field(default="<memory>", metadata={"from_file": False})

    def __post_init__(self) -> None:
        src = self.source
        for key in ("partition", "account", "qos", "time", "python", "lmp", "plugin_path", "modules", "setup",
                    "extra"):
            values = getattr(self, key)
            for v in (values if isinstance(values, tuple) else (values,)):
                if any(ord(c) < 32 or ord(c) == 127 for c in v):
                    raise InputError(f"{src}: {key}: control characters (newlines, tabs ...) are not allowed: {v!r}")
        for key in ("partition", "account", "qos"):
            if not TOKEN.match(getattr(self, key)):
                raise InputError(f"{src}: {key}: {getattr(self, key)!r} is not a plain name (letters, digits, "
                                 "_.:,@%+=/-)")
        if not TIME.match(self.time):
            raise InputError(f"{src}: time: {self.time!r} is not a time limit like 24:00:00 or 2-00:00:00")
        if self.max_parallel < 0:
            raise InputError(f"{src}: max_parallel: expected a non-negative integer, got {self.max_parallel}")
        for kind in ("gpu", "cpu"):
            res: Resources = getattr(self, kind)
            if not MEM.match(res.mem):
                raise InputError(f"{src}: {kind}.mem: {res.mem!r} is not a size like 32G")
            if res.cpus_per_task < 1:
                raise InputError(f"{src}: {kind}.cpus_per_task: expected a positive integer")
            if res.gpus_per_task < 0:
                raise InputError(f"{src}: {kind}.gpus_per_task: expected a non-negative integer")
            if res.runs_per_task < 1:
                raise InputError(f"{src}: {kind}.runs_per_task: expected a positive integer")
            if res.runs_per_task > res.cpus_per_task:
                raise InputError(f"{src}: {kind}.runs_per_task = {res.runs_per_task} runs would share "
                                 f"{res.cpus_per_task} CPU(s): ask for at least one CPU per run (cpus_per_task)")
            if res.launcher and res.runs_per_task > 1:
                raise InputError(f"{src}: {kind}.launcher: a launcher spreads one run over the task's GPUs; it "
                                 f"cannot go with runs_per_task = {res.runs_per_task}")
            if any(ord(c) < 32 or ord(c) == 127 for c in res.launcher):
                raise InputError(f"{src}: {kind}.launcher: control characters are not allowed")
        if not self.python.strip() or not self.lmp.strip():
            raise InputError(f"{src}: python and lmp must name executables")


def site_from_dict(d: dict, source: str = "<memory>") -> Site:
    return from_dict(Site, d, source)


def load_site(name_or_path: str | Path) -> Site:
    """A built-in site by name (``generic-slurm``, ``generic-pbs``) or a site file by path."""
    return config.load(Site, name_or_path, "inputs.sites", "site")


def _job_name(study: str, kind: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"lif-{study}-{kind}")
    return name[:64]


def write_cluster_scripts(study_dir: Path, run_dirs: list[Path], site: Site) -> list[Path]:
    """Task lists, array job scripts and submit.sh for the run directories of one study."""
    from templates import render

    study_dir = Path(study_dir)
    out = study_dir / CLUSTER_DIR
    (out / "logs").mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[tuple[str, tuple[str, ...]]]] = {"gpu": [], "cpu": []}
    preflight: dict[str, set[str]] = {}  # GPU accelerator -> the families its runs use
    precision = False  # any run with a precision target: its tasks end with the round (driver precision-round)
    for d in run_dirs:
        s = RunDir(d).read()
        precision = precision or study_of(s.config, str(RunDir(d).summary_file)).precision.enabled
        kind = "gpu" if needs_gpu(s.family) else "cpu"
        accelerator = s.settings.get("accelerator") or ("kokkos" if s.requirements.kokkos_gpu else "cpu")
        if kind == "gpu" and accelerator in ("cuda", "kokkos"):
            preflight.setdefault(accelerator, set()).add(s.family)
        rel = str(Path(d).relative_to(study_dir))
        if "\0" in rel:
            raise InputError(f"run directory {rel!r} contains a NUL character")
        groups[kind].append((rel, s.requirements.args))
    written, jobs, arrays = [], [], []
    study_name = study_dir.name
    version = versions().get("lif-diffusion", "dev")
    for kind, runs in groups.items():
        tasks = out / f"tasks-{kind}"
        script = out / f"job-{kind}.sh"
        if not runs:
            tasks.unlink(missing_ok=True)
            script.unlink(missing_ok=True)
            continue
        atomic_write_bytes(tasks, b"".join(rel.encode() + b"\0" for rel, _ in runs))
        res: Resources = getattr(site, kind)
        per_task = min(res.runs_per_task, len(runs))
        n_tasks = -(-len(runs) // per_task)
        kokkos = any("-k" in a for _, a in runs)
        flags = sorted({" ".join(a) or "(none)" for _, a in runs})
        text = render("job.sh.j2", title=f"study {study_name}: {len(runs)} {kind.upper()} run(s)", version=version,
                      tasks_file=f"{CLUSTER_DIR}/{tasks.name}", lmp_flags="; ".join(flags), scheduler=site.scheduler,
                      job_name=_job_name(study_name, kind), n_tasks=n_tasks, n_runs=len(runs),
                      runs_per_task=per_task, threads=max(1, res.cpus_per_task // per_task),
                      pin_gpus=bool(res.gpus_per_task), runs_per_gpu=-(-per_task // max(1, res.gpus_per_task)),
                      launcher=res.launcher,
                      kokkos_gpus=res.gpus_per_task if kokkos and per_task == 1 and res.gpus_per_task > 1 else 0,
                      max_parallel=site.max_parallel,
                      time=site.time, cpus_per_task=res.cpus_per_task, gpus_per_task=res.gpus_per_task,
                      mem=res.mem, partition=site.partition, account=site.account, qos=site.qos,
                      extra=site.extra, modules=site.modules, setup=site.setup, python=site.python, lmp=site.lmp,
                      plugin_path=site.plugin_path, requeue_on_timeout=site.requeue_on_timeout,
                      precision=precision)
        atomic_write_text(script, text)
        script.chmod(0o755)
        written += [tasks, script]
        jobs.append({"script": script.name, "n_tasks": n_tasks})
        arrays.append({"script": script.name, "tasks": tasks.name, "runs_per_task": per_task,
                       "scheduler": site.scheduler, "max_parallel": site.max_parallel})
    atomic_write_text(out / ARRAYS, json.dumps(arrays, indent=1) + "\n")
    submit = out / "submit.sh"
    checks = [{"accelerator": acc, "families": sorted(fams)} for acc, fams in sorted(preflight.items())]
    atomic_write_text(submit, render("submit.sh.j2", study=study_name, n_runs=len(run_dirs), jobs=jobs,
                                     scheduler=site.scheduler, preflight=checks, modules=site.modules,
                                     setup=site.setup, python=site.python, lmp=site.lmp,
                                     plugin_path=site.plugin_path))
    submit.chmod(0o755)
    if Path(site.source).is_file():
        atomic_write_text(out / "site.toml", Path(site.source).read_text())
    return written + [submit, out / ARRAYS]


def resubmit(study_dir: Path, run_dirs: list[str]) -> list[str]:
    """Submit again, as a follow-up array, the tasks of the study's arrays that hold ``run_dirs`` (SLURM: those
    task indices; PBS, whose arrays are ranges: the whole array). Returns what each submission printed."""
    study_dir = Path(study_dir).resolve()
    out = study_dir / CLUSTER_DIR
    wanted = {Path(d).resolve() for d in run_dirs}
    try:
        arrays = json.loads((out / ARRAYS).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{out / ARRAYS}: cannot read the study's arrays ({e}): render it again with --site") from None
    said = []
    for a in arrays:
        runs = [r.decode() for r in (out / a["tasks"]).read_bytes().split(b"\0") if r]
        per = a["runs_per_task"]
        tasks = sorted({i // per for i, rel in enumerate(runs) if (study_dir / rel).resolve() in wanted})
        if not tasks:
            continue
        script = f"{CLUSTER_DIR}/{a['script']}"
        if a["scheduler"] == "slurm":
            spec = ",".join(map(str, tasks)) + (f"%{a['max_parallel']}" if a["max_parallel"] else "")
            cmd = ["sbatch", "--parsable", f"--chdir={study_dir}", f"--array={spec}", script]
        else:
            cmd = ["qsub", script]
        done = subprocess.run(cmd, cwd=study_dir, capture_output=True, text=True)
        if done.returncode != 0:
            raise LifDiffusionError(f"{' '.join(cmd)} failed ({done.returncode}): "
                                    f"{done.stderr.strip() or done.stdout.strip()}")
        said.append(f"{a['script']}: task(s) {','.join(map(str, tasks))} resubmitted: {done.stdout.strip()}")
    return said
