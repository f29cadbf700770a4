"""The GPU check's tools, run where a CPU can run them: the budget logic of ``tools/gpu-check.sh ... --budget-s``
with cases standing in for the real ones (a skip, a cut-off, results after every case, results surviving a kill,
the files it leaves), its rehearsal on the CPU with the project's LAMMPS, the whole quick path of
tools/gpu_check.py (models, parity, ns/day, packed runs, the table), and the bundle for a GPU machine without
network (its size, its contents, its pruned LAMMPS source configures with the project's build flags)."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.files import cache_dir
from tests.test_cluster import SHELLCHECK

ROOT = Path(__file__).resolve().parent.parent
GPU_CHECK = ROOT / "tools" / "gpu-check.sh"
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = sys.modules.setdefault("gpu_check", importlib.util.module_from_spec(spec))
spec.loader.exec_module(gpu_check)

# a stand-in case: reads OUT/gpu-check.json as it was when it started, sleeps (in a grandchild, when given a pid
# file: the cut-off must stop the whole process group), writes a result like a timed run's
FAKE = """
import json, os, subprocess, sys, time
result, out, pidfile, sleep_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
seen = json.loads(open(os.path.join(out, "gpu-check.json")).read())["cases"]
if pidfile != "-":
    g = subprocess.Popen(["sleep", str(sleep_s)])
    open(pidfile + ".tmp", "w").write(f"{os.getpid()} {g.pid}")
    os.replace(pidfile + ".tmp", pidfile)
    g.wait()
else:
    time.sleep(sleep_s)
json.dump({"case": os.path.basename(result)[:-5], "ok": True, "atoms": 65, "ns_per_day": 1.5, "steps_per_s": 20.0,
           "device": "stand-in", "seen": [[c["case"], c["status"]] for c in seen]}, open(result, "w"))
