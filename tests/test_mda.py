"""The estimator as an MDAnalysis analysis (analysis/mda.py), on a Universe from every format the project writes
(LAMMPS text dump, DCD with unwrapped coordinates) and one it does not (XTC, written by MDAnalysis): the same D as
``python -m analysis.diffusion`` and the study analysis, the MSD of MDAnalysis's ``EinsteinMSD`` on the lag axis
it reports, and known answers on synthetic walks."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.diffusion import estimate, msd_stats
from analysis.hops import hop_window
from analysis.mda import DiffusionAnalysis, Sites, frame_interval_ps, study_settings
from analysis.study import analyse_study
from analysis.trajectory import Trajectory
from core.errors import AnalysisError
from core.rundir import RunDir
from core.units import A2_PER_PS_TO_CM2_PER_S
from tests.conftest import interstitialcy, make_study, random_walk, write_fake_run

README = Path(__file__).parents[1] / "README.md"


def memory_universe(positions, dt_ps, box=None):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(positions.shape[1], trajectory=True)
    u.load_new(np.asarray(positions, dtype=np.float32), format=MemoryReader, dt=dt_ps,
               dimensions=None if box is None else [box, box, box, 90, 90, 90])
    return u


def dump_universe(path, timestep_ps):
    import warnings

    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Guessed all Masses")  # a dump has no masses; none are needed here
        return mda.Universe(str(path), format="LAMMPSDUMP", lammps_coordinate_convention="unwrapped",
                            dt=timestep_ps)


def write_xtc(path, positions, times_ps, box=60.0):
    """An XTC written by MDAnalysis's own writer, frames at the given times (stored as float32 by the format)."""
    import MDAnalysis as mda

    u = memory_universe(positions, 1.0, box)
    with mda.Writer(str(path), u.atoms.n_atoms) as w:
        for ts, t in zip(u.trajectory, times_ps):
            ts.time = t
            w.write(u.atoms)
    v = mda.Universe.empty(positions.shape[1], trajectory=True)
    v.load_new(str(path))
    return v


def einstein_msd_on_our_lags(emsd, interval_ps):
    """EinsteinMSD's MSD at each of our lags k·Δt. With uniform times it reports one value per frame lag; with
    uneven times (XTC's float32) one per distinct Δt among the frame pairs, which are regrouped here by the lag
    k = round(Δt / interval), weighted by how many frame pairs each Δt has (counted from its own frame times)."""
    delta, msd = emsd.results.delta_t_values, emsd.results.timeseries
    n = emsd.n_frames
    if len(delta) == n:  # the frame-lag axis
        np.testing.assert_allclose(delta, np.arange(n) * (emsd.times[1] - emsd.times[0]))
        return msd[1:], "frame lags"
    t = emsd.times
    pairs = (t[None, :] - t[:, None])[np.triu_indices(n, 1)]  # t[j] - t[i] for j > i, as EinsteinMSD forms them
    keys, counts = np.unique(pairs, return_counts=True)
    np.testing.assert_array_equal(keys, delta[1:])
    lag = np.rint(keys / interval_ps).astype(int)
    assert np.all(np.abs(keys - lag * interval_ps) <= 2 * np.spacing(np.float32(t.max())))  # float32 rounding
    weight = np.bincount(lag, weights=counts, minlength=n)
    np.testing.assert_array_equal(weight[1:], n - np.arange(1, n))  # every frame pair belongs to one of our lags
    return np.bincount(lag, weights=counts * msd[1:], minlength=n)[1:] / weight[1:], "time lags"


# --- synthetic walks in memory ------------------------------------------------------------------------------

