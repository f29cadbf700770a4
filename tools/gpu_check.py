"""The GPU check: parity of LAMMPS against mace-torch and DeePMD-kit on the GPU, and ns/day, in one command.

Run by ``tools/gpu-check.sh`` on a GPU machine after it built LAMMPS there (``make lammps`` against that machine's
Python and torch), or by hand::

    python tools/gpu_check.py --out gpu-results            # the full measurement (a GPU; about 10 minutes)
    python tools/gpu_check.py --quick --device cpu --out x # the same code path on a CPU, small and short

What it measures, each in LAMMPS (``lmp -in``, NVT at 400 K, 1 fs; the ``Performance:`` line of the timed run,
after a warm-up run that pays for start-up and compilation):

- MACE with MACE-MPA-0 medium's architecture (random weights: speed does not depend on them; the interaction
  energy is scaled by 1e-3 so that random forces do not tear the crystal apart) at 433 atoms (the paper's
  6x6x6 rhombohedral cell + 1 interstitial) and 10,649 atoms (11x11x11 conventional cells + 1), float32 and
  float64, with and without cuEquivariance (where it is installed), through the project's ``cuda`` route;
- DeePMD (se_e2_a, rcut 6 Å, sel 76/76, the paper-size networks, random weights likewise scaled) at both sizes;
- k = 1, 2, 4, 8 runs of 433 atoms at once on the one GPU: each run's ns/day and their sum (the aggregate).

Parity first: forces of the same rattled 433-atom frame from LAMMPS (``driver.session.evaluate``) and from
mace-torch's ``MACECalculator`` / DeePMD-kit's ``DeepPot`` on the same device. Results go to ``OUT/gpu-check.json``
and ``OUT/gpu-check.md`` (the table for tests/bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

PERFORMANCE = re.compile(r"^Performance: ([0-9.eE+-]+) ns/day, [0-9.eE+-]+ hours/ns, ([0-9.eE+-]+) timesteps/s",
                         re.M)


def log(msg: str) -> None:
    print(f"[gpu-check] {msg}", flush=True)


# --- models ---------------------------------------------------------------------------------------------------

def mace_model(path: Path, quick: bool, seed: int = 0, scale: float = 1e-3) -> Path:
    """MACE-MPA-0 medium's architecture (or, with ``quick``, a tiny MACE), random weights, interaction energy
    scaled by ``scale`` (small for MD with random weights; 1 for the parity check)."""
    import importlib

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
    torch.save(model, path)
    return path


def deepmd_model(path: Path, quick: bool, scale: float = 0.1) -> Path:
    """A frozen se_e2_a DeePMD model (TorchScript, as ``dp --pt freeze`` writes), random weights, the fitting
    network's weights scaled by ``scale`` (small for MD; 1 for the parity check)."""
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
    model = get_model({"type_map": ["Li", "F"], "descriptor": desc, "fitting_net": fit})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "fitting" in name:
                p.mul_(scale)
    scripted = torch.jit.script(model.eval())
    torch.jit.save(scripted, str(path), {"data_modifier.pth": ""})
    return path


# --- LAMMPS runs ----------------------------------------------------------------------------------------------

def structure(n_atoms_hint: int, quick: bool):
    from inputs.structure import rocksalt_lif, with_defect

    if quick:
        return with_defect(rocksalt_lif(4.03, 2), "interstitial")  # 65 atoms
    if n_atoms_hint < 1000:
        return with_defect(rocksalt_lif(4.03, 6, "primitive"), "interstitial")  # 433 atoms, the paper's cell
    return with_defect(rocksalt_lif(4.03, 11), "interstitial")  # 10,649 atoms


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


def performance(proc: subprocess.Popen, workdir: Path, timeout: float = 300.0) -> dict:
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:  # one stuck run must not eat the whole check
        proc.kill()
        out = proc.communicate()[0] + f"\n(killed after {timeout:.0f} s)"
    (workdir / "out.txt").write_text(out)
    found = PERFORMANCE.findall(out)
    from driver.runner import reported_device

    device = next((d for d in map(reported_device, reversed(out.splitlines())) if d is not None), None)
    if proc.returncode != 0 or not found:
        tail = "\n".join(out.strip().splitlines()[-8:])
        return {"ok": False, "error": f"exit {proc.returncode}: {tail}"}
    ns_day, steps_s = found[-1]  # the timed run, after the warm-up
    return {"ok": True, "ns_per_day": float(ns_day), "steps_per_s": float(steps_s), "device": device}


def measure(name: str, block, atoms_struct, steps: int, warmup: int, work: Path) -> dict:
    d = work / name
    t0 = time.monotonic()
    r = performance(lammps_run(d, block, atoms_struct, steps, warmup), d)
    r.update(case=name, atoms=len(atoms_struct.positions), steps=steps, wall_s=round(time.monotonic() - t0, 1))
    log(f"{name}: " + (f"{r['ns_per_day']:.3g} ns/day ({r['steps_per_s']:.3g} steps/s) on {r['device']}"
                       if r["ok"] else f"FAILED {r['error']}"))
    return r