"""


def fake(name: str, out: Path, estimate_s: float, sleep_s: float, pidfile: str = "-") -> dict:
    return {"name": name, "section": "runs", "kind": "measure", "estimate_s": estimate_s,
            "argv": [sys.executable, "-c", FAKE, "{result}", str(out), pidfile, str(sleep_s)]}


def start(tmp_path: Path, cases: list[dict], budget_s: float, out: Path) -> subprocess.Popen:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(cases))
    return subprocess.Popen(["bash", str(GPU_CHECK), str(out), "check", "--budget-s", str(budget_s),
                             "--plan", str(plan), "--reserve-s", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, GPU_PY=sys.executable))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has stopped


def files_under(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file()]


def test_the_budget_skips_what_cannot_fit_and_cuts_off_a_case_in_progress(tmp_path):
    out = tmp_path / "out"
    pids = tmp_path / "c.pids"
    cases = [fake("a", out, 1, 0.2), fake("b", out, 1000, 0.2), fake("c", out, 1, 120, str(pids)),
             fake("d", out, 1, 0.2)]
    t0 = time.monotonic()
    proc = start(tmp_path, cases, 8, out)
    log = proc.communicate(timeout=60)[0]
    wall = time.monotonic() - t0
    assert proc.returncode == 1, log  # a case was cut off
    assert wall < 8 + 4, f"{wall:.1f} s for a budget of 8 s"
    r = json.loads((out / "gpu-check.json").read_text())
    status = {c["case"]: c for c in r["cases"]}
    assert [c["case"] for c in r["cases"]] == ["a", "b", "c", "d"]
    assert [c["status"] for c in r["cases"]] == ["ok", "skipped", "cut-off", "skipped"]
    # b's 1000 s, scaled by a's measured wall time against its estimate of 1 s, still does not fit
    assert status["b"]["estimate_s"] == pytest.approx(1000 * status["a"]["wall_s"], rel=0.1)
    assert status["b"]["note"].startswith(f"needs about {status['b']['estimate_s']:.0f} s")
    assert status["d"]["note"] == "the budget is spent"
    assert 4 < status["c"]["wall_s"] < 8
    assert r["complete"] and r["budget"]["elapsed_s"] <= 8 and r["budget"]["running"] is None
    assert [x["case"] for x in r["runs"]] == ["a", "c"] and not r["runs"][1]["ok"]
    child, grandchild = map(int, pids.read_text().split())
    assert not alive(child) and not alive(grandchild)  # the whole group was stopped
    assert sorted(p.name for p in files_under(out)) == ["gpu-check.json", "gpu-check.log", "gpu-check.md"]
    table = (out / "gpu-check.md").read_text()
    assert "| c | cut-off |" in table and "stopped at the time limit after" in table
    assert "| a | 65 | 1.5 | 20 | stand-in |" in table


def test_results_are_written_before_and_after_every_case(tmp_path):
    out = tmp_path / "out"
    proc = start(tmp_path, [fake(n, out, 1, 0.1) for n in "abc"], 60, out)
    assert proc.wait(timeout=60) == 0, proc.stdout.read()
    r = json.loads((out / "gpu-check.json").read_text())
    seen = {x["case"]: x["seen"] for x in r["runs"]}
    assert seen == {"a": [["a", "running"]], "b": [["a", "ok"], ["b", "running"]],
                    "c": [["a", "ok"], ["b", "ok"], ["c", "running"]]}
    assert [c["status"] for c in r["cases"]] == ["ok"] * 3


def test_a_failed_case_is_reported_and_what_needs_it_is_skipped(tmp_path):
    out = tmp_path / "out"
    broken = {"name": "build", "section": "build", "kind": "build", "estimate_s": 1,
              "argv": [sys.executable, "-c", "print('compiling'); raise SystemExit('no compiler')"]}
    after = fake("run", out, 1, 0) | {"needs": ["build"]}
    proc = start(tmp_path, [broken, after, fake("other", out, 1, 0)], 60, out)
    assert proc.wait(timeout=60) == 1
    r = json.loads((out / "gpu-check.json").read_text())
    assert [(c["case"], c["status"]) for c in r["cases"]] == [("build", "failed"), ("run", "skipped"),
                                                              ("other", "ok")]
    assert r["cases"][0]["note"] == "exit 1: compiling" and r["cases"][1]["note"] == "needs build"
    assert r["build"] == [{"case": "build", "error": "exit 1: compiling\nno compiler", "ok": False,
                           "wall_s": r["cases"][0]["wall_s"]}]
    assert "===== build (failed" in (out / "gpu-check.log").read_text()


def test_a_kill_mid_case_leaves_the_finished_cases_in_valid_json(tmp_path):
    out = tmp_path / "out"
    pids = tmp_path / "b.pids"
    proc = start(tmp_path, [fake("a", out, 1, 0.1), fake("b", out, 1, 120, str(pids)), fake("c", out, 1, 0.1)], 300,
                 out)
    try:
        for _ in range(300):
            if pids.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert pids.exists(), proc.stdout.read()
        proc.send_signal(signal.SIGKILL)  # exec'd: the check itself; nothing of it runs after this
        proc.wait(timeout=10)
    finally:
        child, grandchild = map(int, pids.read_text().split()) if pids.exists() else (0, 0)
        if child:
            os.killpg(child, signal.SIGKILL)  # the orphaned stand-in's group, which the check could not stop
    r = json.loads((out / "gpu-check.json").read_text())
    assert [(c["case"], c["status"]) for c in r["cases"]] == [("a", "ok"), ("b", "running")]
    assert r["runs"][0]["case"] == "a" and r["runs"][0]["ok"] and not r["complete"]
    assert "b running" in (out / "gpu-check.md").read_text()
    assert len(files_under(out)) <= 8


def test_kills_at_any_moment_leave_valid_json(tmp_path):
    """Many quick cases, so that the files are being rewritten when the kill comes."""
    for delay_s in (0.7, 1.0, 1.3):
        out = tmp_path / f"out{delay_s}"
        proc = start(tmp_path, [fake(f"case{i}", out, 0.1, 0) for i in range(40)], 300, out)
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if (out / "gpu-check.json").exists():
            r = json.loads((out / "gpu-check.json").read_text())
            assert all(c["status"] in ("ok", "running") for c in r["cases"])
        assert len(files_under(out)) <= 4  # the three and at most one half-written temporary


def test_a_term_stops_the_case_and_saves(tmp_path):
    out = tmp_path / "out"
    pids = tmp_path / "a.pids"
    proc = start(tmp_path, [fake("a", out, 1, 120, str(pids)), fake("b", out, 1, 0.1)], 300, out)
    for _ in range(300):
        if pids.exists():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    r = json.loads((out / "gpu-check.json").read_text())
    assert [(c["case"], c["status"]) for c in r["cases"]] == [("a", "interrupted")]
    assert r["budget"]["interrupted"] == "SIGTERM"
    assert not any(alive(int(p)) for p in pids.read_text().split())


def test_estimates_scale_with_the_measured_cases_of_the_same_kind():
    case = gpu_check.Case("x", "runs", "measure", 30, ())
    assert gpu_check.estimate_s(case, []) == 30
    done = [{"kind": "measure", "status": "ok", "planned_s": 30, "wall_s": 90},
            {"kind": "measure", "status": "skipped", "planned_s": 30, "wall_s": 0},
            {"kind": "build", "status": "ok", "planned_s": 240, "wall_s": 24}]
    assert gpu_check.estimate_s(case, done) == pytest.approx(90)
    assert gpu_check.estimate_s(gpu_check.Case("y", "build", "build", 120, ()), done) == pytest.approx(12)


def test_the_plan_is_in_the_issues_order(tmp_path):
    args = gpu_check.parse(["--build", "--quick", "--device", "cpu"])
    cases, left_out = gpu_check.plan(args, tmp_path, cueq_installed=False)
    names = [c.name for c in cases]
    assert names == ["build-lammps", "environment", "parity-mace-float64", "parity-mace-float32",
                     "mace-float32-e3nn-65", "mace-float64-e3nn-65", "packed-k2", "packed-k4", "packed-k8",
                     "mace-fastest-217", "build-deepmd", "parity-deepmd", "deepmd-65"]
    assert set(left_out) == {"mace-float32-cueq-65", "mace-float64-cueq-65"}
    assert dict(cases[0].env) == {"LAMMPS_ONLY": "1"} and cases[0].always
    assert all("build-lammps" in c.needs for c in cases[2:]) and "build-deepmd" in cases[-1].needs
    full, left_out = gpu_check.plan(gpu_check.parse(["--skip-deepmd"]), tmp_path, cueq_installed=True)
    assert [c.name for c in full][:4] == ["environment", "parity-mace-float64", "parity-mace-float32",
                                          "mace-float32-cueq-433"]
    assert full[-1].name == "mace-fastest-10649" and not left_out


def test_the_fastest_setting_is_the_fastest_small_mace_run():
    runs = [{"case": "mace-float64-e3nn-433", "ok": True, "atoms": 433, "ns_per_day": 1.0},
            {"case": "mace-float32-cueq-433", "ok": True, "atoms": 433, "ns_per_day": 4.0},
            {"case": "mace-float32-e3nn-433", "ok": False, "atoms": 433},
            {"case": "mace-float64-cueq-10649", "ok": True, "atoms": 10649, "ns_per_day": 9.0},
            {"case": "deepmd-433", "ok": True, "atoms": 433, "ns_per_day": 50.0}]
    assert gpu_check.fastest({"runs": runs}, None) == "float32-cueq"
    assert gpu_check.fastest({"runs": runs}, "mace-float64-e3nn") == "float64-e3nn"
    assert gpu_check.fastest({"runs": runs[2:3]}, None) is None


def lammps_sh_part(pattern: str) -> str:
    m = re.search(pattern, (ROOT / "tools" / "lammps.sh").read_text(), re.M | re.S)
    assert m, f"tools/lammps.sh has nothing matching {pattern!r}"
    return m.group(0)


@pytest.mark.parametrize("lean", ["", "1"])
def test_the_lean_build_leaves_out_only_what_the_check_does_not_use(lean):
    """tools/lammps.sh's own flags and LAMMPS_LEAN block, run by bash."""
    flags = lammps_sh_part(r"^CMAKE_FLAGS=\(\n.*?^\)$")
    block = lammps_sh_part(r'^if \[ -n "\$\{LAMMPS_LEAN:-\}" \]; then\n.*?^fi$')
    out = subprocess.run(["bash", "-c", f'set -euo pipefail\n{flags}\n{block}\nprintf "%s\\n" "${{CMAKE_FLAGS[@]}}"'],
                         capture_output=True, text=True, check=True, env=dict(os.environ, LAMMPS_LEAN=lean)).stdout
    got = out.split()
    assert all(a == "-D" for a in got[0::2]), got  # still -D NAME=VALUE pairs
    packages = {f.split("=")[0].removeprefix("PKG_") for f in got[1::2] if f.startswith("PKG_")}
    mace_deepmd = {"ML-IAP", "ML-SNAP", "PYTHON", "PLUGIN"}
    rest = {"KSPACE", "EXTRA-FIX", "EXTRA-COMPUTE", "EXTRA-DUMP", "MOLECULE"}
    assert packages == (mace_deepmd if lean else mace_deepmd | rest)
    assert "MLIAP_ENABLE_PYTHON=ON" in got and "BUILD_SHARED_LIBS=ON" in got