def test_a_random_walk_gives_the_estimators_d_which_covers_the_truth():
    d_true = 0.5  # Å²/ps
    x = random_walk(1000, 16, d_true, 0.1, np.random.default_rng(1))
    da = DiffusionAnalysis(memory_universe(x, 0.1)).run()
    r = da.results
    assert r.frame_interval_ps == pytest.approx(0.1) and r.n_atoms == 16 and r.status == "ok"
    want = estimate([msd_stats(x.astype(np.float32), r.frame_interval_ps)], *r.window_ps)
    assert r.d_cm2_s == pytest.approx(want.d_cm2_s, rel=1e-12)
    assert r.d_stderr_cm2_s == pytest.approx(want.d_stderr_cm2_s, rel=1e-12)
    assert r.d_ci95_low_cm2_s < r.d_cm2_s < r.d_ci95_high_cm2_s and r.dof == want.dof
    truth = d_true * A2_PER_PS_TO_CM2_PER_S
    assert abs(r.d_cm2_s - truth) < 3 * r.d_stderr_cm2_s, (r.d_cm2_s, truth)
    # the command line's window: from the hops counted without a lattice, to half the trajectory
    walk = Trajectory(x, np.arange(1000) * 0.1, np.arange(1000), np.arange(16), "walk")
    assert r.window_ps == pytest.approx((hop_window([walk]), 99.9 / 2), rel=1e-9) and r.window_ps[0] >= 1.0
    assert np.all(np.abs(r.running_d_cm2_s / truth - 1) < 0.5) and len(r.running_time_ps) > 20
    np.testing.assert_allclose(r.lag_times_ps, np.arange(1000) * 0.1, atol=1e-9)
    # 16 independent walkers: their sum diffuses 16 times faster, per walker as fast as one
    assert abs(r.collective_d_cm2_s - truth) < 3 * r.collective_d_stderr_cm2_s
    assert r.events is None and r.defect_d_cm2_s is None


def test_frames_are_chosen_at_run_time():
    x = random_walk(400, 4, 0.5, 0.1, np.random.default_rng(2))
    u = memory_universe(x, 0.1)
    da = DiffusionAnalysis(u, window_ps=(1.0, 5.0)).run(start=10, stop=310, step=3)
    assert da.n_frames == 100 and da.frames[0] == 10 and da.frames[-1] == 307
    assert da.results.frame_interval_ps == pytest.approx(0.3)
    want = estimate([msd_stats(x[10:310:3].astype(np.float32), 0.3)], 1.0, 5.0)
    assert da.results.d_cm2_s == pytest.approx(want.d_cm2_s, rel=1e-9)
    # the time between frames given instead of read: the same interval
    given = DiffusionAnalysis(u, dt_ps=0.1, window_ps=(1.0, 5.0)).run(start=10, stop=310, step=3)
    assert given.results.d_cm2_s == pytest.approx(da.results.d_cm2_s, rel=1e-9)
    with pytest.raises(AnalysisError, match="evenly spaced"):
        DiffusionAnalysis(u).run(frames=[0, 1, 2, 4, 5, 6, 7, 8])
    # a selection within the Universe, as EinsteinMSD takes one
    u.add_TopologyAttr("types", ["1", "2", "1", "2"])
    sel = DiffusionAnalysis(u, select="type 1", window_ps=(1.0, 5.0)).run(start=10, stop=310, step=3)
    assert sel.results.n_atoms == 2
    want = estimate([msd_stats(x[10:310:3, [0, 2]].astype(np.float32), 0.3)], 1.0, 5.0)
    assert sel.results.d_cm2_s == pytest.approx(want.d_cm2_s, rel=1e-9)


