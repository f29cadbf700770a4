"""Self-generated data: configurations sampled from a study's own MD runs, labelled by a pluggable calculator.

Frames are taken evenly (after ``skip_ps`` of each run) from the all-atom configuration dumps
(``configs.<segment>.dump``, written when the study sets ``md.config_interval_ps``) of finished or partial runs
of any potential — the foundation MACE in the paper's protocol — and labelled by

- ``lammps:<potential>`` — any potential of the catalog through LAMMPS (``rerun``; the tests use the classical
  baseline), or
- ``ase:<module>:<factory>`` — ``factory()`` returns an ASE calculator (a DFT code on a cluster: VASP, Quantum
  ESPRESSO, GPAW ...); its module must be importable (``PYTHONPATH``).

The labelled set is written as a prepared data set (:mod:`finetune.datasets`) whose provenance records the
runs (with their summary checksums), the frame steps taken and the labeller.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.files import sha256_file
from core.rundir import RunDir
from core.units import PS_PER_FS
from driver.dumps import iter_frames
from inputs.structure import structure_of
from inputs.study import study_of


def dump_frames(run_dir: Path, skip_ps: float = 0.0) -> list:
    """(step, Atoms) of a run's dump (wrapped into the box), after ``skip_ps``."""
    from ase import Atoms

    run = RunDir(run_dir)
    summary = run.read()
    type_order = structure_of(summary.structure).type_order
    dt_ps = summary.timestep_fs * PS_PER_FS
    dumps = run.config_dumps()
    if not dumps:
        if not study_of(summary.config, str(run.summary_file)).md.config_interval_ps:
            raise InputError(f"{run_dir}: its study dumps no whole configurations (md.config_interval_ps = 0); "
                             "set md.config_interval_ps and run it to sample from it")
        raise InputError(f"{run_dir} has no configuration dump yet; run it first")
    frames: dict[int, object] = {}  # by step: a resumed segment repeats the step it restarted from
    for dump in dumps:
        for step, lines in iter_frames(dump):
            if step * dt_ps < skip_ps:
                continue
            bounds = np.array([l.split()[:2] for l in lines[5:8]], dtype=float)
            cols = lines[8].split()[2:]
            data = np.array([l.split() for l in lines[9:]], dtype=float)
            c = {name: k for k, name in enumerate(cols)}
            order = np.argsort(data[:, c["id"]])
            data = data[order]
            xyz = [next(n for n in (f"{a}u", a, f"{a}s") if n in c) for a in "xyz"]
            pos = data[:, [c[n] for n in xyz]] - bounds[:, 0]
            symbols = [type_order[int(t) - 1] for t in data[:, c["type"]]]
            atoms = Atoms(symbols=symbols, positions=pos, cell=bounds[:, 1] - bounds[:, 0], pbc=True)
            atoms.wrap()
            frames[step] = atoms
    return sorted(frames.items())


def sample(run_dirs: list[Path], n: int, skip_ps: float = 0.0, seed: int = 1) -> tuple[list, list[dict]]:
    """``n`` frames spread evenly over the runs' frames (a seeded offset), with where each came from."""
    pool = []
    for d in run_dirs:
        for step, atoms in dump_frames(d, skip_ps):
            pool.append((str(d), step, atoms))
    if n > len(pool):
        raise InputError(f"asked for {n} configurations but the runs hold only {len(pool)} frames "
                         f"after {skip_ps} ps")
    if n < 1:
        raise InputError("asked for no configurations")
    stride = len(pool) / n
    offset = np.random.default_rng(seed).uniform(0, stride)
    picks = [int(offset + k * stride) for k in range(n)]
    return [pool[i][2] for i in picks], [{"run": pool[i][0], "step": pool[i][1]} for i in picks]


def labeller(spec: str, type_order: tuple[str, ...] | None = None):
    """A function frames -> labelled frames, from ``lammps:<potential>`` or ``ase:<module>:<factory>``; a LAMMPS
    labeller types the species in ``type_order`` (by default LiF's)."""
    kind, _, rest = spec.partition(":")
    if kind == "lammps" and rest:
        from driver.lammps import find_lammps
        from finetune.labelling import label_with_lammps
        from inputs.structure import LIF_TYPE_ORDER
        from potentials.catalog import resolve

        order = LIF_TYPE_ORDER if type_order is None else tuple(type_order)
        _, block = resolve(rest, order)
        lmp = find_lammps()
        return lambda frames: label_with_lammps(frames, block, lmp, order)
    if kind == "ase" and rest.count(":") == 1:
        mod, fn = rest.split(":")
        try:
            factory = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise InputError(f"labeller {spec!r}: cannot import {mod}.{fn} ({e})") from None

        def label(frames):
            from ase.calculators.singlepoint import SinglePointCalculator

            out = []
            for a in frames:
                b = a.copy()
                b.calc = factory()
                e, f = b.get_potential_energy(), b.get_forces()
                try:
                    s = b.get_stress(voigt=True)
                except Exception:
                    s = None
                c = a.copy()
                c.calc = SinglePointCalculator(c, energy=e, forces=f, stress=s)
                out.append(c)
            return out

        return label
    raise InputError(f"labeller {spec!r}: expected lammps:<potential> or ase:<module>:<factory>")


def self_generate(run_dirs: list[Path], n: int, label: str, out: Path, *, skip_ps: float = 0.0, seed: int = 1,
                  valid_fraction: float = 0.1, test_fraction: float = 0.1):
    from finetune.datasets import check_frames, split_indices, write_dataset

    if not run_dirs:
        raise InputError("no run directories given to sample from")
    frames, origin = sample(run_dirs, n, skip_ps, seed)
    order = structure_of(RunDir(run_dirs[0]).read().structure).type_order  # the runs' species, in type order
    labelled = labeller(label, order)(frames)
    check_frames(labelled, f"self-generated from {len(run_dirs)} run(s)", order)
    runs = sorted({o["run"] for o in origin})
    prov = {"kind": "self-generated", "labeller": label, "skip_ps": skip_ps, "seed": seed,
            "runs": [{"path": r, "summary_sha256": sha256_file(RunDir(r).summary_file),
                      "potential": RunDir(r).read().potential} for r in runs],
            "frames": origin}
    idx = split_indices(len(labelled), valid_fraction, test_fraction, seed)
    inputs = [{"path": r, "format": "lammps-dump", "n": sum(o["run"] == r for o in origin)} for r in runs]
    return write_dataset(labelled, idx, out, split={"valid_fraction": valid_fraction, "test_fraction": test_fraction,
                                                  "seed": seed}, inputs=inputs, provenance=prov)
