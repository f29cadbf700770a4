"""The driver's command line: render a study, run it locally, report what state its runs are in.

    python -m driver render --study default [--root runs] [--temperature 400 ...] [--potential NAME ...]
    python -m driver run    --study default [--temperature 400] [--lmp /path/to/lmp] [--no-progress]
    python -m driver status runs/default
    python -m driver render --study paper --accelerator cuda --site mysite.toml  # + SLURM/PBS array jobs
    python -m driver run    --study paper --accelerator cuda --runs-per-gpu 4      # 4 runs share each GPU
    python -m driver run-task RUN_DIR [RUN_DIR ...] --lmp lmp   # what one array task runs (skip / resume / run)
    python -m driver preflight --lmp lmp --accelerator kokkos   # does this LAMMPS's Python have what runs need?
    python -m driver stability runs/default   # is each temperature's host still a crystal? -> stability.json
    python -m driver precision-round runs/paper   # a study with [precision]: check, extend, resubmit (array tasks)

``run`` renders (idempotently), runs every run that is not finished (resuming interrupted ones), then prints
D ± σ for each potential and temperature and what to run next.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from core import cli

log = logging.getLogger("driver")
ACCELERATOR_CHOICES = ("cpu", "cuda", "kokkos", "gpu")
ACCELERATOR_HELP = ("cpu: the project's LAMMPS, models on the CPU; cuda: the project's LAMMPS (no KOKKOS), MACE "
                    "and DeePMD on the task's CUDA device; kokkos (alias gpu): a KOKKOS-CUDA LAMMPS, -k on g N -sf kk, "
                    "mace-torch's own adapter (default cpu)")


def _study(args):
    from inputs.study import load_study

    study = load_study(args.study)
    temps = tuple(args.temperature) if args.temperature else None
    pots = tuple(args.potential) if args.potential else None
    if temps or pots:
        study = study.restricted(temperatures_k=temps, potentials=pots)
    return study


def cmd_render(args) -> int:
    from driver.render import render_study

    study = _study(args)
    site = None
    if args.site:
        from driver.cluster import load_site

        site = load_site(args.site)  # checked before anything is written
    paths = render_study(study, args.root, accelerator=args.accelerator)
    print(f"rendered {len(paths)} run(s) of study {study.name!r} under {Path(args.root) / study.name}")
    for p in paths:
        print(f"  {p}")
    if site is not None:
        from core.errors import LammpsError
        from driver.cluster import write_cluster_scripts
        from driver.lammps import find_lammps
        from driver.session import check_runs

        try:  # the lines of potentials cheap on a CPU, judged here (run 0) before anything is queued
            check_runs(paths, find_lammps(None))
        except LammpsError as e:
            log.warning("the potentials' lines are not checked here (%s): the cluster's tasks will find out", e)
        study_dir = Path(args.root) / study.name
        files = write_cluster_scripts(study_dir, paths, site)
        print(f"{site.scheduler} job scripts ({site.source}):")
        for f in files:
            print(f"  {f}")
        print(f"submit: bash {shlex.quote(str(study_dir / 'cluster' / 'submit.sh'))}\n"
              f"watch:  python -m driver status {shlex.quote(str(study_dir))}")
    return 0


def cmd_run(args) -> int:
    from analysis.diffusion import format_d
    from analysis.output import write_diffusivity_table
    from analysis.study import analyse_study
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import run_many

    interrupted = _stop_runs_on_term()
    study = _study(args)
    lmp = find_lammps(args.lmp)
    paths = render_study(study, args.root, accelerator=args.accelerator)
    log.info("study %r: %d run(s) under %s; LAMMPS: %s", study.name, len(paths), Path(args.root) / study.name, lmp)
    from driver.session import check_runs

    check_runs(paths, lmp)  # LAMMPS judges the lines of each potential cheap on a CPU (run 0) before any run starts
    gpus = _gpus(args.gpus, args.accelerator)
    if gpus:
        log.info("GPUs %s, %d run(s) per GPU", ",".join(gpus), args.runs_per_gpu)
    failed: list[str] = []

    def run(dirs: list[Path]) -> list[str]:
        failed[:] = run_many(dirs, lmp, jobs=args.jobs, threads=args.threads, progress=not args.no_progress,
                             gpus=gpus, runs_per_gpu=args.runs_per_gpu)
        return failed

    study_dir = Path(args.root) / study.name
    if study.precision.enabled:  # pilot, then extensions until the target is met or the cap reached
        from driver.precision import planner_policy, run_to_precision

        log.info("precision target: %s (each round is kept in precision.json)", study.precision.describe())
        run_to_precision(study, study_dir, paths, run, planner_policy, stopped=lambda: bool(interrupted))
    else:
        run(paths)
    if interrupted:
        log.error("interrupted: every run stopped is marked interrupted and resumes where it was on the next "
                  "'python -m driver run'")
        return 128 + interrupted[0]
    from driver.stability import scan_after_run

    scan_after_run(study_dir)  # classical hosts relaxed at each temperature's cell (seconds): stability.json
    analysis = analyse_study(study_dir)  # every run's numbers are kept beside it: computed once
    table = write_diffusivity_table(analysis, study_dir)
    for r in analysis.results:
        if r.potential not in study.potentials or r.temperature_k not in study.temperatures_k:
            continue
        li, defect = r.estimates.get("li"), r.estimates.get("defect")
        window = f"window {r.window_ps[0]:.3g}-{r.window_ps[1]:.3g} ps" if r.window_ps else "no window"
        print(f"{r.series} {r.temperature_k:g} K: all {analysis.mobile} {format_d(li)}; defect {format_d(defect)}; "
              f"{r.events if r.events is not None else '?'} events, {window}, {len(r.run_dirs)} replica(s)"
              + (f"  [{r.status}: {'; '.join(r.flags)}]" if r.flags else ""))
    q_study, q_dir = shlex.quote(str(args.study)), shlex.quote(str(study_dir))
    print(f"\ntable: {table}\nnext:\n"
          f"  python -m driver run --study {q_study}             # the whole temperature ladder\n"
          f"  python -m analysis.arrhenius {q_dir}        # Ea ± σ, tables and arrhenius.png\n"
          f"  python -m analysis.report {q_dir}           # the HTML report: fits, D bars, MSD diagnostics\n"
          f"  python -m driver status {q_dir}")
    return 1 if failed else 0


def _stop_runs_on_term() -> list[int]:
    """On TERM or Ctrl-C stop every LAMMPS this driver runs: each run ends ``interrupted`` (resumable) and no
    further run starts. Returns the list the signal numbers go into."""
    import signal

    from driver.runner import terminate_all

    interrupted: list[int] = []

    def on_term(signum, frame):
        interrupted.append(signum)
        terminate_all()  # each run ends interrupted (resumable); the workers return

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return interrupted


def _gpus(option: str | None, accelerator: str) -> list[str]:
    """The GPUs runs are packed onto: ``--gpus`` (e.g. ``0,1``), else for GPU accelerators the visible ones."""
    from driver.runner import visible_gpus

    if option is not None:
        return [g.strip() for g in option.split(",") if g.strip()]
    return visible_gpus() if accelerator in ("cuda", "kokkos", "gpu") else []


def cmd_run_task(args) -> int:
    """The runs of one array task, ``--jobs`` at once (packed onto the task's GPUs, ``--runs-per-gpu`` each):
    TERM (preemption, time limit) stops every LAMMPS and leaves each run resumable; exit 0 all finished (or
    already finished), 1 a LAMMPS failed, 143 interrupted."""
    from driver.lammps import find_lammps
    from driver.runner import run_many, visible_gpus

    interrupted = _stop_runs_on_term()
    run_dirs = [Path(d) for d in args.run_dir]
    lmp = find_lammps(args.lmp)
    gpus = visible_gpus() if args.runs_per_gpu else []
    failed = run_many(run_dirs, lmp, jobs=args.jobs or len(run_dirs), threads=args.threads, progress=False,
                      gpus=gpus, runs_per_gpu=args.runs_per_gpu or 1, launcher=tuple(shlex.split(args.launcher)),
                      kokkos_gpus=args.kokkos_gpus)
    from core.rundir import RunDir

    for d in run_dirs:
        s = RunDir(d).read()
        print(f"{d}: {s.status} ({s.outputs.frames if s.outputs else '?'} frames)")
    if interrupted:
        return 128 + interrupted[0]
    return 1 if failed else 0


def cmd_precision_round(args) -> int:
    """After an array task's runs (a study with [precision]): nothing while other runs of the study are
    unfinished; else check the target, extend the runs that need it and resubmit their tasks."""
    from driver.cluster import resubmit
    from driver.precision import cluster_round, describe_round, planner_policy
    from inputs.study import study_of

    study_dir = Path(args.study_dir)
    rnd = cluster_round(study_dir, planner_policy)
    if rnd is None:
        print(f"{study_dir}: other runs of the study are not finished yet; the task that finishes last decides")
        return 0
    from core.rundir import find_runs

    (_, s), *_ = find_runs(study_dir)
    print(describe_round(rnd, study_of(s.config, s.study_source).precision))
    if rnd.extended and not args.no_submit:
        for line in resubmit(study_dir, sorted(rnd.extended)):
            print(line)
    return 0


def cmd_preflight(args) -> int:
    from driver.lammps import find_lammps, preflight
    from potentials.catalog import FAMILIES, needs_gpu

    lmp = find_lammps(args.lmp)
    families = tuple(args.family or (f for f in FAMILIES if needs_gpu(f)))
    pf = preflight(lmp, args.accelerator if args.accelerator != "gpu" else "kokkos", families, args.cuequivariance)
    e = pf.embedded
    print(f"LAMMPS {pf.lammps.executable} ({pf.lammps.version}); packages: {' '.join(sorted(pf.lammps.packages))}"
          + (f"; KOKKOS API: {' '.join(pf.lammps.kokkos_api)}" if pf.lammps.kokkos_api else ""))
    if e:
        torch = e.get("torch") or {}
        print(f"embedded Python {e.get('python')} ({e.get('executable')}); torch {torch.get('version', '-')} "
              f"(CUDA {torch.get('cuda') or '-'}, {torch.get('devices', 0)} device(s) visible here); "
              f"CuPy {e.get('cupy', '-')}; mace-torch {e.get('mace', '-')}; cuEquivariance {e.get('cueq', '-')}")
    if pf.problems:
        print(f"\n{len(pf.problems)} problem(s) for {args.accelerator} runs of {', '.join(families)}:")
        for p in pf.problems:
            print(f"  - {p}")
        return 1
    print(f"ready for {args.accelerator} runs of {', '.join(families)}")
    return 0


def cmd_status(args) -> int:
    from core.rundir import find_runs
    from driver.runner import driver_alive, progress_of

    counts: dict[str, int] = {}
    builds: dict[str, int] = {}
    for run, s in find_runs(Path(args.study_dir)):
        if s.lammps is not None:
            key = f"{s.lammps.version} ({s.lammps.build or s.lammps.executable})"
            builds[key] = builds.get(key, 0) + 1
        counts[s.status] = counts.get(s.status, 0) + 1
        step, total, age_s = progress_of(run, s)
        how_far = f"{step}/{total} steps ({100 * step / total:.0f}%)" if total else ""
        if s.status in ("running", "interrupted", "failed") and age_s is not None:
            how_far += f", log written {_ago(age_s)} ago"
        extra = f"  {s.error}" if s.status in ("failed", "interrupted") and s.error else ""
        label = f"{s.status} ({s.failure_class})" if s.status == "failed" and s.failure_class else s.status
        if s.status == "interrupted" and not s.error and s.precision is not None:
            label = "extending"  # asked to go on toward the study's precision target: the next run resumes it
        if s.status == "running" and not driver_alive(run):
            label = "interrupted (no driver)"
            extra = (f"  its driver (pid {s.pid}) is gone: it was killed without a chance to record it; "
                     "run the study again to resume")
            counts["running"] -= 1
            if not counts["running"]:
                del counts["running"]
            counts[label] = counts.get(label, 0) + 1
        print(f"{label:26s} {run}  {how_far}{extra}")
    print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if len(builds) > 1:
        print("WARNING: the runs used different LAMMPS builds: "
              + "; ".join(f"{k}: {n} run(s)" for k, n in sorted(builds.items())))
    return 0


def cmd_stability(args) -> int:
    """The host test of every (potential, temperature) of a study's finished runs: stability.json."""
    from core.stability import STABILITY
    from driver.stability import scan_study

    scan = scan_study(args.study_dir, seed=args.seed)
    for p in scan.points:
        verdict = p.skipped if p.result is None else ("stable" if p.result.stable else "NOT STABLE")
        print(f"{p.series} {p.temperature_k:g} K: {verdict}" + (f"  {p.result.message}" if p.result else ""))
    print(f"{len(scan.unstable)} of {len(scan.points)} state point(s) flagged host-unstable; written "
          f"{Path(args.study_dir) / STABILITY}")
    return 0


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m driver", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, fn, help_ in (("render", cmd_render, "render a study into run directories"),
                            ("run", cmd_run, "render, run locally and report D ± σ")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--study", default="default", help="built-in study name or path of a .toml file")
        p.add_argument("--root", default="runs", help="where run directories go (default: runs)")
        p.add_argument("--temperature", type=float, action="append", help="only this T in K (repeatable)")
        p.add_argument("--potential", action="append", help="only this potential (repeatable)")
        p.add_argument("--accelerator", choices=ACCELERATOR_CHOICES, default="cpu", help=ACCELERATOR_HELP)
        p.set_defaults(fn=fn)
        if name == "run":
            p.add_argument("--lmp", help="LAMMPS executable (default: LIF_DIFFUSION_LMP, the environment's lmp)")
            p.add_argument("--threads", type=int, default=1, help="OpenMP threads per LAMMPS run (default 1)")
            p.add_argument("--jobs", type=int, default=None,
                           help="runs at once (default: cores / threads)")
            p.add_argument("--no-progress", action="store_true", help="no progress bars")
            p.add_argument("--gpus", help="GPU ids to pack runs onto, e.g. 0,1 (default for cuda/kokkos: the "
                                          "visible ones; '' for none)")
            p.add_argument("--runs-per-gpu", type=int, default=1, help="runs sharing one GPU at once (default 1)")
        else:
            p.add_argument("--site", help="also write array job scripts for this cluster site (a TOML file, or "
                                          "generic-slurm / generic-pbs); see inputs/sites/generic-slurm.toml")
    p = sub.add_parser("run-task", help="run or resume run directories (what a cluster array task does)")
    p.add_argument("run_dir", nargs="+")
    p.add_argument("--lmp", help="LAMMPS executable (default: LIF_DIFFUSION_LMP, the environment's lmp)")
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads per run (default 1)")
    p.add_argument("--jobs", type=int, default=None, help="runs at once (default: all given)")
    p.add_argument("--runs-per-gpu", type=int, default=0,
                   help="pack the runs onto the task's GPUs (CUDA_VISIBLE_DEVICES), this many per GPU (0: no pinning)")
    p.add_argument("--launcher", default="", help="command in front of lmp, e.g. 'srun' or 'mpirun -n 4'")
    p.add_argument("--kokkos-gpus", type=int, default=None, help="GPUs of a KOKKOS run (-k on g N)")
    p.set_defaults(fn=cmd_run_task)
    from potentials.catalog import FAMILIES

    p = sub.add_parser("precision-round", help="what an array task of a study with [precision] does after its runs: "
                                               "the last one checks the target, extends runs, resubmits their tasks")
    p.add_argument("study_dir")
    p.add_argument("--no-submit", action="store_true", help="extend the runs, submit nothing")
    p.set_defaults(fn=cmd_precision_round)
    p = sub.add_parser("preflight", help="check, in the Python that LAMMPS embeds, what GPU runs need")
    p.add_argument("--lmp", help="LAMMPS executable (default: LIF_DIFFUSION_LMP, the environment's lmp)")
    p.add_argument("--accelerator", choices=ACCELERATOR_CHOICES, default="kokkos", help=ACCELERATOR_HELP)
    p.add_argument("--family", action="append", choices=tuple(FAMILIES),
                   help="potential families the runs use (default: those whose runs go to GPU nodes)")
    p.add_argument("--cuequivariance", action="store_true", help="the study converts MACE to cuEquivariance")
    p.set_defaults(fn=cmd_preflight)
    p = sub.add_parser("status", help="state of each run of a study directory")
    p.add_argument("study_dir")
    p.set_defaults(fn=cmd_status)
    from driver.plan import add_arguments as plan_arguments

    plan_arguments(sub.add_parser("plan", help="run lengths and device-hours for a σ(Ea) target (analysis.plan)"))
    p = sub.add_parser("stability", help="relax each temperature's perfect host at its mean cell: still a crystal?")
    p.add_argument("study_dir")
    p.add_argument("--seed", type=int, default=0, help="seed of the random displacements (default 0)")
    p.set_defaults(fn=cmd_stability)
    args = ap.parse_args(argv)
    return cli.run(lambda: args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
