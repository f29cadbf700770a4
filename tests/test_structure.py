import numpy as np
import pytest

from core.errors import InputError
from inputs.structure import check_cutoff, check_separation, rocksalt_lif, with_defect, write_lammps_data

A = 4.01


def test_perfect_crystal_counts_and_nearest_neighbours():
    s = rocksalt_lif(A, 2)
    assert s.count("Li") == s.count("F") == 32 and s.box_angstrom == (2 * A,) * 3
    assert check_separation(s) == pytest.approx(A / 2)


def test_interstitial_sits_on_a_tetrahedral_site_with_last_id():
    s = with_defect(rocksalt_lif(A, 3), "interstitial")
    assert s.n_atoms == 217 and s.count("Li") == 109 and s.defect.atom_ids == (217,)
    d = s.positions[:-1] - s.positions[-1]
    d -= np.array(s.box_angstrom) * np.round(d / np.array(s.box_angstrom))
    r = np.sort(np.linalg.norm(d, axis=1))
    np.testing.assert_allclose(r[:8], np.sqrt(3) * A / 4)  # 4 Li + 4 F at sqrt(3) a/4
    assert r[8] > np.sqrt(3) * A / 4 + 0.5


def test_vacancy_and_frenkel():
    v = with_defect(rocksalt_lif(A, 3), "vacancy")
    assert v.count("Li") == 107 and v.count("F") == 108 and v.defect.vacancy_site_angstrom is not None
    f = with_defect(rocksalt_lif(A, 3), "frenkel")
    assert f.count("Li") == 108 and f.defect.atom_ids == (216,)
    gap = np.array(f.positions[-1]) - np.array(f.defect.vacancy_site_angstrom)
    gap -= np.array(f.box_angstrom) * np.round(gap / np.array(f.box_angstrom))
    assert np.linalg.norm(gap) > 5.0  # far enough not to recombine at once


def test_bad_arguments_are_rejected():
    with pytest.raises(InputError, match="lattice constant"):
        rocksalt_lif(-1.0, 2)
    with pytest.raises(InputError, match="supercell"):
        rocksalt_lif(A, (2, 0, 2))
    with pytest.raises(InputError, match="unknown defect"):
        with_defect(rocksalt_lif(A, 2), "antisite")


def test_too_small_for_the_cutoff():
    with pytest.raises(InputError, match="at least 4 conventional cells"):
        check_cutoff(rocksalt_lif(A, 2), 6.5)
    check_cutoff(rocksalt_lif(A, 4), 6.5)


def test_data_file_reads_back_with_ase(tmp_path):
    from ase.io import read

    s = with_defect(rocksalt_lif(A, 2), "interstitial")
    write_lammps_data(s, tmp_path / "d.lmp", charges={"Li": 1.0, "F": -1.0})
    atoms = read(tmp_path / "d.lmp", format="lammps-data", atom_style="charge", Z_of_type={1: 3, 2: 9})
    assert atoms.get_chemical_symbols() == list(s.species)
    np.testing.assert_allclose(atoms.positions, s.positions, atol=1e-8)
    np.testing.assert_allclose(atoms.get_initial_charges(), [1.0 if e == "Li" else -1.0 for e in s.species])
