"""DeePMD through the plugin `make lammps` builds: a tiny model trained by `dp --pt` on LiF frames that the
classical baseline labelled through LAMMPS, then LAMMPS against DeePMD-kit's own DeepPot."""

import numpy as np
import pytest

from core.errors import PotentialError
from driver.lammps import find_lammps
from finetune.datasets import write_deepmd
from finetune.labelling import label_with_lammps, lif_frames
from potentials.catalog import PotentialEntry, resolve
from tests.conftest import SHORT_MD, make_study
from tests.models import tiny_deepmd
from tests.test_mace import lammps_energy_forces, rattled

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    _, classical = resolve("fumi-tosi", ("Li", "F"))
    frames = label_with_lammps(lif_frames(40, seed=0), classical, find_lammps())
    root = tmp_path_factory.mktemp("lif-data")
    return write_deepmd(frames[:32], root / "train"), write_deepmd(frames[32:], root / "valid"), frames


@pytest.fixture(scope="module")
def model(dataset, tmp_path_factory):
    train, valid, _ = dataset
    return tiny_deepmd(tmp_path_factory.mktemp("dp"), train, valid)


@pytest.fixture()
def catalog(tmp_path, model, monkeypatch):
    cat = tmp_path / "catalog.toml"
    cat.write_text(f'[tiny-dp]\nfamily = "deepmd"\nelements = ["Li", "F"]\nmodel = "{model}"\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    return cat


def test_labels_are_physical(dataset):
    _, _, frames = dataset
    f = np.array([a.get_forces() for a in frames])
    e = np.array([a.get_potential_energy() for a in frames])
    assert np.abs(f.sum(axis=1)).max() < 1e-6  # Newton's third law: no net force
    assert f.std() > 0.1 and len(set(np.round(e, 6))) == len(e)  # distinct, non-trivial frames


def test_lammps_equals_deeppot_on_a_rattled_frame(tmp_path, model, catalog):
    from deepmd.infer import DeepPot

    _, block = resolve("tiny-dp", ("Li", "F"))
    s = rattled(seed=4)
    e_lmp, f_lmp = lammps_energy_forces(tmp_path, s, block.lines)
    dp = DeepPot(str(model))
    types = [0 if x == "Li" else 1 for x in s.species]
    e, f, _ = dp.eval(s.positions.reshape(1, -1), s.cell.reshape(1, -1), types)
    assert np.abs(f).max() > 1e-2
    assert abs(e_lmp - float(e.ravel()[0])) < 1e-6 * len(types)
    np.testing.assert_allclose(f_lmp, f.reshape(-1, 3), atol=1e-6)


def test_64_atom_nvt_through_the_driver(tmp_path, catalog):
    from analysis.trajectory import read_dump
    from driver.render import render_study
    from driver.runner import run_one

    study = make_study(**{"potentials": ["tiny-dp"], "temperatures_k": [400.0], "system.defect": "none",
                          "system.supercell": [2, 2, 2]}, **SHORT_MD)
    (run,) = render_study(study, tmp_path / "runs")
    s = run_one(run, find_lammps(), progress=False)
    assert s.status == "finished"
    assert read_dump(run / "traj.dump", 1.0, select="type 1").positions.shape == (51, 32, 3)
    # rendered for the CPU, it ran there (DeePMD-kit would take any GPU its torch sees), and says so
    assert s.settings == {"accelerator": "cpu"} and s.device == "cpu deepmd-kit"


def test_type_map_without_f_is_refused(tmp_path, model, monkeypatch):
    from potentials import deepmd

    monkeypatch.setattr(deepmd, "inspect_model", lambda path: (("Li", "O"), 4.0))
    entry = PotentialEntry("x", "deepmd", "", "", ("Li", "F"), {"model": str(model)}, "")
    with pytest.raises(PotentialError, match=r"type map \['Li', 'O'\], without \['F'\]"):
        deepmd.pair_block(entry, ("Li", "F"))


def test_corrupt_model_is_refused(tmp_path):
    from potentials import deepmd

    (tmp_path / "bad.pth").write_bytes(b"\x00garbage")
    entry = PotentialEntry("x", "deepmd", "", "", ("Li", "F"), {"model": str(tmp_path / "bad.pth")}, "")
    with pytest.raises(PotentialError, match="not a readable DeePMD model"):
        deepmd.pair_block(entry, ("Li", "F"))


def test_study_with_classical_mace_and_deepmd_at_two_temperatures(tmp_path, model, tiny_mace_model, monkeypatch):
    from analysis.study import analyse_study
    from driver.render import render_study
    from driver.runner import run_one

    cat = tmp_path / "catalog.toml"
    cat.write_text(f'[tiny-dp]\nfamily = "deepmd"\nelements = ["Li", "F"]\nmodel = "{model}"\n'
                   f'[tiny-mace]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{tiny_mace_model}"\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))
    study = make_study(**{"potentials": ["fumi-tosi", "tiny-mace", "tiny-dp"], "temperatures_k": [500.0, 700.0],
                          "system.defect": "interstitial", "system.supercell": [3, 3, 3]}, **SHORT_MD)
    runs = render_study(study, tmp_path / "runs")
    assert len(runs) == 6
    for r in runs:
        assert run_one(r, find_lammps(), progress=False).status == "finished"
    results = analyse_study(tmp_path / "runs" / "tiny").results
    assert sorted({(r.potential, r.temperature_k) for r in results}) == sorted(
        (p, t) for p in ("fumi-tosi", "tiny-dp", "tiny-mace") for t in (500.0, 700.0))
    for r in results:  # the random-weight stand-ins may wreck the lattice: then no number, and the reason why
        if r.potential == "fumi-tosi" or r.status != "no-diffusive-regime":
            assert np.isfinite(r.estimates["li"].d_cm2_s), (r.potential, r.temperature_k, r.reason)
        else:
            assert not r.estimates and "melted" in r.reason
