"""Training data sets: read, check, hash, split and write labelled configurations.

A data set is a list of ASE ``Atoms`` each carrying energy (eV), forces (eV/Å) and, where known, stress (eV/Å³,
ASE sign and Voigt order) as single-point results. Readers:

- extended XYZ (``.xyz``, ``.extxyz``): labels under ``REF_energy``/``REF_forces``/``REF_stress`` (what this
  project writes), ``energy``/``forces``/``stress``, or calculator results;
- DeePMD-kit systems, npy (``set.*/``) or raw (``*.raw``), read by dpdata: a system directory (with ``type.raw``)
  or a directory holding many of them; virials become stress;
- ASE databases (``.db``, ``.json``).

On disk a prepared data set is a directory with ``frames.npz`` (every number in float64: the data set itself),
``train/valid/test.extxyz`` (a seeded split, for the trainers; extended XYZ keeps 8 decimals) and
``dataset.json`` (counts, elements, the content hash of every set, where it came from). The content hash covers
atomic numbers, cell, positions and labels in float64, in order: two sets with the same hash hold the same numbers.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.files import atomic_copy, atomic_write_text, sha256_file
from inputs.structure import LIF_TYPE_ORDER

FORMATS = ("extxyz", "deepmd", "ase-db")
SPLITS = ("train", "valid", "test")
ENERGY_KEYS = ("REF_energy", "energy")
FORCES_KEYS = ("REF_forces", "forces")
STRESS_KEYS = ("REF_stress", "stress")
HASH_VERSION = "lif-dataset-v1"


def detect_format(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        if (path / "type.raw").is_file() or any(path.glob("*/type.raw")) or any(path.glob("**/type.raw")):
            return "deepmd"
        raise InputError(f"data set {path}: a directory but not a DeePMD system (no type.raw in it or below it)")
    if path.suffix in (".xyz", ".extxyz"):
        return "extxyz"
    if path.suffix in (".db", ".json"):
        return "ase-db"
    raise InputError(f"data set {path}: cannot tell its format from the name; give one of {FORMATS}")


def read_frames(path: str | Path, fmt: str | None = None) -> list:
    """Labelled frames from ``path`` (format detected from the name unless given)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"data set {path} does not exist")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"data set {path}: format {fmt!r} is not one of {FORMATS}")
    frames = {"extxyz": _read_extxyz, "deepmd": _read_deepmd, "ase-db": _read_db}[fmt](path)
    if not frames:
        raise InputError(f"data set {path} holds no configurations")
    return frames


def _labelled(atoms, energy, forces, stress):
    from ase.calculators.singlepoint import SinglePointCalculator

    a = atoms.copy()
    a.info = {k: v for k, v in atoms.info.items() if k not in ENERGY_KEYS + STRESS_KEYS}
    for key in FORCES_KEYS:
        a.arrays.pop(key, None)
    kw = {"energy": None if energy is None else float(energy),
          "forces": None if forces is None else np.asarray(forces, dtype=float)}
    if stress is not None:
        s = np.asarray(stress, dtype=float)
        kw["stress"] = _voigt(s)
    a.calc = SinglePointCalculator(a, **kw)
    return a


def _voigt(s: np.ndarray) -> np.ndarray:
    if s.shape == (3, 3):
        return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    if s.shape == (9,):
        return _voigt(s.reshape(3, 3))
    return s.reshape(6)


def _read_extxyz(path: Path) -> list:
    from ase.io import read

    try:
        raw = read(str(path), index=":", format="extxyz")
    except Exception as e:  # ase raises many kinds for malformed files
        raise InputError(f"data set {path}: not readable as extended XYZ ({type(e).__name__}: {e})") from None
    out = []
    for a in raw:
        calc = a.calc.results if a.calc is not None else {}
        energy = next((a.info[k] for k in ENERGY_KEYS if k in a.info), calc.get("energy"))
        forces = next((a.arrays[k] for k in FORCES_KEYS if k in a.arrays), calc.get("forces"))
        stress = next((a.info[k] for k in STRESS_KEYS if k in a.info), calc.get("stress"))
        a.calc = None
        out.append(_labelled(a, energy, forces, stress))
    return out


