"""Hostile and careless inputs (issue 21): every defect found by trying to break the tool, one test each.

Cases that end in one clear message are rows of the README's bad-input table (checked below, as in
tests/test_bad_inputs.py); the others (silently wrong numbers, faults of the machine, warnings) have their own tests.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import LifDiffusionError
from tests.conftest import make_study, study_toml

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PY = sys.executable


def study_file(tmp_path, text: str):
    from inputs.study import load_study

    p = tmp_path / "bad.toml"
    p.write_text(text)
    return load_study(p)


def frame(step: int, ids, columns="id type xu yu zu", rows=None, n=None, box="0 10") -> list[str]:
    """One dump frame: atoms ``ids`` (type 1, coordinates 1.0 + 0.01·step), or ``rows`` given as text."""
    lines = ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(len(ids) if n is None else n),
             "ITEM: BOX BOUNDS pp pp pp", box, box, box, f"ITEM: ATOMS {columns}"]
    if rows is None:
        rows = [f"{i} 1 {1 + 0.01 * step + i} 1.0 1.0" for i in ids]
    return lines + list(rows)


def write_dump(tmp_path, frames: list[list[str]], name="t.dump") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(line for f in frames for line in f) + "\n")
    return p


def good_frames(n=6, ids=(1, 2, 3)):
    return [frame(10 * k, ids) for k in range(n)]


def read(path):
    from analysis.trajectory import read_trajectory

    return read_trajectory(path, 1.0, select=None if path.suffix == ".dcd" else "type 1")


def dcd(tmp_path, n_frames=20, natoms=2, name="a.dcd") -> Path:
    from MDAnalysis.lib.formats.libdcd import DCDFile

    path = tmp_path / name
    with DCDFile(str(path), "w") as w:
        w.write_header(remarks="t", natoms=natoms, istart=0, nsavc=10, delta=0.001, is_periodic=True)
        for k in range(n_frames):
            x = np.full((natoms, 3), 5.0, dtype=np.float32)
            x[:, 0] += 0.01 * k
            w.write(x, np.array([10.0, 90.0, 10.0, 90.0, 90.0, 10.0]))
    return path


def corrupt_dcd_record(tmp_path):
    from analysis.trajectory import dcd_header

    path = dcd(tmp_path)
    h = dcd_header(path)
    raw = bytearray(path.read_bytes())
    at = h.header_bytes + 5 * h.frame_bytes + 56  # frame 5's X record marker
    raw[at:at + 4] = np.array([10 ** 8], dtype="<i4").tobytes()
    path.write_bytes(bytes(raw))
    return path


def arrhenius_csv(tmp_path, text: str) -> Path:
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


def read_table(path):
    from analysis.arrhenius import fit_table, read_table as rt

    table, _ = rt(path)
    return fit_table(table)


def bad_catalog(tmp_path, monkeypatch, body: str):
    cat = tmp_path / "cat.toml"
    cat.write_text(body)
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    from driver.render import render_study

    return render_study(make_study(potentials=["broken"]), tmp_path / "runs")


def same_file_twice(tmp_path):
    from analysis.diffusion import check_distinct_files

    p = write_dump(tmp_path, good_frames())
    (tmp_path / "copy.dump").write_bytes(p.read_bytes())
    check_distinct_files([p, tmp_path / "copy.dump"])


#: (case, what, provoke(tmp_path, monkeypatch), message): README rows of "What a bad input gets"
CASES = [
    ("name-control-character", "a newline (or any control character) in a study or potential name",
     lambda tp, mp: study_file(tp, study_toml(name="nl\ntouch PWNED\n#")),
     "contains control character(s) \\n; a name is 1-64 printable characters"),
    ("name-too-long", "a name longer than 64 characters",
     lambda tp, mp: study_file(tp, study_toml(name="x" * 300)),
     "is 300 characters long; a name is 1-64 printable characters"),
    ("study-not-finite", "nan or inf for a number",
     lambda tp, mp: study_file(tp, study_toml().replace("timestep_fs = 1.0", "timestep_fs = nan")),
     "md.timestep_fs: must be a finite number, got nan"),
    ("study-beyond-bound", "a number beyond its physical bound",
     lambda tp, mp: study_file(tp, study_toml(temperatures_k=[1e300])),
     "1e+300 K is above 1e+06 K"),
    ("study-less-than-a-step", "a length shorter than one timestep",
     lambda tp, mp: make_study(**{"md.timestep_fs": 10.0, "md.equilibration_ps": 1e-9}),
     "md.equilibration_ps: 1e-09 ps is less than one 10 fs timestep"),
    ("study-too-many-atoms", "a supercell beyond a million atoms",
     lambda tp, mp: make_study(**{"system.supercell": [2000, 2000, 2000]}),
     "more than 1000000 (the most this driver builds)"),
    ("study-temperature-labels-clash", "two temperatures that name one run directory",
     lambda tp, mp: make_study(temperatures_k=[600.0, 600.0000001]),
     "both name the run directory T600K"),
    ("catalog-wrong-type", "a catalog value of the wrong type",
     lambda tp, mp: bad_catalog(tp, mp, '[broken]\nfamily = "classical"\nelements = ["Li", "F"]\n'
                                       'cutoff_angstrom = "six"\nkspace_style = "ewald"\nkspace_accuracy = 1e-6\n'
                                       'charges = { Li = 1.0, F = -1.0 }\npairs = {}\n'),
     "[broken]: cutoff_angstrom: expected a number, got 'six'"),
    ("catalog-malformed-entry", "a malformed catalog entry (others stay usable)",
     lambda tp, mp: bad_catalog(tp, mp, '[broken]\nfamily = "classical"\nelements = 5\n'),
     "cannot be used: "),
    ("dump-duplicate-id", "an atom id twice in a frame",
     lambda tp, mp: read(write_dump(tp, [frame(0, (1, 2, 2))] + good_frames()[1:])),
     "frame 0 (step 0): atom id 2 appears more than once"),
    ("dump-other-atoms", "a frame with other atom ids (same count)",
     lambda tp, mp: read(write_dump(tp, good_frames(2) + [frame(20, (1, 2, 4))])),
     "frame 2 (step 20) has other atoms than the first frame"),
    ("dump-row-width", "a row with more values than the header names",
     lambda tp, mp: read(write_dump(tp, good_frames(2) + [frame(20, (1, 2, 3), rows=[
         "1 1 1 1 1", "2 1 1 1 1 9", "3 1 1 1 1"])])),
     "frame 2 (step 20): atom row 2 has 6 values, the ITEM: ATOMS line names 5 columns"),
    ("dump-corrupt-header", "a damaged header in the middle of a dump",
     lambda tp, mp: read(write_dump(tp, good_frames(2) + [frame(20, (1, 2, 3), n="3x")] + good_frames(6)[3:])),
     "frame 2: NUMBER OF ATOMS '3x' is not an integer"),
    ("dump-atom-count", "NUMBER OF ATOMS zero or negative",
     lambda tp, mp: read(write_dump(tp, [frame(0, (1, 2, 3), n=-5)])),
     "frame 0: NUMBER OF ATOMS is -5; a frame needs at least one atom"),
    ("dump-not-finite", "a nan or inf coordinate",
     lambda tp, mp: read(write_dump(tp, good_frames(3) + [frame(30, (1, 2, 3), rows=[
         "1 1 1 1 1", "2 1 nan 1 1", "3 1 1 1 1"])])),
     "frame 3 (step 30): atom 2 has a coordinate that is not finite"),
    ("dcd-cut", "a DCD cut inside its header",
     lambda tp, mp: (lambda p: (p.write_bytes(p.read_bytes()[:40]), read(p)))(dcd(tp)),
     "the DCD header is cut off"),
    ("dcd-record-length", "a DCD with a corrupt record length",
     lambda tp, mp: read(corrupt_dcd_record(tp)),
     "corrupt DCD: frame 5's record lengths are not those of 2 atoms"),
    ("replicas-same-file", "the same trajectory given twice as replicas",
     lambda tp, mp: same_file_twice(tp),
     "hold the same trajectory (identical contents): each replica must be its own run"),
    ("table-missing-cell", "an Arrhenius table row with a missing cell",
     lambda tp, mp: read_table(arrhenius_csv(tp, "temperature_k,d_cm2_s,d_stderr_cm2_s\n500,1e-6,1e-7\n600,2e-6\n")),
     "t.csv:3: the row has no cell for column 'd_stderr_cm2_s'"),
    ("table-not-finite", "an Arrhenius table with an inf error",
     lambda tp, mp: read_table(arrhenius_csv(tp, "temperature_k,d_cm2_s,d_stderr_cm2_s\n500,1e-6,inf\n"
                                                 "600,2e-6,1e-7\n")),
     "t.csv:2: d_stderr_cm2_s = 'inf' is not a finite number"),
]


@pytest.mark.parametrize("case, what, provoke, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_gets_one_clear_message(tmp_path, monkeypatch, case, what, provoke, message):
    with pytest.raises(LifDiffusionError, match=re.escape(message)) as info:
        provoke(tmp_path, monkeypatch)
    assert "\n" not in str(info.value).replace("\\n", "")
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.rglob("*")), "a refused input left files behind"


def test_readme_table_quotes_every_hostile_case():
    text = README.read_text()
    section = text.split("## What a bad input gets", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")}
    for case, _, _, message in CASES:
        assert case in rows, f"README bad-input table has no row for {case}"
        assert message in rows[case].replace("\\|", "|"), f"README row {case} does not quote {message!r}"


# --- a bad catalog entry breaks only itself ------------------------------------------------------------------

def test_a_malformed_catalog_entry_leaves_the_others_usable(tmp_path, monkeypatch):
    from driver.render import render_study

    cat = tmp_path / "cat.toml"
    cat.write_text('[broken]\nfamily = "classical"\nelements = 5\n\n[also-broken]\nfamily = 3\nelements = ["Li"]\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    assert render_study(make_study(), tmp_path / "runs")  # fumi-tosi still renders


# --- silently wrong results, now refused or warned -----------------------------------------------------------

def test_json_output_is_strict_json_even_where_a_number_is_nan(tmp_path, capsys):
    """A result that is not a number is null in --json output (bare NaN is not JSON)."""
    from core.files import json_dumps

    text = json_dumps({"d": float("nan"), "e": [1.0, float("inf")], "n": np.float64("nan")})
    assert json.loads(text) == {"d": None, "e": [1.0, None], "n": None}
    assert "NaN" not in text and "Infinity" not in text


def test_diffusion_cli_json_parses(tmp_path, capsys):
    from analysis.diffusion import main

    frames = [frame(10 * k, (1, 2, 3), rows=[f"{i} 1 {1 + 0.3 * np.sin(k * i)} {1 + 0.01 * k * i} 1"
                                             for i in (1, 2, 3)]) for k in range(60)]
    p = write_dump(tmp_path, frames)
    assert main([str(p), "--timestep-fs", "1", "--fit-start-ps", "0.05", "--fit-end-ps", "0.2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc is None or isinstance(doc, dict)


def test_the_same_file_twice_by_its_own_path_is_refused(tmp_path, capsys):
    from analysis.diffusion import main

    p = write_dump(tmp_path, good_frames(30))
    assert main([str(p), str(p), "--timestep-fs", "1"]) == 2
    assert "are the same file" in capsys.readouterr().err


def test_a_truncated_gzip_dump_warns_and_keeps_the_whole_frames(tmp_path):
    from analysis.trajectory import read_dump

    plain = write_dump(tmp_path, good_frames(40))
    full = gzip.compress(plain.read_bytes())
    gz = tmp_path / "t.dump.gz"
    gz.write_bytes(full[: len(full) * 3 // 4])
    with pytest.warns(UserWarning, match="the last frame is incomplete"):
        traj = read_dump(gz, 1.0)
    whole = read_dump(plain, 1.0)
    assert 2 <= traj.n_frames < whole.n_frames
    np.testing.assert_array_equal(traj.positions, whole.positions[:traj.n_frames])


def test_a_corrupt_gzip_stream_is_an_error(tmp_path):
    """A damaged checksum is reported as corrupt data (not taken for a truncation); damaged bytes inside the
    stream give an error of the project's, whatever the decompressor makes of them."""
    from analysis.trajectory import read_dump

    raw = bytearray(gzip.compress(write_dump(tmp_path, good_frames(40)).read_bytes()))
    crc = bytearray(raw)
    crc[-8] ^= 0xFF  # the CRC-32 of the trailer
    (tmp_path / "crc.dump.gz").write_bytes(bytes(crc))
    with pytest.raises(LifDiffusionError, match="compressed data is corrupt"):
        read_dump(tmp_path / "crc.dump.gz", 1.0)
    raw[len(raw) // 2:len(raw) // 2 + 40] = b"\xff" * 40
    (tmp_path / "c.dump.gz").write_bytes(bytes(raw))
    with pytest.raises(LifDiffusionError, match="c.dump.gz"):
        read_dump(tmp_path / "c.dump.gz", 1.0)


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path):
    from analysis.arrhenius import read_table as rt

    p = tmp_path / "bom.csv"
    p.write_bytes("\ufefftemperature_k,d_cm2_s,d_stderr_cm2_s\n500,1e-6,1e-7\n600,2e-6,1e-7\n".encode("utf-8"))
    table, _ = rt(p)
    assert [d.temperature_k for d in table["-"]] == [500.0, 600.0]


