"""The system record (inputs/system.py): the study's [system] names the crystal once and every stage reads it —
rock-salt LiF unchanged, built-in Li2O, and structure files (a CIF of rock-salt LiCl) with a user potential."""

import json
import math
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError, PotentialError
from core.files import sha256_file
from core.rundir import RunDir
from driver.logs import lengths_and_angles
from driver.render import RunSpec, fingerprint, render_deck, render_study, resolve_potentials, study_config
from inputs.defects import add_defect
from inputs.structure import (
    cubic_lattice_constant,
    lammps_cell,
    material_of,
    reduced_formula,
    rocksalt_lif,
    structure_of,
    type_order_for,
)
from inputs.study import load_study, study_from_dict
from inputs.system import build_structure, system_of
from tests.conftest import make_study, study_dict

ROOT = Path(__file__).parents[1]
LICL_A = 5.13  # Å, rock-salt LiCl
#: a rigid-ion rock-salt LiCl for the tests (buck/coul/long): Li-Cl Born-Mayer repulsion balancing the Madelung
#: attraction at a/2 = 2.565 Å (6 A/ρ exp(-r/ρ) = M e²/(4πε0 r²) gives A ≈ 620 eV for ρ = 0.32 Å)
LICL_CATALOG = """
[licl-test]
family = "lammps"
elements = ["Li", "Cl"]
pair_style = "buck/coul/long 6.0"
pair_coeff = ["Li Li 0 1 0", "Li Cl 620 0.32 0", "Cl Cl 3000 0.33 50"]
kspace_style = "ewald 1e-5"
charges = { Li = 1.0, Cl = -1.0 }
"""


def licl_cif(folder: Path) -> Path:
    from ase.build import bulk
    from ase.io import write

    path = folder / "licl.cif"
    write(path, bulk("LiCl", "rocksalt", a=LICL_A, cubic=True))
    return path


def licl_study(tmp_path: Path, monkeypatch, **changes):
    """A study of the CIF (its path relative to the study file), with the test's user catalog."""
    (tmp_path / "cat.toml").write_text(textwrap.dedent(LICL_CATALOG))
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(tmp_path / "cat.toml"))
    licl_cif(tmp_path)
    d = study_dict(**{"potentials": ["licl-test"], "system.lattice_constant_angstrom": None,
                      "system.structure": "licl.cif"} | changes)
    (tmp_path / "study.toml").write_text(toml(d))
    return load_study(tmp_path / "study.toml")


