"""The LAMMPS build's own logic, without compiling anything: every core whatever OMP_NUM_THREADS says, one build per
cache key at a time (a second waits for the first and reuses its result), and the make targets that need no LAMMPS
not building it. The lock is tested with the functions and the locking line of tools/lammps.sh itself, taken from
the script as it stands, around stand-ins for the two compilations."""

import fcntl
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "tools" / "lammps.sh"


def script_parts(*functions: str, line: str) -> str:
    """The definitions of these shell functions and the one line matching ``line``, as in tools/lammps.sh."""
    text = SCRIPT.read_text()
    parts = []
    for name in functions:
        m = re.search(rf"^{name}\(\) \{{(?:[^\n]*\}}$|\n.*?^\}}$)", text, re.M | re.S)
        assert m, f"tools/lammps.sh has no function {name}"
        parts.append(m.group(0))
    m = re.search(line, text, re.M)
    assert m, f"tools/lammps.sh has no line matching {line!r}"
    return "\n".join(parts + [m.group(0)])


def harness(tmp_path: Path) -> Path:
    """tools/lammps.sh's locking and reuse logic, with compilations that take 2 s and count themselves."""
    body = script_parts("say", "die", "with_lock", "build_all",
                        line=r'^with_lock "\$CACHE/lammps/\$KEY\.lock" build_all$')
    h = tmp_path / "harness.sh"
    h.write_text(f"""set -euo pipefail
CACHE=$1; KEY=0123456789abcdef; PREFIX=$CACHE/lammps/$KEY
build_lammps() {{ echo lammps >> "$CACHE/compiled"; sleep 2; mkdir -p "$PREFIX"; touch "$PREFIX/.complete"; }}
build_deepmd() {{ echo deepmd >> "$CACHE/compiled"; mkdir -p "$PREFIX/deepmd"; touch "$PREFIX/deepmd/.complete"; }}
{body}
""")
    return h


def start(h: Path, cache: Path) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(h), str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_builds_of_one_key_build_once_the_second_waits_and_reuses(tmp_path):
    cache = tmp_path / "cache"
    h = harness(tmp_path)
    first = start(h, cache)
    wait_for(lambda: (cache / "compiled").exists())  # the first is compiling
    second = start(h, cache)
    out1, out2 = first.communicate(timeout=60), second.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, (out1, out2)
    assert (cache / "compiled").read_text().split() == ["lammps", "deepmd"]  # once, not twice
    assert "another build holds" in out2[1] and "waiting" in out2[1], out2
    assert "LAMMPS for key 0123456789abcdef is already built: reusing" in out2[1], out2
    assert "another build holds" not in out1[1]


def test_a_finished_build_is_reused_only_after_the_lock_is_released(tmp_path):
    cache = tmp_path / "cache"
    prefix = cache / "lammps" / "0123456789abcdef"
    (prefix / "deepmd").mkdir(parents=True)
    (prefix / ".complete").touch()
    (prefix / "deepmd" / ".complete").touch()
    with open(cache / "lammps" / "0123456789abcdef.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of this key is under way
        proc = start(harness(tmp_path), cache)
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()
        fcntl.flock(lock, fcntl.LOCK_UN)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "waiting" in err and "is already built: reusing" in err, err
    assert not (cache / "compiled").exists()


def test_the_build_uses_every_core_whatever_omp_num_threads_says():
    (line,) = [ln for ln in SCRIPT.read_text().splitlines() if ln.startswith("JOBS=")]
    env = {k: v for k, v in os.environ.items() if k != "JOBS"}
    out = subprocess.run(["bash", "-c", f'{line}; echo "$JOBS"'], env=dict(env, OMP_NUM_THREADS="1"),
                         capture_output=True, text=True, check=True).stdout
    assert int(out) == os.cpu_count()


def make_dry_run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "MFLAGS"}
    return subprocess.run(["make", "-n", "-C", str(ROOT), *args], env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout


@pytest.mark.parametrize("args, builds", [
    (["finetune", "ARGS=--help"], False),
    (["finetune", "ARGS=train --help"], False),
    (["finetune", "ARGS=data --data x --out y"], False),
    (["finetune"], False),
    (["decks"], False),
    (["finetune", "ARGS=train --strategy naive --data d --name n --foundation mace-mpa-0"], True),
    (["finetune", "ARGS=selfgen runs/x --label lammps:fumi-tosi --out data/self"], True),
    (["sweep"], True),
    (["test"], True),
])
def test_make_builds_lammps_only_for_targets_that_run_it(args, builds):
    assert ("tools/lammps.sh" in make_dry_run(*args)) is builds


def test_make_test_installs_slurm_for_the_cluster_tests():
    assert "tools/slurm.sh" in make_dry_run("test")
