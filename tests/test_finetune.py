"""Fine-tuning strategies end to end, on CPU, with stand-ins: the classical baseline labels LiF frames through
LAMMPS; a small MACE trained from scratch on them (the ``scratch`` strategy) plays the foundation model; the
target data come from a shifted distribution (larger rattles and strains)."""


import numpy as np
import pytest

from core.errors import InputError, ModelMissingError, PotentialError
from driver.lammps import find_lammps
from finetune import registry
from finetune.datasets import labels, prepare, write_extxyz
from finetune.labelling import label_with_lammps, lif_frames
from finetune.training import TrainRequest, train
from finetune.validation import calculator, metrics, predict
from potentials.catalog import load_catalog, resolve

pytestmark = pytest.mark.integration

TINY_MACE = """
[common]
max_num_epochs = 12
batch_size = 4
valid_batch_size = 8
[scratch]
r_max = 4.0
num_channels = 8
max_L = 1
max_ell = 2
correlation = 2
"""
TINY_DEEPMD = {"training": {"numb_steps": 200, "disp_freq": 100, "save_freq": 200},
               "learning_rate": {"decay_steps": 50, "start_lr": 0.003, "stop_lr": 1e-4},
               "model": {"descriptor": {"neuron": [8, 16], "axis_neuron": 4}, "fitting_net": {"neuron": [16, 16]}}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private cache (models, catalog.d) and the two labelled data sets, prepared."""
    root = tmp_path_factory.mktemp("ft")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIF_DIFFUSION_CACHE", str(root / "cache"))
        _, classical = resolve("fumi-tosi", ("Li", "F"))
        lmp = find_lammps()
        base = label_with_lammps(lif_frames(60, 1, cells=1, rattle_angstrom=0.05), classical, lmp)
        shifted = label_with_lammps(lif_frames(48, 2, cells=1, rattle_angstrom=0.2, strain=0.05), classical, lmp)
        write_extxyz(base, root / "base.xyz")
        write_extxyz(shifted, root / "shifted.xyz")
        (root / "tiny.toml").write_text(TINY_MACE)
        d = {"root": root, "hyper": root / "tiny.toml",
             "base": prepare([root / "base.xyz"], root / "base", seed=1),
             "shifted": prepare([root / "shifted.xyz"], root / "shifted", test_fraction=0.25, seed=1)}
        train(TrainRequest("foundation", "scratch", d["base"], hyper_file=d["hyper"], progress=False))
        yield d


def force_rmse(family, model, frames):
    return metrics(frames, predict(calculator(family, model), frames))["forces_mev_per_a"]["rmse"]


def test_scratch_model_is_registered_with_provenance(env):
    entry = load_catalog()["foundation"]
    assert entry.family == "mace"
    prov = registry.provenance("foundation")
    assert prov["data"]["hash"] == env["base"].hash and prov["strategy"] == "scratch" and prov["seed"] == 1
    assert prov["n_train"] == env["base"].manifest["splits"]["train"]["n"]
    d = registry.model_dir("foundation")
    assert (d / "train.log").stat().st_size > 0 and (d / "validation-parity.png").is_file()
    # it learnt the classical potential it was trained on: far better than on the shifted set
    test = env["base"].frames("test")
    assert force_rmse("mace", entry.params["model"], test) == pytest.approx(
        prov["validation"]["forces_mev_per_a"]["rmse"], rel=1e-9)


def test_naive_finetuning_lowers_the_held_out_force_error(env):
    from finetune.selection import write_selection

    sel = write_selection(env["shifted"], 16, env["root"] / "sel16", seed=1)
    train(TrainRequest("naive16", "naive", sel, foundation="foundation", hyper_file=env["hyper"], progress=False))
    test = env["shifted"].frames("test")
    before = force_rmse("mace", registry.model_dir("foundation") / "model.model", test)
    after = force_rmse("mace", registry.model_dir("naive16") / "model.model", test)
    assert after < 0.9 * before, (before, after)
    prov = registry.provenance("naive16")
    assert prov["hyperparameters"]["loss"] == "huber"  # the paper's robust loss, as mace_run_train was told:
    assert "--loss huber --huber_delta 0.01" in (registry.model_dir("naive16") / "train.log").read_text()
    assert prov["foundation"]["spec"] == "foundation"
    assert prov["data"]["selection"]["n"] == 16 and prov["data"]["selection"]["parent_hash"] == env["shifted"].hash
    assert prov["foundation_validation"]["forces_mev_per_a"]["rmse"] == pytest.approx(before, rel=1e-9)


def test_multihead_gives_a_single_head_model_that_lammps_runs_as_ase_does(env, tmp_path):
    import torch

    from tests.test_mace import ase_energy_forces, lammps_energy_forces, rattled

    train(TrainRequest("mh", "multihead", env["shifted"], foundation="foundation", pretrain=env["base"],
                       hyper_file=env["hyper"], overrides={"num_samples_pt": 20}, progress=False))
    prov = registry.provenance("mh")
    assert prov["heads_trained"] == ["pt_head", "Default"] and prov["head_selected"] == "Default"
    assert prov["pretrain"]["hash"] == env["base"].hash and prov["pretrain"]["num_samples_pt"] == 20
    path = registry.model_dir("mh") / "model.model"
    model = torch.load(str(path), map_location="cpu", weights_only=False)
    assert len(getattr(model, "heads", ["Default"])) == 1
    assert next(model.parameters()).dtype == torch.float64
    _, block = resolve("mh", ("Li", "F"))
    s = rattled(seed=4, n=2)
    e_lmp, f_lmp = lammps_energy_forces(tmp_path, s, block.lines)
    e_ase, f_ase = ase_energy_forces(path, s)
    assert np.abs(f_lmp - f_ase).max() < 1e-6
    assert e_lmp == pytest.approx(e_ase, abs=1e-6)


def test_deepmd_strategy_takes_sel_from_neighbor_stat_and_runs_in_lammps(env, tmp_path):
    from tests.test_mace import lammps_energy_forces, rattled

    train(TrainRequest("dp", "deepmd", env["base"], overrides=TINY_DEEPMD, progress=False))
    prov = registry.provenance("dp")
    stat = (registry.model_dir("dp") / "neighbor-stat.log").read_text()
    counts = [int(v) for v in stat.split("max_nbor_size: [")[-1].split("]")[0].split()]
    assert prov["sel"] == [int(np.ceil(c * 1.1 / 4) * 4) for c in counts]
    assert min(prov["sel"]) >= 64  # LiF within 6 Å
    assert prov["input"]["model"]["descriptor"]["rcut"] == 6.0
    _, block = resolve("dp", ("Li", "F"))
    s = rattled(seed=5, n=2)
    e_lmp, f_lmp = lammps_energy_forces(tmp_path, s, block.lines)
    a = s.atoms()
    a.calc = calculator("deepmd", registry.model_dir("dp") / "model.pth")
    assert np.abs(f_lmp - a.get_forces()).max() < 1e-6
    assert e_lmp == pytest.approx(a.get_potential_energy(), abs=1e-5)


def test_foundation_that_cannot_be_found_is_one_clear_error(env):
    with pytest.raises(ModelMissingError, match="foundation model 'no-such-model' cannot be found"):
        train(TrainRequest("x1", "naive", env["shifted"], foundation="no-such-model", progress=False))
    with pytest.raises(InputError, match="give --pretrain"):
        train(TrainRequest("x2", "multihead", env["shifted"], foundation="foundation", progress=False))
    with pytest.raises(InputError, match="give --foundation"):
        train(TrainRequest("x3", "naive", env["shifted"], progress=False))
    assert not any(registry.is_registered(n) for n in ("x1", "x2", "x3"))


def test_failed_training_registers_nothing(env):
    with pytest.raises(PotentialError, match="failed .*log:"):
        train(TrainRequest("broken", "scratch", env["base"], hyper_file=env["hyper"],
                           overrides={"no_such_mace_flag": 1}, progress=False))
    assert not registry.is_registered("broken") and "broken" not in load_catalog()
    assert (registry.trained_root() / ".staging-broken" / "train.log").is_file()  # kept for the post-mortem
    with pytest.raises(InputError, match="already registered"):
        train(TrainRequest("foundation", "scratch", env["base"], hyper_file=env["hyper"], progress=False))


def test_selfgen_labels_md_frames_as_the_md_saw_them(tmp_path):
    """Frames sampled from a classical MD run, labelled by the same potential through LAMMPS: the energies equal
    the potential energy LAMMPS printed at those steps (an independent record of the same numbers)."""
    from driver.render import render_study
    from driver.runner import run_one
    from finetune.selfgen import self_generate
    from tests.conftest import make_study

    (run,) = render_study(make_study(**{"md.config_interval_ps": 0.05}), tmp_path / "runs")
    run_one(run, find_lammps(), progress=False)
    ds = self_generate([run], 10, "lammps:fumi-tosi", tmp_path / "self", seed=3, valid_fraction=0.0,
                       test_fraction=0.2)
    prov = ds.manifest["provenance"]
    assert prov["labeller"] == "lammps:fumi-tosi" and len(prov["frames"]) == 10
    assert len({o["step"] for o in prov["frames"]}) == 10
    pe = {}
    for log in sorted(run.glob("log.*.lammps")):
        lines = log.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.split()[:2] == ["Step", "Time"]:
                cols = line.split()
                for row in lines[i + 1:]:
                    parts = row.split()
                    if len(parts) != len(cols) or not parts[0].isdigit():
                        break
                    pe[int(parts[0])] = float(parts[cols.index("PotEng")])
    frames = ds.all_frames()
    assert all(len(a) == 217 for a in frames)
    compared = [(labels(a)[0], pe[o["step"]]) for o, a in zip(prov["frames"], frames) if o["step"] in pe]
    assert len(compared) == 10
    for mine, theirs in compared:
        assert mine == pytest.approx(theirs, abs=2e-3)


def test_selfgen_with_an_ase_calculator_labeller(tmp_path, monkeypatch):
    """The pluggable labeller: ``ase:<module>:<factory>`` (a DFT code on a cluster; here ASE's Lennard-Jones)."""
    from ase.calculators.lj import LennardJones

    from driver.render import render_study
    from driver.runner import run_one
    from finetune.selfgen import self_generate
    from tests.conftest import make_study

    (tmp_path / "my_labeller.py").write_text("from ase.calculators.lj import LennardJones\n"
                                             "def calc():\n    return LennardJones(sigma=2.0, epsilon=0.01, rc=4.0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (run,) = render_study(make_study(**{"md.config_interval_ps": 0.1}), tmp_path / "runs")
    run_one(run, find_lammps(), progress=False)
    ds = self_generate([run], 4, "ase:my_labeller:calc", tmp_path / "lj", valid_fraction=0.0, test_fraction=0.25)
    for a in ds.all_frames():
        b = a.copy()
        b.calc = LennardJones(sigma=2.0, epsilon=0.01, rc=4.0)
        assert labels(a)[0] == pytest.approx(b.get_potential_energy(), rel=1e-12)
        np.testing.assert_allclose(labels(a)[1], b.get_forces(), atol=1e-12)
    with pytest.raises(InputError, match="cannot import nowhere_module.calc"):
        self_generate([run], 4, "ase:nowhere_module:calc", tmp_path / "x")


def test_selfgen_needs_configuration_dumps(finished_run, tmp_path):
    from finetune.selfgen import self_generate

    with pytest.raises(InputError, match="md.config_interval_ps = 0"):
        self_generate([finished_run], 5, "lammps:fumi-tosi", tmp_path / "x")




def test_sweep_end_to_end_writes_table_and_bar_chart(env):
    import csv

    from finetune.sweep import load_sweep, run_sweep
    from tests.conftest import SHORT_MD, study_toml

    root = env["root"] / "sweep"
    root.mkdir()
    (root / "study.toml").write_text(study_toml(name="sweep-base", temperatures_k=[400.0], **SHORT_MD,
                                                **{"system.supercell": [2, 2, 2],
                                                   "analysis.window_ps": [0.01, 0.05]}))
    (root / "sweep.toml").write_text(f"""
name = "tiny-sweep"
foundation = "foundation"
study = "study.toml"
temperatures_k = [400.0, 450.0]
references = ["foundation"]
[data]
target = ["{env['shifted'].path}"]
pretrain = ["{env['base'].path}"]
[selection]
method = "fps"
n = [6, 12]
[training]
strategies = ["naive", "multihead"]
seeds = [1, 2]
hyperparameters = "{env['hyper']}"
set = {{ max_num_epochs = 3, num_samples_pt = 10 }}
""")
    sweep = load_sweep(root / "sweep.toml")
    assert run_sweep(sweep, root / "out", progress=False) == 0
    out = root / "out" / "tiny-sweep"
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    names = {r["potential"] for r in rows}
    assert names == {"foundation"} | {f"tiny-sweep-{s}-n{n}-s{k}" for s in ("naive", "multihead") for n in (6, 12)
                                      for k in (1, 2)}
    assert len(rows) == 2 * len(names)
    assert all(float(r["d_cm2_s"]) > 0 and float(r["d_stderr_cm2_s"]) > 0 for r in rows)
    summary = list(csv.DictReader(open(out / "sweep-summary.csv")))
    cell = [r for r in summary if r["group"] == "naive N=12" and float(r["temperature_k"]) == 450.0]
    assert len(cell) == 1 and cell[0]["n_models"] == "2" and cell[0]["error"] == "between training replicas"
    d = [float(r["d_cm2_s"]) for r in rows if r["strategy"] == "naive" and r["n"] == "12"
         and float(r["temperature_k"]) == 450.0]
    assert float(cell[0]["d_mean_cm2_s"]) == pytest.approx(np.mean(d), rel=1e-12)
    assert float(cell[0]["d_err_cm2_s"]) == pytest.approx(np.std(d, ddof=1) / np.sqrt(2), rel=1e-9)
    assert (out / "sweep.png").stat().st_size > 10_000
    # run again: nothing retrained, nothing re-run
    stamp = {n: (registry.model_dir(n) / "provenance.json").stat().st_mtime_ns for n in names - {"foundation"}}
    assert run_sweep(sweep, root / "out", progress=False) == 0
    assert stamp == {n: (registry.model_dir(n) / "provenance.json").stat().st_mtime_ns for n in stamp}


def test_sweep_file_errors_name_the_field(tmp_path):
    from finetune.sweep import load_sweep

    (tmp_path / "s.toml").write_text('name = "s"\n[data]\ntarget = ["x.xyz"]\n[selection]\nn = [5]\n'
                                     '[training]\nstrategies = ["naive", "fancy"]\n')
    with pytest.raises(InputError, match=r"s.toml: training.strategies\[1\]: 'fancy' is not one of naive, multihead"):
        load_sweep(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text('name = "s"\n[data]\ntarget = ["x.xyz"]\n[selection]\nn = [5]\n'
                                     '[training]\nstrategies = ["multihead"]\n')
    with pytest.raises(InputError, match="s.toml: foundation: naive and multihead fine-tune"):
        load_sweep(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text('name = "s"\n[data]\ntarget = ["x.xyz"]\n[selection]\nn = [5]\n'
                                     '[training]\nstrategies = ["multihead"]\nfoundation = "m"\n')  # misplaced
    with pytest.raises(InputError, match="s.toml: training.foundation: unknown key; training takes strategies"):
        load_sweep(tmp_path / "s.toml")


def test_foundation_without_the_data_elements_is_refused(env, tmp_path):
    from tests.models import tiny_mace

    lio = tiny_mace(tmp_path / "lio.model", atomic_numbers=(3, 8))
    with pytest.raises(InputError, match=r"covers \['Li', 'O'\], not \['F'\]"):
        train(TrainRequest("x4", "naive", env["shifted"], foundation=str(lio), progress=False))
    assert not registry.is_registered("x4")


def test_selection_in_the_foundation_descriptor_space(env):
    from finetune.selection import select

    pool = env["shifted"].frames("train")
    model = registry.model_dir("foundation") / "model.model"
    a = select(pool, 8, "fps", seed=2, descriptor="mace", model_path=model)
    b = select(pool, 8, "fps", seed=2, descriptor="mace", model_path=model)
    assert np.array_equal(a.indices, b.indices) and a.descriptor == "mace"
    assert a.covering_radius < a.covering_radius_random


def test_command_line_steps_and_their_errors(env, tmp_path, capsys):
    from finetune.__main__ import main

    assert main(["data", str(env["root"] / "shifted.xyz"), "--out", str(tmp_path / "d"), "--seed", "4"]) == 0
    assert "48 configurations" in capsys.readouterr().out
    assert main(["select", str(tmp_path / "d"), "--n", "10", "--out", str(tmp_path / "s")]) == 0
    assert "covering radius" in capsys.readouterr().out
    assert main(["select", str(tmp_path / "d"), "--n", "500", "--out", str(tmp_path / "s2")]) == 2
    assert "N=500" in capsys.readouterr().err
    assert main(["train", "--strategy", "naive", "--data", str(tmp_path / "s"), "--name", "cli",
                 "--foundation", "nowhere.model"]) == 2
    assert "cannot be found" in capsys.readouterr().err
    assert main(["list"]) == 0
    assert "foundation" in capsys.readouterr().out
    assert main(["validate", "foundation", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "validation-foundation-parity.png").is_file()
