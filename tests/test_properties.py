"""Property-based tests (hypothesis) on generated inputs: structure builder, deck rendering, dump reader."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.trajectory import read_dump
from driver.render import RunSpec, deck_context, render_deck
from inputs.defects import add_defect
from inputs.structure import DEFECT_KINDS, check_separation, rocksalt_lif
from potentials.catalog import resolve
from tests.conftest import make_study

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(a=st.floats(3.6, 4.6), reps=st.tuples(*[st.integers(1, 4)] * 3), defect=st.sampled_from(DEFECT_KINDS))
def test_builder_counts_box_and_separation(a, reps, defect):
    if defect != "none" and min(reps) < 2:
        reps = tuple(max(2, n) for n in reps)
    s = add_defect(rocksalt_lif(a, reps), defect)
    cells = reps[0] * reps[1] * reps[2]
    extra = {"none": (0, 0), "interstitial": (1, 0), "vacancy": (-1, 0), "frenkel": (0, 0)}[defect]
    assert (s.count("Li"), s.count("F")) == (4 * cells + extra[0], 4 * cells)
    frac = s.positions @ np.linalg.inv(s.cell)
    assert np.all(frac >= -1e-9) and np.all(frac < 1 + 1e-9)
    closest = check_separation(s)
    assert closest == pytest.approx(np.sqrt(3) * a / 4 if defect in ("interstitial", "frenkel") else a / 2)
    assert s.defect.kind == defect and all(1 <= i <= s.n_atoms for i in s.defect.atom_ids)


@FAST
@given(t=st.floats(50, 3000).map(lambda x: round(x, 1)), seed=st.integers(1, 2**31 - 1),
       dt_fs=st.sampled_from([0.5, 1.0, 2.0]), n_dump=st.integers(1, 20), n_prod=st.integers(10, 200))
def test_deck_carries_the_numbers_it_was_given(t, seed, dt_fs, n_dump, n_prod):
    dump_ps = n_dump * dt_fs / 1000
    study = make_study(**{"md.timestep_fs": dt_fs, "md.dump_interval_ps": dump_ps,
                          "md.production_ps": round(n_prod * 30 * dump_ps, 9), "md.equilibration_ps": 10 * dump_ps,
                          "md.thermo_interval_ps": dump_ps, "md.restart_interval_ps": dump_ps})
    _, block = resolve("fumi-tosi", ("Li", "F"))
    run = RunSpec("fumi-tosi", t, seed)
    deck, ctx = render_deck(study, run, block), deck_context(study, run, block)
    assert f"velocity all create {t} {seed} " in deck
    assert f"fix             nvt all nvt temp {t} {t} " in deck
    assert f"variable        production_end index {ctx['production_end_step']}\n" in deck
    assert "run             ${production_end} upto" in deck  # the end is a variable: extending a run sets it
    assert ctx["production_end_step"] - ctx["equilibration_end_step"] == n_prod * 30 * n_dump
    assert f"dump            traj mobile custom {n_dump} " in deck and "{{" not in deck and "}}" not in deck


def write_dump(path, steps, ids, types, pos, box=20.0):
    with open(path, "w") as fh:
        for step, frame in zip(steps, pos):
            fh.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(ids)}\nITEM: BOX BOUNDS pp pp pp\n"
                     f"0 {box}\n0 {box}\n0 {box}\nITEM: ATOMS id type xu yu zu\n")
            for i, ty, (x, y, z) in zip(ids, types, frame):
                fh.write(f"{i} {ty} {x:.6f} {y:.6f} {z:.6f}\n")


@FAST
@given(n_frames=st.integers(3, 15), n_atoms=st.integers(1, 8), every=st.integers(1, 50), seed=st.integers(0, 999),
       cut=st.floats(0.0, 1.0))
def test_dump_reader_round_trips_and_survives_truncation(tmp_path, n_frames, n_atoms, every, seed, cut):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-50, 50, size=(n_frames, n_atoms, 3))  # unwrapped: outside the box is allowed
    ids = rng.permutation(np.arange(1, n_atoms + 1) * 3)  # unsorted, non-contiguous ids
    types = rng.integers(1, 3, n_atoms)
    steps = np.arange(n_frames) * every + 1000
    path = tmp_path / f"r{seed}-{n_frames}-{n_atoms}.dump"
    write_dump(path, steps, ids, types, pos)
    t = read_dump(path, timestep_fs=2.0)
    order = np.argsort(ids)
    np.testing.assert_allclose(t.positions, pos[:, order], atol=1e-4)  # MDAnalysis parses as float32
    np.testing.assert_allclose(t.times_ps, (steps - steps[0]) * 0.002)
    assert list(t.atom_ids) == sorted(ids)
    data = path.read_bytes()
    cut_at = int(len(data) * (0.5 + 0.5 * cut))
    if cut_at < len(data):
        path.write_bytes(data[:cut_at])
        head = data[:cut_at]
        complete = head.count(b"\n") // (n_atoms + 9)
        mid_frame = head.count(b"\n") % (n_atoms + 9) != 0 or not head.endswith(b"\n")
        if complete >= 2:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                t2 = read_dump(path, timestep_fs=2.0)
            assert t2.n_frames == complete
            assert any("incomplete" in str(x.message) for x in w) == mid_frame
            np.testing.assert_array_equal(t2.positions, t.positions[:complete])