def _read_deepmd(path: Path) -> list:
    try:
        import dpdata
    except ImportError as e:
        raise InputError(f"reading DeePMD systems needs dpdata ({e}); run `make install`") from None
    from ase import Atoms

    dirs = [path] if (path / "type.raw").is_file() else sorted(p.parent for p in path.glob("**/type.raw"))
    frames = []
    for d in dirs:
        fmt = "deepmd/npy" if any(d.glob("set.*")) else "deepmd/raw"
        try:
            system = dpdata.LabeledSystem(str(d), fmt=fmt)
        except Exception as e:
            raise InputError(f"data set {d}: not readable as a {fmt} system ({type(e).__name__}: {e})") from None
        data = system.data
        names = [data["atom_names"][t] for t in data["atom_types"]]
        n = system.get_nframes()
        for k in range(n):
            cell = data["cells"][k]
            atoms = Atoms(symbols=names, positions=data["coords"][k], cell=cell, pbc=not data.get("nopbc", False))
            energy = data["energies"][k] if "energies" in data else None
            forces = data["forces"][k] if "forces" in data else None
            stress = -data["virials"][k] / abs(np.linalg.det(cell)) if "virials" in data else None
            frames.append(_labelled(atoms, energy, forces, stress))
    return frames


def _read_db(path: Path) -> list:
    import ase.db

    try:
        rows = list(ase.db.connect(str(path)).select())
    except Exception as e:
        raise InputError(f"data set {path}: not readable as an ASE database ({type(e).__name__}: {e})") from None
    out = []
    for row in rows:
        a = row.toatoms()
        calc = a.calc.results if a.calc is not None else {}
        out.append(_labelled(a, calc.get("energy"), calc.get("forces"), calc.get("stress")))
    return out


def labels(a) -> tuple[float | None, np.ndarray | None, np.ndarray | None]:
    r = a.calc.results if a.calc is not None else {}
    return r.get("energy"), r.get("forces"), r.get("stress")


def check_frames(frames: list, source: str, elements: tuple[str, ...] = LIF_TYPE_ORDER) -> None:
    """Every frame labelled with energy and forces of the right shape, and only ``elements`` in it."""
    for k, a in enumerate(frames):
        energy, forces, _ = labels(a)
        if forces is None:
            raise InputError(f"data set {source}: configuration {k} has no forces (looked for {'/'.join(FORCES_KEYS)} "
                             "and calculator results); fine-tuning needs forces")
        if energy is None:
            raise InputError(f"data set {source}: configuration {k} has no energy (looked for "
                             f"{'/'.join(ENERGY_KEYS)} and calculator results)")
        if np.shape(forces) != (len(a), 3) or not np.all(np.isfinite(forces)):
            raise InputError(f"data set {source}: configuration {k} has forces of shape {np.shape(forces)} "
                             f"(expected {(len(a), 3)}) or non-finite values")
        extra = sorted(set(a.get_chemical_symbols()) - set(elements))
        if extra:
            raise InputError(f"data set {source}: configuration {k} has elements {extra}, not among {list(elements)} "
                             "(the elements of the system and the model)")


def content_hash(frames: list) -> str:
    """sha256 of the numbers of a set, in order (atomic numbers, cell, positions, energy, forces, stress)."""
    h = hashlib.sha256(HASH_VERSION.encode())
    for a in frames:
        energy, forces, stress = labels(a)
        for arr in (np.asarray(a.numbers, dtype=np.int64), np.asarray(a.cell.array, dtype=np.float64),
                    np.asarray(a.positions, dtype=np.float64), np.asarray([energy], dtype=np.float64),
                    np.asarray(forces, dtype=np.float64),
                    np.asarray(stress if stress is not None else [], dtype=np.float64)):
            h.update(np.ascontiguousarray(arr).tobytes())
            h.update(b"|")
    return h.hexdigest()


