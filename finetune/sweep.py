"""The fine-tuning sweep: strategies × N × training replicas → registered models → NVT at a few temperatures →
D with error bars per model, as a table and a bar chart (arXiv 2510.05020, Figs. 2–4).

A sweep file (TOML; relative paths are taken from its folder)::

    name = "lif-ft"
    foundation = "mace-mpa-0"                  # catalog MACE potential or .model path
    study = "default"                          # base study: system, MD and analysis settings
    temperatures_k = [400.0, 450.0]
    md_seeds = [1, 2]                          # MD replicas per model (default: the study's seeds)
    references = ["mace-mpa-0", "deepmd-lif"]  # run as they are, beside the trained models (missing: skipped)

    [data]
    target = ["lif-deepmd-set/"]               # sources, or a prepared data set (e.g. from `selfgen`)
    pretrain = ["mp-lif.xyz"]                  # replay data for multihead
    valid_fraction = 0.1
    test_fraction = 0.1
    seed = 1

    [selection]
    method = "fps"                              # or "random"
    descriptor = "rdf"                          # or "mace" (the foundation model's descriptors)
    n = [50, 100, 200, 300]

    [training]
    strategies = ["naive", "multihead", "scratch", "deepmd"]
    seeds = [1, 2]                             # training replicas (also the selection seed)
    hyperparameters = "my-hyper.toml"          # optional, as for `train --hyper`
    set = { max_num_epochs = 50 }              # MACE overrides
    set_deepmd = { "training.numb_steps" = 100000 }

Outputs in ``<root>/<name>/``: ``data/`` (prepared and selected sets), ``md/`` (the runs), ``sweep.csv`` (one row
per model and temperature: D ± σ and test errors), ``sweep-summary.csv`` (per strategy, N and temperature: mean
over training replicas), ``sweep.png`` (the bar chart), ``sweep.json`` (all of it, with model provenance paths).
Re-running skips models already trained with the same data, strategy, seed and hyper-parameters, and finished
MD runs (interrupted ones resume).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core import plotting
from core.config import builtin_toml, choices, from_dict, read_toml, to_dict
from core.errors import InputError, LifDiffusionError
from core.files import atomic_write_text
from finetune.training import Strategy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepData:
    target: tuple[str, ...]                # sources, or one prepared data set directory
    pretrain: tuple[str, ...] = ()         # replay data (multihead)
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 1


@dataclass(frozen=True)
class SweepSelection:
    n: tuple[int, ...]
    method: Literal["fps", "random"] = "fps"
    descriptor: Literal["rdf", "mace"] = "rdf"


@dataclass(frozen=True)
class SweepTraining:
    strategies: tuple[Strategy, ...]
    seeds: tuple[int, ...] = (1,)
    hyperparameters: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    set_deepmd: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sweep:
    """A sweep file (see the module docstring); relative paths are resolved against the file's folder."""

    name: str
    data: SweepData
    selection: SweepSelection
    training: SweepTraining
    description: str = ""
    foundation: str | None = None
    study: str = "default"
    temperatures_k: tuple[float, ...] = (400.0, 450.0)
    md_seeds: tuple[int, ...] | None = None
    references: tuple[str, ...] = ()
    source: str = field(default="<memory>", metadata={"from_file": False})

    def __post_init__(self) -> None:
        def fail(where: str, msg: str) -> InputError:
            return InputError(f"{self.source}: {where}: {msg}")

        if not self.name or any(c in self.name for c in "/\\") or self.name.startswith("."):
            raise fail("name", f"{self.name!r} is not usable as a directory name")
        if not self.data.target:
            raise fail("data.target", "missing: the target data set(s)")
        if not 0 <= self.data.valid_fraction < 1 or not 0 <= self.data.test_fraction < 1 \
                or self.data.valid_fraction + self.data.test_fraction >= 1:
            raise fail("data", "valid_fraction and test_fraction must be in [0, 1) and leave a training set")
        if not self.training.strategies:
            raise fail("training.strategies", f"empty; choose from {', '.join(choices(SweepTraining, 'strategies'))}")
        if any(s in ("naive", "multihead") for s in self.training.strategies) and not self.foundation:
            raise fail("foundation", "naive and multihead fine-tune a foundation model: name one")
        if "multihead" in self.training.strategies and not self.data.pretrain:
            raise fail("data.pretrain", "multihead replays pre-training data: give the file(s)")
        if not self.selection.n or min(self.selection.n) < 1:
            raise fail("selection.n", f"{list(self.selection.n)}: give one or more positive sizes")
        if not self.training.seeds:
            raise fail("training.seeds", "give at least one training seed")
        if not self.temperatures_k or min(self.temperatures_k) <= 0:
            raise fail("temperatures_k", f"{list(self.temperatures_k)}: give positive temperatures")

    @property
    def overrides(self) -> dict:
        """MACE hyper-parameter overrides (``training.set``), nested as ``--set`` would give them."""
        from finetune.training import parse_overrides

        return parse_overrides([f"{k}={json.dumps(v)}" for k, v in self.training.set.items()])

    @property
    def overrides_deepmd(self) -> dict:
        from finetune.training import parse_overrides

        return parse_overrides([f"{k}={json.dumps(v)}" for k, v in self.training.set_deepmd.items()])