def test_the_host_lattices_drift_is_removed():
    """Walkers on a host whose atoms all drift together: with the host given, D is the walkers' own; without it,
    the drift poses as a much faster diffusion."""
    rng = np.random.default_rng(5)
    walk = random_walk(500, 8, 0.2, 0.1, rng)
    drift = random_walk(500, 1, 5.0, 0.1, rng)  # the whole crystal wanders
    host = rng.uniform(0, 10, (1, 20, 3)) + rng.normal(0, 0.05, (500, 20, 3))  # vibrating about fixed sites
    u = memory_universe(np.concatenate([walk, host], axis=1) + drift, 0.1)
    window = (1.0, 20.0)
    with_host = DiffusionAnalysis(u, select="index 0:7", host=u.atoms[8:], window_ps=window).run(verbose=True)
    without = DiffusionAnalysis(u, select="index 0:7", window_ps=window).run()
    # the host's centroid vibrates a little (20 atoms): the same D as the bare walk within a small fraction of σ
    bare = estimate([msd_stats(walk.astype(np.float32), 0.1)], *window)
    assert abs(with_host.results.d_cm2_s - bare.d_cm2_s) < 0.2 * bare.d_stderr_cm2_s
    assert without.results.d_cm2_s > 5 * bare.d_cm2_s


def test_frame_times_stored_as_float32_are_even_others_are_not():
    t = np.float32(1e5) + np.arange(200, dtype=np.float32) * np.float32(0.1)  # 100 ns into a run, as XTC keeps it
    assert len(set(np.diff(t.astype(np.float64)))) > 1
    assert frame_interval_ps(t) == pytest.approx(0.1, rel=1e-3)
    with pytest.raises(AnalysisError, match="frames 99 and 100"):
        frame_interval_ps(np.r_[np.arange(100) * 0.1, 10.5 + np.arange(100) * 0.1])
    with pytest.raises(AnalysisError, match="do not increase"):
        frame_interval_ps(np.zeros(5))


def test_wrapped_coordinates_and_bad_arguments_are_refused():
    x = random_walk(200, 8, 5.0, 0.1, np.random.default_rng(3)) + 5.0
    with pytest.raises(AnalysisError, match="wrapped"):
        DiffusionAnalysis(memory_universe(x % 10.0, 0.1, box=10.0)).run()
    u = memory_universe(x, 0.1, box=10.0)
    assert DiffusionAnalysis(u).run().results.d_cm2_s > 0  # unwrapped, the same box: accepted
    for kwargs, match in (({"select": "index 999"}, "matches no atoms"), ({"dt_ps": 0.0}, "positive"),
                          ({"window_ps": (5.0, 1.0)}, "0 < start < end"), ({"sites": "sites"}, "Sites")):
        with pytest.raises(AnalysisError, match=match):
            DiffusionAnalysis(u, **kwargs)
    with pytest.raises(AnalysisError, match="UpdatingAtomGroup"):
        DiffusionAnalysis(u.select_atoms("prop x < 5", updating=True))
    with pytest.raises(AnalysisError, match="beyond"):
        DiffusionAnalysis(u, window_ps=(1.0, 50.0)).run()
    with pytest.raises(AnalysisError, match="one of interstitial, vacancy, frenkel"):
        Sites(np.zeros((1, 3)), np.zeros((1, 3)), "none")


# --- XTC: a format MDAnalysis reads and the project does not write --------------------------------------------

@pytest.mark.parametrize("first_ps, interval_ps", [(0.0, 0.25), (12345.0, 0.1)])
def test_xtc_written_by_mdanalysis_against_einstein_msd(tmp_path, first_ps, interval_ps):
    """Times 0.25 ps apart from 0 are exact in float32 (EinsteinMSD keeps its frame-lag axis); 0.1 ps apart from
    12345 ps they are rounded unevenly, and EinsteinMSD 2.11 reports the MSD per distinct Δt instead."""
    from MDAnalysis.analysis.msd import EinsteinMSD

    x = random_walk(240, 12, 0.5, interval_ps, np.random.default_rng(4)) + 30.0
    u = write_xtc(tmp_path / "walk.xtc", x, first_ps + interval_ps * np.arange(240))
    da = DiffusionAnalysis(u).run()
    r = da.results
    assert r.frame_interval_ps == pytest.approx(interval_ps, rel=1e-4)
    emsd = EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run()
    theirs, axis = einstein_msd_on_our_lags(emsd, r.frame_interval_ps)
    assert axis == ("frame lags" if first_ps == 0 else "time lags")
    np.testing.assert_allclose(r.timeseries[1:], theirs, rtol=1e-8)
    # the same D as the estimator on the positions as stored (XTC keeps 1/1000 nm: rounded to 0.01 Å)
    stored = np.array([u.atoms.positions.copy() for _ in u.trajectory])
    assert np.abs(stored - x).max() < 0.0051
    want = estimate([msd_stats(stored, r.frame_interval_ps)], *r.window_ps)
    assert r.d_cm2_s == pytest.approx(want.d_cm2_s, rel=1e-12)
    assert abs(r.d_cm2_s - 0.5e-4) < 3 * r.d_stderr_cm2_s


