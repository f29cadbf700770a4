"""Training strategies: each one turns a prepared data set into a registered, validated, LAMMPS-ready potential.

- ``naive``: every parameter of a foundation MACE model trained on the target set (``mace_run_train
  --foundation_model ... --multiheads_finetuning False``);
- ``multihead``: a new head trained on the target set while the foundation's own head keeps training on replayed
  pre-training configurations (``--multiheads_finetuning True --pt_train_file ... --num_samples_pt ...
  --subselect_pt fps|random``); the target head is then cut out into a single-head model for LAMMPS;
- ``scratch``: a fresh MACE on the target set only (the control);
- ``deepmd``: ``dp --pt train`` then ``dp --pt freeze``, with ``sel`` from ``dp neighbor-stat`` on the data.

Hyper-parameters: ``finetune/hyperparams/{mace,deepmd}.toml`` (documented defaults), overridden by a user file
and by ``key=value`` pairs. Each run works in ``<cache>/models/trained/.staging-<name>/`` and registers only
after training, validation on the held-out split and conversion for LAMMPS succeeded
(:mod:`finetune.registry`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from core.errors import InputError, ModelMissingError, PotentialError
from core.files import atomic_write_text, sha256_file
from finetune import registry
from finetune.datasets import DataSet, write_deepmd
from inputs.structure import LIF_TYPE_ORDER

logger = logging.getLogger(__name__)

Strategy = Literal["naive", "multihead", "scratch", "deepmd"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
#: mace_run_train flags that take no value (``store_true``)
MACE_SWITCHES = {"ema", "swa", "amsgrad", "stage_two", "lbfgs", "keep_checkpoints", "save_all_checkpoints",
                 "restart_latest", "save_cpu", "dry_run", "wandb", "distributed", "pair_repulsion"}
#: set by the tool; a hyper-parameter file may not set them
MACE_RESERVED = {"name", "work_dir", "train_file", "valid_file", "test_file", "energy_key", "forces_key",
                 "stress_key", "seed", "foundation_model", "pt_train_file", "device", "log_dir", "model_dir",
                 "checkpoints_dir", "results_dir"}
TARGET_HEAD = "Default"  # mace-torch's name for the fine-tuning head
#: bumped when what a strategy produces changes; a sweep retrains models of an older recipe
RECIPE = 2


@dataclass
class TrainRequest:
    name: str
    strategy: str
    data: DataSet
    foundation: str | None = None        # catalog name or .model path (naive, multihead; descriptors)
    pretrain: DataSet | None = None      # replay data (multihead)
    seed: int = 1
    overrides: dict = field(default_factory=dict)
    hyper_file: Path | None = None
    force: bool = False
    progress: bool = True
    elements: tuple[str, ...] = LIF_TYPE_ORDER
    provenance: dict = field(default_factory=dict)  # extra keys (e.g. the sweep's cell)


# --- hyper-parameters -----------------------------------------------------------------------------------------

def _builtin(name: str) -> dict:
    return tomllib.loads(resources.files("finetune.hyperparams").joinpath(name).read_text())


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_overrides(pairs: list[str]) -> dict:
    """``["lr=0.005", "model.descriptor.rcut=5.0", "subselect_pt=random"]`` as a nested dict (TOML values)."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--set {pair!r}: expected key=value")
        key, raw = pair.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        where = out
        *path, last = key.strip().split(".")
        for p in path:
            where = where.setdefault(p, {})
        where[last] = value
    return out