def split_indices(n: int, valid_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """A seeded permutation cut into train/valid/test (each of the last two at least one frame if asked for)."""
    for name, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise InputError(f"{name} must be in [0, 1), not {f}")
    n_valid = max(1, round(n * valid_fraction)) if valid_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    if n - n_valid - n_test < 1:
        raise InputError(f"{n} configurations cannot be split into {n_valid} validation + {n_test} test + "
                         "at least 1 training")
    order = np.random.default_rng(seed).permutation(n)
    return {"test": np.sort(order[:n_test]), "valid": np.sort(order[n_test:n_test + n_valid]),
            "train": np.sort(order[n_test + n_valid:])}


def write_extxyz(frames: list, path: Path) -> Path:
    """Extended XYZ with ``REF_energy``, ``REF_forces`` and ``REF_stress`` (the keys the trainers are told)."""
    from ase.io import write

    out = []
    for a in frames:
        energy, forces, stress = labels(a)
        b = a.copy()
        b.calc = None
        b.info["REF_energy"] = float(energy)
        b.arrays["REF_forces"] = np.asarray(forces, dtype=float)
        if stress is not None:
            b.info["REF_stress"] = np.asarray(stress, dtype=float)
        out.append(b)
    path = Path(path)
    atomic_copy(lambda tmp: write(tmp, out, format="extxyz"), path)
    return path


def write_deepmd(frames: list, directory: Path, type_map: tuple[str, ...] = LIF_TYPE_ORDER) -> list[Path]:
    """DeePMD-kit npy systems, one per distinct atom list (DeePMD needs the same atoms in every frame)."""
    directory = Path(directory)
    groups: dict[tuple[str, ...], list] = {}
    for a in frames:
        groups.setdefault(tuple(a.get_chemical_symbols()), []).append(a)
    out = []
    for k, (symbols, group) in enumerate(sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[0]))):
        d = directory / f"sys.{k:03d}"
        sets = d / "set.000"
        sets.mkdir(parents=True, exist_ok=True)
        (d / "type_map.raw").write_text("\n".join(type_map) + "\n")
        (d / "type.raw").write_text("\n".join(str(type_map.index(s)) for s in symbols) + "\n")
        lab = [labels(a) for a in group]
        np.save(sets / "box.npy", np.array([a.cell.array.reshape(9) for a in group]))
        np.save(sets / "coord.npy", np.array([a.positions.reshape(-1) for a in group]))
        np.save(sets / "energy.npy", np.array([e for e, _, _ in lab], dtype=float))
        np.save(sets / "force.npy", np.array([np.asarray(f).reshape(-1) for _, f, _ in lab]))
        if all(s is not None for _, _, s in lab):
            virial = [-_full(s) * a.get_volume() for a, (_, _, s) in zip(group, lab)]
            np.save(sets / "virial.npy", np.array([v.reshape(9) for v in virial]))
        out.append(d)
    return out


def save_npz(frames: list, path: Path) -> Path:
    """Frames and labels in float64 (stress NaN where absent), concatenated with per-frame atom counts."""
    lab = [labels(a) for a in frames]
    arrays = {
        "natoms": np.array([len(a) for a in frames], dtype=np.int64),
        "numbers": np.concatenate([a.numbers for a in frames]).astype(np.int64),
        "positions": np.concatenate([a.positions for a in frames]).astype(np.float64),
        "forces": np.concatenate([np.asarray(f, dtype=np.float64) for _, f, _ in lab]),
        "cells": np.array([a.cell.array for a in frames], dtype=np.float64),
        "pbc": np.array([a.pbc for a in frames], dtype=bool),
        "energies": np.array([e for e, _, _ in lab], dtype=np.float64),
        "stresses": np.array([np.full(6, np.nan) if s is None else _voigt(np.asarray(s, dtype=float))
                              for _, _, s in lab]),
    }
    path = Path(path)
    atomic_copy(lambda tmp: np.savez(tmp, **arrays), path)
    return path


