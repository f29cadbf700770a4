"""Following the defect itself, checked on a synthetic collinear interstitialcy in rock-salt LiF, whose answers are
known: the defect's path and events, its D = rate·(√3a/2)²/6, the collective D_σ = D_defect / N_Li, and the Haven
ratio f/2 = 1/3 (tracer correlation factor 2/3), through the whole study analysis."""

import numpy as np
import pytest

from analysis.diffusion import MsdStats, running_d
from analysis.sites import excess_centroids, residence_filter, track_defect
from analysis.study import analyse_study
from core.errors import AnalysisError
from core.units import A2_PER_PS_TO_CM2_PER_S
from tests.conftest import interstitialcy, write_fake_run

RATE, DT = 0.1, 0.5  # events per ps, ps between frames


def sites(x):
    return np.array(x.structure["sites"]["li"]), np.array(x.structure["sites"]["interstitial"])


def test_the_defect_is_followed_site_by_site():
    x = interstitialcy(1500, DT, RATE, seed=1)
    track = track_defect(x.positions, x.cell, np.zeros(3), *sites(x), "interstitial", residence_frames=1)
    np.testing.assert_allclose(track.positions, x.defect_path, atol=1e-6)  # the interstitial site, unwrapped
    assert x.n_events - 5 <= track.n_events <= x.n_events  # events in one frame interval count once
    assert track.off_site_fraction == 0 and track.ambiguous_fraction == 0


def test_the_atom_that_started_as_the_interstitial_is_not_the_defect():
    x = interstitialcy(1500, DT, RATE, seed=2)
    tagged = x.positions[:, -1]  # the last id: the atom placed on the interstitial site
    track = track_defect(x.positions, x.cell, np.zeros(3), *sites(x), "interstitial", residence_frames=1)
    apart = np.linalg.norm(tagged - track.positions, axis=1)
    # the tracker starts on that atom, then follows the defect, not the atom (an ordinary lattice Li after one event)
    assert apart[0] < 0.5 and apart[-1] > 3.0 and np.mean(apart > 1.0) > 0.5
    np.testing.assert_allclose(track.positions, x.defect_path, atol=1e-6)


def test_residence_filter_ignores_short_visits():
    raw = np.array([[0], [0], [5], [0], [0], [7], [7], [7], [7]])
    np.testing.assert_array_equal(residence_filter(raw, 3)[:, 0], [0, 0, 0, 0, 0, 7, 7, 7, 7])
    np.testing.assert_array_equal(residence_filter(raw, 1)[:, 0], raw[:, 0])


def test_a_melted_lattice_is_recognised():
    x = interstitialcy(200, DT, RATE, seed=3)
    melted = x.positions + np.random.default_rng(0).uniform(-2, 2, x.positions.shape)
    track = track_defect(melted, x.cell, np.zeros(3), *sites(x), "interstitial", 1)
    assert track.off_site_fraction > 0.2


def test_the_study_analysis_recovers_defect_collective_and_haven(tmp_path):
    root = tmp_path / "synthetic"
    for seed in (1, 2, 3):
        x = interstitialcy(3000, DT, RATE, seed=10 + seed)
        write_fake_run(root, "my-model", 500.0, seed, x.positions, DT, structure=x.structure, cell=x.cell)
    analysis = analyse_study(root)
    (r,) = analysis.results
    assert r.status == "ok" and r.n_li == 109 and r.n_defects == 1 and r.events > 300
    d_defect = RATE * x.defect_jump**2 / 6 * A2_PER_PS_TO_CM2_PER_S
    e = r.estimates["defect"]
    assert abs(e.d_cm2_s - d_defect) < 3 * e.d_stderr_cm2_s, (e.d_cm2_s, d_defect)
    sigma = r.collective_d  # each event moves the charge by the defect's jump: D_σ = D_defect / N_Li
    assert abs(sigma.value - d_defect / 109) < 3 * sigma.stderr
    h = r.haven_ratio  # D_tracer / D_σ = f (2 movers of half the jump) / 2 = (2/3) / 2
    assert abs(h.value - 1 / 3) < 3 * h.stderr and h.stderr < 0.2, h
    # the same ratio from N_Li·D_Li / D_defect: the collective D is fitted by least squares (its vibrational
    # plateau), so this one, from two GLS estimates, is the better determined
    h2 = r.haven_ratio_defect
    assert abs(h2.value - 1 / 3) < 3 * h2.stderr and h2.stderr < 0.1 and h2.stderr < h.stderr, (h2, h)
    assert r.undetermined == []
    per_defect = r.per_defect_d  # N_Li D_Li = f · 2 · rate (√3a/4)² / 6
    assert abs(per_defect.value - d_defect / 3) < 3 * per_defect.stderr
    start, end = r.window_ps
    assert start == pytest.approx(3 * 3 * (3000 - 1) * DT / r.events) and end == pytest.approx((3000 - 1) * DT / 2)
    # the window lies where the running D(t) is flat: the tracer's D(t) starts ~1.4x higher (single jumps, before
    # the correlated back-jumps of the interstitialcy tell) and levels off at the correlated value after a few events
    for obs in ("li", "defect"):
        st = [a.stats[obs] for a in analysis.analyses.values()]
        pooled = MsdStats(st[0].frame_interval_ps, st[0].n_walkers, np.mean([s.msd for s in st], axis=0), st[0].lags,
                          st[0].s_var)
        t, d_t = running_d(pooled)
        ratio = d_t / r.estimates[obs].d_cm2_s
        inside = (t >= start) & (t <= end)
        assert inside.sum() > 10 and np.all(np.abs(ratio[inside] - 1) < 0.25), (obs, ratio[inside])
        if obs == "li":
            assert np.all(ratio[t < 1 / RATE / 2] > 1.25), ratio[t < 1 / RATE / 2]  # not diffusive yet: left out