@pytest.mark.parametrize("only", ["", "1"])
def test_lammps_only_builds_lammps_and_leaves_the_plugin_for_later(tmp_path, only):
    """tools/lammps.sh's build_all, with stand-ins for the two compilations: LAMMPS_ONLY=1 (the check's first
    build) compiles LAMMPS alone; the run after it (the check's build-deepmd) adds the plugin, keeping LAMMPS."""
    build_all = lammps_sh_part(r"^build_all\(\) \{\n.*?^\}$")
    script = tmp_path / "h.sh"
    script.write_text(f"""set -euo pipefail
P={tmp_path}/prefix; PREFIX=$P; KEY=0123456789abcdef; mkdir -p "$P"
say() {{ :; }}
build_lammps() {{ echo lammps >> {tmp_path}/compiled; touch "$P/.complete"; }}
build_deepmd() {{ echo deepmd >> {tmp_path}/compiled; mkdir -p "$P/deepmd"; touch "$P/deepmd/.complete"; }}
{build_all}
build_all
""")
    subprocess.run(["bash", str(script)], check=True, env=dict(os.environ, LAMMPS_ONLY=only))
    assert (tmp_path / "compiled").read_text().split() == (["lammps"] if only else ["lammps", "deepmd"])
    subprocess.run(["bash", str(script)], check=True, env=dict(os.environ, LAMMPS_ONLY=""))
    assert (tmp_path / "compiled").read_text().split() == ["lammps", "deepmd"]


