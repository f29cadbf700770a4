import numpy as np
import pytest

from analysis.trajectory import read_dump
from core.errors import AnalysisError


def test_dump_without_unwrapped_coordinates(tmp_path, finished_run):
    text = (finished_run / "traj.dump").read_text().replace("id type xu yu zu", "id type x y z")
    (tmp_path / "w.dump").write_text(text)
    with pytest.raises(AnalysisError, match="no unwrapped coordinates"):
        read_dump(tmp_path / "w.dump", 1.0)


def test_truncated_last_frame_is_dropped_with_a_warning(tmp_path, finished_run):
    full = read_dump(finished_run / "traj.dump", 1.0)
    data = (finished_run / "traj.dump").read_bytes()
    (tmp_path / "t.dump").write_bytes(data[: len(data) - 1000])  # cut mid-line, inside the last frame
    with pytest.warns(UserWarning, match="incomplete"):
        cut = read_dump(tmp_path / "t.dump", 1.0)
    assert cut.n_frames == full.n_frames - 1
    assert (cut.positions == full.positions[:-1]).all()


def test_empty_selection(finished_run):
    with pytest.raises(AnalysisError, match="matches no atoms"):
        read_dump(finished_run / "traj.dump", 1.0, select="type 2")


def test_times_come_from_the_timestep(finished_run):
    t = read_dump(finished_run / "traj.dump", 2.0)
    assert t.frame_interval_ps == pytest.approx(0.010) and t.times_ps[0] == 0.0


def test_not_a_dump(tmp_path):
    (tmp_path / "x.dump").write_text("hello\n" * 20)
    with pytest.raises(AnalysisError, match="not a LAMMPS text dump"):
        read_dump(tmp_path / "x.dump", 1.0)


def test_compressed_dumps_and_extra_header_items_are_read(tmp_path, finished_run):
    import bz2
    import gzip

    plain = read_dump(finished_run / "traj.dump", 1.0, select="type 1")
    text = (finished_run / "traj.dump").read_bytes()
    (tmp_path / "t.dump.gz").write_bytes(gzip.compress(text))
    (tmp_path / "t.lammpstrj.bz2").write_bytes(bz2.compress(text))
    # dump_modify ... time yes units yes: ITEM: UNITS and ITEM: TIME before each frame
    frames = text.split(b"ITEM: TIMESTEP\n")[1:]
    (tmp_path / "t-time.dump").write_bytes(b"".join(b"ITEM: UNITS\nmetal\nITEM: TIME\n0.5\nITEM: TIMESTEP\n" + f
                                                    for f in frames))
    for name in ("t.dump.gz", "t.lammpstrj.bz2", "t-time.dump"):
        got = read_dump(tmp_path / name, 1.0, select="type 1")
        np.testing.assert_array_equal(got.positions, plain.positions)
        np.testing.assert_array_equal(got.steps, plain.steps)


def test_dcd_in_capitals_is_a_dcd(tmp_path):
    from MDAnalysis.lib.formats.libdcd import DCDFile

    from analysis.trajectory import read_trajectory

    path = tmp_path / "RUN.DCD"
    with DCDFile(str(path), "w") as w:
        w.write_header(remarks="t", natoms=2, istart=0, nsavc=10, delta=0.001, is_periodic=False)
        for k in range(5):
            w.write(np.full((2, 3), 0.1 * k, dtype=np.float32))
    t = read_trajectory(path, 1.0)
    assert t.n_frames == 5 and t.positions.shape == (5, 2, 3)


@pytest.mark.integration
def test_every_coordinate_convention_of_a_triclinic_dump_gives_the_same_positions(tmp_path):
    """A short LAMMPS run of the paper's rhombohedral cell (triclinic box), dumping xu, xsu and x + image flags:
    the three agree to the dump's precision (MDAnalysis's reader gets the image-flag one wrong on a tilted box)."""
    import subprocess

    from driver.lammps import find_lammps, lammps_env
    from inputs.defects import add_defect
    from inputs.structure import rocksalt_lif, write_lammps_data
    from potentials.catalog import resolve

    _, block = resolve("fumi-tosi", ("Li", "F"))
    s = add_defect(rocksalt_lif(4.1, 4, "primitive"), "interstitial")
    write_lammps_data(s, tmp_path / "d.lmp", charges=block.charges)
    deck = ["units metal", "atom_style charge", "boundary p p p", "read_data d.lmp", *block.lines,
            "velocity all create 3000 5 mom yes", "fix n all nve", "timestep 0.002",
            "group Li type 1"] + [
        f"dump {name} Li custom 20 {name}.dump id type {cols}\ndump_modify {name} sort id format float %.10f"
        for name, cols in (("u", "xu yu zu"), ("s", "xsu ysu zsu"), ("i", "x y z ix iy iz"))] + [
        "dump_modify u time yes units yes", "run 400"]
    (tmp_path / "in.t").write_text("\n".join(deck) + "\n")
    lmp = find_lammps()
    out = subprocess.run([lmp, "-in", "in.t", "-log", "none"], cwd=tmp_path, env=lammps_env(lmp),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:]
    u, s_, i = (read_dump(tmp_path / f"{n}.dump", 1.0) for n in ("u", "s", "i"))
    assert u.cell is not None and abs(u.cell[1, 0]) > 1  # a tilted box
    assert np.abs(np.diff(u.positions, axis=0)).max() > 0.5  # they moved
    last = (tmp_path / "i.dump").read_text().split("ITEM: ATOMS")[-1].splitlines()[1:]
    assert any(any(int(v) for v in line.split()[-3:]) for line in last)  # atoms crossed faces: image flags
    np.testing.assert_allclose(s_.positions, u.positions, atol=1e-6)
    np.testing.assert_allclose(i.positions, u.positions, atol=1e-6)