def toml(d: dict) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for section, table in d.items():
        if isinstance(table, dict):
            lines += [f"[{section}]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def li2o_study(**changes):
    return make_study(**{"potentials": ["li2o-teter"], "system.structure": "Li2O",
                         "system.lattice_constant_angstrom": 4.61, "system.supercell": [4, 4, 4],
                         "system.defect": "vacancy"} | changes)


# --- the record ----------------------------------------------------------------------------------------------

def test_lif_is_the_default_and_its_record_is_as_before():
    study = make_study()
    assert study.system.structure == "LiF" and study.system.mobile == "Li"
    s = system_of(study)
    assert (s.material, s.type_order, s.mobile, s.host, s.formula_units) == ("LiF", ("Li", "F"), "Li", ("F",), 108)
    assert (s.mobile_type, s.host_types, s.builder, s.triclinic) == (1, (2,), "LiF", False)
    record = build_structure(study).describe()
    assert not {"mobile", "material", "source"} & set(record)  # LiF's structure.json gains nothing


@pytest.mark.parametrize("cell, supercell", [("conventional", [3, 3, 3]), ("primitive", [6, 6, 6])])
@pytest.mark.parametrize("defect", ["none", "interstitial", "vacancy", "frenkel"])
def test_lif_studies_build_the_same_cell_as_before(cell, supercell, defect):
    """The crystal of every LiF study, atom for atom: what the driver built before the system record existed."""
    study = make_study(**{"system.cell": cell, "system.supercell": supercell, "system.defect": defect})
    built = build_structure(study)
    before = add_defect(rocksalt_lif(4.01, tuple(supercell), cell), defect)  # type: ignore[arg-type]
    assert built.species == before.species and built.defect == before.defect
    np.testing.assert_array_equal(built.positions, before.positions)
    assert built.describe() == before.describe()


def test_li2o_is_built_in():
    study = li2o_study()
    s = system_of(study)
    assert (s.material, s.type_order, s.host, s.formula_units, s.builder) == ("Li2O", ("Li", "O"), ("O",), 256, "Li2O")
    built = build_structure(study)
    assert built.count("Li") == 511 and built.count("O") == 256 and built.defect.kind == "vacancy"
    record = structure_of(built.describe())
    assert material_of(record) == "Li2O" == material_of(built.describe()) and record.mobile == "Li"
    # the tracked sites: the 512 Li sites and the 256 octahedral voids (one per formula unit), √3·a/4 from 8 Li
    assert record.li_sites.shape == (512, 3) and record.interstitial_sites.shape == (256, 3)
    h = built.cell
    void = record.interstitial_sites[0] @ h
    li = built.positions[np.array(built.species) == "Li"]
    d = li - void
    d = (d @ np.linalg.inv(h) - np.round(d @ np.linalg.inv(h))) @ h
    r = np.sort(np.linalg.norm(d, axis=1))
    np.testing.assert_allclose(r[:8], math.sqrt(3) * 4.61 / 4, atol=1e-9)


def test_a_primitive_cell_is_a_triclinic_box():
    lif = system_of(make_study(**{"system.cell": "primitive", "system.supercell": [6, 6, 6]}))
    li2o = system_of(li2o_study(**{"system.cell": "primitive", "system.supercell": [2, 3, 4]}))
    assert lif.triclinic and lif.formula_units == 216 and li2o.triclinic and li2o.formula_units == 24


def test_li2o_deck_groups_atoms_by_role():
    study = li2o_study()
    (_, block), = resolve_potentials(study, build_structure(study)).values()
    deck = render_deck(study, RunSpec("li2o-teter", 700.0, 1), block)
    assert "group           mobile type 1\ngroup           host type 2\n" in deck
    assert "compute         hostcom host com" in deck and "dump            traj mobile custom" in deck
    assert "Li2O 4x4x4 conventional cells with vacancy" in deck.splitlines()[0]
    assert "Li positions, unwrapped, and the O sublattice's centre of mass" in deck


def test_the_builtin_li2o_study_renders(tmp_path):
    study = load_study("li2o-vacancy")
    assert study.system.structure == "Li2O" and study.potentials == ("li2o-teter",)
    paths = render_study(study, tmp_path)
    assert len(paths) == len(study.temperatures_k) * len(study.seeds)
    summary = RunDir(paths[0]).read()
    assert structure_of(summary.structure).material == "Li2O"
    assert (paths[0] / "data.lmp").read_text().count("\n") > 767  # 767 atoms, typed Li 1, O 2
    assert "2 atom types" in (paths[0] / "data.lmp").read_text()


def test_a_potential_must_cover_every_species():
    study = li2o_study(potentials=["fumi-tosi"])  # Li and F: no O
    with pytest.raises(PotentialError, match="fumi-tosi"):
        resolve_potentials(study, build_structure(study))


# --- the study's keys, checked ---------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, field, match", [
    ({"system.lattice_constant_angstrom": None}, "system.lattice_constant_angstrom", "give the built-in LiF"),
    ({"system.structure": "Li2O", "system.mobile": "O"}, "system.mobile", "mobile species is Li"),
    ({"system.defect": "vacancy", "system.interstitial_site": [0.25, 0.25, 0.25]}, "system.interstitial_site",
     "defect interstitial or frenkel"),
    ({"system.interstitial_site": [0.25, 0.25]}, "system.interstitial_site", "expected a list of 3"),
    ({"system.interstitial_site": [0.25, math.nan, 0.25]}, "system.interstitial_site", "finite number"),
    ({"system.structure": "x.cif"}, "system.lattice_constant_angstrom", "is a file"),
    ({"system.structure": "x.cif", "system.lattice_constant_angstrom": None, "system.cell": "primitive"},
     "system.cell", "is a file"),
])
def test_system_keys_are_checked(changes, field, match):
    with pytest.raises(InputError, match=f"test.toml: {field}: .*{match}"):
        make_study(**changes)


@pytest.mark.parametrize("changes, field, match", [
    ({"system.defect": "interstitial", "system.vacancy_index": 3}, "system.vacancy_index", "defect vacancy or frenkel"),
    ({"system.defect": "none", "system.defect_seed": 3}, "system.defect_seed", "defect vacancy or frenkel"),
    ({"system.defect": "vacancy", "system.vacancy_index": 3, "system.defect_seed": 1}, "system.vacancy_index",
     "not both"),
    ({"system.defect": "vacancy", "system.vacancy_index": -1}, "system.vacancy_index", "0 or more, got -1"),
    ({"system.defect": "frenkel", "system.defect_seed": -2}, "system.defect_seed", "0 or more, got -2"),
    ({"system.defect": "vacancy", "system.vacancy_index": 1.5}, "system.vacancy_index", "expected an integer"),
])
def test_the_vacant_site_keys_are_checked(changes, field, match):
    with pytest.raises(InputError, match=f"test.toml: {field}: .*{match}"):
        make_study(**changes)