@pytest.mark.integration
def test_scripts_lint():
    for name in ("gpu-bundle.sh", "gpu-check.sh", "lammps.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "tools" / name)], check=True)
        out = subprocess.run([str(SHELLCHECK), "-x", "-S", "warning", str(ROOT / "tools" / name)],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout


@pytest.mark.integration
def test_the_rehearsal_on_the_cpu_keeps_its_budget(tmp_path):
    """The device call's command, on this CPU with the LAMMPS `make lammps` built (reused by the build case):
    a budget too small for every case; what ran is in the results, the rest is skipped, nothing runs past it.
    Every case of the quick plan takes about 130 s on these 2-core machines (127 s measured, the LAMMPS build reused);
    75 s is about half of it, so some case is skipped unless a machine is twice as fast, and the first measurement
    (estimate 30 s) still fits after the build and the environment (6 s measured). 150 s was too near the whole: a CI
    machine a little faster than this one ran every case in it."""
    out = tmp_path / "out"
    budget_s = 75
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(GPU_CHECK), str(out), "all", "--budget-s", str(budget_s), "--device", "cpu",
                           "--quick"], capture_output=True, text=True, timeout=budget_s + 120,
                          env=dict(os.environ, GPU_PY=sys.executable, OMP_NUM_THREADS="1",
                                   LIF_DIFFUSION_CACHE=str(cache_dir())))  # where `make lammps` built
    wall = time.monotonic() - t0
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert wall < budget_s + 10, f"{wall:.0f} s for a budget of {budget_s} s"
    r = json.loads((out / "gpu-check.json").read_text())
    cases = {c["case"]: c for c in r["cases"]}
    assert list(cases)[:2] == ["build-lammps", "environment"] and cases["build-lammps"]["status"] == "ok", \
        (out / "gpu-check.log").read_text()[-3000:]
    assert r["complete"] and r["budget"]["elapsed_s"] <= budget_s
    ran = [c for c in r["cases"] if c["kind"] == "measure" and c["status"] == "ok"]
    assert ran, r["cases"]
    assert any(c["status"] in ("skipped", "cut-off") for c in r["cases"]), r["cases"]  # 75 s: not all of it
    for p in r["parity"]:  # those that ran: float64 to round-off, float32 really single precision
        if p["case"].endswith("(float64)"):
            assert p["max_abs_force_error_ev_a"] < 1e-10 < p["max_abs_force_ev_a"]
    assert {p.name for p in files_under(out)} <= {"gpu-check.json", "gpu-check.md", "gpu-check.log"}
    assert "| build-lammps | ok |" in (out / "gpu-check.md").read_text()