def hyperparameters(strategy: str, hyper_file: Path | None = None, overrides: dict | None = None) -> dict:
    """The effective hyper-parameters of a strategy: built-in file, then the user's file, then overrides."""
    if strategy not in STRATEGIES:
        raise InputError(f"strategy {strategy!r} is not one of {STRATEGIES}")
    user = {}
    if hyper_file is not None:
        try:
            user = tomllib.loads(Path(hyper_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InputError(f"hyper-parameter file {hyper_file}: {e}") from None
    if strategy == "deepmd":
        hp = _merge(_merge(_builtin("deepmd.toml"), user), overrides or {})
    else:
        base = _builtin("mace.toml")
        hp = _merge(base["common"], base[strategy])
        hp = _merge(_merge(hp, user.get("common", {})), user.get(strategy, {}))
        hp = _merge(hp, overrides or {})
        bad = sorted(MACE_RESERVED & set(hp))
        if bad:
            raise InputError(f"hyper-parameters {bad} are set by the tool itself, not in a hyper-parameter file")
    return hp


def mace_flags(hp: dict) -> list[str]:
    args = []
    for k, v in hp.items():
        if isinstance(v, dict):
            raise InputError(f"MACE hyper-parameter {k!r} is a table; mace_run_train takes flat flags")
        if k in MACE_SWITCHES:
            if v:
                args.append(f"--{k}")
        elif isinstance(v, bool):
            args += [f"--{k}", "True" if v else "False"]
        else:
            args += [f"--{k}", str(v)]
    return args


# --- foundation model -----------------------------------------------------------------------------------------

def foundation_path(spec: str) -> Path:
    """A foundation MACE model: a catalog name of the mace family (downloaded and checked by its entry) or a path."""
    from potentials.catalog import FAMILIES, family, family_of, get_entry, load_catalog

    catalog = load_catalog()
    if spec in catalog:
        entry = get_entry(spec)  # a malformed entry is refused with what is wrong
        module = family_of(entry)
        if not module.FOUNDATION_MODELS:
            raise InputError(f"foundation model {spec!r} is a {entry.family} potential, not a MACE model")
        return module.model_file(entry)
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        return path
    usable = [n for n, e in sorted(catalog.items()) if e.family in FAMILIES and family(e.family).FOUNDATION_MODELS]
    raise ModelMissingError(f"foundation model {spec!r} cannot be found: it is neither a MACE potential of the catalog "
                            f"({', '.join(usable)}) nor a file")


def _check_model_elements(path: Path, elements: list[str]) -> None:
    from potentials.mace import load_model, model_elements

    have = model_elements(load_model(path))
    missing = [e for e in elements if e not in have]
    if missing:
        raise InputError(f"foundation model {path} covers {list(have)}, not {missing} that the data set has")


# --- running the trainers -------------------------------------------------------------------------------------

PROGRESS = re.compile(r"(Epoch \d+|batch\s+\d+|Started training|Training complete|Saving model|ERROR)", re.I)


def run_logged(cmd: list[str], cwd: Path, log: Path, env: dict | None = None, progress: bool = True) -> None:
    """Run ``cmd`` with all output appended to ``log``; echo progress lines; clear error naming the log."""
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env or os.environ.copy())
        tail: list[str] = []
        for line in proc.stdout:
            fh.write(line)
            tail = (tail + [line.rstrip()])[-15:]
            if progress and PROGRESS.search(line):
                logger.info("  %s", line.rstrip()[-150:])
        rc = proc.wait()
    if rc != 0:
        raise PotentialError(f"{Path(cmd[0]).name} {' '.join(map(str, cmd[1:3]))} ... failed (exit {rc}); log: {log}\n"
                             + "\n".join(tail))


def _env() -> dict:
    return dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
                DP_INTRA_OP_PARALLELISM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
                DP_INTER_OP_PARALLELISM_THREADS="1")


