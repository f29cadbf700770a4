"""Shared fixtures: small studies built in memory, and one real LAMMPS run reused by several tests."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
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
    # a fixed window: the mechanics tests need a D from 0.6 ps, whatever its events (physics tests choose theirs)
    "analysis": {"selection": "li", "residence_ps": 0.02, "window_ps": [0.02, 0.05]},
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


@dataclass(frozen=True)
class Interstitialcy:
    """A synthetic trajectory of rock-salt LiF's Li sublattice with one interstitial that migrates by the
    collinear interstitialcy: at Poisson times the interstitial Li at site I pushes the Li of one of its four
    nearest lattice sites L (√3a/4 away) on to the interstitial site I' = 2L - I and takes L. The defect jumps by
    √3a/2 with uncorrelated directions; each event moves two atoms by √3a/4."""

    positions: np.ndarray  # (n_frames, n_li, 3), unwrapped, Å
    defect_path: np.ndarray  # (n_frames, 3): the interstitial site's unwrapped position
    structure: dict  # structure.json's record: sites, defect, cell
    cell: np.ndarray
    n_events: int

    @property
    def defect_jump(self) -> float:
        return float(np.sqrt(3) * self.structure["lattice_constant_angstrom"] / 2)


def interstitialcy(n_frames: int, dt_ps: float, rate_ps: float, seed: int, a: float = 4.1, cells: int = 3,
                   vibration: float = 0.1) -> Interstitialcy:
    from scipy.spatial import cKDTree

    from inputs.defects import add_defect
    from inputs.structure import rocksalt_lif

    rng = np.random.default_rng(seed)
    s = add_defect(rocksalt_lif(a, cells), "interstitial")
    cell, lat, tet = s.cell, s.li_sites, s.interstitial_sites
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)

    def neighbours(points, sites, k):  # the k nearest sites of each point: (index, displacement in Å)
        tree = cKDTree(((sites[None] + shifts[:, None]).reshape(-1, 3)) @ cell)
        d, i = tree.query(points @ cell, k=k)
        images = (sites[None] + shifts[:, None]).reshape(-1, 3) @ cell
        return i % len(sites), images[i] - (points @ cell)[:, None, :]

    lat_of_tet, to_lat = neighbours(tet, lat, 4)  # each interstitial site's four lattice sites, √3a/4 away
    n_lat = len(lat)
    site_of = np.arange(n_lat + 1)  # atom -> site (lattice sites 0..n_lat-1, interstitial sites n_lat + k)
    first = int(np.argmin(np.linalg.norm(((s.positions[-1] @ np.linalg.inv(cell)) - tet + 0.5) % 1 - 0.5, axis=1)))
    site_of[n_lat] = n_lat + first
    atom_at = {int(v): k for k, v in enumerate(site_of)}
    unwrapped = np.vstack([lat @ cell, tet[first] @ cell])
    defect_atom, defect_site, defect_pos = n_lat, first, tet[first] @ cell
    frames_pos = np.empty((n_frames, n_lat + 1, 3))
    path = np.empty((n_frames, 3))
    n_events = 0
    for f in range(n_frames):
        for _ in range(rng.poisson(rate_ps * dt_ps) if f else 0):
            j = rng.integers(4)
            lsite, step = int(lat_of_tet[defect_site, j]), to_lat[defect_site, j]
            pushed = atom_at[lsite]
            target = ((tet[defect_site] @ cell + 2 * step) @ np.linalg.inv(cell)) % 1.0
            new_site = int(np.argmin(np.linalg.norm((tet - target + 0.5) % 1 - 0.5, axis=1)))
            unwrapped[defect_atom] += step  # the interstitial takes the lattice site ...
            unwrapped[pushed] += step  # ... and pushes its Li on to the next interstitial site, collinear
            site_of[defect_atom], site_of[pushed] = lsite, n_lat + new_site
            atom_at[lsite], atom_at[n_lat + new_site] = defect_atom, pushed
            del atom_at[n_lat + defect_site]
            defect_atom, defect_site, defect_pos = pushed, new_site, defect_pos + 2 * step
            n_events += 1
        frames_pos[f] = unwrapped
        path[f] = defect_pos
    frames_pos += rng.normal(0, vibration, frames_pos.shape)
    record = s.describe()
    return Interstitialcy(frames_pos, path, record, cell, n_events)


def write_fake_run(root: Path, potential: str, t: float, seed: int, positions: np.ndarray, dt_ps: float,
                   structure: dict | None = None, cell: np.ndarray | None = None, **study_changes) -> Path:
    """A finished run directory as the driver leaves it, holding a text dump of the given unwrapped Li positions
    (frames every ``dt_ps``) and a valid summary; the study is TINY with ``study_changes``; ``structure`` (a
    structure.json record, with its sites) and ``cell`` make the defect followable."""
    from core.rundir import Outputs, Requirements, RunDir, RunSummary, Stages, StatePoint
    from driver.render import study_config
    from potentials.catalog import load_catalog

    d = root / potential / f"T{t:g}K" / f"seed{seed}"
    d.mkdir(parents=True)
    n_frames, n_atoms, _ = positions.shape
    every = max(1, math.ceil(dt_ps * 1000.0 / 10.0 - 1e-9))  # MD steps between frames: timesteps of <= 10 fs
    timestep_fs = dt_ps * 1000.0 / every
    with open(d / "traj.dump", "w") as fh:
        for k in range(n_frames):
            fh.write(f"ITEM: TIMESTEP\n{k * every}\nITEM: NUMBER OF ATOMS\n{n_atoms}\nITEM: BOX BOUNDS pp pp pp\n"
                     "0 20\n0 20\n0 20\nITEM: ATOMS id type xu yu zu\n")
            for i, (x, y, z) in enumerate(positions[k], start=1):
                fh.write(f"{i} 1 {x:.8f} {y:.8f} {z:.8f}\n")
    study = make_study(**{"name": root.name, "potentials": [potential], "temperatures_k": [t], "seeds": [seed],
                          "md.timestep_fs": timestep_fs, "md.equilibration_ps": 0.0,
                          "md.production_ps": dt_ps * (n_frames - 1), "md.dump_interval_ps": dt_ps,
                          "md.thermo_interval_ps": dt_ps, "md.restart_interval_ps": dt_ps,
                          "analysis.window_ps": None, "analysis.residence_ps": dt_ps, **study_changes})
    entry = load_catalog().get(potential)
    state = None
    if cell is not None:
        h = np.asarray(cell)
        assert np.allclose(np.triu(h, 1), 0), "give the cell in LAMMPS's frame"
        state = StatePoint((h[0, 0], h[1, 1], h[2, 2], h[1, 0], h[2, 0], h[2, 1]), (0.0, 0.0, 0.0),
                           float(abs(np.linalg.det(h))), 4.1, None, 0.0, None, t, None, n_frames)
    summary = RunSummary(
        status="finished", fingerprint="fake", created="2026-01-01T00:00:00+00:00", study=study.name,
        study_source="test.toml", potential=potential, family=entry.family if entry else "mace",
        temperature_k=t, seed=seed, timestep_fs=timestep_fs, stages=Stages(0, 0, (n_frames - 1) * every),
        dump_format="text",
        config=study_config(study),
        structure=structure or {"type_order": ["Li", "F"], "defect": {"kind": "none", "atom_ids": []}},
        potential_entry=entry.record() if entry else {"name": potential, "params": {}},
        requirements=Requirements(),
        inputs={"in.lammps": {"sha256": "0" * 64}, "data.lmp": {"sha256": "1" * 64}},
        versions={"lif-diffusion": "test"}, wall_s=1.0, segments=1,
        outputs=Outputs("traj.dump", "text", n_frames, 0, (n_frames - 1) * every, "final.restart",
                        ("log.0.lammps",)),
        state=state)
    RunDir(d).write(summary)
    return d


def random_walk(n_frames: int, n_walkers: int, d_a2_ps: float, dt_ps: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random walk positions (n_frames, n_walkers, 3) in Å with diffusivity d_a2_ps (Å²/ps)."""
    steps = rng.normal(0.0, np.sqrt(2 * d_a2_ps * dt_ps), size=(n_frames - 1, n_walkers, 3))
    return np.concatenate([np.zeros((1, n_walkers, 3)), np.cumsum(steps, axis=0)])