@pytest.mark.integration
def test_gpu_check_quick_on_the_cpu(tmp_path):
    """Every case of the check, small, on the CPU, without a budget: the numbers each one reports."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--quick", "--device", "cpu",
                           "--packs", "2", "--out", str(out)], capture_output=True, text=True, timeout=1500,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads((out / "gpu-check.json").read_text())
    parity = {p["case"]: p for p in r["parity"]}
    f64 = parity["parity parity-mace (float64)"]
    assert f64["max_abs_force_ev_a"] > 1e-3 and f64["max_abs_force_error_ev_a"] < 1e-10 and f64["atoms"] == 65
    f32 = parity["parity parity-mace (float32)"]
    assert 1e-12 < f32["max_abs_force_error_ev_a"] < 1e-4 * f32["max_abs_force_ev_a"]  # single precision, really
    assert parity["parity parity-deepmd (float64)"]["max_abs_force_error_ev_a"] < 1e-10
    runs = {x["case"]: x for x in r["runs"]}
    best = max(("mace-float32-e3nn-65", "mace-float64-e3nn-65"), key=lambda c: runs[c]["ns_per_day"])
    assert set(runs) == {"mace-float32-e3nn-65", "mace-float64-e3nn-65", "deepmd-65",
                         best.replace("-65", "-217")}  # the large cell in the fastest setting
    assert all(x["ok"] and x["ns_per_day"] > 0 for x in runs.values())
    assert runs["mace-float32-e3nn-65"]["device"].startswith("cpu float32 e3nn")
    assert runs["deepmd-65"]["device"] == "cpu deepmd-kit"
    assert r["packed_case"] == best.removeprefix("mace-").removesuffix("-65")
    assert [p["k"] for p in r["packed"]] == [2] and len(r["packed"][0]["per_run_ns_per_day"]) == 2
    assert set(r["left_out"]) == {"mace-float32-cueq-65", "mace-float64-cueq-65"}  # no cuEquivariance here
    table = (out / "gpu-check.md").read_text()
    assert "| mace-float64-e3nn-65 | 65 |" in table and "aggregate / single run" in table


@pytest.mark.integration
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