def test_a_vacancy_index_beyond_the_sites_is_one_clear_error():
    study = make_study(**{"system.defect": "vacancy", "system.vacancy_index": 108})  # 3x3x3 LiF: sites 0 to 107
    with pytest.raises(InputError, match=r"test.toml: system \(.*defect = 'vacancy', vacancy_index = 108\): vacancy "
                                         r"site 108 is not one of the 108 Li sites \(0 to 107\)"):
        build_structure(study)


def _vacant_site(built) -> np.ndarray:
    """The perfect crystal's mobile-species site no atom of ``built`` is on (fractional)."""
    record = structure_of(built.describe())
    mobile = built.positions[np.array(built.species) == record.mobile] @ np.linalg.inv(built.cell)
    d = record.li_sites[:, None, :] - mobile[None, :, :]
    r = np.linalg.norm((d - np.round(d)) @ built.cell, axis=2).min(axis=1)
    empty = np.flatnonzero(r > 0.5)
    assert len(empty) == 1
    return record.li_sites[empty[0]]


@pytest.mark.parametrize("defect", ["vacancy", "frenkel"])
def test_the_vacancy_is_placed_by_index_or_seed(defect):
    """The vacant site is the one asked for: the given index among the mobile species' sites (the structure
    record's ``sites.li``), or the one a seed draws (the same for the same seed); the default stays the site nearest
    the centre, as before these keys existed."""
    default = build_structure(li2o_study(**{"system.defect": defect}))
    sites = structure_of(default.describe()).li_sites
    centre = np.linalg.norm((sites - 0.5) @ default.cell, axis=1)
    np.testing.assert_allclose(_vacant_site(default), sites[int(np.argmin(centre))])
    for k in (0, 17, len(sites) - 1):
        built = build_structure(li2o_study(**{"system.defect": defect, "system.vacancy_index": k}))
        np.testing.assert_allclose(_vacant_site(built), sites[k])
        assert built.defect.vacancy_site == pytest.approx(tuple(sites[k]))
        assert built.count("Li") == 511 + (defect == "frenkel")
    seeded = [_vacant_site(build_structure(li2o_study(**{"system.defect": defect, "system.defect_seed": seed})))
              for seed in (1, 1, 2)]
    np.testing.assert_allclose(seeded[0], seeded[1])
    np.testing.assert_allclose(seeded[0], sites[int(np.random.default_rng(1).integers(len(sites)))])
    assert not np.allclose(seeded[0], seeded[2])


def test_a_files_supercell_is_not_counted_as_lif():
    """A structure file's atoms are counted when it is read (its own atoms per cell); the study checks only that no
    axis is repeated more often than the driver builds atoms. 60x60x60 of LiF's 8-atom cell would be 1.7 M atoms."""
    from inputs.structure import MAX_ATOMS

    study = make_study(**{"system.structure": "x.cif", "system.lattice_constant_angstrom": None,
                          "system.supercell": [60, 60, 60]})
    assert study.system.supercell == (60, 60, 60)
    with pytest.raises(InputError, match="test.toml: system.supercell: .*more than"):
        make_study(**{"system.structure": "x.cif", "system.lattice_constant_angstrom": None,
                      "system.supercell": [MAX_ATOMS + 1, 1, 1]})
    with pytest.raises(InputError, match="test.toml: system.supercell: .*1.73e\\+06 atoms"):
        make_study(**{"system.supercell": [60, 60, 60]})  # the built-in LiF is counted here


def test_a_missing_structure_file_is_named(tmp_path):
    study = study_from_dict(study_dict(**{"system.structure": "nosuch.cif", "system.lattice_constant_angstrom": None}),
                            str(tmp_path / "s.toml"))
    with pytest.raises(InputError, match=r"s.toml: system \(structure = 'nosuch.cif'.*neither a built-in crystal "
                                         r"\(LiF, Li2O\) nor a structure file"):
        build_structure(study)


def test_the_mobile_species_must_be_in_the_file(tmp_path, monkeypatch):
    study = licl_study(tmp_path, monkeypatch, **{"system.mobile": "Na"})
    with pytest.raises(InputError, match="has no Na"):
        build_structure(study)


# --- a structure file -----------------------------------------------------------------------------------------

