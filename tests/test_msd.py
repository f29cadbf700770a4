import numpy as np
import pytest

from analysis.msd import msd, msd_by_particle


def brute_force(x):
    n = len(x)
    return np.array([np.mean(np.sum((x[m:] - x[: n - m]) ** 2, axis=-1), axis=0) for m in range(n)])


def test_fft_msd_equals_direct_sum():
    x = np.random.default_rng(0).normal(size=(57, 4, 3)).cumsum(axis=0)
    np.testing.assert_allclose(msd_by_particle(x), brute_force(x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(msd(x), brute_force(x).mean(axis=1), rtol=1e-10, atol=1e-10)


def test_ballistic_motion_gives_quadratic_msd():
    t = np.arange(20.0)
    x = np.zeros((20, 1, 3))
    x[:, 0, 0] = 2.0 * t  # v = 2 Å per frame along x
    np.testing.assert_allclose(msd(x), 4.0 * t**2, atol=1e-9)


def test_rejects_wrong_shape():
    with pytest.raises(ValueError):
        msd(np.zeros((10, 3)))


def test_matches_mdanalysis_einstein_msd_on_a_lammps_dump(finished_run):
    import MDAnalysis as mda
    from MDAnalysis.analysis.msd import EinsteinMSD

    from analysis.trajectory import read_dump

    dump = finished_run / "traj.dump"
    traj = read_dump(dump, timestep_fs=1.0, select="type 1")
    u = mda.Universe(str(dump), format="LAMMPSDUMP", lammps_coordinate_convention="unwrapped", dt=0.001)
    ref = EinsteinMSD(u, select="type 1", msd_type="xyz", fft=True).run()
    ours = msd(traj.positions)
    assert len(ours) == traj.n_frames > 50
    np.testing.assert_allclose(ours[1:], ref.results.timeseries[1:], rtol=1e-6)  # MDAnalysis reads float32
    assert abs(ours[0]) < 1e-9
