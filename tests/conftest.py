"""Shared fixtures: small studies built in memory, and one real LAMMPS run reused by several tests."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest

from inputs.study import Study, study_from_dict

logging.getLogger("MDAnalysis").setLevel(logging.ERROR)

TINY = {
    "name": "tiny",
    "description": "a few hundred steps, for tests",
    "potentials": ["fumi-tosi"],
    "temperatures_k": [700.0],
    "seeds": [1],
    "system": {"lattice_constant_angstrom": 4.01, "supercell": [3, 3, 3], "defect": "interstitial",
               "volume": "fixed"},  # the mechanics tests; the NPT stage has tests of its own
    "md": {"timestep_fs": 1.0, "equilibration_ps": 0.1, "production_ps": 0.6, "dump_interval_ps": 0.005,
           "thermo_interval_ps": 0.05, "restart_interval_ps": 0.1},
    "analysis": {"selection": "li", "n_blocks": 3, "fit_start_fraction": 0.1, "fit_end_fraction": 0.5},
}


#: 20 + 100 steps with a frame every 2: for runs of the ML stand-ins, which are slow
SHORT_MD = {"md.equilibration_ps": 0.02, "md.production_ps": 0.1, "md.dump_interval_ps": 0.002,
            "md.thermo_interval_ps": 0.01, "md.restart_interval_ps": 0.05}


def study_dict(**changes) -> dict:
    """TINY with changes; keys like "md.timestep_fs" reach into sections."""
    d = copy.deepcopy(TINY)
    for key, value in changes.items():
        where = d
        *path, last = key.split(".")
        for p in path:
            where = where[p]
        if value is None:
            where.pop(last, None)
        else:
            where[last] = value
    return d


def study_toml(**changes) -> str:
    """TINY with changes (as for :func:`study_dict`), as the text of a study file."""
    import json

    d = study_dict(**changes)
    lines = [f"{k} = {json.dumps(d[k])}" for k in ("name", "potentials", "temperatures_k", "seeds")]
    for section in ("system", "md", "analysis"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in d[section].items()]
    return "\n".join(lines) + "\n"


def make_study(**changes) -> Study:
    return study_from_dict(study_dict(**changes), source="test.toml")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One real run of 217 atoms, 700 steps, through the driver (render + LAMMPS + merge)."""
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import run_one

    root = tmp_path_factory.mktemp("runs")
    (run_dir,) = render_study(make_study(), root)
    run_one(run_dir, find_lammps(), progress=False)
    return run_dir


def write_fake_run(root: Path, potential: str, t: float, seed: int, positions: np.ndarray, dt_ps: float,
                   defect_ids=(), **study_changes) -> Path:
    """A finished run directory as the driver leaves it, holding a text dump of the given unwrapped Li positions
    (frames every ``dt_ps``) and a valid summary; the study is TINY with ``study_changes``."""
    from core.rundir import Outputs, Requirements, RunDir, RunSummary, Stages
    from driver.render import study_config
    from potentials.catalog import load_catalog

    d = root / potential / f"T{t:g}K" / f"seed{seed}"
    d.mkdir(parents=True)
    n_frames, n_atoms, _ = positions.shape
    with open(d / "traj.dump", "w") as fh:
        for k in range(n_frames):
            fh.write(f"ITEM: TIMESTEP\n{k}\nITEM: NUMBER OF ATOMS\n{n_atoms}\nITEM: BOX BOUNDS pp pp pp\n"
                     "0 20\n0 20\n0 20\nITEM: ATOMS id type xu yu zu\n")
            for i, (x, y, z) in enumerate(positions[k], start=1):
                fh.write(f"{i} 1 {x:.8f} {y:.8f} {z:.8f}\n")
    study = make_study(**{"name": root.name, "potentials": [potential], "temperatures_k": [t], "seeds": [seed],
                          "md.timestep_fs": dt_ps * 1000.0, "md.equilibration_ps": 0.0,
                          "md.production_ps": dt_ps * (n_frames - 1), "md.dump_interval_ps": dt_ps,
                          "md.thermo_interval_ps": dt_ps, "md.restart_interval_ps": dt_ps,
                          "analysis.n_blocks": 5, **study_changes})
    entry = load_catalog().get(potential)
    summary = RunSummary(
        status="finished", fingerprint="fake", created="2026-01-01T00:00:00+00:00", study=study.name,
        study_source="test.toml", potential=potential, family=entry.family if entry else "mace",
        temperature_k=t, seed=seed, timestep_fs=dt_ps * 1000.0, stages=Stages(0, 0, n_frames - 1), dump_format="text",
        config=study_config(study),
        structure={"type_order": ["Li", "F"], "defect": {"kind": "interstitial" if defect_ids else "none",
                                                         "atom_ids": list(defect_ids)}},
        potential_entry=entry.record() if entry else {"name": potential, "params": {}},
        requirements=Requirements(),
        inputs={"in.lammps": {"sha256": "0" * 64}, "data.lmp": {"sha256": "1" * 64}},
        versions={"lif-diffusion": "test"}, wall_s=1.0, segments=1,
        outputs=Outputs("traj.dump", "text", n_frames, 0, n_frames - 1, "final.restart", ("log.0.lammps",)))
    RunDir(d).write(summary)
    return d


def random_walk(n_frames: int, n_walkers: int, d_a2_ps: float, dt_ps: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random walk positions (n_frames, n_walkers, 3) in Å with diffusivity d_a2_ps (Å²/ps)."""
    steps = rng.normal(0.0, np.sqrt(2 * d_a2_ps * dt_ps), size=(n_frames - 1, n_walkers, 3))
    return np.concatenate([np.zeros((1, n_walkers, 3)), np.cumsum(steps, axis=0)])


def assert_same_d_within_error(study_dir_a: Path, study_dir_b: Path) -> None:
    """Two one-state-point studies (e.g. a killed-and-resumed run and an uninterrupted one) give D that agree
    within twice their combined 1σ."""
    from analysis.study import analyse_study

    (ra,) = analyse_study(study_dir_a).chosen()
    (rb,) = analyse_study(study_dir_b).chosen()
    ea, eb = ra.estimate, rb.estimate
    assert abs(ea.d_cm2_s - eb.d_cm2_s) < 2 * np.hypot(ea.d_stderr_cm2_s, eb.d_stderr_cm2_s), (ea, eb)