def split_geometry(lattice_site: int):
    """Rock-salt LiF 3×3×3 (a = 4.1 Å) sites and three frames of Li positions: the interstitial on I1 = L + (¼,¼,¼)a,
    the split interstitial (L empty, Li on I1 and on I2 = L − (¼,¼,¼)a), then the interstitial on I2."""
    from inputs.structure import rocksalt_lif

    s = rocksalt_lif(4.1, 3)
    lat, tet = s.li_sites, s.interstitial_sites
    L = lat[lattice_site]
    i1 = int(np.argmin(np.linalg.norm((tet - (L + 1 / 12) + 0.5) % 1 - 0.5, axis=1)))
    i2 = int(np.argmin(np.linalg.norm((tet - (L - 1 / 12) + 0.5) % 1 - 0.5, axis=1)))
    frames = np.empty((3, len(lat) + 1, 3))
    for f, (on_l, extra) in enumerate([(L, tet[i1]), (tet[i2], tet[i1]), (L, tet[i2])]):
        occupied = lat.copy()
        occupied[lattice_site] = on_l
        frames[f] = np.vstack([occupied, extra]) @ s.cell
    return s, lat, tet, i1, i2, frames


@pytest.mark.parametrize("lattice_site", [0, 50])  # 0: L at the cell's corner, the split across periodic images
def test_a_split_interstitial_sits_at_its_centre(lattice_site):
    s, lat, tet, i1, i2, frames = split_geometry(lattice_site)
    n_lat = len(lat)
    sites = np.vstack([lat, tet])
    excess = np.zeros((3, len(sites)), dtype=int)
    excess[0, n_lat + i1] = 1
    excess[1, [n_lat + i1, n_lat + i2]], excess[1, lattice_site] = 1, -1
    excess[2, n_lat + i2] = 1
    where, ambiguous = excess_centroids(excess, sites, s.cell, +1)
    d = where - np.array([tet[i1], lat[lattice_site], tet[i2]])
    np.testing.assert_allclose(d - np.round(d), 0, atol=1e-12)
    assert ambiguous == 0
    # through the tracker: the centre of the split, one event (I1 -> I2), steps of √3a/4 each
    track = track_defect(frames, s.cell, np.zeros(3), lat, tet, "interstitial", residence_frames=1)
    np.testing.assert_allclose(track.positions[0], frames[0, -1], atol=1e-9)  # I1
    np.testing.assert_allclose(track.positions - track.positions[0], [[0, 0, 0], [-4.1 / 4] * 3, [-4.1 / 2] * 3],
                               atol=1e-9)  # I1 -> L (the centre of the split) -> I2, unwrapped
    assert track.n_events == 1 and track.ambiguous_fraction == 0
    # the older rule keeps the split on one of its interstitial sites and calls the frame ambiguous
    old = track_defect(frames, s.cell, np.zeros(3), lat, tet, "interstitial", residence_frames=1, rule="site")
    np.testing.assert_allclose(old.positions[1], old.positions[0], atol=1e-9)
    assert old.n_events == 1 and old.ambiguous_fraction == pytest.approx(1 / 3)


def test_a_doubly_occupied_lattice_site_and_a_vacancy_sit_on_their_site():
    from inputs.structure import rocksalt_lif

    s = rocksalt_lif(4.1, 3)
    sites = np.vstack([s.li_sites, s.interstitial_sites])
    excess = np.zeros((2, len(sites)), dtype=int)
    excess[0, 7] = 1  # two Li on lattice site 7
    excess[1, 7], excess[1, 30] = 1, -1  # and, far from it, an empty lattice site: not the interstitial
    where, ambiguous = excess_centroids(excess, sites, s.cell, +1)
    np.testing.assert_allclose(where, [sites[7], sites[7]], atol=1e-12)
    vacancy, _ = excess_centroids(excess[1:], sites, s.cell, -1)  # followed as a vacancy: the empty site
    np.testing.assert_allclose(vacancy[0], sites[30], atol=1e-12)
    assert ambiguous == 0


def test_a_split_vacancy_in_a_triclinic_cell():
    """A toy: two lattice sites 2 Å apart with an interstitial site halfway, in a skewed cell; one Li between two
    empty lattice sites (−1, −1, +1) is a vacancy at their midpoint, also across the cell's boundary."""
    cell = np.array([[6.0, 0, 0], [2.5, 5.5, 0], [1.0, -1.5, 6.5]])
    inv = np.linalg.inv(cell)
    lattice = np.array([[-1.0, 0, 0], [1.0, 0, 0], [0.5, 3.0, 3.0]]) @ inv % 1.0  # the first two straddle x = 0
    interstitial = np.array([[0.0, 0, 0], [3.0, 2.5, 1.0]]) @ inv % 1.0
    sites = np.vstack([lattice, interstitial])
    excess = np.array([[-1, -1, 0, 1, 0], [-1, 0, 0, 0, 0]])
    where, ambiguous = excess_centroids(excess, sites, cell, -1)
    np.testing.assert_allclose(where[0] @ cell, [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(where[1], lattice[0], atol=1e-12)
    assert ambiguous == 0
    with pytest.raises(AnalysisError, match="first frame has no defect"):
        excess_centroids(np.zeros((1, 5), dtype=int), sites, cell, -1)