def test_temperatures_that_look_like_celsius_are_warned_about(tmp_path, caplog):
    from analysis.arrhenius import read_table as rt

    p = arrhenius_csv(tmp_path, "temperature_k,d_cm2_s,d_stderr_cm2_s\n100,1e-6,1e-7\n150,2e-6,1e-7\n")
    with caplog.at_level("WARNING"):
        rt(p)
    assert "degrees Celsius" in caplog.text


def test_a_huge_table_is_refused_quickly_and_long_lists_are_summarised(tmp_path):
    from analysis.arrhenius import MAX_TABLE_ROWS, describe, fit_arrhenius, read_table as rt
    from analysis.diffusion import Diffusivity

    p = tmp_path / "big.csv"
    rows = "".join(f"{300 + k * 1e-3},1e-6,1e-7\n" for k in range(MAX_TABLE_ROWS + 5))
    p.write_text("temperature_k,d_cm2_s,d_stderr_cm2_s\n" + rows)
    with pytest.raises(LifDiffusionError, match="more than 100000 rows"):
        rt(p)
    fit = fit_arrhenius([Diffusivity(300.0 + k, 1e-6 * (1 + k / 100), 1e-8) for k in range(500)])
    assert len(describe(fit)) < 300 and "500 temperatures from 300 to 799" in describe(fit)