# --- the project's own formats: the command line's and the study's D --------------------------------------------

def test_text_dump_of_a_lammps_run_gives_the_command_lines_d(finished_run, capsys):
    from MDAnalysis.analysis.msd import EinsteinMSD

    from analysis.diffusion import main

    dump = finished_run / "traj.dump"
    u = dump_universe(dump, 0.001)  # ps per MD step: a dump frame is dated step × dt
    for extra, window in (([], None), (["--fit-start-ps", "0.02", "--fit-end-ps", "0.05"], (0.02, 0.05))):
        assert main([str(dump), "--timestep-fs", "1", "--select", "type 1", "--json", *extra]) == 0
        cli = json.loads(capsys.readouterr().out)
        r = DiffusionAnalysis(u.select_atoms("type 1"), window_ps=window).run().results
        # the dump's text read as float64 by the command line, as float32 by MDAnalysis (~1e-7 apart)
        assert r.d_cm2_s == pytest.approx(cli["d_cm2_s"], rel=1e-5)
        assert r.d_stderr_cm2_s == pytest.approx(cli["d_stderr_cm2_s"], rel=1e-5)
        assert r.window_ps == pytest.approx((cli["fit_start_ps"], cli["fit_end_ps"]), rel=1e-9)
        assert r.n_atoms == cli["n_atoms"] == 109
    emsd = EinsteinMSD(u, select="type 1", fft=True).run()
    theirs, _ = einstein_msd_on_our_lags(emsd, r.frame_interval_ps)
    np.testing.assert_allclose(r.timeseries[1:], theirs, rtol=1e-8)


def test_a_synthetic_interstitialcy_run_gives_the_study_analysis(tmp_path):
    """A run directory holding a text dump of a known interstitialcy walk: the class on a Universe of its dump,
    with the run's sites and settings, gives the study analysis's window, events and every D, and the defect's D
    is the one its jumps make."""
    rate, dt = 2.5, 0.02  # events per ps, ps between frames
    x = interstitialcy(2000, dt, rate, seed=21)
    run = write_fake_run(tmp_path / "synthetic", "my-model", 500.0, 1, x.positions, dt, structure=x.structure,
                         cell=x.cell)
    (state,) = analyse_study(tmp_path / "synthetic").results
    u = dump_universe(run / "traj.dump", RunDir(run).read().timestep_fs / 1000.0)  # ps per MD step
    r = DiffusionAnalysis(u, sites=Sites.from_run(run), spec=study_settings(run)).run().results
    assert r.status == state.status == "ok" and r.events == state.events > 60
    assert r.window_ps == pytest.approx(state.window_ps, rel=1e-9)
    for mine, study in (("atoms", "li"), ("defect", "defect"), ("collective", "collective")):
        assert r.estimates[mine].d_cm2_s == pytest.approx(state.estimates[study].d_cm2_s, rel=1e-5), mine
        assert r.estimates[mine].d_stderr_cm2_s == pytest.approx(state.estimates[study].d_stderr_cm2_s, rel=1e-4)
    assert r.collective_d_cm2_s == pytest.approx(state.collective_d.value, rel=1e-5)
    truth = rate * x.defect_jump**2 / 6 * A2_PER_PS_TO_CM2_PER_S
    assert abs(r.defect_d_cm2_s - truth) < 3 * r.defect_d_stderr_cm2_s, (r.defect_d_cm2_s, truth)
    np.testing.assert_allclose(r.defect_positions - r.defect_positions[0], x.defect_path - x.defect_path[0],
                               atol=1e-4)
    assert r.off_site_fraction == 0 and len(r.defect_running_d_cm2_s) == len(r.running_time_ps)
    # with the settings left at their defaults (a longer residence time), the events are fewer, not wrong
    default = DiffusionAnalysis(u, sites=Sites.from_run(run)).run().results
    assert 0 < default.events <= r.events