def _train_mace(req: TrainRequest, hp: dict, work: Path, log: Path, foundation: Path | None) -> tuple[Path, dict]:
    import torch

    info: dict = {}
    cmd = [sys.executable, "-m", "mace.cli.run_train", "--name", req.name, "--work_dir", str(work / "mace"),
           "--train_file", str(req.data.split("train")), "--energy_key", "REF_energy", "--forces_key", "REF_forces",
           "--seed", str(req.seed), "--device", "cpu" if not torch.cuda.is_available() else "cuda"]
    if req.data.manifest["splits"]["valid"]["n"]:
        cmd += ["--valid_file", str(req.data.split("valid"))]
    if req.data.manifest.get("has_stress"):
        cmd += ["--stress_key", "REF_stress"]
    hp = dict(hp)
    if req.strategy in ("naive", "multihead"):
        cmd += ["--foundation_model", str(foundation)]
    if req.strategy == "multihead":
        pt = req.pretrain
        n_pt = min(int(hp.get("num_samples_pt", 100)), pt.manifest["n"])
        hp["num_samples_pt"] = n_pt
        cmd += ["--pt_train_file", str(pt.path / "frames.extxyz")]
        info["pretrain"] = {"hash": pt.hash, "n_pool": pt.manifest["n"], "num_samples_pt": n_pt,
                            "subselect_pt": hp.get("subselect_pt")}
    cmd += mace_flags(hp)
    info["command"] = cmd
    run_logged(cmd, work, log, _env(), req.progress)
    out = work / "mace" / f"{req.name}.model"
    if not out.is_file():
        raise PotentialError(f"mace_run_train finished without writing {out}; log: {log}")
    model = torch.load(str(out), map_location="cpu", weights_only=False)
    heads = list(getattr(model, "heads", None) or [])
    info["heads_trained"] = heads
    if len(heads) > 1:  # multi-head: keep the target head only, for LAMMPS
        from mace.tools.scripts_utils import remove_pt_head

        if TARGET_HEAD not in heads:
            raise PotentialError(f"trained model {out} has heads {heads}, none named {TARGET_HEAD!r}")
        dtype = torch.get_default_dtype()
        torch.set_default_dtype(next(model.parameters()).dtype)  # as mace's select_head: the copy keeps float64
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = remove_pt_head(model, TARGET_HEAD)
        finally:
            torch.set_default_dtype(dtype)
        info["head_selected"] = TARGET_HEAD
    final = work / "model.model"
    torch.save(model, final)
    shutil.rmtree(work / "mace" / "checkpoints", ignore_errors=True)  # the model above is what is kept
    for p in (work / "mace").glob("*.model"):
        p.unlink()
    return final, info


def neighbor_sel(systems: list[Path], rcut: float, type_map: tuple[str, ...], margin: float, work: Path,
                 log: Path, progress: bool) -> list[int]:
    """``sel`` per type from ``dp neighbor-stat``: max neighbours within rcut × margin, up to a multiple of 4."""
    dp = str(Path(sys.executable).with_name("dp"))
    stat = work / "neighbor-stat.log"
    cmd = [dp, "--pt", "neighbor-stat", "-s", *map(str, systems), "-r", str(rcut), "-t", *type_map, "-l", str(stat)]
    run_logged(cmd, work, log, _env(), progress)
    text = stat.read_text() if stat.is_file() else log.read_text()
    m = re.findall(r"max_nbor_size:\s*\[([\d\s]+)\]", text)
    if not m:
        raise PotentialError(f"dp neighbor-stat printed no max_nbor_size; log: {log}")
    counts = [int(v) for v in m[-1].split()]
    return [int(math.ceil(c * margin / 4.0) * 4) for c in counts]


def _train_deepmd(req: TrainRequest, hp: dict, work: Path, log: Path) -> tuple[Path, dict]:
    hp = copy.deepcopy(hp)
    margin = float(hp.pop("sel_margin", 1.1))
    train = write_deepmd(req.data.frames("train"), work / "data" / "train", req.elements)
    valid = write_deepmd(req.data.frames("valid"), work / "data" / "valid", req.elements) \
        if req.data.manifest["splits"]["valid"]["n"] else []
    desc = hp.setdefault("model", {}).setdefault("descriptor", {})
    sel = neighbor_sel(train, float(desc.get("rcut", 6.0)), req.elements, margin, work, log, req.progress)
    desc["sel"] = sel
    desc["seed"] = req.seed
    hp["model"]["type_map"] = list(req.elements)
    hp["model"].setdefault("fitting_net", {})["seed"] = req.seed
    training = hp.setdefault("training", {})
    training["seed"] = req.seed
    training["training_data"] = {"systems": [str(p) for p in train], "batch_size": training.pop("batch_size", "auto")}
    if valid:
        training["validation_data"] = {"systems": [str(p) for p in valid], "batch_size": "auto"}
    atomic_write_text(work / "input.json", json.dumps(hp, indent=1) + "\n")
    dp = str(Path(sys.executable).with_name("dp"))
    run_logged([dp, "--pt", "train", "input.json"], work, log, _env(), req.progress)
    run_logged([dp, "--pt", "freeze", "-o", "model.pth"], work, log, _env(), req.progress)
    return work / "model.pth", {"sel": sel, "sel_margin": margin, "input": hp}


# --- the whole flow -------------------------------------------------------------------------------------------

