"""Pick N training configurations: random sampling or farthest-point sampling (FPS) in a descriptor space.

Descriptors, one vector per configuration:

- ``mace`` — the foundation model's invariant per-atom features (``MACECalculator.get_descriptors``), averaged
  per element and concatenated (Li block, then F block): configurations the model "sees" alike are close;
- ``rdf`` — Gaussian-smeared pair-distance histograms per element pair within a cutoff, per atom: no model needed.

Columns are standardised (zero mean, unit variance; constant columns dropped) before distances are taken.
FPS starts from a configuration chosen by the seed and adds, one at a time, the configuration farthest from those
already chosen (ties to the lowest index): deterministic for a seed. Its quality is measured by the covering
radius — the largest distance from any configuration of the pool to its nearest chosen one (smaller: the choice
covers the pool better); FPS is within a factor 2 of the best possible covering radius, random sampling is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import InputError
from inputs.structure import LIF_TYPE_ORDER

METHODS = ("fps", "random")


def rdf_descriptors(frames: list, cutoff: float = 6.0, bins: int = 24, width: float = 0.15,
                    elements: tuple[str, ...] = LIF_TYPE_ORDER) -> np.ndarray:
    """Per-configuration pair-distance histograms (one block per element pair), normalised per atom."""
    from ase.neighborlist import neighbor_list

    centres = np.linspace(1.0, cutoff, bins)
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    out = np.zeros((len(frames), len(pairs) * bins))
    for k, atoms in enumerate(frames):
        i, j, d = neighbor_list("ijd", atoms, cutoff)
        sym = np.array(atoms.get_chemical_symbols())
        for p, (a, b) in enumerate(pairs):
            mask = ((sym[i] == a) & (sym[j] == b)) | ((sym[i] == b) & (sym[j] == a)) if a != b else \
                (sym[i] == a) & (sym[j] == a)
            g = np.exp(-0.5 * ((d[mask, None] - centres[None, :]) / width) ** 2).sum(axis=0)
            out[k, p * bins:(p + 1) * bins] = g / len(atoms)
    return out


def mace_descriptors(frames: list, model_path: str | Path, elements: tuple[str, ...] = LIF_TYPE_ORDER) -> np.ndarray:
    """Per-configuration means of the MACE model's invariant features, per element, concatenated."""
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model_path), device="cpu", default_dtype="float64")
    rows = []
    for atoms in frames:
        feats = np.asarray(calc.get_descriptors(atoms, invariants_only=True))
        sym = np.array(atoms.get_chemical_symbols())
        rows.append(np.concatenate([feats[sym == e].mean(axis=0) if np.any(sym == e) else np.zeros(feats.shape[1])
                                    for e in elements]))
    return np.array(rows)


def standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    sd = x.std(axis=0)
    keep = sd > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    return (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]


def farthest_point(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` rows chosen by farthest-point sampling, the first one drawn with ``seed``."""
    m = len(x)
    _check_n(n, m)
    first = int(np.random.default_rng(seed).integers(m))
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))  # first index among ties
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return np.array(chosen)


def random_pick(m: int, n: int, seed: int) -> np.ndarray:
    _check_n(n, m)
    return np.random.default_rng(seed).choice(m, size=n, replace=False)


def _check_n(n: int, m: int) -> None:
    if n < 1:
        raise InputError(f"cannot select {n} configurations; N must be at least 1")
    if n > m:
        raise InputError(f"cannot select N={n} configurations from a pool of {m}; "
                         f"choose N <= {m} or give more data")


def covering_radius(x: np.ndarray, chosen: np.ndarray) -> float:
    """max over the pool of the distance to the nearest chosen row (smaller covers better)."""
    d = np.min(np.linalg.norm(x[:, None, :] - x[None, np.asarray(chosen), :], axis=2), axis=1)
    return float(d.max())


@dataclass(frozen=True)
class Selection:
    indices: np.ndarray
    method: str
    seed: int
    descriptor: str
    covering_radius: float
    covering_radius_random: float  # the same measure for a random pick of the same size and seed, for comparison


def select(frames: list, n: int, method: str = "fps", seed: int = 1, descriptor: str = "rdf",
           model_path: str | Path | None = None) -> Selection:
    """Choose ``n`` of ``frames``; ``descriptor`` is ``rdf`` or ``mace`` (needs ``model_path``)."""
    if method not in METHODS:
        raise InputError(f"selection method {method!r} is not one of {METHODS}")
    _check_n(n, len(frames))
    if descriptor == "mace":
        if model_path is None:
            raise InputError("descriptor 'mace' needs a MACE model (the foundation model)")
        x = mace_descriptors(frames, model_path)
    elif descriptor == "rdf":
        x = rdf_descriptors(frames)
    else:
        raise InputError(f"descriptor {descriptor!r} is not one of ('rdf', 'mace')")
    x = standardise(x)
    rand = random_pick(len(frames), n, seed)
    idx = farthest_point(x, n, seed) if method == "fps" else rand
    return Selection(np.sort(idx), method, seed, descriptor, covering_radius(x, idx), covering_radius(x, rand))


def write_selection(dataset, n: int, out: str | Path, method: str = "fps", seed: int = 1, descriptor: str = "rdf",
                    model_path: str | Path | None = None):
    """A data set whose training split is ``n`` configurations chosen from ``dataset``'s training split; the
    validation and test splits are the parent's (so models trained on different N are tested alike)."""
    from finetune.datasets import SPLITS, DataSet, write_dataset

    dataset: DataSet
    pool = dataset.frames("train")
    if n > len(pool):
        raise InputError(f"cannot select N={n} configurations: the training split of {dataset.path} has only "
                         f"{len(pool)}")
    sel = select(pool, n, method, seed, descriptor, model_path)
    frames = [pool[i] for i in sel.indices]
    idx = {"train": np.arange(len(frames))}
    for name in SPLITS[1:]:
        part = dataset.frames(name)
        idx[name] = np.arange(len(frames), len(frames) + len(part))
        frames += part
    info = {"selection": {"parent": str(dataset.path), "parent_hash": dataset.hash, "n": n, "method": method,
                          "seed": seed, "descriptor": descriptor, "indices_in_parent_train": sel.indices.tolist(),
                          "covering_radius": sel.covering_radius,
                          "covering_radius_random": sel.covering_radius_random}}
    return write_dataset(frames, idx, out, split={"from": str(dataset.path)}, inputs=dataset.manifest["inputs"],
                         provenance=dataset.manifest.get("provenance"), extra=info)