def _path(base: Path, p: str) -> str:
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else (base / q))


def load_sweep(name_or_path: str | Path) -> Sweep:
    """A built-in sweep by name (``paper``) or a sweep file by path; paths in it are taken from its folder."""
    path = builtin_toml(name_or_path, "inputs.sweeps", "sweep")
    sweep = from_dict(Sweep, read_toml(path, "sweep"), str(path))
    base = path.parent
    data = dataclasses.replace(sweep.data, target=tuple(_path(base, p) for p in sweep.data.target),
                               pretrain=tuple(_path(base, p) for p in sweep.data.pretrain))
    training = sweep.training
    if training.hyperparameters:
        training = dataclasses.replace(training, hyperparameters=_path(base, training.hyperparameters))
    study = _path(base, sweep.study) if sweep.study.endswith(".toml") else sweep.study  # built-in names stay
    return dataclasses.replace(sweep, data=data, training=training, study=study)


def model_name(sweep: Sweep, strategy: str, n: int, seed: int) -> str:
    return f"{sweep.name}-{strategy}-n{n}-s{seed}"


def _dataset(sources: tuple[str, ...], out: Path, sweep: Sweep):
    from finetune.datasets import load, prepare

    if len(sources) == 1 and (Path(sources[0]) / "dataset.json").is_file():
        return load(sources[0])
    return prepare(list(sources), out, valid_fraction=sweep.data.valid_fraction, test_fraction=sweep.data.test_fraction,
                   seed=sweep.data.seed)


def _same_training(name: str, data_hash: str, strategy: str, seed: int, hp: dict) -> bool:
    from finetune import registry
    from finetune.training import RECIPE

    if not registry.is_registered(name):
        return False
    p = registry.provenance(name)
    return (p.get("recipe") == RECIPE and p.get("data", {}).get("hash") == data_hash and p.get("strategy") == strategy and p.get("seed") == seed
            and json.loads(json.dumps(p.get("hyperparameters"))) == json.loads(json.dumps(hp)))


