"""Fine-tuning, one command per step (or all of them: ``sweep``).

    python -m finetune data SOURCE... --out data/lif [--valid 0.1 --test 0.1 --seed 1]
    python -m finetune select data/lif --n 200 [--method fps|random] [--descriptor rdf|mace
                                         --foundation mace-mpa-0] --out data/lif-n200
    python -m finetune selfgen runs/default/mace-mpa-0/T600K/seed1 ... --n 300
                                         --label lammps:fumi-tosi | ase:my_dft:calculator --out data/self
    python -m finetune train --strategy naive|multihead|scratch|deepmd --data data/lif-n200
                                         --name ft200 [--foundation mace-mpa-0] [--pretrain data/mp-lif]
                                         [--seed 1] [--hyper my.toml] [--set lr=0.005 ...] [--force]
    python -m finetune validate NAME --data data/lif       # errors on the test split, parity plot
    python -m finetune list                                 # registered models and their errors
    python -m finetune sweep inputs/sweeps/paper.toml       # strategies x N x replicas -> D(T) bars

SOURCE: extended XYZ, a DeePMD-kit system directory (npy or raw) or an ASE database. A trained model is
registered as a catalog potential named NAME; studies use it like any other (``potentials = ["ft200"]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import cli
from core.errors import InputError


def cmd_data(a) -> int:
    from finetune.datasets import prepare

    ds = prepare(a.sources, a.out, valid_fraction=a.valid, test_fraction=a.test, seed=a.seed, fmt=a.format)
    s = ds.manifest["splits"]
    print(f"{ds.path}: {ds.manifest['n']} configurations ({s['train']['n']} train, {s['valid']['n']} valid, "
          f"{s['test']['n']} test), elements {ds.manifest['elements']}, hash {ds.hash[:16]}")
    return 0


def cmd_select(a) -> int:
    from finetune.datasets import load
    from finetune.selection import write_selection

    model = None
    if a.descriptor == "mace":
        from finetune.training import foundation_path

        if not a.foundation:
            raise InputError("--descriptor mace needs --foundation (a catalog MACE potential or a .model file)")
        model = foundation_path(a.foundation)
    ds = write_selection(load(a.dataset), a.n, a.out, a.method, a.seed, a.descriptor, model)
    sel = ds.manifest["selection"]
    print(f"{ds.path}: {a.n} of {len(load(a.dataset).frames('train'))} by {a.method} ({a.descriptor} descriptors); "
          f"covering radius {sel['covering_radius']:.3g} (random pick of the same size: "
          f"{sel['covering_radius_random']:.3g})")
    return 0


def cmd_selfgen(a) -> int:
    from finetune.selfgen import self_generate

    ds = self_generate([Path(p) for p in a.runs], a.n, a.label, Path(a.out), skip_ps=a.skip_ps, seed=a.seed,
                       valid_fraction=a.valid, test_fraction=a.test)
    print(f"{ds.path}: {ds.manifest['n']} configurations labelled by {a.label}, hash {ds.hash[:16]}")
    return 0


def cmd_train(a) -> int:
    from finetune.datasets import load
    from finetune.training import TrainRequest, parse_overrides, train

    req = TrainRequest(name=a.name, strategy=a.strategy, data=load(a.data), foundation=a.foundation,
                       pretrain=load(a.pretrain) if a.pretrain else None, seed=a.seed,
                       overrides=parse_overrides(a.set or []), hyper_file=Path(a.hyper) if a.hyper else None,
                       force=a.force, progress=not a.quiet)
    final = train(req)
    print(f"{a.name}: {final}\nnext: add \"{a.name}\" to a study's potentials and run it, e.g.\n"
          f"  python -m driver run --study default --potential {a.name} --temperature 400")
    return 0


def cmd_validate(a) -> int:
    from finetune.datasets import load
    from finetune.validation import validate
    from potentials.catalog import family_of, get_entry

    entry = get_entry(a.name)
    model = family_of(entry).model_file(entry)
    if model is None:
        raise InputError(f"{a.name!r} is a {entry.family} potential without a model file; validate takes models "
                         "that have one (mace, deepmd)")
    ds = load(a.data)
    frames = ds.frames(a.split)
    out = Path(a.out or ".")
    out.mkdir(parents=True, exist_ok=True)
    m = validate(entry.family, model, frames, out, f"{a.name} on {ds.path.name}/{a.split}",
                 head=entry.params.get("head"), stem=f"validation-{a.name}")
    print(json.dumps(m, indent=1))
    print(f"written: {out / f'validation-{a.name}.json'}, {out / f'validation-{a.name}-parity.png'}")
    return 0


def cmd_list(a) -> int:
    from core.errors import LifDiffusionError
    from finetune.registry import catalog_dir, is_registered, provenance
    from potentials.catalog import read_catalog_file

    rows = sorted(catalog_dir().glob("*.toml"))
    if not rows:
        print(f"no trained models registered (in {catalog_dir()})")
    for p in rows:
        try:
            entries = read_catalog_file(p)
            problems = [e.problem for e in entries.values() if e.problem]
            if p.stem not in entries:
                problems.append(f"{p} has no entry [{p.stem}]")
            elif not is_registered(p.stem):
                problems.append("its model directory is missing")
            prov = provenance(p.stem)
        except (LifDiffusionError, ValueError, OSError) as e:  # ValueError: a provenance.json that is not JSON
            problems, prov = [str(e)], {}
        if problems:
            print(f"{p.stem:24s} BROKEN: {'; '.join(problems)}")
            continue
        f = prov.get("validation", {}).get("forces_mev_per_a", {}).get("rmse")
        print(f"{p.stem:24s} {prov.get('strategy', '?'):9s} N={prov.get('n_train', '?'):<5} "
              f"seed={prov.get('seed', '?'):<3} force RMSE {f if f is None else round(f, 1)} meV/Å")
    return 0


def cmd_sweep(a) -> int:
    from finetune.sweep import load_sweep, run_sweep

    return run_sweep(load_sweep(a.sweep), Path(a.root), progress=not a.quiet, jobs=a.jobs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    def split_args(p):
        p.add_argument("--valid", type=float, default=0.1, help="validation fraction (default 0.1)")
        p.add_argument("--test", type=float, default=0.1, help="test fraction (default 0.1)")
        p.add_argument("--seed", type=int, default=1, help="seed of the split (default 1)")

    p = sub.add_parser("data", help="read, check, hash and split a data set")
    p.add_argument("sources", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=("extxyz", "deepmd", "ase-db"), help="default: from the name")
    split_args(p)
    p.set_defaults(fn=cmd_data)

    p = sub.add_parser("select", help="choose N training configurations (FPS or random)")
    p.add_argument("dataset")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--method", choices=("fps", "random"), default="fps")
    p.add_argument("--descriptor", choices=("rdf", "mace"), default="rdf")
    p.add_argument("--foundation", help="MACE model for --descriptor mace (catalog name or path)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_select)

    p = sub.add_parser("selfgen", help="sample MD frames and label them")
    p.add_argument("runs", nargs="+", help="run directories (with traj.dump)")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--label", required=True, help="lammps:<potential> or ase:<module>:<factory>")
    p.add_argument("--skip-ps", type=float, default=0.0, help="leave out the first ps of each run")
    p.add_argument("--out", required=True)
    split_args(p)
    p.set_defaults(fn=cmd_selfgen)

    p = sub.add_parser("train", help="train, validate and register a model")
    p.add_argument("--strategy", required=True, choices=("naive", "multihead", "scratch", "deepmd"))
    p.add_argument("--data", required=True, help="a prepared data set (from data, select or selfgen)")
    p.add_argument("--name", required=True, help="the catalog name of the new potential")
    p.add_argument("--foundation", help="foundation MACE model: catalog name or .model path (naive, multihead)")
    p.add_argument("--pretrain", help="prepared data set replayed for the foundation head (multihead)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hyper", help="TOML file overriding finetune/hyperparams/*.toml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="one hyper-parameter (repeatable)")
    p.add_argument("--force", action="store_true", help="replace a registered model of the same name")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("validate", help="errors of a catalog model on a data set")
    p.add_argument("name")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--out", help="directory for the JSON and parity plot (default .)")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("list", help="registered trained models")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("sweep", help="strategies x N x replicas -> models -> MD -> bar chart")
    p.add_argument("sweep", help="a sweep TOML file")
    p.add_argument("--root", default="runs", help="where the sweep's data, MD runs and outputs go")
    p.add_argument("--jobs", type=int, default=None, help="MD runs at once (default: cores)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_sweep)

    a = ap.parse_args(argv)
    return cli.run(lambda: a.fn(a), quiet=getattr(a, "quiet", False))


if __name__ == "__main__":
    sys.exit(main())
