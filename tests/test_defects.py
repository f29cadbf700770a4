"""Point defects of the mobile species in any crystal (inputs/defects.py): a Li vacancy in Li2O chosen by index or
seed, an interstitial at a given site or the largest void, Frenkel pairs; on rock-salt LiF its defaults put the
defect near the centre."""

import numpy as np
import pytest

from core.errors import InputError
from inputs.defects import add_defect
from inputs.structure import antifluorite_li2o, rocksalt_lif

A_LI2O = 4.61


def min_distance(s, frac_point) -> np.ndarray:
    d = s.positions @ np.linalg.inv(s.cell) - frac_point
    return np.linalg.norm((d - np.round(d)) @ s.cell, axis=1)


def _min_image_sq(s, d_frac: np.ndarray) -> np.ndarray:
    d = (d_frac - np.round(d_frac)) @ s.cell
    return np.einsum("ij,ij->i", d, d)


@pytest.mark.parametrize("kind", ["interstitial", "vacancy", "frenkel"])
def test_rock_salt_defaults_near_the_centre(kind):
    """The defaults: the interstitial at the site nearest the cell centre, the
    vacancy at the Li site nearest it (its Li removed), a Frenkel interstitial at the site farthest from the vacancy;
    every other atom kept in order."""
    perfect = rocksalt_lif(4.01, 3)
    out = add_defect(perfect, kind)
    sites, lattice = perfect.interstitial_sites, perfect.li_sites
    kept = list(range(len(perfect.species)))
    vacancy = None
    if kind != "interstitial":
        vacancy = lattice[np.argmin(_min_image_sq(perfect, lattice - 0.5))]
        np.testing.assert_allclose(out.defect.vacancy_site, vacancy)
        li = [i for i, x in enumerate(perfect.species) if x == "Li"]
        frac = perfect.positions[li] @ np.linalg.inv(perfect.cell)
        kept.remove(li[int(np.argmin(_min_image_sq(perfect, frac - vacancy)))])
    n = len(kept)
    assert out.species[:n] == tuple(perfect.species[i] for i in kept)
    np.testing.assert_array_equal(out.positions[:n], perfect.positions[kept])
    if kind == "vacancy":
        assert len(out.species) == n and out.defect.atom_ids == ()
        return
    target = sites[np.argmin(_min_image_sq(perfect, sites - 0.5))] if vacancy is None else \
        sites[np.argmax(_min_image_sq(perfect, sites - vacancy))]
    assert out.species[n:] == ("Li",) and out.defect.atom_ids == (n + 1,)
    np.testing.assert_allclose(out.positions[n], target @ perfect.cell, atol=1e-12)


def test_li2o_vacancy_by_index_and_by_seed():
    perfect = antifluorite_li2o(A_LI2O, 2)
    v = add_defect(perfect, "vacancy", vacancy=17)
    assert v.count("Li") == 63 and v.count("O") == 32 and v.defect.kind == "vacancy" and v.defect.atom_ids == ()
    np.testing.assert_allclose(v.defect.vacancy_site, perfect.li_sites[17])
    li = np.array(v.species) == "Li"
    assert min_distance(v, perfect.li_sites[17])[li].min() > 2.0  # no Li left on that site
    a, b = add_defect(perfect, "vacancy", seed=5), add_defect(perfect, "vacancy", seed=5)
    assert a.defect.vacancy_site == b.defect.vacancy_site  # reproducible
    drawn = {add_defect(perfect, "vacancy", seed=k).defect.vacancy_site for k in range(6)}
    assert len(drawn) > 1  # the seed chooses
    centre = add_defect(perfect, "vacancy").defect.vacancy_site
    assert np.linalg.norm((np.array(centre) - 0.5) @ perfect.cell) < A_LI2O  # by default near the centre


def test_li2o_interstitial_at_the_largest_void_and_frenkel():
    perfect = antifluorite_li2o(A_LI2O, 2)
    s = add_defect(perfect, "interstitial")
    assert s.count("Li") == 65 and s.defect.atom_ids == (97,) and s.species[-1] == "Li"
    d = min_distance(s, s.positions[-1] @ np.linalg.inv(s.cell))
    d[-1] = np.inf
    np.testing.assert_allclose(np.sort(d)[:8], np.sqrt(3) * A_LI2O / 4)  # octahedral void: 8 Li at √3a/4
    f = add_defect(perfect, "frenkel", seed=3)
    assert f.count("Li") == 64 and f.defect.atom_ids == (96,)
    gap = f.positions[-1] @ np.linalg.inv(f.cell) - np.array(f.defect.vacancy_site)
    assert np.linalg.norm((gap - np.round(gap)) @ f.cell) > 3.5


def test_an_interstitial_at_a_given_site():
    perfect = rocksalt_lif(4.01, 3)
    s = add_defect(perfect, "interstitial", interstitial_site=[0.25, 0.25, 0.25])  # of the conventional cell
    frac = s.positions[-1] @ np.linalg.inv(s.cell)
    np.testing.assert_allclose(frac, [1.25 / 3] * 3)  # in the copy nearest the supercell's centre
    assert np.min(np.linalg.norm(perfect.interstitial_sites - frac, axis=1)) < 1e-9
    with pytest.raises(InputError, match=r"interstitial_site \[0.5, 0.0, 0.0\] is 0.00 Å from a F atom"):
        add_defect(perfect, "interstitial", interstitial_site=[0.5, 0.0, 0.0])  # on an F ion (the site named)


def test_bad_choices_are_rejected():
    perfect = antifluorite_li2o(A_LI2O, 1)
    with pytest.raises(InputError, match="not one of the 8 Li sites"):
        add_defect(perfect, "vacancy", vacancy=8)
    with pytest.raises(InputError, match="not both"):
        add_defect(perfect, "vacancy", vacancy=1, seed=2)
    with pytest.raises(InputError, match="unknown defect"):
        add_defect(perfect, "antisite")
    with pytest.raises(InputError, match="already has a defect"):
        add_defect(add_defect(perfect, "vacancy"), "interstitial")
    with pytest.raises(InputError, match="three fractional"):
        add_defect(perfect, "interstitial", interstitial_site=[0.5, 0.5])
