
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