def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("mace-torch", "torch", "deepmd-kit", "ase"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def check_request(req: TrainRequest) -> Path | None:
    """Everything that can be checked before training; returns the foundation model path (if any)."""
    registry.check_name(req.name)
    if req.strategy not in STRATEGIES:
        raise InputError(f"strategy {req.strategy!r} is not one of {STRATEGIES}")
    if registry.is_registered(req.name) and not req.force:
        raise InputError(f"a trained model {req.name!r} is already registered ({registry.model_dir(req.name)}); "
                         "choose another name or pass --force to replace it")
    elements = req.data.manifest["elements"]
    foreign = sorted(set(elements) - set(req.elements))
    if foreign:
        raise InputError(f"data set {req.data.path} has elements {foreign} that are not the system's "
                         f"{list(req.elements)}")
    if req.data.manifest["splits"]["train"]["n"] < 1:
        raise InputError(f"data set {req.data.path} has no training configurations")
    foundation = None
    if req.strategy in ("naive", "multihead"):
        if not req.foundation:
            raise InputError(f"strategy {req.strategy!r} fine-tunes a foundation model: give --foundation")
        foundation = foundation_path(req.foundation)
        _check_model_elements(foundation, elements)
    if req.strategy == "multihead":
        if req.pretrain is None:
            raise InputError("strategy 'multihead' replays pre-training data: give --pretrain (a prepared data set)")
        foreign = sorted(set(req.pretrain.manifest["elements"]) - set(req.elements))
        if foreign:
            raise InputError(f"pre-training data set {req.pretrain.path} has elements {foreign}, not among "
                             f"{list(req.elements)}")
    return foundation


def train(req: TrainRequest) -> Path:
    """Train, validate, convert and register; returns the registered model directory."""
    from finetune.validation import validate

    foundation = check_request(req)
    hp = hyperparameters(req.strategy, req.hyper_file, req.overrides)
    work = registry.staging_dir(req.name)
    log = work / "train.log"
    started = time.time()
    logger.info("training %r (%s, %d configurations, seed %d); log: %s", req.name, req.strategy,
                req.data.manifest["splits"]["train"]["n"], req.seed, log)
    if req.strategy == "deepmd":
        model, info = _train_deepmd(req, hp, work, log)
        family, model_name = "deepmd", "model.pth"
    else:
        model, info = _train_mace(req, hp, work, log, foundation)
        family, model_name = "mace", "model.model"
    test = req.data.frames("test")
    metrics = validate(family, model, test, work, f"{req.name} on the test split ({len(test)} configurations)")
    prov = {"name": req.name, "strategy": req.strategy, "family": family, "seed": req.seed, "recipe": RECIPE,
            "n_train": req.data.manifest["splits"]["train"]["n"],
            "data": {"path": str(req.data.path), "hash": req.data.hash,
                     "splits": {k: {"n": v["n"], "hash": v["hash"]} for k, v in req.data.manifest["splits"].items()},
                     "selection": req.data.manifest.get("selection"),
                     "provenance": req.data.manifest.get("provenance")},
            "hyperparameters": hp, "versions": _versions(), "training_log": "train.log",
            "model_sha256": sha256_file(model), "validation": metrics,
            "train_seconds": round(time.time() - started, 1), **info, **req.provenance}
    if foundation is not None:
        prov["foundation"] = {"spec": req.foundation, "path": str(foundation), "sha256": sha256_file(foundation)}
        prov["foundation_validation"] = validate("mace", foundation, test, work,
                                                 f"{req.foundation} (before fine-tuning) on the test split",
                                                 stem="foundation-validation")
    if req.strategy != "deepmd":  # MACE: converted now, so a study can use it at once (cached by checksum)
        from potentials.mace import convert

        converted, _ = convert(model, None, "cpu", req.elements)
        prov["lammps_model"] = str(converted)
    else:
        from potentials.deepmd import inspect_model

        type_map, rcut = inspect_model(model)
        prov["type_map"], prov["rcut"] = list(type_map), rcut
    desc = f"{req.strategy} on {prov['n_train']} configurations (seed {req.seed})" + (
        f" from {req.foundation}" if req.foundation and foundation is not None else "")
    final = registry.register(req.name, work, family, model_name, req.elements, desc, prov, replace=req.force)
    logger.info("registered %r: %s  (test force RMSE %.1f meV/Å)", req.name, final,
                metrics["forces_mev_per_a"]["rmse"])
    return final
