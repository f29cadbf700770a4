"""`make bench`: timings as ratios against baselines measured in the same run, with peak memory.

1. driver: a rendered deck run by the driver (`run_one`: progress parsing, summary, dump merge) vs the same deck
   through bare `lmp -in in.lammps`.
2. analysis: dump → MSD → D ± σ vs merely parsing the same dump with MDAnalysis.
3. families: MD throughput (steps/s, atom-steps/s) of each potential family at 64 and 512 atoms on the CPU, in
   the LAMMPS the driver uses, with tiny stand-in MACE and DeePMD models the benchmark makes itself; the ratio is
   against the classical baseline at the same size.

Each measurement runs in its own process, which reports its wall time and peak resident memory (ru_maxrss).
Results are printed and written to bench-results/bench.json.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, resource, sys, time, warnings, logging
logging.getLogger("MDAnalysis").setLevel(logging.ERROR)
warnings.simplefilter("ignore")
kind, arg = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if kind == "driver":
    from driver.runner import run_one
    from driver.lammps import find_lammps
    run_one(arg, find_lammps(), progress=False)
elif kind == "lmp":
    import subprocess
    from driver.lammps import find_lammps, lammps_env
    subprocess.run([find_lammps(), "-in", "in.lammps", "-log", "log.bare"], cwd=arg, env=lammps_env(find_lammps()),
                   stdout=subprocess.DEVNULL, check=True)
elif kind == "parse":
    import MDAnalysis as mda
    u = mda.Universe(arg, format="LAMMPSDUMP", lammps_coordinate_convention="unwrapped")
    for ts in u.trajectory:
        pass
elif kind == "analyse":
    from analysis.trajectory import read_dump
    from analysis.diffusion import estimate_diffusion
    est = estimate_diffusion([read_dump(arg, 1.0, select="type 1")])
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(kind: str, arg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, arg], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench child {kind} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def families() -> list[dict]:
    """steps/s for classical, MACE and DeePMD at 64 and 512 atoms (models: tiny stand-ins made here)."""
    import os
    import re

    from driver.lammps import find_lammps, lammps_env
    from inputs.structure import rocksalt_lif, write_lammps_data
    from potentials.catalog import PotentialEntry, resolve
    from potentials import deepmd, mace
    from potentials.datasets import write_deepmd
    from potentials.labelling import label_with_lammps, lif_frames
    from tests.models import tiny_deepmd, tiny_mace

    lmp = find_lammps()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("LIF_DIFFUSION_CACHE", str(tmp / "cache"))
        _, classical = resolve("fumi-tosi", ("Li", "F"))
        blocks = {"classical": classical}
        try:
            m = tiny_mace(tmp / "tiny.model")
            blocks["mace"] = mace.pair_block(PotentialEntry("m", "mace", "", "", ("Li", "F"), {"model": str(m)}, ""),
                                             ("Li", "F"))
            frames = label_with_lammps(lif_frames(24, seed=0), classical, lmp)
            dp = tiny_deepmd(tmp / "dp", write_deepmd(frames[:20], tmp / "train"),
                             write_deepmd(frames[20:], tmp / "valid"), steps=50)
            blocks["deepmd"] = deepmd.pair_block(
                PotentialEntry("d", "deepmd", "", "", ("Li", "F"), {"model": str(dp)}, ""), ("Li", "F"))
        except Exception as e:  # a LAMMPS without ML-IAP/PYTHON or the plugin: report what can be measured
            print(f"(ML families skipped: {e})", file=sys.stderr)
        steps = {("classical", 64): 2000, ("classical", 512): 500}
        for fam, block in blocks.items():
            for cells in (2, 4):
                n_atoms = 8 * cells**3
                run = tmp / f"{fam}{n_atoms}"
                run.mkdir()
                write_lammps_data(rocksalt_lif(4.03, cells), run / "d.lmp", charges=block.charges)
                n = steps.get((fam, n_atoms), 100 if n_atoms == 64 else 20)
                deck = ["units metal", f"atom_style {'charge' if block.charges else 'atomic'}", "boundary p p p",
                        "read_data d.lmp", *block.lines, "velocity all create 400 1", "fix 1 all nvt temp 400 400 0.1",
                        "thermo 100", "run 5", f"run {n}"]
                (run / "in.b").write_text("\n".join(deck) + "\n")
                out = subprocess.run([lmp, "-in", "in.b", "-log", "none", *block.lmp_args], cwd=run,
                                     capture_output=True, text=True, env=lammps_env(lmp)).stdout
                m = re.findall(r"Performance: .*?([0-9.]+) timesteps/s", out)
                if not m:
                    raise SystemExit(f"bench run {fam} {n_atoms} failed:\n{out[-2000:]}")
                sps = float(m[-1])
                rows.append({"family": fam, "atoms": n_atoms, "steps": n, "steps_per_s": sps,
                             "atom_steps_per_s": sps * n_atoms})
    base = {r["atoms"]: r["steps_per_s"] for r in rows if r["family"] == "classical"}
    for r in rows:
        r["ratio_to_classical"] = r["steps_per_s"] / base[r["atoms"]]
    return rows


def main() -> int:
    from driver.render import render_study
    from inputs.study import load_study

    study = load_study("default").restricted(temperatures_k=(600.0,), potentials=("fumi-tosi",))
    import dataclasses

    study = dataclasses.replace(study, seeds=(1,), md=dataclasses.replace(study.md, production_ps=10.0))
    results: dict = {"machine": f"{platform.node()} {platform.machine()} {platform.processor()}",
                     "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        (run_dir,) = render_study(study, Path(tmp) / "a")
        bare = Path(tmp) / "bare"
        shutil.copytree(run_dir, bare)
        lmp = child("lmp", str(bare))
        drv = child("driver", str(run_dir))
        results["driver_vs_bare_lmp"] = {"driver": drv, "bare_lmp": lmp, "ratio": drv["wall_s"] / lmp["wall_s"],
                                         "case": "217 atoms, 15,000 steps, Fumi-Tosi + Ewald"}
        dump = str(run_dir / "traj.dump")
        parse = child("parse", dump)
        ana = child("analyse", dump)
        results["analysis_vs_parse"] = {"analysis": ana, "parse_only": parse, "ratio": ana["wall_s"] / parse["wall_s"],
                                        "case": f"{Path(dump).stat().st_size / 1e6:.1f} MB text dump, 109 Li, 201 frames"}
    results["families"] = families()
    out = ROOT / "bench-results" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'benchmark':28s} {'this (s)':>9s} {'baseline (s)':>12s} {'ratio':>7s} {'peak MB':>8s}")
    for name, key, base in (("driver vs bare lmp", "driver", "bare_lmp"), ("analysis vs parse only", "analysis", "parse_only")):
        r = results["driver_vs_bare_lmp" if key == "driver" else "analysis_vs_parse"]
        print(f"{name:28s} {r[key]['wall_s']:9.2f} {r[base]['wall_s']:12.2f} {r['ratio']:7.3f} "
              f"{r[key]['peak_rss_mb']:8.0f}")
    print(f"\n{'family':10s} {'atoms':>6s} {'steps/s':>9s} {'atom-steps/s':>13s} {'vs classical':>13s}")
    for row in results["families"]:
        print(f"{row['family']:10s} {row['atoms']:6d} {row['steps_per_s']:9.1f} {row['atom_steps_per_s']:13.3g} "
              f"{row['ratio_to_classical']:13.4f}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