def test_no_fit_always_says_why(tmp_path, capsys):
    from analysis.arrhenius.__main__ import main

    p = arrhenius_csv(tmp_path, "temperature_k,d_cm2_s,d_stderr_cm2_s,status\n500,1e-6,1e-7,few-events\n"
                                "600,2e-6,1e-7,few-events\n")
    assert main([str(p), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "every state was left out" in err and "500 K few-events" in err


def test_the_report_creates_nothing_in_a_mistyped_directory(tmp_path, capsys):
    from analysis.cli import report as main

    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert not (tmp_path / "empty" / "report").exists()
    assert main([str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "missing").exists()


def test_finetune_list_names_a_broken_catalog_file_broken(tmp_path, monkeypatch, capsys):
    from finetune.__main__ import main

    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path))
    d = tmp_path / "catalog.d"
    d.mkdir()
    (d / "bad.toml").write_text("this is [not toml")
    assert main(["list"]) == 0
    assert "bad" in (out := capsys.readouterr().out) and "BROKEN" in out


def test_non_numeric_pressure_is_non_finite():
    from driver.runner import classify_failure

    assert classify_failure("ERROR: Non-numeric pressure - simulation unstable (src/fix_nh.cpp:1054)") == "non-finite"
    assert classify_failure("ERROR: Cannot write to file: No space left on device") == "disk-full"


def test_the_next_step_commands_are_shell_quoted(tmp_path, monkeypatch, capsys):
    """The commands `driver render` prints can be pasted into a shell as they are."""
    from driver.__main__ import main

    root = tmp_path / "my runs $(touch x)"
    study = tmp_path / "s.toml"
    study.write_text(study_toml())
    assert main(["render", "--study", str(study), "--root", str(root), "--site", "generic-slurm"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("submit: "))
    import shlex

    assert shlex.split(line.split(": ", 1)[1])[1] == str(root / "tiny" / "cluster" / "submit.sh")


# --- faults of the machine -----------------------------------------------------------------------------------

def test_an_os_error_is_one_line_naming_the_path(tmp_path):
    (tmp_path / "afile").write_text("x")
    study = tmp_path / "s.toml"
    study.write_text(study_toml())
    proc = subprocess.run([PY, "-m", "driver", "render", "--study", str(study), "--root", str(tmp_path / "afile")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'afile'}/tiny/fumi-tosi/T700K: Not a directory"]


def test_a_full_disk_marks_the_run_failed_and_stops_the_pool(tmp_path, monkeypatch, caplog):
    """The driver's own writes fail with ENOSPC after LAMMPS finished: the run is failed (disk-full), the
    exception does not escape the pool, and no further run starts."""
    from core.rundir import RunDir
    from driver import runner
    from driver.render import render_study

    runs = render_study(make_study(temperatures_k=[500.0, 600.0, 700.0]), tmp_path / "runs")
    started = []

    def full_disk(run, s, *args, **kwargs):
        started.append(run.path)
        raise OSError(errno.ENOSPC, "No space left on device", str(run.summary_file))

    monkeypatch.setattr(runner, "_run_locked", full_disk)
    monkeypatch.setattr(runner, "lammps_info", lambda lmp: None)
    monkeypatch.setattr(runner, "check_requirements", lambda *a: None)
    failed = runner.run_many(runs, "lmp", jobs=1, progress=False)
    assert len(started) == 1 and len(failed) == 3
    first = RunDir(started[0]).read()
    assert first.status == "failed" and first.failure_class == "disk-full" and "No space left" in first.error
    assert sum("not started (the disk is full)" in f for f in failed) == 2
    assert "no space left on the device" in caplog.text


def _wait_for(predicate, timeout=120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.integration
def test_sigterm_marks_runs_interrupted_and_status_tells_a_dead_driver(tmp_path):
    """TERM to `driver run`: its runs end interrupted (resumable). KILL: status sees the lock's owner gone."""
    from core.rundir import RunDir

    study = tmp_path / "s.toml"
    study.write_text(study_toml(**{"md.production_ps": 40.0, "md.restart_interval_ps": 1.0}))
    root = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [PY, "-m", "driver", "run", "--study", str(study), "--root", str(root), "--no-progress"]
    run_dir = root / "tiny" / "fumi-tosi" / "T700K" / "seed1"

    def running():
        try:
            return RunDir(run_dir).read().status == "running" and any(run_dir.glob("log.*.lammps"))
        except LifDiffusionError:
            return False

    for sig, expected in ((signal.SIGTERM, "interrupted"), (signal.SIGKILL, "running")):
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert _wait_for(running), proc.communicate(timeout=5)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        if sig == signal.SIGKILL:  # its LAMMPS child may outlive it for a moment
            time.sleep(1)
        assert RunDir(run_dir).read().status == expected
    out = subprocess.run([PY, "-m", "driver", "status", str(root / "tiny")], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=60).stdout
    assert "interrupted (no driver)" in out and "is gone" in out


def test_sigterm_while_plotting_leaves_no_temporary_file(tmp_path):
    script = (
        "import sys, time\n"
        "from core import cli\n"
        "from core.files import atomic_copy\n"
        "def write(tmp):\n"
        "    open(tmp, 'wb').write(b'x')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        f"sys.exit(cli.run(lambda: atomic_copy(write, {str(tmp_path / 'fig.png')!r})))\n")
    proc = subprocess.Popen([PY, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert list(tmp_path.iterdir()) == []


# --- injection: every control character and shell metacharacter in every name field --------------------------

CONTROL = [chr(c) for c in range(32)] + [chr(127)]
#: a name holding every shell (and LAMMPS) metacharacter a name may have, and two command substitutions
METACHARACTERS = "a $(touch PWNED1) `touch PWNED2`;|&<>{}[]*?!~#'\"%^=+,:@ x&"


def _catalog_with(tmp_path, monkeypatch, name: str) -> None:
    text = (ROOT / "potentials" / "catalog.toml").read_text().split("\n[mace-mpa-0]")[0]
    cat = tmp_path / "cat.toml"
    cat.write_text(text.replace("[fumi-tosi]", f"[{json.dumps(name)}]"))
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))


@pytest.mark.parametrize("char", CONTROL, ids=[f"0x{ord(c):02x}" for c in CONTROL])
def test_every_control_character_in_every_name_field_is_refused_at_load(tmp_path, monkeypatch, char):
    from inputs.study import study_from_dict
    from potentials.catalog import get_entry
    from tests.conftest import study_dict

    payload = f"inj{char}touch PWNED{char}#"
    for field in ("name", "potentials"):
        d = study_dict(**{field: payload if field == "name" else [payload]})
        with pytest.raises(LifDiffusionError, match="control character"):
            study_from_dict(d, "inj.toml")
    _catalog_with(tmp_path, monkeypatch, payload)  # a catalog entry named so: refused where it is used
    with pytest.raises(LifDiffusionError, match="control character"):
        get_entry(payload)


@pytest.mark.parametrize("char", [c for c in CONTROL if c != "\t"], ids=lambda c: f"0x{ord(c):02x}")
def test_the_templates_refuse_any_value_that_would_break_a_line(char):
    """Whatever field a future change adds, a control character in it cannot reach a deck or a script."""
    from driver.render import RunSpec, deck_context, render_deck
    from potentials.catalog import resolve
    from templates import render

    study = make_study()
    _, block = resolve("fumi-tosi", ("Li", "F"))
    run = RunSpec("fumi-tosi", 700.0, 1)
    context = deck_context(study, run, block)
    assert "units           metal" in render_deck(study, run, block)
    for key in ("title", "potential", "study"):
        with pytest.raises(LifDiffusionError, match="would break its line"):
            render("md.lammps.j2", **{**context, key: f"x{char}shell touch PWNED"})
    with pytest.raises(LifDiffusionError, match="would break its line"):
        render("submit.sh.j2", study=f"s{char}touch PWNED", n_runs=1, preflight=[], jobs=[], scheduler="slurm")


@pytest.mark.integration
def test_shell_metacharacters_in_every_name_field_stay_data_through_render_submit_and_lammps(tmp_path, monkeypatch):
    """A study and a potential named with every metacharacter: rendered, submitted through the stand-in sbatch
    (which runs the array task: the job script, the driver and LAMMPS on the deck), and nothing ran."""
    from driver.cluster import load_site, write_cluster_scripts
    from driver.lammps import find_lammps
    from driver.render import render_study
    from inputs.study import load_study

    assert len(METACHARACTERS) <= 64
    _catalog_with(tmp_path, monkeypatch, METACHARACTERS)
    study_path = tmp_path / "s.toml"
    study_path.write_text(study_toml(name=METACHARACTERS, potentials=[METACHARACTERS], **{
        "md.production_ps": 0.2, "md.restart_interval_ps": 0.1, "md.dump_interval_ps": 0.002}))
    study = load_study(study_path)
    root = tmp_path / "runs"
    runs = render_study(study, root)
    site = tmp_path / "site.toml"
    site.write_text(f'scheduler = "slurm"\npython = {json.dumps(sys.executable)}\nlmp = {json.dumps(find_lammps())}\n'
                    "[cpu]\ncpus_per_task = 1\n")
    study_dir = root / study.name
    write_cluster_scripts(study_dir, runs, load_site(site))
    deck = (runs[0] / "in.lammps").read_text()
    assert METACHARACTERS in deck and all(line.startswith("#") for line in deck.splitlines() if METACHARACTERS in line)
    env = dict(os.environ, PATH=f"{ROOT / 'tests' / 'standins'}{os.pathsep}{os.environ['PATH']}",
               STANDIN_LOG=str(tmp_path / "standin.log"))
    out = subprocess.run(["bash", str(study_dir / "cluster" / "submit.sh")], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    from core.rundir import RunDir

    assert RunDir(runs[0]).read().status == "finished"  # the deck ran through LAMMPS
    assert not list(tmp_path.rglob("PWNED*")) and not list(ROOT.glob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


# --- damaged files of a run directory ------------------------------------------------------------------------

def test_a_summary_that_is_not_utf8_is_one_clear_message(tmp_path):
    from core.rundir import RunDir

    (tmp_path / "summary.json").write_bytes(b'{"schema": \xff\xfe}')
    with pytest.raises(LifDiffusionError, match="is not UTF-8 text"):
        RunDir(tmp_path).read()


def test_a_damaged_stored_analysis_is_recomputed_not_trusted(tmp_path):
    from analysis.runs import run_analysis
    from core.rundir import RunDir
    from tests.conftest import random_walk, write_fake_run

    run = write_fake_run(tmp_path / "s", "fumi-tosi", 700.0, 1,
                         random_walk(200, 8, 0.05, 0.02, np.random.default_rng(3)), 0.02)
    first = run_analysis(run)
    for damaged in (b"null", b"[1, 2]", b'{"key": null}', b"\xff\xfe", b'{"key": {}, "observables": 5}'):
        RunDir(run).analysis_json.write_bytes(damaged)
        again = run_analysis(run)
        np.testing.assert_allclose(again.stats["li"].msd, first.stats["li"].msd)


@pytest.mark.parametrize("text", ["0 1 2\n", "0 1 2 x\n", "0 nan 0 0\n10 0 0 0\n", "10 0 0 0\n0 0 0 0\n", ""])
def test_a_malformed_fcom_table_is_one_clear_message(tmp_path, text):
    from analysis.runs import read_fcom

    p = tmp_path / "fcom.txt"
    p.write_text("# step x y z\n" + text)
    with pytest.raises(LifDiffusionError, match="fcom.txt"):
        read_fcom(p)


def test_a_dump_deleted_while_read_is_one_line(tmp_path, monkeypatch, capsys):
    from analysis import trajectory
    from analysis.diffusion import main

    p = write_dump(tmp_path, good_frames(30))

    def gone(path):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))

    monkeypatch.setattr(trajectory, "open_text", gone)
    assert main([str(p), "--timestep-fs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {p}: No such file or directory"


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "one"])
def test_a_timestep_that_is_not_a_positive_number_is_refused_by_the_command_line(tmp_path, value, capsys):
    from analysis.diffusion import main

    p = write_dump(tmp_path, good_frames(30))
    with pytest.raises(SystemExit) as exit_:
        main([str(p), "--timestep-fs", value])
    assert exit_.value.code == 2 and "--timestep-fs" in capsys.readouterr().err