def test_a_cif_study_reads_its_file_relative_to_the_study(tmp_path, monkeypatch):
    study = licl_study(tmp_path, monkeypatch)
    s = system_of(study)
    assert (s.material, s.type_order, s.host, s.formula_units) == ("LiCl", ("Li", "Cl"), ("Cl",), 108)
    assert s.builder == str((tmp_path / "licl.cif").resolve()) and s.cell_label == "licl.cif"
    assert study_config(study)["system"]["structure"] == s.builder  # the summary keeps the resolved path
    built = build_structure(study)
    record = built.describe()
    assert record["material"] == "LiCl" and record["cell_kind"] == "file"
    assert record["source"] == {"path": s.builder, "sha256": sha256_file(tmp_path / "licl.cif")}
    assert cubic_lattice_constant(structure_of(record), 30.0) is None  # a file's cell: no cubic rule


def test_a_changed_structure_file_is_a_different_run(tmp_path, monkeypatch):
    study = licl_study(tmp_path, monkeypatch)
    (_, block), = resolve_potentials(study, build_structure(study)).values()
    first = fingerprint("deck", build_structure(study), block, {}, "background")
    text = (tmp_path / "licl.cif").read_text()
    (tmp_path / "licl.cif").write_text(text + "\n")  # the same crystal, another file
    assert fingerprint("deck", build_structure(study), block, {}, "background") != first


def test_the_interstitial_site_given_or_found(tmp_path, monkeypatch):
    """Rock salt's empty site is the cube centre (¼,¼,¼)·a, √3·a/4 from 4 Li and 4 Cl: the void search finds one
    of them, and a given (¼,¼,¼) is put there (in the copy of the cell nearest the supercell's centre)."""
    found = build_structure(licl_study(tmp_path, monkeypatch))
    given = build_structure(licl_study(tmp_path, monkeypatch, **{"system.interstitial_site": [0.25, 0.25, 0.25]}))
    for s in (found, given):
        assert s.defect.atom_ids == (len(s.species),) and s.species[-1] == "Li"
        frac = s.positions @ np.linalg.inv(s.cell)
        d = frac[:-1] - frac[-1]
        r = np.sort(np.linalg.norm((d - np.round(d)) @ s.cell, axis=1))
        np.testing.assert_allclose(r[:8], math.sqrt(3) * LICL_A / 4, atol=1e-6)
        assert r[8] > r[7] + 0.5
    np.testing.assert_allclose(given.positions[-1] @ np.linalg.inv(given.cell), np.array([1.25, 1.25, 1.25]) / 3)


def test_an_interstitial_site_on_an_atom_is_refused(tmp_path, monkeypatch):
    study = licl_study(tmp_path, monkeypatch, **{"system.interstitial_site": [0.5, 0.0, 0.01]})
    with pytest.raises(InputError, match=r"interstitial_site \[0.5, 0.0, 0.01\] is 0.05 Å from a (Li|Cl) atom"):
        build_structure(study)


# --- records and the state point --------------------------------------------------------------------------------

def test_records_name_their_material():
    old = {"type_order": ["Li", "F"], "defect": {"kind": "interstitial", "atom_ids": [217]}}  # before Li2O
    assert material_of(old) == "LiF" and structure_of(old).mobile == "Li"
    assert reduced_formula(("Li",) * 8 + ("O",) * 4, ("Li", "O")) == "Li2O"
    assert reduced_formula(("Na", "Cl", "Cl", "Na"), ("Na", "Cl")) == "NaCl"
    assert type_order_for(["F", "Li", "F"]) == ("Li", "F") and type_order_for(["O", "Li"]) == ("Li", "O")
    assert type_order_for(["Na", "Cl", "Na"]) == ("Na", "Cl")


def test_the_cubic_lattice_constant_of_the_builtins():
    for name, a in (("LiF", 4.03), ("Li2O", 4.61)):
        record = structure_of({"type_order": ["Li", "X"], "material": name, "cell_kind": "primitive"})
        assert cubic_lattice_constant(record, a**3 / 4) == pytest.approx(a, rel=1e-12)  # 4 formula units per a³


def test_cell_lengths_and_angles_of_a_triclinic_box():
    from ase.geometry import cell_to_cellpar

    s = rocksalt_lif(4.0, 2, "primitive")
    h = lammps_cell(s.cell)
    lengths, angles = lengths_and_angles(h[0, 0], h[1, 1], h[2, 2], h[1, 0], h[2, 0], h[2, 1])
    np.testing.assert_allclose(lengths + angles, cell_to_cellpar(s.cell), atol=1e-9)
    np.testing.assert_allclose(angles, 60.0, atol=1e-9)  # the rhombohedral cell of fcc


# --- end to end -----------------------------------------------------------------------------------------------