def load_npz(path: Path) -> list:
    from ase import Atoms

    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    out, start = [], 0
    for k, n in enumerate(d["natoms"]):
        sl = slice(start, start + int(n))
        start += int(n)
        a = Atoms(numbers=d["numbers"][sl], positions=d["positions"][sl], cell=d["cells"][k], pbc=d["pbc"][k])
        s = d["stresses"][k]
        out.append(_labelled(a, d["energies"][k], d["forces"][sl], None if np.isnan(s).any() else s))
    return out


def _full(voigt) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = np.asarray(voigt, dtype=float)
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


@dataclass(frozen=True)
class DataSet:
    """A prepared data set directory."""

    path: Path
    manifest: dict

    def split(self, name: str) -> Path:
        if name not in SPLITS:
            raise InputError(f"no split {name!r}; splits: {SPLITS}")
        return self.path / f"{name}.extxyz"

    @functools.cached_property
    def _frames(self) -> list:
        return load_npz(self.path / "frames.npz")  # read once per DataSet, whichever splits are asked for

    def all_frames(self) -> list:
        return list(self._frames)

    def frames(self, name: str) -> list:
        if name not in SPLITS:
            raise InputError(f"no split {name!r}; splits: {SPLITS}")
        return [self._frames[i] for i in self.manifest["splits"][name]["indices"]]

    @property
    def hash(self) -> str:
        return self.manifest["hash"]


def prepare(sources: list[str | Path], out: str | Path, *, valid_fraction: float = 0.1, test_fraction: float = 0.1,
            seed: int = 1, elements: tuple[str, ...] = LIF_TYPE_ORDER, fmt: str | None = None,
            provenance: dict | None = None) -> DataSet:
    """Read, check, hash, split and write a data set directory (written whole or not at all)."""
    if not sources:
        raise InputError("no data set given")
    frames, inputs = [], []
    for src in sources:
        got = read_frames(src, fmt)
        check_frames(got, str(src), elements)
        frames += got
        inputs.append({"path": str(Path(src).resolve()), "format": fmt or detect_format(Path(src)),
                       "n": len(got), "hash": content_hash(got)})
    idx = split_indices(len(frames), valid_fraction, test_fraction, seed)
    split = {"valid_fraction": valid_fraction, "test_fraction": test_fraction, "seed": seed}
    return write_dataset(frames, idx, out, split=split, inputs=inputs, provenance=provenance)


def write_dataset(frames: list, idx: dict[str, np.ndarray], out: str | Path, *, split: dict, inputs: list,
                  provenance: dict | None = None, extra: dict | None = None) -> DataSet:
    """Write ``frames`` cut by ``idx`` (train/valid/test index arrays) as a data set directory, atomically."""
    import shutil

    out = Path(out)
    staging = out.with_name(f".{out.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    splits = {}
    for name in SPLITS:
        part = [frames[i] for i in idx[name]]
        write_extxyz(part, staging / f"{name}.extxyz")
        splits[name] = {"n": len(part), "hash": content_hash(part), "indices": np.asarray(idx[name]).tolist()}
    write_extxyz(frames, staging / "frames.extxyz")  # for mace's --pt_train_file
    save_npz(frames, staging / "frames.npz")
    manifest = {
        "n": len(frames), "hash": content_hash(frames),
        "elements": sorted({s for a in frames for s in a.get_chemical_symbols()}),
        "n_atoms": sorted({len(a) for a in frames}),
        "has_stress": all(labels(a)[2] is not None for a in frames),
        "split": split, "splits": splits, "inputs": inputs, "provenance": provenance or {},
        "files": {f: sha256_file(staging / f) for f in (*(f"{n}.extxyz" for n in (*SPLITS, "frames")), "frames.npz")},
        **(extra or {}),
    }
    atomic_write_text(staging / "dataset.json", json.dumps(manifest, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return DataSet(out, manifest)


def load(path: str | Path) -> DataSet:
    """A prepared data set directory (``dataset.json`` and its split files)."""
    path = Path(path)
    m = path / "dataset.json"
    if not m.is_file():
        raise InputError(f"{path} is not a prepared data set (no dataset.json); make one with "
                         "`python -m finetune data SOURCE... --out DIR`")
    return DataSet(path, json.loads(m.read_text()))