def train_all(sweep: Sweep, root: Path, progress: bool = True) -> tuple[list[dict], list[str]]:
    """Prepare, select and train every (strategy, N, seed); returns the models and the errors of failed ones."""
    from finetune.selection import write_selection
    from finetune.training import TrainRequest, foundation_path, hyperparameters, train

    data_dir = root / "data"
    target = _dataset(sweep.data.target, data_dir / "target", sweep)
    pretrain = _dataset(sweep.data.pretrain, data_dir / "pretrain", sweep) if sweep.data.pretrain else None
    pool = target.manifest["splits"]["train"]["n"]
    too_big = [n for n in sweep.selection.n if n > pool]
    if too_big:
        raise InputError(f"{sweep.source}: selection.n {too_big} larger than the {pool} training configurations of "
                         f"{target.path}")
    model_path = foundation_path(sweep.foundation) if sweep.selection.descriptor == "mace" else None
    models, failed = [], []
    cells = [(s, n, seed) for n in sweep.selection.n for seed in sweep.training.seeds for s in sweep.training.strategies]
    for k, (strategy, n, seed) in enumerate(cells, start=1):
        name = model_name(sweep, strategy, n, seed)
        sel_dir = data_dir / f"n{n}-s{seed}"
        if not (sel_dir / "dataset.json").is_file() or \
                json.loads((sel_dir / "dataset.json").read_text())["selection"]["parent_hash"] != target.hash:
            write_selection(target, n, sel_dir, sweep.selection.method, seed, sweep.selection.descriptor, model_path)
        from finetune.datasets import load

        data = load(sel_dir)
        over = sweep.overrides_deepmd if strategy == "deepmd" else sweep.overrides
        hp_file = Path(sweep.training.hyperparameters) if sweep.training.hyperparameters else None
        hp = hyperparameters(strategy, hp_file, over)
        row = {"name": name, "strategy": strategy, "n": n, "seed": seed}
        log.info("[%d/%d] %s", k, len(cells), name)
        if _same_training(name, data.hash, strategy, seed, hp):
            log.info("  already trained with this data and these settings: kept")
            models.append(row)
            continue
        req = TrainRequest(name=name, strategy=strategy, data=data, foundation=sweep.foundation, pretrain=pretrain,
                           seed=seed, overrides=over, hyper_file=hp_file, force=True, progress=progress,
                           provenance={"sweep": {"name": sweep.name, "file": sweep.source}})
        try:
            train(req)
            models.append(row)
        except LifDiffusionError as e:
            failed.append(f"{name}: {e}")
            log.error("  %s", e)
    return models, failed


def md_study(sweep: Sweep, names: list[str]):
    """The base study with the sweep's models, references, temperatures and MD seeds."""
    from inputs.study import load_study
    from potentials.catalog import load_catalog

    base = load_study(sweep.study)
    catalog = load_catalog()
    refs = []
    for r in sweep.references:
        if r not in catalog:
            raise InputError(f"{sweep.source}: references: {r!r} is not in the potential catalog")
        refs.append(r)
    return dataclasses.replace(base, name=sweep.name, potentials=tuple(refs) + tuple(names),
                               temperatures_k=sweep.temperatures_k, seeds=sweep.md_seeds or base.seeds,
                               source=sweep.source)


def run_sweep(sweep: Sweep, root: Path, progress: bool = True, jobs: int | None = None) -> int:
    from analysis.study import analyse_study
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import run_many

    out = Path(root) / sweep.name
    out.mkdir(parents=True, exist_ok=True)
    models, failed = train_all(sweep, out, progress)
    study = md_study(sweep, [m["name"] for m in models])
    paths = render_study(study, out / "md")  # references without a model file are skipped with a warning
    failed += run_many(paths, find_lammps(), jobs=jobs, progress=progress)
    analysis = analyse_study(out / "md" / study.name)
    results = analysis.results
    for p in analysis.pending:
        log.warning("not finished, left out: %s", p)
    rows = table_rows(models, results, analysis.selection)
    write_outputs(rows, out, sweep, analysis.mobile)
    log.info("sweep %r: %d model(s), %d (potential, T) results\n  %s\n  %s\n  %s", sweep.name, len(models),
             len(results), out / "sweep.csv", out / "sweep-summary.csv", out / "sweep.png")
    for f in failed:
        log.error("failed: %s", f)
    return 1 if failed else 0


ROW_KEYS = ("potential", "strategy", "n", "seed", "temperature_k", "d_cm2_s", "d_stderr_cm2_s", "status",
            "n_md_replicas",
            "test_force_rmse_mev_a", "test_energy_rmse_mev_atom", "provenance")