def _python(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.integration
def test_a_li2o_vacancy_study_runs_end_to_end(tmp_path):
    """The built-in study, shortened: render, NPT -> NVT with li2o-teter, the vacancy tracked on the Li sites and
    octahedral voids, D, the Arrhenius fit and the report."""
    from analysis.runs import production_cell, read_li, run_analysis
    from analysis.sites import track_defect
    from driver.__main__ import main

    d = tomllib.loads((ROOT / "inputs" / "studies" / "li2o-vacancy.toml").read_text())
    d["temperatures_k"] = [1000, 1100]
    d["md"] |= {"npt_ps": 0.2, "barostat_damping_ps": 0.2, "equilibration_ps": 0.1, "production_ps": 0.6,
                "dump_interval_ps": 0.02, "thermo_interval_ps": 0.02, "restart_interval_ps": 0.3}
    d["analysis"] = {"selection": "li", "residence_ps": 0.1, "min_events": 0, "window_ps": [0.1, 0.25]}
    (tmp_path / "li2o.toml").write_text(toml(d))
    root = tmp_path / "runs"
    assert main(["run", "--study", str(tmp_path / "li2o.toml"), "--root", str(root), "--no-progress"]) == 0
    runs = sorted((root / "li2o-vacancy").rglob("summary.json"))
    assert len(runs) == 2
    for path in runs:
        run, summary = RunDir(path.parent), RunDir(path.parent).read()
        st = summary.state
        assert summary.status == "finished" and st is not None
        # the antifluorite rule a = (4 V / N_fu)^(1/3), checked against the cubic box of 4x4x4 cells: lx / 4
        assert st.lattice_constant_angstrom == pytest.approx(st.cell_angstrom[0] / 4, rel=1e-9)
        assert st.volume_per_formula_unit_a3 == pytest.approx(st.volume_a3 / 256, rel=1e-12)
        assert st.cell_angles_deg == pytest.approx((90.0, 90.0, 90.0))
        record = structure_of(summary.structure)
        li = read_li(run, summary)
        assert li.positions.shape[1] == 511  # the mobile species' atoms only
        cell, origin = production_cell(summary)
        track = track_defect(li.positions, cell, origin, record.li_sites, record.interstitial_sites, "vacancy", 5)
        vacancy = np.asarray(summary.structure["defect"]["vacancy_site"])
        assert np.allclose(record.li_sites[track.site[0]], vacancy)  # it starts where the vacancy was made
        assert track.off_site_fraction < 0.05  # the Li stay on the sites: the crystal holds
        a = run_analysis(run.path)
        assert a.n_li == 511 and a.n_defects == 1 and a.events is not None
    arrhenius = _python("-m", "analysis.arrhenius", str(root / "li2o-vacancy"))
    assert arrhenius.returncode == 0, arrhenius.stderr
    report = _python("-m", "analysis.report", str(root / "li2o-vacancy"))
    assert report.returncode == 0, report.stderr
    html = next((root / "li2o-vacancy").rglob("*.html")).read_text()
    assert "Li2O" in html


@pytest.mark.integration
def test_a_cif_study_with_a_user_potential_runs_end_to_end(tmp_path, monkeypatch):
    """A crystal the driver does not know (rock-salt LiCl from a CIF) with a potential from the user's catalog:
    rendered, run (NPT -> NVT), analysed."""
    from analysis.runs import run_analysis
    from driver.__main__ import main

    study = licl_study(tmp_path, monkeypatch, **{"system.volume": "npt", "md.npt_ps": 0.2,
                                                 "md.barostat_damping_ps": 0.2, "temperatures_k": [900.0]})
    assert study.system.structure == "licl.cif"
    root = tmp_path / "runs"
    assert main(["run", "--study", str(tmp_path / "study.toml"), "--root", str(root), "--no-progress"]) == 0
    (path,) = (root / "tiny").rglob("summary.json")
    summary = RunDir(path.parent).read()
    assert summary.status == "finished" and structure_of(summary.structure).material == "LiCl"
    st = summary.state
    assert st.lattice_constant_angstrom is None and st.volume_per_formula_unit_a3 == pytest.approx(st.volume_a3 / 108)
    # an independent estimate of the cell: within 10 % of the CIF's a (the model is not fitted to it)
    assert (4 * st.volume_per_formula_unit_a3) ** (1 / 3) == pytest.approx(LICL_A, rel=0.1)
    a = run_analysis(path.parent)
    assert a.n_li == 109 and a.n_defects == 1 and a.off_site_fraction < 0.05
    assert a.stats["li"].msd[-1] > 0
