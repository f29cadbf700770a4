"""Crystals beyond rock-salt LiF: the built-in antifluorite Li2O (species on the right sublattices, its octahedral
interstitial sites) and structures read from files (CIF, POSCAR, extxyz, LAMMPS data; orthogonal and triclinic),
which must give the same record as the builders."""

import json

import numpy as np
import pytest

from core.errors import InputError
from inputs.defects import add_defect
from inputs.structure import (
    LI2O_TYPE_ORDER,
    antifluorite_li2o,
    charges_for,
    check_separation,
    read_structure,
    rocksalt_lif,
    structure_of,
    write_lammps_data,
)
from tests.test_voids import same_sites

A = 4.61


def neighbour_distances(s, i: int) -> np.ndarray:
    frac = s.positions @ np.linalg.inv(s.cell) - s.positions[i] @ np.linalg.inv(s.cell)
    d = np.linalg.norm((frac - np.round(frac)) @ s.cell, axis=1)
    d[i] = np.inf
    return d


def test_li2o_is_antifluorite():
    s = antifluorite_li2o(A, 2)
    assert s.count("Li") == 64 and s.count("O") == 32 and s.n_formula_units == 32 and not s.triclinic
    assert s.species == ("Li",) * 64 + ("O",) * 32 and s.type_order == ("Li", "O") == LI2O_TYPE_ORDER
    species = np.array(s.species)
    li, o = int(np.nonzero(species == "Li")[0][0]), int(np.nonzero(species == "O")[0][0])
    d_li, d_o = neighbour_distances(s, li), neighbour_distances(s, o)
    # Li tetrahedral (4 O at √3a/4), O cubic (8 Li at √3a/4); Li-Li a/2, O-O a/√2
    assert np.sum(np.isclose(d_li[species == "O"], np.sqrt(3) * A / 4)) == 4
    assert np.sum(np.isclose(d_o[species == "Li"], np.sqrt(3) * A / 4)) == 8
    assert d_li[species == "Li"].min() == pytest.approx(A / 2)
    assert d_o[species == "O"].min() == pytest.approx(A / 2**0.5)
    assert check_separation(s) == pytest.approx(np.sqrt(3) * A / 4)


@pytest.mark.parametrize("cell, reps, n", [("conventional", 2, 96), ("primitive", 3, 81)])
def test_li2o_sites(cell, reps, n):
    s = antifluorite_li2o(A, reps, cell)
    assert s.n_atoms == n and s.triclinic == (cell == "primitive")
    li = s.positions[np.array(s.species) == "Li"] @ np.linalg.inv(s.cell) % 1.0
    assert same_sites(li, s.li_sites, s.cell)
    assert len(s.interstitial_sites) == s.n_formula_units  # one octahedral site per formula unit
    for site in s.interstitial_sites[:5]:  # each √3a/4 from 8 Li, a/2 from 6 O
        d = np.linalg.norm(((s.positions @ np.linalg.inv(s.cell) - site + 0.5) % 1 - 0.5) @ s.cell, axis=1)
        order = np.argsort(d)
        assert np.allclose(d[order[:8]], np.sqrt(3) * A / 4) and set(np.array(s.species)[order[:8]]) == {"Li"}
        assert np.allclose(d[order[8:14]], A / 2)


def test_li2o_record_data_file_and_charges(tmp_path):
    from ase.io import read

    s = add_defect(antifluorite_li2o(A, 2), "vacancy")
    record = s.describe()
    assert record["formula"] == "Li63O32" and record["formula_units"] == 32 and "mobile" not in record
    r = structure_of(json.loads(json.dumps(record)))
    assert r.type_order == ("Li", "O") and r.lammps_type("O") == 2 and r.li_sites.shape == (64, 3)
    q = charges_for(s, {"Li": 1.0, "O": -2.0}, "anion-sublattice")
    assert q.sum() == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(q[np.array(s.species) == "O"], -2.0 + 1.0 / 32)
    write_lammps_data(s, tmp_path / "d.lmp", charges={"Li": 1.0, "O": -2.0}, type_order=s.type_order)
    atoms = read(tmp_path / "d.lmp", format="lammps-data", atom_style="charge", Z_of_type={1: 3, 2: 8})
    assert atoms.get_chemical_symbols() == list(s.species)


@pytest.mark.parametrize("name, fmt", [("li2o.cif", None), ("POSCAR", "vasp"), ("li2o.extxyz", None),
                                       ("data.li2o", "lammps-data")])
