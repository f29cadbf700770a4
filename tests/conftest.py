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
    "system": {"lattice_constant_angstrom": 4.01, "supercell": [3, 3, 3], "defect": "interstitial"},
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


def random_walk(n_frames: int, n_walkers: int, d_a2_ps: float, dt_ps: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random walk positions (n_frames, n_walkers, 3) in Å with diffusivity d_a2_ps (Å²/ps)."""
    steps = rng.normal(0.0, np.sqrt(2 * d_a2_ps * dt_ps), size=(n_frames - 1, n_walkers, 3))
    return np.concatenate([np.zeros((1, n_walkers, 3)), np.cumsum(steps, axis=0)])


def assert_same_d_within_error(study_dir_a: Path, study_dir_b: Path) -> None:
    """Two one-state-point studies (e.g. a killed-and-resumed run and an uninterrupted one) give D that agree
    within twice their combined 1σ."""
    from analysis.study import analyse_study

    (ra,) = analyse_study(study_dir_a)
    (rb,) = analyse_study(study_dir_b)
    ea, eb = ra.estimate, rb.estimate
    assert abs(ea.d_cm2_s - eb.d_cm2_s) < 2 * np.hypot(ea.d_stderr_cm2_s, eb.d_stderr_cm2_s), (ea, eb)
