"""The LiF builder (ASE's rock-salt cells): counts, the interstitial's site, the paper's rhombohedral 433-atom
cell, sites kept for the analysis, and data files that read back with ASE and LAMMPS."""

import json

import numpy as np
import pytest

from core.errors import InputError
from inputs.defects import add_defect
from inputs.structure import (
    charges_for,
    check_cutoff,
    check_separation,
    lammps_cell,
    rocksalt_lif,
    structure_of,
    write_lammps_data,
)

A = 4.01


def test_perfect_crystal_counts_and_nearest_neighbours():
    s = rocksalt_lif(A, 2)
    assert s.count("Li") == s.count("F") == 32 and not s.triclinic
    np.testing.assert_allclose(s.cell, np.diag([2 * A] * 3))
    assert check_separation(s) == pytest.approx(A / 2)
    assert s.species == ("Li",) * 32 + ("F",) * 32  # Li first, then F


@pytest.mark.parametrize("cell, reps, n", [("conventional", 3, 217), ("primitive", 6, 433)])
def test_interstitial_sits_on_a_tetrahedral_site_with_last_id(cell, reps, n):
    s = add_defect(rocksalt_lif(A, reps, cell), "interstitial")
    assert s.n_atoms == n and s.count("Li") == (n + 1) // 2 and s.defect.atom_ids == (n,)
    frac = (s.positions[:-1] - s.positions[-1]) @ np.linalg.inv(s.cell)
    d = (frac - np.round(frac)) @ s.cell
    r = np.sort(np.linalg.norm(d, axis=1))
    np.testing.assert_allclose(r[:8], np.sqrt(3) * A / 4)  # 4 Li + 4 F at sqrt(3) a/4
    assert r[8] > np.sqrt(3) * A / 4 + 0.5


def test_the_papers_cell_is_rhombohedral_and_triclinic():
    s = add_defect(rocksalt_lif(4.03, 6, "primitive"), "interstitial")
    assert s.n_atoms == 433 and s.triclinic
    lengths = np.linalg.norm(s.cell, axis=1)
    np.testing.assert_allclose(lengths, 6 * 4.03 / np.sqrt(2))
    cos = [s.cell[i] @ s.cell[j] / lengths[i] / lengths[j] for i, j in ((0, 1), (0, 2), (1, 2))]
    np.testing.assert_allclose(cos, 0.5)  # 60 degrees
    h = lammps_cell(s.cell)
    assert np.allclose(np.triu(h, 1), 0) and np.all(np.diag(h) > 0)  # LAMMPS's frame: lower triangular
    np.testing.assert_allclose(abs(np.linalg.det(h)), 216 * 4.03**3 / 4)


def test_sites_are_the_perfect_crystals_li_and_interstitial_sites():
    s = rocksalt_lif(A, 3)
    assert s.li_sites.shape == (108, 3) and s.interstitial_sites.shape == (216, 3)
    li = s.positions[np.array(s.species) == "Li"] @ np.linalg.inv(s.cell) % 1.0
    np.testing.assert_allclose(np.sort(li.round(9), axis=0), np.sort(s.li_sites.round(9), axis=0), atol=1e-8)
    all_sites = np.vstack([s.li_sites, s.interstitial_sites])
    d = all_sites[:, None] - all_sites[None]
    d = (d - np.round(d)) @ s.cell
    r = np.linalg.norm(d, axis=2) + np.eye(len(all_sites)) * 99
    assert r.min() == pytest.approx(np.sqrt(3) * A / 4)  # sites are distinct: no two closer than site-to-site


def test_vacancy_and_frenkel():
    v = add_defect(rocksalt_lif(A, 3), "vacancy")
    assert v.count("Li") == 107 and v.count("F") == 108 and v.defect.vacancy_site is not None
    f = add_defect(rocksalt_lif(A, 3), "frenkel")
    assert f.count("Li") == 108 and f.defect.atom_ids == (216,)
    gap = f.positions[-1] @ np.linalg.inv(f.cell) - np.array(f.defect.vacancy_site)
    assert np.linalg.norm((gap - np.round(gap)) @ f.cell) > 5.0  # far enough not to recombine at once