@pytest.fixture(scope="module")
def dcd_run(tmp_path_factory) -> Path:
    """A real LAMMPS run of the tiny study dumping DCD with unwrapped coordinates."""
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import run_one

    (run,) = render_study(make_study(**{"md.dump_format": "dcd"}), tmp_path_factory.mktemp("dcd"))
    run_one(run, find_lammps(), progress=False)
    return run


@pytest.mark.integration
def test_lammps_dcd_gives_the_command_lines_and_the_studys_d(dcd_run, capsys, tmp_path):
    import MDAnalysis as mda

    from analysis.diffusion import main

    path = dcd_run / "traj.dcd"
    u = mda.Universe.empty(109, trajectory=True)  # LAMMPS's DCD of the Li group: 109 atoms, no topology
    u.load_new(str(path), format="LAMMPS", timeunit="ps")  # LAMMPS stores the timestep in its own units
    assert main([str(path), "--timestep-fs", "1", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    from_file = DiffusionAnalysis(u).run().results  # DCD's header keeps the timestep as float32
    assert from_file.d_cm2_s == pytest.approx(cli["d_cm2_s"], rel=1e-6)
    given = DiffusionAnalysis(u, dt_ps=0.005).run().results  # a frame every 5 steps of 1 fs
    assert given.d_cm2_s == pytest.approx(cli["d_cm2_s"], rel=1e-12)
    assert given.window_ps == pytest.approx((cli["fit_start_ps"], cli["fit_end_ps"]), rel=1e-12)
    # the study also removes the host lattice's drift (fcom.txt), which a DCD of Li alone cannot: compare without
    raw = tmp_path / "raw"
    shutil.copytree(dcd_run.parents[2], raw, ignore=shutil.ignore_patterns("fcom.txt", "analysis.*"))
    (state,) = analyse_study(raw).results
    run = raw / dcd_run.relative_to(dcd_run.parents[2])
    r = DiffusionAnalysis(u, dt_ps=0.005, sites=Sites.from_run(run), spec=study_settings(run)).run().results
    assert (r.status, r.events, r.window_ps) == (state.status, state.events, state.window_ps)
    for mine, study in (("atoms", "li"), ("defect", "defect"), ("collective", "collective")):
        want = state.estimates[study]
        assert (r.estimates[mine] is None) == (want is None), mine
        if want is not None:
            assert r.estimates[mine].d_cm2_s == pytest.approx(want.d_cm2_s, rel=1e-9), mine


# --- the README's notebook example, run -----------------------------------------------------------------------

def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## The estimator in an MDAnalysis notebook"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_notebook_example_runs(finished_run, capsys):
    code = readme_example()
    assert 'run = "runs/' in code
    code = re.sub(r'run = "runs/[^"]*"', f'run = "{finished_run}"', code)  # the example's run: a real one
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    r = namespace["da"].results
    assert f"{r.d_cm2_s:.3e}" in out and f"{r.events} events" in out
    (state,) = analyse_study(finished_run.parents[2]).results
    # the study also removes the F sublattice's drift (fcom.txt): the same D within its error
    assert abs(r.d_cm2_s - state.estimates["li"].d_cm2_s) < 2 * r.d_stderr_cm2_s
