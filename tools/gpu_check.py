"""The GPU check: build, parity of LAMMPS against mace-torch and DeePMD-kit on the GPU, and ns/day, in one command
that fits a time budget.

Run by ``tools/gpu-check.sh OUT all --budget-s 500`` on a GPU machine (it installs the carried bundle, then hands
over to this script with ``--build``), or by hand::

    python tools/gpu_check.py --out gpu-results --budget-s 500          # measure with the LAMMPS found here
    python tools/gpu_check.py --quick --device cpu --out x --budget-s 90 # the same path on a CPU, small and short

The check is a list of cases, run in this order, each in a child process of its own:

1. ``build-lammps``: ``tools/lammps.sh`` with ``LAMMPS_ONLY=1`` (LAMMPS with ML-IAP/PYTHON, every core; no DeePMD
   plugin yet), with ``--build``;
2. ``environment``: the machine, torch/CUDA, the LAMMPS and its packages;
3. ``parity-mace-float64``, ``parity-mace-float32``: forces of one rattled 433-atom frame from LAMMPS (the
   ``cuda`` route, ``driver.session.evaluate``) and from mace-torch's ``MACECalculator`` on the same device, for a
   model with MACE-MPA-0 medium's architecture (random weights);
4. ``mace-<precision>-<kernels>-433``: ns/day at 433 atoms (the paper's 6x6x6 rhombohedral cell + 1 interstitial)
   in float32/float64 with cuEquivariance (converted on the device at load) and e3nn, the likely fastest first;
5. ``packed-k2``, ``-k4``, ``-k8``: k runs at once on the one GPU in the fastest setting of step 4 (each run's
   ns/day and their sum; k = 1 is that setting's own run of step 4);
6. ``mace-fastest-10649``: ns/day at 10,649 atoms (11x11x11 conventional cells + 1) in the fastest setting;
7. ``build-deepmd`` (``tools/lammps.sh`` again: it keeps LAMMPS and adds the plugin), ``parity-deepmd`` (against
   ``DeepPot``), ``deepmd-433`` (se_e2_a, rcut 6 Å, sel 76/76, the paper-size networks, random weights).

ns/day comes from LAMMPS's ``Performance:`` line of the timed run (NVT at 400 K, 1 fs), after a warm-up run that
pays for start-up and compilation. Random weights are scaled down for MD (speed does not depend on them) so that
the crystal is not torn apart; the parity models are not scaled.

The budget (``--budget-s``): before each case its cost is estimated (a figure for the GPU machine, scaled by how
long the finished cases of its kind took against their own figures); a case that cannot finish in what is left
(its estimate with a quarter added) is skipped (the next, cheaper ones are still tried), and a case in progress is stopped with its whole process group
(TERM, then KILL) when the budget runs out. ``OUT/gpu-check.json`` and ``OUT/gpu-check.md`` are rewritten
atomically (write, then rename) before and after every case, so a check killed at any moment leaves the results of
every finished case; ``OUT/gpu-check.log`` keeps each case's last lines of output. Those three files are all that
the check writes to ``OUT``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PERFORMANCE = re.compile(r"^Performance: ([0-9.eE+-]+) ns/day, [0-9.eE+-]+ hours/ns, ([0-9.eE+-]+) timesteps/s",
                         re.M)
LAMMPS_SH = ROOT / "tools" / "lammps.sh"
# atoms -> (the cell, steps timed, warm-up steps); 65 and 217 are --quick's stand-ins for 433 and 10,649
SIZES = {433: (200, 20), 10649: (30, 5), 65: (20, 5), 217: (10, 3)}
LOG_LINES_PER_CASE = 120
LOG_MAX_BYTES = 2 * 2**20
KILL_GRACE_S = 5.0
MARGIN = 1.25  # a case starts only when its estimate, times this, fits in the time left


def log(msg: str) -> None:
    print(f"[gpu-check] {msg}", flush=True)


# --- the plan and its budget ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One step of the check, run as a child process.

    ``section``: where its result goes in gpu-check.json (environment | build | parity | runs | packed);
    ``kind``: setup | build | measure, the cases whose measured speed scales this one's estimate; ``estimate_s``:
    the expected wall time on the GPU machine (16 cores, one H200); ``argv``: the command, in which ``{result}``
    (the JSON file the child writes) and ``{fastest}`` (the fastest MACE setting measured so far) are filled in;
    ``needs``: cases that must have succeeded first; ``always``: run even when the estimate does not fit (the
    LAMMPS build: without it nothing else can run), bounded by the budget all the same."""

    name: str
    section: str
    kind: str
    estimate_s: float
    argv: tuple[str, ...]
    needs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    always: bool = False