def table_rows(models: list[dict], results: list, observable: str) -> list[dict]:
    from finetune import registry

    by_name = {m["name"]: m for m in models}
    rows = []
    for r in results:
        m = by_name.get(r.potential, {"strategy": "reference", "n": "", "seed": ""})
        prov = registry.provenance(r.potential) if r.potential in by_name else {}
        v = prov.get("validation", {})
        p = r.point(observable)
        rows.append({"potential": r.potential, "strategy": m["strategy"], "n": m["n"], "seed": m["seed"],
                     "temperature_k": r.temperature_k, "d_cm2_s": p.d_cm2_s if p else None,
                     "d_stderr_cm2_s": p.d_stderr_cm2_s if p else None, "status": r.status,
                     "n_md_replicas": len(r.run_dirs),
                     "test_force_rmse_mev_a": v.get("forces_mev_per_a", {}).get("rmse"),
                     "test_energy_rmse_mev_atom": v.get("energy_mev_per_atom", {}).get("rmse"),
                     "provenance": str(registry.model_dir(r.potential) / "provenance.json") if prov else ""})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per (strategy, N, T): mean D over training replicas; its error is the standard error over replicas when
    there are two or more, else the one model's MD error."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["strategy"], r["n"], r["temperature_k"]) if r["strategy"] != "reference" else \
            (r["potential"], "", r["temperature_k"])
        groups.setdefault(key, []).append(r)
    out = []
    for (label, n, t), rs in groups.items():
        d = np.array([np.nan if r["d_cm2_s"] is None else r["d_cm2_s"] for r in rs], dtype=float)
        if len(rs) >= 2:
            err, kind = float(d.std(ddof=1) / np.sqrt(len(d))), "between training replicas"
        else:
            e = rs[0]["d_stderr_cm2_s"]
            err, kind = (float(e) if e is not None else float("nan")), "MD error (GLS, replicas combined)"
        out.append({"group": label if n == "" else f"{label} N={n}", "strategy": rs[0]["strategy"], "n": n,
                    "temperature_k": t, "d_mean_cm2_s": float(d.mean()), "d_err_cm2_s": err, "error": kind,
                    "n_models": len(rs), "d_models_cm2_s": " ".join(f"{x:.4g}" for x in d)})
    order = {s: i for i, s in enumerate(["reference", "naive", "multihead", "scratch", "deepmd"])}
    out.sort(key=lambda r: (r["temperature_k"], order.get(r["strategy"], 9), r["n"] if r["n"] != "" else -1,
                            r["group"]))
    return out


def _csv(rows: list[dict], keys) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(keys), lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in keys} for r in rows)
    return buf.getvalue()


def write_outputs(rows: list[dict], out: Path, sweep: Sweep, mobile: str) -> None:
    summary = summarise(rows)
    atomic_write_text(out / "sweep.csv", _csv(rows, ROW_KEYS))
    atomic_write_text(out / "sweep-summary.csv", _csv(summary, summary[0].keys() if summary else ["group"]))
    atomic_write_text(out / "sweep.json", json.dumps({"sweep": to_dict(sweep), "models": rows,
                                                      "summary": summary}, indent=1, default=str) + "\n")
    plot(summary, rows, out / "sweep.png", sweep.name, mobile)


def plot(summary: list[dict], rows: list[dict], path: Path, title: str, mobile: str) -> Path:
    plt = plotting.pyplot()

    temps = sorted({r["temperature_k"] for r in summary})
    groups = list(dict.fromkeys(r["group"] for r in summary))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(temps)) + 2), 4.5))
    width = 0.8 / max(1, len(temps))
    x = np.arange(len(groups))
    for k, t in enumerate(temps):
        at = {r["group"]: r for r in summary if r["temperature_k"] == t}
        means = [at[g]["d_mean_cm2_s"] if g in at else np.nan for g in groups]
        errs = [at[g]["d_err_cm2_s"] if g in at else np.nan for g in groups]
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, means, width, yerr=errs, capsize=3, label=f"{t:g} K", alpha=0.8)
        for g, p in zip(groups, pos):  # every training replica as a dot
            if g in at and at[g]["n_models"] > 1:
                vals = [float(v) for v in at[g]["d_models_cm2_s"].split()]
                ax.scatter([p] * len(vals), vals, s=10, color="k", zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30, ha="right")
    ax.set_ylabel("D (cm²/s)")
    ax.set_title(f"{title}: {mobile} tracer diffusivity; bars ± error, dots: training replicas", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return plotting.save(fig, path, dpi=120)