def assert_same_d_within_error(study_dir_a: Path, study_dir_b: Path) -> None:
    """Two one-state-point studies (e.g. a killed-and-resumed run and an uninterrupted one) give D that agree
    within twice their combined 1σ (their trajectories part by chaotic round-off after a resume: the same
    statistics, not the same numbers)."""
    from analysis.study import analyse_study

    (ra,) = analyse_study(study_dir_a).results
    (rb,) = analyse_study(study_dir_b).results
    ea, eb = ra.estimates["li"], rb.estimates["li"]
    assert abs(ea.d_cm2_s - eb.d_cm2_s) < 2 * np.hypot(ea.d_stderr_cm2_s, eb.d_stderr_cm2_s), (ea, eb)


@pytest.fixture(scope="session")
def tiny_mace_model(tmp_path_factory) -> Path:
    """A tiny random MACE for Li and F (tests/models.py), made once per test session."""
    from tests.models import tiny_mace

    return tiny_mace(tmp_path_factory.mktemp("mace") / "tiny.model")


@pytest.fixture()
def tiny_mace_catalog(tmp_path, tiny_mace_model, monkeypatch) -> Path:
    """A catalog with that model as `tiny-mace` (and `absent-mace`, whose file is missing); a cache of its own."""
    cat = tmp_path / "catalog.toml"
    cat.write_text(f'[tiny-mace]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{tiny_mace_model}"\n'
                   f'[absent-mace]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{tmp_path}/none.model"\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))
    return cat