def packed(block, atoms_struct, k: int, steps: int, warmup: int, work: Path) -> dict:
    dirs = [work / f"packed-k{k}" / f"run{i}" for i in range(k)]
    procs = [lammps_run(d, block, atoms_struct, steps, warmup) for d in dirs]
    runs = [performance(p, d) for p, d in zip(procs, dirs)]
    ok = all(r["ok"] for r in runs)
    r = {"case": f"packed k={k}", "k": k, "ok": ok, "atoms": len(atoms_struct.positions),
         "per_run_ns_per_day": [x.get("ns_per_day") for x in runs],
         "aggregate_ns_per_day": sum(x["ns_per_day"] for x in runs) if ok else None,
         "errors": [x["error"] for x in runs if not x["ok"]]}
    log(f"packed k={k}: " + (f"aggregate {r['aggregate_ns_per_day']:.3g} ns/day (each "
                             f"{', '.join(f'{v:.3g}' for v in r['per_run_ns_per_day'])})" if ok else
                             f"FAILED {r['errors'][:1]}"))
    return r


# --- parity ---------------------------------------------------------------------------------------------------

def parity(entry_name: str, family: str, model: Path, device: str, compute) -> dict:
    from driver.session import evaluate
    from inputs.structure import rocksalt_lif, with_defect

    s = with_defect(rocksalt_lif(4.03, 2), "interstitial")
    atoms = s.atoms()
    atoms.rattle(0.05, seed=7)
    energy, forces = evaluate(entry_name, atoms, compute)
    if family == "mace":
        from mace.calculators import MACECalculator

        atoms.calc = MACECalculator(model_paths=str(model), device=device, default_dtype="float64")
        ref_e, ref_f = atoms.get_potential_energy(), atoms.get_forces()
    else:
        from deepmd.infer import DeepPot

        dp = DeepPot(str(model))
        types = [0 if s == "Li" else 1 for s in atoms.get_chemical_symbols()]
        e, f, _ = dp.eval(atoms.positions.reshape(1, -1), atoms.cell.array.reshape(1, 9), types)
        ref_e, ref_f = float(np.ravel(e)[0]), np.asarray(f).reshape(-1, 3)
    err = float(np.abs(forces - ref_f).max())
    scale = float(np.abs(ref_f).max())
    r = {"case": f"parity {entry_name} ({compute.precision})", "max_abs_force_error_ev_a": err,
         "max_abs_force_ev_a": scale, "energy_error_ev": abs(energy - ref_e), "atoms": len(atoms)}
    log(f"parity {entry_name} {compute.precision}: max |dF| {err:.2e} eV/Å of max |F| {scale:.2e}, "
        f"|dE| {r['energy_error_ev']:.2e} eV")
    return r


