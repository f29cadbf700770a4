"""The GPU check's tools, run where a CPU can run them: the bundle for a GPU machine without network (its size, its
contents, its pruned LAMMPS source configures with the project's build flags) and tools/gpu_check.py's whole path
(models, parity, ns/day, packed runs, the table) in its quick CPU mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cluster import SHELLCHECK

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def test_scripts_lint():
    for name in ("gpu-bundle.sh", "gpu-check.sh", "lammps.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "tools" / name)], check=True)
        out = subprocess.run([str(SHELLCHECK), "-x", "-S", "warning", str(ROOT / "tools" / name)],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout


def test_gpu_check_quick_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--quick", "--device", "cpu",
                           "--packs", "1,2", "--out", str(out)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads((out / "gpu-check.json").read_text())
    parity = {p["case"]: p for p in r["parity"]}
    f64 = parity["parity parity-mace (float64)"]
    assert f64["max_abs_force_ev_a"] > 1e-3 and f64["max_abs_force_error_ev_a"] < 1e-10
    f32 = parity["parity parity-mace (float32)"]
    assert 1e-12 < f32["max_abs_force_error_ev_a"] < 1e-4 * f32["max_abs_force_ev_a"]  # single precision, really
    assert parity["parity parity-deepmd (float64)"]["max_abs_force_error_ev_a"] < 1e-10
    runs = {x["case"]: x for x in r["runs"]}
    assert set(runs) >= {"mace-float32-e3nn-65", "mace-float64-e3nn-65", "deepmd-65"}
    assert all(x["ok"] and x["ns_per_day"] > 0 for x in runs.values())
    assert runs["mace-float32-e3nn-65"]["device"].startswith("cpu float32 e3nn")
    assert runs["deepmd-65"]["device"] == "cpu deepmd-kit"
    assert [p["k"] for p in r["packed"]] == [1, 2] and len(r["packed"][1]["per_run_ns_per_day"]) == 2
    table = (out / "gpu-check.md").read_text()
    assert "| mace-float64-e3nn-65 | 65 |" in table and "aggregate / k=1" in table


def test_gpu_check_parts_for_short_device_calls(tmp_path):
    """The check split into parts (a device call is at most 10 minutes): no parity, a named set-up packed."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--quick", "--device", "cpu",
                           "--skip-parity", "--skip-deepmd", "--pack-case", "mace-float64-e3nn", "--packs", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads((out / "gpu-check.json").read_text())
    assert r["parity"] == [] and {x["case"] for x in r["runs"]} == {"mace-float32-e3nn-65", "mace-float64-e3nn-65"}
    assert r["packed_case"] == "mace-float64-e3nn-65" and [p["k"] for p in r["packed"]] == [1]
    table = (out / "gpu-check.md").read_text()
    assert "| parity |" not in table and "Packed runs (mace-float64-e3nn-65" in table


def test_the_bundle_is_small_complete_and_its_lammps_source_builds(tmp_path):
    """Built here from the registries (downloads cached in the project's cache): under 60 MiB, a MANIFEST that
    checks, the wheels the GPU machine lacks, and a pruned LAMMPS tree that CMake configures with the flags
    tools/lammps.sh uses and that compiles the core and the MACE coupling (the whole build: see the README)."""
    bundle = tmp_path / "bundle"
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu-bundle.sh")], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200, env=dict(os.environ, BUNDLE=str(bundle), VENV=sys.prefix))
    assert proc.returncode == 0, proc.stderr[-3000:]
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert size < 60 * 2**20, f"{size / 2**20:.1f} MiB"
    subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST"], cwd=bundle, check=True)
    wheels = {p.name.split("-")[0].lower() for p in (bundle / "wheels").glob("*.whl")}
    assert {"mace_torch", "e3nn", "ase", "deepmd_kit", "cuequivariance_torch", "cuequivariance_ops_torch_cu13"} <= wheels
    assert "torch" not in wheels and "numpy" not in wheels  # the GPU machine's own
    src = tmp_path / "lammps-src"
    src.mkdir()
    subprocess.run(["tar", "-xzf", str(bundle / "lammps-src.tar.gz"), "-C", str(src)], check=True)
    assert not (src / "src" / "KOKKOS").exists() and (src / "src" / "ML-IAP").is_dir()
    assert (src / "bench").is_dir() and (src / "potentials").is_dir()  # cmake --install copies them
    flags = ["-D", "BUILD_SHARED_LIBS=ON", "-D", "BUILD_MPI=OFF", "-D", "PKG_ML-IAP=ON", "-D", "PKG_ML-SNAP=ON",
             "-D", "PKG_PYTHON=ON", "-D", "MLIAP_ENABLE_PYTHON=ON", "-D", "PKG_KSPACE=ON", "-D", "PKG_PLUGIN=ON",
             "-D", "PKG_EXTRA-FIX=ON", "-D", "PKG_EXTRA-COMPUTE=ON", "-D", "PKG_EXTRA-DUMP=ON", "-D", "PKG_MOLECULE=ON",
             "-D", "FFT=KISS", "-D", "WITH_JPEG=OFF", "-D", "WITH_PNG=OFF", "-D", "WITH_FFMPEG=OFF"]
    assert set(f.split("=")[0] for f in flags[1::2]) >= {"PKG_ML-IAP", "PKG_PYTHON"}
    script = (ROOT / "tools" / "lammps.sh").read_text()
    assert all(f in script for f in flags[1::2])  # the flags of the real build
    env = dict(os.environ, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run(["cmake", "-S", str(src / "cmake"), "-B", str(tmp_path / "build"), "-G", "Ninja", *flags,
                          "-D", f"Python_EXECUTABLE={sys.executable}"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # what a pruned tree most easily lacks shows up when the core compiles: the bundled fmt headers, the
    # Cython-made ML-IAP Python coupling
    targets = subprocess.run(["ninja", "-C", str(tmp_path / "build"), "-t", "targets", "all"], capture_output=True,
                             text=True, env=env, check=True).stdout
    wanted = [t.split(":")[0] for t in targets.splitlines()
              if t.split(":")[0].endswith(("/src/lammps.cpp.o", "/ML-IAP/mliap_unified.cpp.o", "/fmt/core.h"))]
    assert len(wanted) >= 3, wanted
    out = subprocess.run(["ninja", "-C", str(tmp_path / "build"), *wanted], capture_output=True, text=True, env=env,
                         timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:]