def test_a_file_gives_the_builders_structure(tmp_path, name, fmt):
    from ase.build import bulk
    from ase.io import write

    unit = bulk("OLi2", "fluorite", a=A, cubic=True)
    kwargs = {"specorder": ["Li", "O"], "masses": True, "units": "metal"} if fmt == "lammps-data" else {}
    write(tmp_path / name, unit, format=fmt, **kwargs)
    s, built = read_structure(tmp_path / name, (2, 2, 2)), antifluorite_li2o(A, 2)
    assert s.species == built.species and s.cell_kind == "file" and s.n_formula_units == 32
    np.testing.assert_allclose(s.cell, built.cell, atol=1e-6)
    assert same_sites(s.positions @ np.linalg.inv(s.cell), built.positions @ np.linalg.inv(built.cell), s.cell, 1e-5)
    assert same_sites(s.li_sites, built.li_sites, s.cell, 1e-5)
    assert same_sites(s.interstitial_sites, built.interstitial_sites, s.cell, 1e-5)


SYMMETRIC_CIF = """data_Li2O
_cell_length_a 4.61
_cell_length_b 4.61
_cell_length_c 4.61
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
O1 O 0 0 0 1.0
Li1 Li 0.25 0.25 0.25 LI_OCCUPANCY
"""


def test_a_cif_with_symmetry_operations(tmp_path):
    """A CIF as databases give it: the space group and the asymmetric unit (O on 4a, Li on 8c of Fm-3m)."""
    (tmp_path / "li2o.cif").write_text(SYMMETRIC_CIF.replace("LI_OCCUPANCY", "1.0"))
    s, built = read_structure(tmp_path / "li2o.cif", 2), antifluorite_li2o(A, 2)
    assert s.species == built.species and s.n_formula_units == 32
    assert same_sites(s.interstitial_sites, built.interstitial_sites, s.cell, 1e-5)
    (tmp_path / "partial.cif").write_text(SYMMETRIC_CIF.replace("LI_OCCUPANCY", "0.9"))
    with pytest.raises(InputError, match=r"partly occupied sites \(Li\)"):
        read_structure(tmp_path / "partial.cif")


def test_a_triclinic_file_and_another_mobile_species(tmp_path):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "POSCAR", bulk("LiF", "rocksalt", a=4.03), format="vasp")  # the 2-atom rhombohedral cell
    s, paper = read_structure(tmp_path / "POSCAR", 6), rocksalt_lif(4.03, 6, "primitive")
    assert s.n_atoms == 432 and s.triclinic and s.n_formula_units == 216
    assert same_sites(s.li_sites, paper.li_sites, s.cell)
    assert same_sites(s.interstitial_sites, paper.interstitial_sites, s.cell)
    f = read_structure(tmp_path / "POSCAR", 2, mobile="F")
    assert f.type_order == ("F", "Li") and f.species[0] == "F" and f.describe()["mobile"] == "F"
    assert same_sites(f.li_sites, f.positions[np.array(f.species) == "F"] @ np.linalg.inv(f.cell) % 1.0, f.cell)


def test_bad_files_are_rejected(tmp_path):
    from ase import Atoms
    from ase.io import write

    with pytest.raises(InputError, match="does not exist"):
        read_structure(tmp_path / "nothing.cif")
    (tmp_path / "junk.cif").write_text("this is not a CIF\n")
    with pytest.raises(InputError, match="ASE cannot read it"):
        read_structure(tmp_path / "junk.cif")
    write(tmp_path / "molecule.xyz", Atoms("LiF", positions=[(0, 0, 0), (1.6, 0, 0)]))
    with pytest.raises(InputError, match="no periodic cell"):
        read_structure(tmp_path / "molecule.xyz")
    write(tmp_path / "nacl.cif", Atoms("NaCl", scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5)], cell=[3] * 3, pbc=True))
    with pytest.raises(InputError, match=r"no Li \(species \['Cl', 'Na'\]\)"):
        read_structure(tmp_path / "nacl.cif")
    with pytest.raises(InputError, match="type order"):
        read_structure(tmp_path / "nacl.cif", mobile="Na", type_order=("Na",))
    with pytest.raises(InputError, match="supercell"):
        read_structure(tmp_path / "nacl.cif", (1, 0, 1), mobile="Na")
    write(tmp_path / "crowded.cif", Atoms("LiF", scaled_positions=[(0, 0, 0), (0.1, 0, 0)], cell=[4] * 3, pbc=True))
    with pytest.raises(InputError, match="atoms overlap"):
        read_structure(tmp_path / "crowded.cif")
