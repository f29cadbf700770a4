"""Job scripts for clusters: a study's run directories as SLURM (or PBS Pro/Torque) array jobs.

``python -m driver render --study paper --accelerator gpu --site mysite.toml`` renders the runs, then writes into
``<root>/<study>/cluster/``:

- ``tasks-gpu`` / ``tasks-cpu`` — the run directories (relative to the study directory, NUL-separated) of the
  ML potentials (GPU tasks) and of the classical ones (CPU tasks);
- ``job-gpu.sh`` / ``job-cpu.sh`` — one array job each (one task per potential × temperature × replica), with the
  site's resources, modules and environment; each task runs ``python -m driver run-task RUN`` (skip if finished,
  resume from the newest restart file, merge dump segments without repeated frames);
- ``submit.sh`` — submits them; ``site.toml`` — the site file as used.

The site file (``inputs/sites/generic-slurm.toml`` documents every key) holds what differs between clusters.
Values that end up on ``#SBATCH``/``#PBS`` lines must be plain tokens; every value used by the shell is quoted,
and the run list is read as NUL-separated data, so names and paths with spaces, quotes or ``$(...)`` stay data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from inputs.errors import InputError
from inputs.io import atomic_write_bytes, atomic_write_text, builtin_toml, read_toml

SCHEDULERS = ("slurm", "pbs")
TOKEN = re.compile(r"^[A-Za-z0-9_.:,@%+=/-]*$")
TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
MEM = re.compile(r"^(\d+[KMGTkmgt]?[Bb]?)?$")
GPU_FAMILIES = ("mace", "deepmd")
CLUSTER_DIR = "cluster"


@dataclass(frozen=True)
class Resources:
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem: str = ""


@dataclass(frozen=True)
class Site:
    scheduler: str = "slurm"
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
    gpu: Resources = field(default_factory=lambda: Resources(8, 1, "32G"))
    cpu: Resources = field(default_factory=lambda: Resources(1, 0, "4G"))
    source: str = "<memory>"


def _no_control(src: str, key: str, value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"{src}: {key}: control characters (newlines, tabs ...) are not allowed: {value!r}")
    return value


def site_from_dict(d: dict, source: str = "<memory>") -> Site:
    known = {f for f in Site.__dataclass_fields__ if f != "source"}
    extra_keys = sorted(set(d) - known)
    if extra_keys:
        raise InputError(f"{source}: {extra_keys[0]}: unknown key; a site has {', '.join(sorted(known))}")
    kw: dict = {}
    for key in ("scheduler", "partition", "account", "qos", "time", "python", "lmp", "plugin_path"):
        if key in d:
            if not isinstance(d[key], str):
                raise InputError(f"{source}: {key}: expected a string, got {d[key]!r}")
            kw[key] = _no_control(source, key, d[key])
    for key in ("modules", "setup", "extra"):
        if key in d:
            if not isinstance(d[key], list) or not all(isinstance(v, str) for v in d[key]):
                raise InputError(f"{source}: {key}: expected a list of strings")
            kw[key] = tuple(_no_control(source, key, v) for v in d[key])
    if "max_parallel" in d:
        if not isinstance(d["max_parallel"], int) or d["max_parallel"] < 0:
            raise InputError(f"{source}: max_parallel: expected a non-negative integer")
        kw["max_parallel"] = d["max_parallel"]
    if "requeue_on_timeout" in d:
        kw["requeue_on_timeout"] = bool(d["requeue_on_timeout"])
    for kind in ("gpu", "cpu"):
        if kind in d:
            t = d[kind]
            bad = sorted(set(t) - set(Resources.__dataclass_fields__))
            if bad:
                raise InputError(f"{source}: {kind}.{bad[0]}: unknown key; {kind} has cpus_per_task, gpus_per_task, mem")
            for k in ("cpus_per_task", "gpus_per_task"):
                if k in t and (not isinstance(t[k], int) or t[k] < 0 or (k == "cpus_per_task" and t[k] < 1)):
                    raise InputError(f"{source}: {kind}.{k}: expected a {'positive' if k == 'cpus_per_task' else 'non-negative'} integer")
            default = Site.__dataclass_fields__[kind].default_factory()
            kw[kind] = Resources(t.get("cpus_per_task", default.cpus_per_task),
                                 t.get("gpus_per_task", default.gpus_per_task), str(t.get("mem", default.mem)))
    site = Site(source=source, **kw)
    _validate(site)
    return site


def _validate(s: Site) -> None:
    src = s.source
    if s.scheduler not in SCHEDULERS:
        raise InputError(f"{src}: scheduler: {s.scheduler!r} is not one of {SCHEDULERS}")
    for key in ("partition", "account", "qos"):
        if not TOKEN.match(getattr(s, key)):
            raise InputError(f"{src}: {key}: {getattr(s, key)!r} is not a plain name (letters, digits, _.:,@%+=/-)")
    if not TIME.match(s.time):
        raise InputError(f"{src}: time: {s.time!r} is not a time limit like 24:00:00 or 2-00:00:00")
    for kind in ("gpu", "cpu"):
        if not MEM.match(getattr(s, kind).mem):
            raise InputError(f"{src}: {kind}.mem: {getattr(s, kind).mem!r} is not a size like 32G")
    if not s.python.strip() or not s.lmp.strip():
        raise InputError(f"{src}: python and lmp must name executables")


def load_site(name_or_path: str | Path) -> Site:
    """A built-in site by name (``generic-slurm``, ``generic-pbs``) or a site file by path."""
    path = builtin_toml(name_or_path, "inputs.sites", "site")
    return site_from_dict(read_toml(path, "site"), str(path))


def _job_name(study: str, kind: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"lif-{study}-{kind}")
    return name[:64]


def write_cluster_scripts(study_dir: Path, run_dirs: list[Path], site: Site) -> list[Path]:
    """Task lists, array job scripts and submit.sh for the run directories of one study."""
    import json

    from driver import summary as summ
    from templates import render

    study_dir = Path(study_dir)
    out = study_dir / CLUSTER_DIR
    (out / "logs").mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[tuple[str, list[str]]]] = {"gpu": [], "cpu": []}
    for d in run_dirs:
        s = json.loads((Path(d) / "summary.json").read_text())
        kind = "gpu" if s["potential_entry"]["family"] in GPU_FAMILIES else "cpu"
        rel = str(Path(d).relative_to(study_dir))
        if "\0" in rel:
            raise InputError(f"run directory {rel!r} contains a NUL character")
        groups[kind].append((rel, list(s.get("lammps_requirements", {}).get("args", []))))
    written, jobs = [], []
    study_name = study_dir.name
    version = summ.versions().get("lif-diffusion", "dev")
    for kind, runs in groups.items():
        tasks = out / f"tasks-{kind}"
        script = out / f"job-{kind}.sh"
        if not runs:
            tasks.unlink(missing_ok=True)
            script.unlink(missing_ok=True)
            continue
        atomic_write_bytes(tasks, b"".join(rel.encode() + b"\0" for rel, _ in runs))
        res: Resources = getattr(site, kind)
        flags = sorted({" ".join(a) or "(none)" for _, a in runs})
        text = render("job.sh.j2", title=f"study {study_name}: {len(runs)} {kind.upper()} run(s)", version=version,
                      tasks_file=f"{CLUSTER_DIR}/{tasks.name}", lmp_flags="; ".join(flags), scheduler=site.scheduler,
                      job_name=_job_name(study_name, kind), n_tasks=len(runs), max_parallel=site.max_parallel,
                      time=site.time, cpus_per_task=res.cpus_per_task, gpus_per_task=res.gpus_per_task,
                      mem=res.mem, partition=site.partition, account=site.account, qos=site.qos,
                      extra=site.extra, modules=site.modules, setup=site.setup, python=site.python, lmp=site.lmp,
                      plugin_path=site.plugin_path, requeue_on_timeout=site.requeue_on_timeout)
        atomic_write_text(script, text)
        script.chmod(0o755)
        written += [tasks, script]
        jobs.append({"script": script.name, "n_tasks": len(runs)})
    submit = out / "submit.sh"
    atomic_write_text(submit, render("submit.sh.j2", study=study_name, n_runs=len(run_dirs), jobs=jobs,
                                     scheduler=site.scheduler))
    submit.chmod(0o755)
    if Path(site.source).is_file():
        atomic_write_text(out / "site.toml", Path(site.source).read_text())
    return written + [submit]