def test_bad_arguments_are_rejected():
    with pytest.raises(InputError, match="lattice constant"):
        rocksalt_lif(-1.0, 2)
    with pytest.raises(InputError, match="supercell"):
        rocksalt_lif(A, (2, 0, 2))
    with pytest.raises(InputError, match="unknown defect"):
        add_defect(rocksalt_lif(A, 2), "antisite")
    with pytest.raises(InputError, match="unknown cell"):
        rocksalt_lif(A, 2, "hexagonal")


def test_too_small_for_the_cutoff():
    with pytest.raises(InputError, match="at least 4 conventional cells"):
        check_cutoff(rocksalt_lif(A, 2), 6.5)
    check_cutoff(rocksalt_lif(A, 4), 6.5)
    with pytest.raises(InputError, match="13.89 Å wide.*at least 7 primitive cells"):  # faces 2.315 Å apart a cell
        check_cutoff(rocksalt_lif(A, 6, "primitive"), 7.0)


def test_charge_compensation():
    s = add_defect(rocksalt_lif(A, 3), "interstitial")
    q = charges_for(s, {"Li": 1.0, "F": -1.0})
    assert q.sum() == pytest.approx(1.0)  # a charged cell: Ewald's background neutralises it
    q = charges_for(s, {"Li": 1.0, "F": -1.0}, "anion-sublattice")
    assert q.sum() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(q[np.array(s.species) == "F"], -1.0 - 1.0 / 108)
    np.testing.assert_allclose(q[np.array(s.species) == "Li"], 1.0)


@pytest.mark.parametrize("cell", ["conventional", "primitive"])
def test_data_file_reads_back_with_ase(tmp_path, cell):
    from ase.io import read

    s = add_defect(rocksalt_lif(A, 2 if cell == "conventional" else 4, cell), "interstitial")
    write_lammps_data(s, tmp_path / "d.lmp", charges={"Li": 1.0, "F": -1.0})
    atoms = read(tmp_path / "d.lmp", format="lammps-data", atom_style="charge", Z_of_type={1: 3, 2: 9})
    assert atoms.get_chemical_symbols() == list(s.species)
    np.testing.assert_allclose(atoms.cell.cellpar(), s.atoms().cell.cellpar(), atol=1e-8)
    frac_back = atoms.get_scaled_positions()
    frac = s.atoms().get_scaled_positions()
    d = frac_back - frac
    np.testing.assert_allclose(d - np.round(d), 0, atol=1e-9)  # the same atoms, rotated into LAMMPS's frame
    np.testing.assert_allclose(atoms.get_initial_charges(), [1.0 if e == "Li" else -1.0 for e in s.species])


def test_the_structure_record_reads_back_typed():
    s = add_defect(rocksalt_lif(4.03, 2), "interstitial")
    r = structure_of(json.loads(json.dumps(s.describe())))  # as structure.json and summary.json keep it
    assert r.type_order == ("Li", "F") and r.lammps_type("Li") == 1 and r.lammps_type("F") == 2
    assert r.defect_kind == "interstitial" and r.defect_atom_ids == tuple(s.defect.atom_ids)
    assert r.formula_units == 32 and r.li_sites.shape == (32, 3) and len(r.interstitial_sites) == 64  # tetrahedral
    bare = structure_of({"type_order": ["F", "Li"], "defect": {"kind": "none", "atom_ids": []}})
    assert bare.lammps_type("Li") == 2 and bare.li_sites is None and bare.formula_units is None
    with pytest.raises(InputError, match="no O"):
        bare.lammps_type("O")
    with pytest.raises(InputError, match="type_order"):
        structure_of({"defect": {}})