# --- main -----------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="gpu-results", help="where gpu-check.json and gpu-check.md go")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny models, 65 atoms, few steps (a CPU can do it)")
    ap.add_argument("--packs", default="1,2,4,8", help="k runs at once on the one GPU (default 1,2,4,8)")
    ap.add_argument("--skip-deepmd", action="store_true")
    ap.add_argument("--skip-parity", action="store_true")
    ap.add_argument("--sizes", default="433,10649", help="cell sizes to time (433 and/or 10649; --quick: 65)")
    ap.add_argument("--pack-case", default=None,
                    help="the MACE set-up to pack, e.g. mace-float32-cueq (default: the fastest one timed here)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    from potentials.base import Compute
    from potentials.catalog import resolve

    if args.device == "cuda" and not torch.cuda.is_available():
        log(f"torch {torch.__version__} sees no CUDA device: use --device cpu (with --quick) on a CPU")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ["LIF_DIFFUSION_CACHE"] = str(work / "cache")
    os.environ["LIF_DIFFUSION_DEVICE"] = args.device
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from driver.lammps import find_lammps, lammps_info

    info = lammps_info(find_lammps())
    env = {"date": time.strftime("%Y-%m-%d"), "host": platform.node(), "python": platform.python_version(),
           "torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else "none (CPU)",
           "lammps": f"{info.executable} ({info.version}; {' '.join(sorted(info.packages))})", "quick": args.quick}
    log(json.dumps(env))
    # for speed: outputs scaled down, so that random weights do not tear the crystal apart; for parity: not
    mace_path = mace_model(work / "mace-mpa-medium-arch.model", args.quick)
    mace_parity = mace_model(work / "mace-parity.model", args.quick, seed=1, scale=1.0)
    entries = {"bench-mace": ("mace", mace_path), "parity-mace": ("mace", mace_parity)}
    dp_path = dp_parity = None
    if not args.skip_deepmd:
        dp_path = deepmd_model(work / "deepmd-se-e2-a.pth", args.quick)
        dp_parity = deepmd_model(work / "deepmd-parity.pth", args.quick, scale=1.0)
        entries |= {"bench-deepmd": ("deepmd", dp_path), "parity-deepmd": ("deepmd", dp_parity)}
    catalog = work / "catalog.toml"
    catalog.write_text("".join(f'[{name}]\nfamily = "{fam}"\nelements = ["Li", "F"]\nmodel = "{path}"\n'
                               for name, (fam, path) in entries.items()))
    os.environ["LIF_DIFFUSION_CATALOG"] = str(catalog)
    try:
        import cuequivariance_torch  # noqa: F401

        cueq_options = [False, True]
    except ImportError:
        cueq_options = [False]
        log("cuEquivariance is not installed here: its cases are left out")
    results: dict = {"environment": env, "parity": [], "runs": [], "packed": []}

    def save() -> None:  # after every case: a check cut off by a time limit keeps what it measured
        (out / "gpu-check.json").write_text(json.dumps(results, indent=2))
        (out / "gpu-check.md").write_text(markdown(results))
    route = "cuda" if args.device == "cuda" else "cpu"
    # parity: the project's LAMMPS against each family's own code, on the same device
    for precision in ("float64", "float32") if not args.skip_parity else ():
        results["parity"].append(parity("parity-mace", "mace", mace_parity, args.device, Compute(route, precision)))
        save()
    if dp_parity and not args.skip_parity:
        results["parity"].append(parity("parity-deepmd", "deepmd", dp_parity, args.device, Compute(route)))
        save()
    # speed
    sizes = [int(x) for x in args.sizes.split(",") if x] if not args.quick else [65]
    steps = {433: (300, 30), 10649: (30, 5), 65: (20, 5)}
    for n in sizes:
        s = structure(n, args.quick)
        for precision in ("float32", "float64"):
            for cueq in cueq_options:
                _, block = resolve("bench-mace", ("Li", "F"), Compute(route, precision, cueq))
                name = f"mace-{precision}-{'cueq' if cueq else 'e3nn'}-{len(s.positions)}"
                results["runs"].append(measure(name, block, s, *steps[n], work))
                save()
        if dp_path:
            _, block = resolve("bench-deepmd", ("Li", "F"), Compute(route))
            results["runs"].append(measure(f"deepmd-{len(s.positions)}", block, s, *steps[n], work))
            save()
    # packing: the fastest MACE set-up at the small size, k at once
    small = structure(min(sizes), args.quick)
    best = max((r["case"] for r in results["runs"] if r["ok"] and r["case"].startswith("mace") and r["atoms"] < 1000),
               key=lambda c: next(r["ns_per_day"] for r in results["runs"] if r["case"] == c), default=None)
    if args.pack_case:
        best = f"{args.pack_case}-{len(small.positions)}"
    if best is not None and args.packs:
        _, precision, kernels, _ = best.split("-")
        _, block = resolve("bench-mace", ("Li", "F"), Compute(route, precision, kernels == "cueq"))
        results["packed_case"] = best
        for k in [int(x) for x in args.packs.split(",") if x]:
            results["packed"].append(packed(block, small, k, *steps[min(sizes)], work))
            save()
    save()
    print((out / "gpu-check.md").read_text())
    failed = [r["case"] for r in results["runs"] + results["packed"] if not r["ok"]]
    if failed:
        log(f"failed: {failed}")
    return 1 if failed else 0


def markdown(r: dict) -> str:
    e = r["environment"]
    lines = [f"GPU check, {e['date']}: {e['gpu']}; Python {e['python']}, torch {e['torch']} (CUDA {e['cuda']}); "
             f"LAMMPS {e['lammps']}"]
    if r["parity"]:
        lines += ["", "| parity | max abs force error (eV/Å) | of max abs force | atoms |", "|---|---|---|---|"]
        lines += [f"| {p['case']} | {p['max_abs_force_error_ev_a']:.2e} | {p['max_abs_force_ev_a']:.2e} | "
                  f"{p['atoms']} |" for p in r["parity"]]
    lines += ["", "| run | atoms | ns/day | steps/s | device as the model reported |", "|---|---|---|---|---|"]
    for x in r["runs"]:
        lines.append(f"| {x['case']} | {x['atoms']} | " + (f"{x['ns_per_day']:.3g} | {x['steps_per_s']:.3g} | "
                                                          f"{x['device'] or '-'} |" if x["ok"] else "failed | | |"))
    if r["packed"]:
        base = next((p["aggregate_ns_per_day"] for p in r["packed"] if p["k"] == 1 and p["ok"]), None)
        lines += ["", f"Packed runs ({r.get('packed_case')}, {r['packed'][0]['atoms']} atoms each, one GPU):", "",
                  "| k | aggregate ns/day | per run | aggregate / k=1 |", "|---|---|---|---|"]
        for p in r["packed"]:
            if p["ok"]:
                ratio = f"{p['aggregate_ns_per_day'] / base:.2f}" if base else "-"
                lines.append(f"| {p['k']} | {p['aggregate_ns_per_day']:.3g} | "
                             f"{', '.join(f'{v:.3g}' for v in p['per_run_ns_per_day'])} | {ratio} |")
            else:
                lines.append(f"| {p['k']} | failed | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