def plan(args: argparse.Namespace, work: Path, cueq_installed: bool) -> tuple[list[Case], dict[str, str]]:
    """The cases in order, and the ones left out before the start with the reason."""
    small, large = (65, 217) if args.quick else (433, 10649)
    me = (sys.executable, str(Path(__file__).resolve()), "--work", str(work), "--device", args.device,
          *(("--quick",) if args.quick else ()), "--result", "{result}", "--child")
    cases, left_out = [], {}
    if args.build:
        cases.append(Case("build-lammps", "build", "build", 240, ("bash", str(LAMMPS_SH)), env=(("LAMMPS_ONLY", "1"),),
                          always=True))
    cases.append(Case("environment", "environment", "setup", 15, (*me, "environment"),
                      needs=("build-lammps",) if args.build else ()))
    build = ("build-lammps", "environment") if args.build else ("environment",)  # what every measurement needs
    if not args.skip_parity:
        cases += [Case(f"parity-mace-{p}", "parity", "measure", 30, (*me, f"parity-mace-{p}"), needs=build)
                  for p in ("float64", "float32")]
    for setting in ("float32-cueq", "float32-e3nn", "float64-cueq", "float64-e3nn"):  # the likely fastest first
        name = f"mace-{setting}-{small}"
        if setting.endswith("cueq") and not cueq_installed:
            left_out[name] = "cuequivariance-torch is not installed"
        else:
            cases.append(Case(name, "runs", "measure", 30, (*me, name), needs=build))
    for k in [int(x) for x in args.packs.split(",") if x]:
        cases.append(Case(f"packed-k{k}", "packed", "measure", 30 * (1 + 0.25 * (k - 1)),
                          (*me, f"packed-k{k}-{small}", "--setting", "{fastest}"), needs=build))
    if not args.skip_large:
        cases.append(Case(f"mace-fastest-{large}", "runs", "measure", 60, (*me, f"mace-{{fastest}}-{large}"),
                          needs=build))
    if not args.skip_deepmd:
        dp = build
        if args.build:
            cases.append(Case("build-deepmd", "build", "build", 120, ("bash", str(LAMMPS_SH)), needs=build))
            dp = (*build, "build-deepmd")
        if not args.skip_parity:
            cases.append(Case("parity-deepmd", "parity", "measure", 30, (*me, "parity-deepmd"), needs=dp))
        cases.append(Case(f"deepmd-{small}", "runs", "measure", 30, (*me, f"deepmd-{small}"), needs=dp))
    return cases, left_out


def estimate_s(case: Case, done: list[dict]) -> float:
    """``case.estimate_s`` scaled by how long the finished cases of its kind took against their own estimates."""
    same = [d for d in done if d["kind"] == case.kind and d["status"] == "ok" and d["planned_s"] > 0]
    if not same:
        return case.estimate_s
    return case.estimate_s * sum(d["wall_s"] for d in same) / sum(d["planned_s"] for d in same)


def fastest(results: dict, pack_case: str | None) -> str | None:
    """The MACE setting (``float32-cueq``) of the fastest run at the small size, or the one asked for."""
    if pack_case:
        return pack_case.removeprefix("mace-")
    small = [r for r in results["runs"] if r.get("ok") and r["case"].startswith("mace-") and r["atoms"] in (65, 433)]
    if not small:
        return None
    best = max(small, key=lambda r: r["ns_per_day"])
    return "-".join(best["case"].split("-")[1:3])


class Interrupted(Exception):
    """The check itself was told to stop (SIGTERM, SIGINT)."""


