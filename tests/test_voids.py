"""The void search (inputs/voids.py) on crystals whose empty sites are known: rock salt (the cube centres
(¼,¼,¼)·a, the project's interstitial sites), antifluorite Li2O (the octahedral sites (½,½,½)·a), the triclinic
primitive rock-salt cell and the paper's 6×6×6 rhombohedral cell; and, on a random triclinic crystal, checked
against a brute-force sampling of the distance to the nearest atom."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from inputs.structure import rocksalt_lif
from inputs.voids import find_voids, tile_sites

A_LIF, A_LI2O = 4.03, 4.61


def same_sites(a: np.ndarray, b: np.ndarray, cell: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether two sets of fractional sites coincide under periodic images (each of a has one of b within tol Å)."""
    if len(a) != len(b):
        return False
    d = a[:, None, :] - b[None, :, :]
    d = d - np.round(d)
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)
    r = np.linalg.norm((d[:, :, None, :] + shifts) @ cell, axis=-1).min(axis=2)
    return bool(np.all(r.min(axis=1) < tol) and np.all(r.min(axis=0) < tol))


def nearest_atom_distance(points_frac: np.ndarray, cell: np.ndarray, positions: np.ndarray, n: int = 2) -> np.ndarray:
    """Brute force: the distance from each point to every image of every atom within ±n cells, minimised."""
    frac = positions @ np.linalg.inv(cell)
    shifts = np.array([(i, j, k) for i in range(-n, n + 1) for j in range(-n, n + 1) for k in range(-n, n + 1)],
                      dtype=float)
    images = (frac[None] + shifts[:, None]).reshape(-1, 3) @ cell
    pts = (points_frac % 1.0) @ cell
    return np.sqrt(((pts[:, None, :] - images[None, :, :]) ** 2).sum(-1)).min(axis=1)


def test_rock_salt_voids_are_the_cube_centres():
    from ase.build import bulk

    unit = bulk("LiF", "rocksalt", a=A_LIF, cubic=True)
    v = find_voids(np.array(unit.cell), unit.positions)
    expected = np.array([(x, y, z) for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])
    assert same_sites(v.frac, expected, np.array(unit.cell))
    assert v.classes() == [(pytest.approx(np.sqrt(3) * A_LIF / 4), 8, 8)]  # 4 Li + 4 F at √3a/4, 2 per f.u.


@pytest.mark.parametrize("cell, reps", [("conventional", 3), ("primitive", 6)])
def test_voids_of_the_supercell_are_the_projects_interstitial_sites(cell, reps):
    s = rocksalt_lif(A_LIF, reps, cell)
    v = find_voids(s.cell, s.positions)
    assert same_sites(v.frac, s.interstitial_sites, s.cell)
    assert same_sites(v.of_kind(0), s.interstitial_sites, s.cell) and len(v.classes()) == 1


def test_triclinic_primitive_rock_salt_cell():
    from ase.build import bulk

    unit = bulk("LiF", "rocksalt", a=A_LIF)  # fcc vectors, 60° apart
    h = np.array(unit.cell)
    v = find_voids(h, unit.positions)
    assert len(v) == 2 and v.radius_angstrom == pytest.approx([np.sqrt(3) * A_LIF / 4] * 2)
    expected = (np.array([[0.25, 0.25, 0.25], [-0.25, -0.25, -0.25]]) * A_LIF) @ np.linalg.inv(h) % 1.0
    assert same_sites(v.frac, expected, h)
    # tiled over 6×6×6 the unit cell's voids are the paper cell's interstitial sites
    s = rocksalt_lif(A_LIF, 6, "primitive")
    assert same_sites(tile_sites(v.frac, (6, 6, 6)), s.interstitial_sites, s.cell)


@pytest.mark.parametrize("cubic", [True, False])
def test_antifluorite_voids_are_the_octahedral_sites(cubic):
    from ase.build import bulk

    unit = bulk("OLi2", "fluorite", a=A_LI2O, cubic=cubic)
    h = np.array(unit.cell)
    v = find_voids(h, unit.positions)
    octahedral = np.array([[0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]) * A_LI2O
    if not cubic:
        octahedral = octahedral[:1]  # one per formula unit
    assert same_sites(v.of_kind(0), octahedral @ np.linalg.inv(h) % 1.0, h)
    r, coordination, count = v.classes()[0]
    assert r == pytest.approx(np.sqrt(3) * A_LI2O / 4) and coordination == 8 and count == len(octahedral)
    symbols = np.array(unit.get_chemical_symbols())
    site = v.of_kind(0)[0] @ h
    d = np.linalg.norm(unit.positions - site, axis=1)  # the 8 nearest are Li (the cube of Li around the site)
    all_d = nearest_atom_distance(v.of_kind(0)[:1], h, unit.positions[symbols == "O"])
    assert all_d[0] == pytest.approx(A_LI2O / 2) and d.min() >= r - 1e-9


@settings(derandomize=True, max_examples=6, deadline=None)
@given(st.integers(0, 10_000))
def test_a_random_triclinic_crystal_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    h = np.diag(rng.uniform(4.0, 6.0, 3)) + np.triu(rng.uniform(-1.5, 1.5, (3, 3)), 1)  # skewed cell
    positions = rng.uniform(0, 1, (rng.integers(3, 9), 3)) @ h
    v = find_voids(h, positions)
    assert len(v) > 0 and np.all(np.diff(v.radius_angstrom) <= 1e-3)  # ranked, largest first
    # the free radius is the distance to the nearest atom, and every site is a local maximum of it
    np.testing.assert_allclose(nearest_atom_distance(v.frac, h, positions), v.radius_angstrom, atol=1e-7)
    directions = rng.normal(size=(200, 3))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    for x, r in zip(v.frac, v.radius_angstrom):
        moved = x + (1e-3 * directions) @ np.linalg.inv(h)
        assert nearest_atom_distance(moved, h, positions).max() <= r + 1e-9
    # no point of the cell is farther from the atoms than the largest void (the global maximum is found)
    samples = rng.uniform(0, 1, (3000, 3))
    assert nearest_atom_distance(samples, h, positions).max() <= v.radius_angstrom[0] + 1e-9
    # the result does not depend on the padding of periodic images
    w = find_voids(h, positions, pad_angstrom=1.0)
    assert same_sites(v.frac, w.frac, h) and np.allclose(v.radius_angstrom, w.radius_angstrom)


def test_bad_input_is_rejected():
    with pytest.raises(InputError, match="periodic cell"):
        find_voids(np.zeros((3, 3)), np.zeros((1, 3)))
    with pytest.raises(InputError, match="positions"):
        find_voids(np.eye(3) * 4, np.empty((0, 3)))
