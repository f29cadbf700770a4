"""Data sets and selection, without LAMMPS: frames labelled by ASE's Lennard-Jones calculator (energy, forces,
stress), written in each format and read back; FPS against random sampling."""

import numpy as np
import pytest

from core.errors import InputError
from finetune.datasets import (
    content_hash,
    labels,
    load,
    prepare,
    read_frames,
    split_indices,
    write_deepmd,
    write_extxyz,
)
from finetune.labelling import lif_frames
from finetune.selection import (
    covering_radius,
    farthest_point,
    random_pick,
    rdf_descriptors,
    select,
    standardise,
    write_selection,
)


def lj_labelled(n, seed=0, **kw):
    from ase.calculators.lj import LennardJones
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for a in lif_frames(n, seed, cells=1, **kw):
        a.calc = LennardJones(sigma=2.0, epsilon=0.01, rc=4.0)
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        out.append(a)
    return out


def same_labels(a, b, atol=1e-12):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.get_chemical_symbols() == y.get_chemical_symbols()
        np.testing.assert_allclose(x.positions, y.positions, atol=atol, rtol=0)
        np.testing.assert_allclose(x.cell.array, y.cell.array, atol=atol, rtol=0)
        (ex, fx, sx), (ey, fy, sy) = labels(x), labels(y)
        assert ex == pytest.approx(ey, abs=atol, rel=0)
        np.testing.assert_allclose(fx, fy, atol=atol, rtol=0)
        np.testing.assert_allclose(sx, sy, atol=atol, rtol=0)


def test_extxyz_deepmd_npy_raw_and_ase_db_read_the_same_frames(tmp_path):
    import ase.db
    import dpdata

    frames = lj_labelled(5)
    write_extxyz(frames, tmp_path / "a.extxyz")
    (npy,) = write_deepmd(frames, tmp_path / "npy")
    dpdata.LabeledSystem(str(npy), fmt="deepmd/npy").to("deepmd/raw", str(tmp_path / "raw"))
    with ase.db.connect(str(tmp_path / "a.db")) as db:
        for a in frames:
            db.write(a)
    same_labels(frames, read_frames(tmp_path / "a.extxyz"), atol=1e-8)  # extended XYZ keeps 8 decimals
    for src in (npy, tmp_path / "npy", tmp_path / "raw", tmp_path / "a.db"):  # these keep every bit
        got = read_frames(src)
        same_labels(frames, got)
        assert content_hash(got) == content_hash(frames), src


def test_hash_changes_with_any_number(tmp_path):
    frames = lj_labelled(3)
    h = content_hash(frames)
    moved = [a.copy() for a in frames]
    for a, b in zip(frames, moved):
        b.calc = a.calc
    moved[1].positions[0, 0] += 1e-9
    assert content_hash(moved) != h
    assert content_hash(frames[::-1]) != h


def test_split_is_seeded_disjoint_and_complete():
    a, b, c = split_indices(50, 0.1, 0.2, 3), split_indices(50, 0.1, 0.2, 3), split_indices(50, 0.1, 0.2, 4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    joined = np.concatenate([a["train"], a["valid"], a["test"]])
    assert sorted(joined) == list(range(50))
    assert (len(a["train"]), len(a["valid"]), len(a["test"])) == (35, 5, 10)
    with pytest.raises(InputError, match="cannot be split"):
        split_indices(2, 0.5, 0.5, 1)


def test_prepared_data_set_records_hashes_of_each_split(tmp_path):
    import ase.db

    frames = lj_labelled(20)
    with ase.db.connect(str(tmp_path / "a.db")) as db:
        for a in frames:
            db.write(a)
    prepare([tmp_path / "a.db"], tmp_path / "ds", valid_fraction=0.1, test_fraction=0.2, seed=7)
    again = load(tmp_path / "ds")
    assert again.hash == content_hash(frames) and again.manifest["has_stress"]
    for name in ("train", "valid", "test"):
        part = again.frames(name)
        assert content_hash(part) == again.manifest["splits"][name]["hash"]
        idx = again.manifest["splits"][name]["indices"]
        same_labels([frames[i] for i in idx], part)
        same_labels(part, read_frames(again.split(name)), atol=1e-8)  # the trainers' copy


def test_data_set_without_forces_is_refused(tmp_path):
    from ase.io import write

    frames = lj_labelled(2)
    bare = []
    for a in frames:
        b = a.copy()
        b.info["REF_energy"] = a.get_potential_energy()
        bare.append(b)
    write(str(tmp_path / "noforces.xyz"), bare, format="extxyz")
    with pytest.raises(InputError, match="configuration 0 has no forces"):
        prepare([tmp_path / "noforces.xyz"], tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_data_set_with_other_elements_is_refused(tmp_path):
    frames = lj_labelled(2)
    frames[1].symbols[0] = "Na"
    write_extxyz(frames, tmp_path / "na.xyz")
    with pytest.raises(InputError, match=r"configuration 1 has elements \['Na'\]"):
        prepare([tmp_path / "na.xyz"], tmp_path / "ds")


def test_unreadable_and_unknown_sources_are_refused(tmp_path):
    (tmp_path / "junk.xyz").write_text("this is not\nan xyz file\n")
    with pytest.raises(InputError, match="not readable as extended XYZ"):
        read_frames(tmp_path / "junk.xyz")
    with pytest.raises(InputError, match="does not exist"):
        read_frames(tmp_path / "absent.xyz")
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="not a DeePMD system"):
        read_frames(tmp_path / "d")


def clustered_pool():
    """Many near-identical frames and a few far ones: where random sampling misses the outliers."""
    return (lif_frames(40, 1, cells=1, rattle_angstrom=0.02, strain=0.0)
            + lif_frames(4, 2, cells=1, rattle_angstrom=0.25, strain=0.06))


def test_fps_is_deterministic_for_a_seed_and_covers_better_than_random():
    x = standardise(rdf_descriptors(clustered_pool()))
    a, b = farthest_point(x, 6, seed=3), farthest_point(x, 6, seed=3)
    assert np.array_equal(a, b)
    assert len(set(a.tolist())) == 6
    fps = [covering_radius(x, farthest_point(x, 6, s)) for s in range(10)]
    rnd = [covering_radius(x, random_pick(len(x), 6, s)) for s in range(10)]
    # the measure: covering radius (largest distance from any pool member to its nearest chosen one)
    assert max(fps) < min(rnd), (fps, rnd)
    # FPS picks every outlier (indices 40..43) for N = 6
    assert set(range(40, 44)) <= set(farthest_point(x, 6, seed=0).tolist())


def test_selection_n_larger_than_the_set_is_refused(tmp_path):
    frames = lj_labelled(10)
    with pytest.raises(InputError, match="N=11 .* pool of 10"):
        select(frames, 11)
    write_extxyz(frames, tmp_path / "a.xyz")
    ds = prepare([tmp_path / "a.xyz"], tmp_path / "ds", valid_fraction=0.1, test_fraction=0.1)
    with pytest.raises(InputError, match="N=9 .* has only 8"):
        write_selection(ds, 9, tmp_path / "sel")
    sel = write_selection(ds, 4, tmp_path / "sel", seed=2)
    assert sel.manifest["splits"]["train"]["n"] == 4
    assert sel.manifest["splits"]["test"]["hash"] == ds.manifest["splits"]["test"]["hash"]
    assert sel.manifest["selection"]["parent_hash"] == ds.hash