def _raise_interrupted(signum, frame) -> None:  # noqa: ARG001 (a signal handler's signature)
    raise Interrupted(signal.Signals(signum).name)


def write_atomic(path: Path, text: str) -> None:
    """Write, then rename over: a reader (or a kill at any moment) sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(out: Path, results: dict) -> None:
    write_atomic(out / "gpu-check.json", json.dumps(results, indent=2))
    write_atomic(out / "gpu-check.md", markdown(results))


def append_log(out: Path, title: str, text: str) -> None:
    """The last lines of a case's output into OUT/gpu-check.log (one file however many cases and runs)."""
    path = out / "gpu-check.log"
    if path.exists() and path.stat().st_size > LOG_MAX_BYTES:
        return
    lines = text.splitlines()
    cut = len(lines) - LOG_LINES_PER_CASE
    body = ([f"... ({cut} lines left out)"] if cut > 0 else []) + [x[:400] for x in lines[-LOG_LINES_PER_CASE:]]
    with open(path, "a") as f:
        f.write(f"===== {title}\n" + "\n".join(body) + "\n")


def stop_group(proc: subprocess.Popen) -> None:
    """TERM to the child's whole process group (LAMMPS runs included), KILL after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def adopt_build() -> None:
    """After ``tools/lammps.sh``: the children use the LAMMPS it built (linked as <VENV>/bin/lmp-lif) and its
    Python module."""
    link = Path(os.environ.get("VENV", sys.prefix)) / "bin" / "lmp-lif"
    if link.exists():
        lmp = link.resolve()
        os.environ["LIF_DIFFUSION_LMP"] = str(lmp)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(lmp.parent.parent / "python"),
                                                                os.environ.get("PYTHONPATH")]))


def run_case(case: Case, argv: list[str], result: Path, out: Path, timeout_s: float | None) -> dict:
    """Run one case's child; its result (``ok``, ``wall_s`` and what it wrote), or why it stopped."""
    t0 = time.monotonic()
    result.unlink(missing_ok=True)
    output = result.with_suffix(".out")
    with open(output, "w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                env=dict(os.environ, **dict(case.env)), start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
            status = "ok" if proc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            stop_group(proc)
            status = "cut-off"
        except BaseException:  # Interrupted: the child's group goes with us
            stop_group(proc)
            raise
    wall = round(time.monotonic() - t0, 1)
    text = output.read_text(errors="replace")
    append_log(out, f"{case.name} ({status}, {wall} s)", text)
    r: dict = {"case": case.name}
    if result.exists():
        with contextlib.suppress(json.JSONDecodeError):
            r = json.loads(result.read_text())
    if status == "failed" and "error" not in r:
        r["error"] = f"exit {proc.returncode}: " + "\n".join(text.strip().splitlines()[-8:])
    if status == "cut-off":
        r["error"] = f"stopped at the time limit after {wall} s"
    r["ok"] = status == "ok" and r.get("ok", True)
    r.setdefault("wall_s", wall)
    return r | {"_status": ("ok" if r["ok"] else "failed") if status == "ok" else status, "_wall_s": wall}


def run_plan(cases: list[Case], out: Path, work: Path, results: dict, budget_s: float | None, reserve_s: float,
             pack_case: str | None = None, case_limit_s: float = 900.0) -> dict:
    """Run the cases in order within the budget (each for at most ``case_limit_s``), saving before and after each;
    returns ``results``."""
    t0 = time.monotonic()
    done: list[dict] = results["cases"]
    (work / "results").mkdir(parents=True, exist_ok=True)
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for case in cases:
            left = None if budget_s is None else budget_s - reserve_s - (time.monotonic() - t0)
            need = estimate_s(case, done)
            record = {"case": case.name, "kind": case.kind, "planned_s": case.estimate_s,
                      "estimate_s": round(need, 1), "status": "skipped", "wall_s": 0.0}
            ok = {d["case"] for d in done if d["status"] == "ok"}
            setting = fastest(results, pack_case)
            if missing := [n for n in case.needs if n not in ok]:
                record["note"] = f"needs {', '.join(missing)}"
            elif any("{fastest}" in a for a in case.argv) and setting is None:
                record["note"] = "no MACE run at the small size succeeded, so there is no fastest setting"
            elif left is not None and left <= 0:
                record["note"] = "the budget is spent"
            elif left is not None and need * MARGIN > left and not case.always:
                record["note"] = f"needs about {need:.0f} s, {left:.0f} s left"
            else:
                record["status"] = "running"
                results["budget"]["running"] = case.name
                done.append(record)
                save(out, results)
                log(f"{case.name}: started (estimate {need:.0f} s" + (f", {left:.0f} s left)" if left else ")"))
                result = work / "results" / f"{case.name}.json"
                argv = [a.replace("{result}", str(result)).replace("{fastest}", setting or "") for a in case.argv]
                r = run_case(case, argv, result, out, case_limit_s if left is None else min(left, case_limit_s))
                record["status"], record["wall_s"] = r.pop("_status"), r.pop("_wall_s")
                if "error" in r:
                    record["note"] = r["error"].splitlines()[0][:200]
                if case.section == "environment":
                    results["environment"] |= r
                elif case.section in results:
                    results[case.section].append(r)
                if case.section == "packed":
                    results["packed_case"] = setting
                if case.section == "build" and r["ok"]:
                    adopt_build()
                log(f"{case.name}: {record['status']} in {record['wall_s']:.0f} s"
                    + (f" ({record['note']})" if "note" in record else ""))
            if record["status"] == "skipped":
                done.append(record)
                log(f"{case.name}: skipped ({record['note']})")
            results["budget"].update(running=None, elapsed_s=round(time.monotonic() - t0, 1))
            save(out, results)
    except Interrupted as e:
        if done and done[-1]["status"] == "running":
            done[-1].update(status="interrupted", wall_s=round(time.monotonic() - t0, 1), note=f"check got {e}")
        results["budget"].update(running=None, interrupted=str(e), elapsed_s=round(time.monotonic() - t0, 1))
        save(out, results)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    results["complete"] = True
    save(out, results)
    return results


# --- models (in the children) ---------------------------------------------------------------------------------

def _save_atomic(save_to, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    save_to(tmp)
    os.replace(tmp, path)
    return path


def mace_model(path: Path, quick: bool, seed: int = 0, scale: float = 1e-3) -> Path:
    """MACE-MPA-0 medium's architecture (or, with ``quick``, a tiny MACE), random weights, interaction energy
    scaled by ``scale`` (small for MD with random weights; 1 for the parity check); made once per check."""
    if path.exists():
        return path
    import importlib

    import numpy as np
    import torch
    from mace import modules

    o3 = importlib.import_module("e3nn.o3")  # after mace, which sets up e3nn's torch.load of its constants

    torch.manual_seed(seed)
    if quick:
        z, hidden, mlp, max_ell, corr, r_max, nb = [3, 9], "8x0e + 8x1o", "8x0e", 2, 2, 4.0, 6
    else:  # mace-mpa-0-medium: 89 elements, 128x0e + 128x1o, L = 3 messages, correlation 3, 2 layers, 6 Å
        z, hidden, mlp, max_ell, corr, r_max, nb = list(range(1, 90)), "128x0e + 128x1o", "16x0e", 3, 3, 6.0, 10
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=r_max, num_bessel=nb, num_polynomial_cutoff=5, max_ell=max_ell, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=len(z), hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps(mlp), gate=torch.nn.functional.silu, atomic_energies=np.full(len(z), -1.0),
        avg_num_neighbors=60.0, atomic_numbers=z, correlation=corr, atomic_inter_scale=scale,
        atomic_inter_shift=0.0).double()
    return _save_atomic(lambda p: torch.save(model, p), path)


def deepmd_model(path: Path, quick: bool, scale: float = 0.1) -> Path:
    """A frozen se_e2_a DeePMD model (TorchScript, as ``dp --pt freeze`` writes), random weights, the fitting
    network's weights scaled by ``scale`` (small for MD; 1 for the parity check); made once per check."""
    if path.exists():
        return path
    import torch
    from deepmd.pt.model.model import get_model

    if quick:
        desc = {"type": "se_e2_a", "rcut": 4.0, "rcut_smth": 3.0, "sel": [40, 40], "neuron": [8, 16], "axis_neuron": 4,
                "seed": 1}
        fit = {"neuron": [16, 16], "seed": 1}
    else:
        desc = {"type": "se_e2_a", "rcut": 6.0, "rcut_smth": 0.5, "sel": [76, 76], "neuron": [25, 50, 100],
                "axis_neuron": 16, "seed": 1}
        fit = {"neuron": [240, 240, 240], "resnet_dt": True, "seed": 1}
    model = get_model({"type_map": list(lif_type_order()), "descriptor": desc, "fitting_net": fit})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "fitting" in name:
                p.mul_(scale)
    scripted = torch.jit.script(model.eval())
    return _save_atomic(lambda p: torch.jit.save(scripted, str(p), {"data_modifier.pth": ""}), path)


MODELS = {  # catalog entry -> (family, file, how it is made)
    "bench-mace": ("mace", "mace-mpa-medium-arch.model", lambda p, q: mace_model(p, q)),
    "parity-mace": ("mace", "mace-parity.model", lambda p, q: mace_model(p, q, seed=1, scale=1.0)),
    "bench-deepmd": ("deepmd", "deepmd-se-e2-a.pth", lambda p, q: deepmd_model(p, q)),
    "parity-deepmd": ("deepmd", "deepmd-parity.pth", lambda p, q: deepmd_model(p, q, scale=1.0)),
}


def model(entry: str, work: Path, quick: bool) -> Path:
    family, name, make = MODELS[entry]
    return make(work / "models" / name, quick)


# --- LAMMPS runs (in the children) ----------------------------------------------------------------------------

def lif_type_order() -> tuple[str, ...]:
    """The benchmark crystal's species in LAMMPS type order: rock-salt LiF's, as :mod:`inputs.structure` gives it."""
    from inputs.structure import LIF_TYPE_ORDER

    return LIF_TYPE_ORDER


def structure(atoms: int):
    from inputs.defects import add_defect
    from inputs.structure import rocksalt_lif

    cells = {65: (2, "conventional"), 217: (3, "conventional"), 433: (6, "primitive"), 10649: (11, "conventional")}
    if atoms not in cells:
        raise SystemExit(f"no cell of {atoms} atoms: one of {sorted(cells)}")
    s = add_defect(rocksalt_lif(4.03, cells[atoms][0], cells[atoms][1]), "interstitial")
    assert len(s.positions) == atoms, (len(s.positions), atoms)
    return s


def deck(block, data: str, steps: int, warmup: int) -> str:
    return "\n".join([
        "units metal", "boundary p p p", "atom_style atomic", f"read_data {data}", *block.lines,
        "neighbor 1.0 bin", "neigh_modify every 10 delay 0 check yes",
        "velocity all create 400 1 mom yes dist gaussian", "fix nvt all nvt temp 400 400 0.1", "timestep 0.001",
        "thermo 50", f"run {warmup}", f"run {steps}", ""])


def lammps_run(workdir: Path, block, atoms_struct, steps: int, warmup: int) -> subprocess.Popen:
    from driver.lammps import find_lammps, lammps_env
    from inputs.structure import write_lammps_data

    workdir.mkdir(parents=True, exist_ok=True)
    write_lammps_data(atoms_struct, workdir / "data.lmp")
    (workdir / "in.bench").write_text(deck(block, "data.lmp", steps, warmup))
    lmp = find_lammps()
    env = lammps_env(lmp)  # with the DeePMD plugin built beside this LAMMPS on LAMMPS_PLUGIN_PATH
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen([lmp, "-in", "in.bench", "-log", "log.bench", "-nocite"], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def performance(proc: subprocess.Popen) -> dict:
    """ns/day and steps/s of a finished LAMMPS run (its output printed for the check's log)."""
    from driver.runner import reported_device

    out = proc.communicate()[0]
    print(out, flush=True)
    found = PERFORMANCE.findall(out)
    device = next((d for d in map(reported_device, reversed(out.splitlines())) if d is not None), None)
    if proc.returncode != 0 or not found:
        tail = "\n".join(out.strip().splitlines()[-8:])
        return {"ok": False, "error": f"exit {proc.returncode}: {tail}"}
    ns_day, steps_s = found[-1]  # the timed run, after the warm-up
    return {"ok": True, "ns_per_day": float(ns_day), "steps_per_s": float(steps_s), "device": device}


def mace_block(setting: str, route: str):
    from potentials.base import Compute
    from potentials.catalog import resolve

    precision, kernels = setting.split("-")
    return resolve("bench-mace", lif_type_order(), Compute(route, precision, kernels == "cueq"))[1]


def measure(name: str, block, atoms: int, work: Path) -> dict:
    s = structure(atoms)
    t0 = time.monotonic()
    r = performance(lammps_run(work / "runs" / name, block, s, *SIZES[atoms]))
    r.update(case=name, atoms=atoms, steps=SIZES[atoms][0], wall_s=round(time.monotonic() - t0, 1))
    log(f"{name}: " + (f"{r['ns_per_day']:.3g} ns/day ({r['steps_per_s']:.3g} steps/s) on {r['device']}"
                       if r["ok"] else f"FAILED {r['error']}"))
    return r


def packed(block, k: int, atoms: int, work: Path) -> dict:
    s = structure(atoms)
    dirs = [work / "runs" / f"packed-k{k}" / f"run{i}" for i in range(k)]
    procs = [lammps_run(d, block, s, *SIZES[atoms]) for d in dirs]
    runs = [performance(p) for p in procs]
    ok = all(r["ok"] for r in runs)
    r = {"case": f"packed k={k}", "k": k, "ok": ok, "atoms": atoms,
         "per_run_ns_per_day": [x.get("ns_per_day") for x in runs],
         "aggregate_ns_per_day": sum(x["ns_per_day"] for x in runs) if ok else None,
         "errors": [x["error"] for x in runs if not x["ok"]]}
    log(f"packed k={k}: " + (f"aggregate {r['aggregate_ns_per_day']:.3g} ns/day" if ok
                             else f"FAILED {r['errors'][:1]}"))
    return r


def parity(entry_name: str, model_path: Path, device: str, compute, atoms: int) -> dict:
    import numpy as np

    from driver.session import evaluate

    frame = structure(atoms).atoms()
    frame.rattle(0.05, seed=7)
    energy, forces = evaluate(entry_name, frame, compute)
    if entry_name == "parity-mace":
        from mace.calculators import MACECalculator

        frame.calc = MACECalculator(model_paths=str(model_path), device=device, default_dtype="float64")
        ref_e, ref_f = frame.get_potential_energy(), frame.get_forces()
    else:
        from deepmd.infer import DeepPot

        dp = DeepPot(str(model_path))
        types = [lif_type_order().index(x) for x in frame.get_chemical_symbols()]
        e, f, _ = dp.eval(frame.positions.reshape(1, -1), frame.cell.array.reshape(1, 9), types)
        ref_e, ref_f = float(np.ravel(e)[0]), np.asarray(f).reshape(-1, 3)
    err = float(np.abs(forces - ref_f).max())
    scale = float(np.abs(ref_f).max())
    r = {"case": f"parity {entry_name} ({compute.precision})", "max_abs_force_error_ev_a": err,
         "max_abs_force_ev_a": scale, "energy_error_ev": abs(energy - ref_e), "atoms": len(frame)}
    log(f"parity {entry_name} {compute.precision}: max |dF| {err:.2e} eV/Å of max |F| {scale:.2e}, "
        f"|dE| {r['energy_error_ev']:.2e} eV")
    return r


def environment(device: str, quick: bool) -> dict:
    import torch

    from driver.lammps import find_lammps, lammps_info

    if device == "cuda" and not torch.cuda.is_available():
        return {"ok": False, "error": f"torch {torch.__version__} sees no CUDA device (on a CPU: --device cpu --quick)"}
    info = lammps_info(find_lammps())
    smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip() \
        if device == "cuda" else ""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
            "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU)", "nvidia_smi": smi,
            "cpus": os.cpu_count(), "lammps": f"{info.executable} ({info.version}; {' '.join(sorted(info.packages))})",
            "quick": quick}


def child(name: str, args: argparse.Namespace) -> dict:
    """One case, in its own process: its result, for OUT/gpu-check.json."""
    from potentials.base import Compute

    work = Path(args.work)
    os.environ["LIF_DIFFUSION_CACHE"] = str(work / "cache")  # models converted for LAMMPS stay in the check
    os.environ["LIF_DIFFUSION_DEVICE"] = args.device
    # e3nn 0.4.4's torch.load of its constants, as mace-torch sets it (DeePMD-kit imports e3nn before mace does)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    warnings.simplefilter("ignore")
    route = "cuda" if args.device == "cuda" else "cpu"
    if name == "environment":
        return environment(args.device, args.quick)
    small = 65 if args.quick else 433
    if name.startswith("parity-"):
        entry = "parity-mace" if name.startswith("parity-mace") else "parity-deepmd"
        path = model(entry, work, args.quick)
        return parity(entry, path, args.device, Compute(route, name.split("-")[2] if entry == "parity-mace"
                                                        else "float64"), small)
    atoms = int(name.rsplit("-", 1)[1])
    if name.startswith("deepmd-"):
        from potentials.catalog import resolve

        model("bench-deepmd", work, args.quick)
        return measure(name, resolve("bench-deepmd", lif_type_order(), Compute(route))[1], atoms, work)
    model("bench-mace", work, args.quick)
    if name.startswith("packed-k"):
        return packed(mace_block(args.setting, route), int(name.split("-")[1][1:]), atoms, work)
    return measure(name, mace_block(name.split("-", 1)[1].rsplit("-", 1)[0], route), atoms, work)


# --- the table ------------------------------------------------------------------------------------------------

def markdown(r: dict) -> str:
    e, b = r["environment"], r["budget"]
    lines = [f"GPU check, {e.get('date', '?')}: {e.get('gpu', '?')}; Python {e.get('python', '?')}, torch "
             f"{e.get('torch', '?')} (CUDA {e.get('cuda', '?')}); LAMMPS {e.get('lammps', '?')}", "",
             (f"Budget {b['budget_s']:.0f} s" if b["budget_s"] is not None else "No budget")
             + f", {b.get('elapsed_s', 0):.0f} s used"
             + ("" if r.get("complete") else " (not finished: " + (f"{b['running']} running)" if b.get("running")
                                                                   else "stopped)")),
             "", "| case | status | wall s | estimate s | note |", "|---|---|---|---|---|"]
    if e.get("nvidia_smi"):
        lines[1:1] = ["", f"`nvidia-smi -L`: {e['nvidia_smi']}"]
    lines += [f"| {c['case']} | {c['status']} | {c['wall_s']:.0f} | {c['estimate_s']:.0f} | {c.get('note', '')} |"
              for c in r["cases"]]
    lines += [f"| {name} | left out | | | {why} |" for name, why in r.get("left_out", {}).items()]
    if r["parity"]:
        lines += ["", "| parity | max abs force error (eV/Å) | of max abs force | energy error (eV) | atoms |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['case']} | {p['max_abs_force_error_ev_a']:.2e} | {p['max_abs_force_ev_a']:.2e} | "
                  f"{p['energy_error_ev']:.2e} | {p['atoms']} |" if "max_abs_force_error_ev_a" in p
                  else f"| {p['case']} | failed | | | |" for p in r["parity"]]
    if r["runs"]:
        lines += ["", "| run | atoms | ns/day | steps/s | device as the model reported |", "|---|---|---|---|---|"]
        for x in r["runs"]:
            lines.append(f"| {x['case']} | {x.get('atoms', '')} | " + (
                f"{x['ns_per_day']:.3g} | {x['steps_per_s']:.3g} | {x['device'] or '-'} |" if x["ok"]
                else "failed | | |"))
    if r["packed"]:
        setting = r.get("packed_case")
        single = next((x["ns_per_day"] for x in r["runs"] if x.get("ok") and x["case"].startswith(f"mace-{setting}-")
                       and x["atoms"] < 1000), None)
        lines += ["", f"Packed runs (mace-{setting}, one GPU; k = 1 is that setting's single run"
                  + (f", {single:.3g} ns/day" if single else "") + "):", "",
                  "| k | aggregate ns/day | per run | aggregate / single run |", "|---|---|---|---|"]
        for p in r["packed"]:
            if p.get("ok"):
                ratio = f"{p['aggregate_ns_per_day'] / single:.2f}" if single else "-"
                lines.append(f"| {p['k']} | {p['aggregate_ns_per_day']:.3g} | "
                             f"{', '.join(f'{v:.3g}' for v in p['per_run_ns_per_day'])} | {ratio} |")
            else:
                lines.append(f"| {p.get('k', p['case'])} | failed | | |")
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="gpu-results", help="where gpu-check.json, gpu-check.md and gpu-check.log go")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny models, 65 and 217 atoms, few steps (for a CPU)")
    ap.add_argument("--budget-s", type=float, default=None, help="stop within this many seconds (default: none)")
    ap.add_argument("--reserve-s", type=float, default=10.0,
                    help="seconds of the budget kept for the last write (default 10)")
    ap.add_argument("--case-limit-s", type=float, default=900.0,
                    help="stop any one case after this many seconds (default 900)")
    ap.add_argument("--build", action="store_true",
                    help="build LAMMPS first with tools/lammps.sh (the DeePMD plugin as a later case)")
    ap.add_argument("--packs", default="2,4,8", help="k runs at once on the one GPU (default 2,4,8; 1 is the "
                                                     "single run)")
    ap.add_argument("--pack-case", default=None, help="the MACE setting to pack and to run large, e.g. "
                                                      "mace-float32-cueq (default: the fastest one timed here)")
    ap.add_argument("--skip-parity", action="store_true")
    ap.add_argument("--skip-large", action="store_true", help="no run at 10,649 atoms")
    ap.add_argument("--skip-deepmd", action="store_true")
    ap.add_argument("--plan", type=Path, default=None, help=argparse.SUPPRESS)  # tests: JSON list of Case fields
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--work", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--setting", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        r = child(args.child, args)
        write_atomic(Path(args.result), json.dumps(r, indent=2))
        return 0 if r.get("ok", True) else 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    if args.plan:
        cases = [Case(**{k: tuple(map(tuple, v)) if k == "env" else tuple(v) if isinstance(v, list) else v
                         for k, v in c.items()}) for c in json.loads(args.plan.read_text())]
        left_out: dict[str, str] = {}
    else:
        if args.device == "cpu" and not args.quick:
            log("--device cpu wants --quick (MACE-MPA-0 medium's size at 10,649 atoms would take hours on a CPU)")
            return 2
        catalog = work / "catalog.toml"
        elements = json.dumps(list(lif_type_order()))
        catalog.write_text("".join(f'[{name}]\nfamily = "{fam}"\nelements = {elements}\nmodel = "{work}/models/{f}"\n'
                                   for name, (fam, f, _) in MODELS.items()))
        (work / "models").mkdir()
        os.environ["LIF_DIFFUSION_CATALOG"] = str(catalog)
        cases, left_out = plan(args, work, importlib.util.find_spec("cuequivariance_torch") is not None)
    results: dict = {"environment": {}, "budget": {"budget_s": args.budget_s, "reserve_s": args.reserve_s,
                                                   "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                   "elapsed_s": 0.0, "running": None},
                     "cases": [], "left_out": left_out, "build": [], "parity": [], "runs": [], "packed": [],
                     "complete": False}
    log(f"{len(cases)} cases, budget {args.budget_s} s; results in {out}/gpu-check.json after each")
    try:
        run_plan(cases, out, work, results, args.budget_s, args.reserve_s, args.pack_case, args.case_limit_s)
    except Interrupted as e:
        log(f"stopped by {e}: the results so far are in {out}/gpu-check.json")
        return 143
    finally:  # models, run folders and each case's whole output (its last lines are in gpu-check.log)
        shutil.rmtree(work, ignore_errors=True)
    print((out / "gpu-check.md").read_text(), flush=True)
    failed = [c["case"] for c in results["cases"] if c["status"] not in ("ok", "skipped")]
    if failed:
        log(f"failed or cut off: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
