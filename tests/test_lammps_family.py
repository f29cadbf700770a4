"""The ``lammps`` family (potentials/lammps_lines.py): LAMMPS's own lines with elements by name, mapped to the
study's type order, refused when they could be more than the arguments of one command, and judged by LAMMPS
(``run 0``, driver.session) before a study starts. The energy of a rock-salt LiCl crystal is checked
against the ``classical`` family's born/coul/long with sigma = D = 0 (the same function), with the type order
swapped, and against a direct lattice sum (Buckingham pairs within the cutoff plus the rock-salt Madelung energy),
the independent estimate."""

import inspect
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from core.errors import PotentialError
from core.rundir import RunDir
from inputs.structure import read_structure
from potentials import lammps_lines
from potentials.catalog import PotentialEntry, family_of, resolve

#: Coulomb's constant in LAMMPS metal units (eV Å / e²), and the rock-salt Madelung constant (nearest neighbour)
COULOMB_EV_A, MADELUNG_ROCKSALT = 14.399645, 1.747565
LICL_A = 5.13  # Å, rock-salt LiCl
#: Buckingham (A eV, rho Å, C eV Å^6) per pair; Li-Li has no short-range term
BUCK = {"Li-Li": (0.0, 1.0, 0.0), "Li-Cl": (1200.0, 0.32, 0.0), "Cl-Cl": (3000.0, 0.33, 50.0)}
CUTOFF = 8.0


def entry(**params) -> PotentialEntry:
    elements = params.pop("elements", ("Li", "Cl", "F"))
    return PotentialEntry("mine", "lammps", "", "", tuple(elements), params, "/cat.toml")


def block(type_order=("Li", "Cl"), **params):
    params.setdefault("pair_style", "buck/coul/long 8.0")
    params.setdefault("pair_coeff", ["Li Li 0 1 0", "Cl Li 1200 0.32 0", "Cl Cl 3000 0.33 50"])
    e = entry(**params)
    family_of(e)  # the catalog's own strict key and type check
    return lammps_lines.pair_block(e, type_order)


def catalog(tmp_path, monkeypatch, text: str):
    (tmp_path / "cat.toml").write_text(textwrap.dedent(text))
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(tmp_path / "cat.toml"))
    return tmp_path / "cat.toml"


LICL = """
[licl-buck]
family = "lammps"
elements = ["Li", "Cl", "F"]
pair_style = "buck/coul/long 8.0"
pair_coeff = ["Cl Li 1200 0.32 0", "Li Li 0 1 0", "Cl Cl 3000 0.33 50", "F F 1 0.3 0", "Li F 1 0.3 0"]
kspace_style = "ewald 1e-8"
pair_modify = "table 0"
charges = { Li = 1, Cl = -1.0, F = -1.0 }

[licl-born]
family = "classical"
elements = ["Li", "Cl"]
charges = { Li = 1.0, Cl = -1.0 }
cutoff_angstrom = 8.0
kspace_style = "ewald"
kspace_accuracy = 1e-8
pairs = { "Li-Li" = [0.0, 1.0, 0.0, 0.0, 0.0], "Li-Cl" = [1200.0, 0.32, 0.0, 0.0, 0.0], \
          "Cl-Cl" = [3000.0, 0.33, 0.0, 50.0, 0.0] }
"""


# --- the lines ---------------------------------------------------------------------------------------------------

def test_elements_become_the_study_s_type_numbers_with_i_not_above_j():
    lines = block().lines
    assert lines[0] == "pair_style buck/coul/long 8.0"
    assert "pair_coeff 1 2 1200 0.32 0  # Li-Cl" in lines  # written "Cl Li": LAMMPS needs i <= j
    assert "pair_coeff 2 2 3000 0.33 50  # Cl-Cl" in lines
    swapped = block(("Cl", "Li")).lines
    assert "pair_coeff 1 1 3000 0.33 50  # Cl-Cl" in swapped and "pair_coeff 2 2 0 1 0  # Li-Li" in swapped


def test_optional_lines_charges_masses_and_requirements():
    b = block(kspace_style="pppm 1e-5", pair_modify="table 0", kspace_modify="gewald 0.3",
              charges={"Li": 1, "Cl": -1.0, "F": -1.0}, masses={"Cl": 35.45, "F": 19.0})
    assert b.lines[-4:] == ("pair_modify table 0", "kspace_style pppm 1e-5", "kspace_modify gewald 0.3",
                            "mass 2 35.45  # Cl")  # F: not in this structure
    assert b.charges == {"Li": 1.0, "Cl": -1.0}
    assert b.requirements.styles == (("pair", "buck/coul/long"), ("kspace", "pppm"))
    assert block().charges is None  # no charges: atom_style atomic


def test_a_line_of_an_element_the_structure_lacks_is_left_out():
    b = block(pair_coeff=["Li Li 0 1 0", "Li Cl 1 0.3 0", "Cl Cl 1 0.3 0", "F Li 2 0.3 0", "F F 2 0.3 0"])
    assert len([line for line in b.lines if line.startswith("pair_coeff")]) == 3


@pytest.mark.parametrize("coeff, message", [
    (["Li O 1 0.3 0"], r"pair_coeff\[0\] 'Li O 1 0.3 0': 'O' is not one of its elements"),
    (["Li 1 0.3 0"], r"'1' is not one of its elements"),
    (["Li"], r"expected \"El1 El2 args...\""),
    (["Li * 1 0.3 0"], r"'\*' is not one of its elements"),
    (["Li Cl 1 0.3 0", "Cl Li 2 0.3 0"], r"pair_coeff\[1\] 'Cl Li 2 0.3 0' sets Cl-Li again \(pair_coeff\[0\]\)"),
    (["* * Li.eam.alloy Li Cl"], r"names \['Cl', 'Li'\] after \* \*"),
    ([], "pair_coeff is empty"),
])
def test_pair_coeff_lines_that_cannot_be_mapped_are_refused_naming_the_entry(coeff, message):
    with pytest.raises(PotentialError, match=r"^/cat.toml: \[mine\] .*" + message):
        block(pair_coeff=coeff)


def test_star_star_lines_pass_and_hybrid_styles_may_repeat_a_pair():
    assert "pair_coeff * * 0.5" in block(pair_style="coul/wolf 0.2 8.0", pair_coeff=["* * 0.5"]).lines
    b = block(pair_style="hybrid/overlay buck 8.0 coul/long 8.0",
              pair_coeff=["Li Cl buck 1200 0.32 0", "* * coul/long", "Li Cl buck 1 1 1"])
    assert sum(line.startswith("pair_coeff 1 2 buck") for line in b.lines) == 2


@pytest.mark.parametrize("key, value", [
    ("pair_style", "buck/coul/long 8.0\nshell touch PWNED"),
    ("pair_style", "buck/coul/long 8.0 # comment"),
    ("pair_style", "buck/coul/long ${cut}"),
    ("kspace_style", "ewald 1e-6 &"),
    ("pair_modify", 'table 0 """'),
    ("kspace_modify", "gewald 'x'"),
    ("pair_coeff", ["Li Li 0 1 0\rinclude evil.in"]),
    ("pair_coeff", ["Li Li 0 1 0\u2028python x"]),
    ("pair_style", "python 8.0"),
    ("pair_style", "hybrid buck 8.0 python 8.0"),
    ("pair_style", "mliap unified model.pt 0"),
    ("pair_style", "   "),
])
def test_a_value_is_the_arguments_of_one_command_never_more(key, value):
    with pytest.raises(PotentialError, match=rf"^/cat.toml: \[mine\] {key}"):
        block(**{key: value})


@pytest.mark.parametrize("params, message", [
    ({"pair_coeff": "Li Li 0 1 0"}, r"\[mine\]: pair_coeff: expected a list"),
    ({"charges": {"Li": "one"}}, r"\[mine\]: charges.Li: expected a number"),
    ({"cutoff_angstrom": "8"}, r"\[mine\]: cutoff_angstrom: expected a number"),
    ({"pair_coeff": ["Li Li 0 1 0", 3]}, r"pair_coeff\[1\]: expected a string"),
    ({"pair_syle": "buck 8.0"}, r"\[mine\] has unknown key\(s\) pair_syle; a lammps entry takes"),
])
def test_parameters_are_typed_strictly(params, message):
    e = entry(**({"pair_style": "buck/coul/long 8.0", "pair_coeff": ["Li Li 0 1 0"]} | params))
    with pytest.raises(PotentialError, match=message):
        family_of(e)
        lammps_lines.pair_block(e, ("Li", "Cl"))


def test_the_cutoff_is_given_or_the_largest_number_of_pair_style():
    assert block(pair_style="born/coul/wolf 0.25 9.5").cutoff_angstrom == 9.5
    assert block(pair_style="buck/coul/long 7.0 10.0").cutoff_angstrom == 10.0
    assert block(pair_style="table linear 1000", cutoff_angstrom=12.0).cutoff_angstrom == 12.0
    with pytest.raises(PotentialError, match=r"needs cutoff_angstrom: pair_style 'zero' has no number"):
        block(pair_style="zero")
    with pytest.raises(PotentialError, match=r"cutoff_angstrom: must be a positive length"):
        block(cutoff_angstrom=0.0)


@pytest.mark.parametrize("params, message", [
    ({"charges": {"Li": 1.0}}, r"charges has no charge for \['Cl'\], which the structure has"),
    ({"charges": {"Li": 1.0, "Cl": -1.0, "O": -2.0}}, r"charges names \['O'\], not among its elements"),
    ({"masses": {"Li": -1.0}}, r"masses.Li: must be positive"),
])
def test_charges_must_cover_the_structure_and_masses_be_positive(params, message):
    with pytest.raises(PotentialError, match=r"^/cat.toml: \[mine\] " + message):
        block(**params)


@pytest.mark.parametrize("missing", ["pair_style", "pair_coeff"])
def test_pair_style_and_pair_coeff_are_required(missing):
    params = {"pair_style": "buck 8.0", "pair_coeff": ["* * 1 1 1"]}
    del params[missing]
    with pytest.raises(PotentialError, match=rf"^/cat.toml: \[mine\] needs '{missing}'"):
        lammps_lines.pair_block(entry(**params), ("Li", "Cl"))


def test_a_lammps_entry_needs_elements(tmp_path, monkeypatch):
    catalog(tmp_path, monkeypatch, '[x]\nfamily = "lammps"\npair_style = "buck 8.0"\npair_coeff = ["* * 1 1 1"]\n')
    with pytest.raises(PotentialError, match=r"cat.toml: \[x\] needs 'elements'"):
        resolve("x", ("Li", "Cl"))


def test_the_example_of_the_module_docstring_is_an_entry_that_resolves(tmp_path, monkeypatch):
    doc = inspect.getdoc(lammps_lines)
    example = textwrap.dedent(doc.split("::\n\n", 1)[1].split("\n\n", 1)[0])
    catalog(tmp_path, monkeypatch, example)
    entry_, b = resolve("licl-buck", ("Li", "Cl"))
    assert entry_.family == "lammps" and b.lines[0] == "pair_style buck/coul/long 8.0"
    assert "mass 1 6.94  # Li" in b.lines and b.cutoff_angstrom == 8.0


# --- LAMMPS judges the lines (run 0) -------------------------------------------------------------------------------

def licl(supercell=2, type_order=None):
    """Rock-salt LiCl read from a CIF, as a study of another crystal builds it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "licl.cif"
        write(path, bulk("LiCl", "rocksalt", a=LICL_A, cubic=True))
        return read_structure(path, supercell, type_order=type_order)


def lattice_sum_ev(structure) -> float:
    """Buckingham pairs within the cutoff over periodic images, plus the rock-salt Madelung energy (±1 charges)."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", structure.atoms(), CUTOFF)
    species = np.array(structure.species)
    energy = 0.0
    for key, (a, rho, c) in BUCK.items():
        x, y = key.split("-")
        pair = ((species[i] == x) & (species[j] == y)) | ((species[i] == y) & (species[j] == x)) if x != y else \
            (species[i] == x) & (species[j] == x)
        r = d[pair]
        energy += 0.5 * np.sum(a * np.exp(-r / rho) - c / r**6)  # every pair counted from both ends
    n_pairs = structure.count("Li")
    return energy - n_pairs * MADELUNG_ROCKSALT * COULOMB_EV_A / (LICL_A / 2)


def test_a_good_entry_gives_the_classical_family_s_energy_and_the_lattice_sum(tmp_path, monkeypatch):
    from driver.session import check_potential

    catalog(tmp_path, monkeypatch, LICL)
    s = licl()
    e_lines = check_potential("licl-buck", s)
    e_born = check_potential("licl-born", s)
    e_swapped = check_potential("licl-buck", licl(type_order=("Cl", "Li")))
    assert e_lines == pytest.approx(e_born, abs=1e-8)  # the same function through another family's lines
    assert e_swapped == pytest.approx(e_lines, abs=1e-8)  # the type order is mapped, never assumed
    assert e_lines == pytest.approx(lattice_sum_ev(s), abs=1e-5 * s.n_atoms)  # independent: Madelung + direct sum


@pytest.mark.parametrize("change, lammps_says", [
    (("Cl Li 1200 0.32 0", "Cl Li 1200 0.32"), "Incorrect args for pair coefficients (at: pair_coeff 1 2 1200 0.32"),
    (("buck/coul/long 8.0", "buckk/coul/long 8.0"), "Unrecognized pair style 'buckk/coul/long'"),
    (('"Li Li 0 1 0", ', ""), "All pair coeffs are not set"),
])
def test_lines_lammps_refuses_are_one_message_naming_the_entry(tmp_path, monkeypatch, change, lammps_says):
    from driver.session import check_potential

    path = catalog(tmp_path, monkeypatch, LICL.replace(*change))
    with pytest.raises(PotentialError) as e:
        check_potential("licl-buck", licl(1))
    message = str(e.value)
    assert message.startswith(f"potential 'licl-buck' ({path}): LAMMPS refused its lines: ERROR")
    assert lammps_says in message and "\n" not in message


def study_file(tmp_path, potentials) -> str:
    from tests.conftest import study_toml

    path = tmp_path / "study.toml"
    path.write_text(study_toml(name="lines", potentials=potentials, **{"system.supercell": [3, 3, 3]}))
    return str(path)


LIF_LINES = """
[lif-lines]
family = "lammps"
elements = ["Li", "F"]
pair_style = "born/coul/long 6.0"
pair_coeff = ["Li Li 0.4220 0.299 1.632 0.0456 -0.0187", "Li F 0.2901 0.299 1.995 0.4993 -0.3745",
              "F F 0.1582 0.299 2.358 9.050 -10.61"]
pair_modify = "table 0"
kspace_style = "ewald 1e-6"
charges = { Li = 1.0, F = -1.0 }
"""


def test_driver_run_stops_before_any_run_starts_on_a_line_lammps_refuses(tmp_path, monkeypatch, capsys):
    from driver.__main__ import main

    catalog(tmp_path, monkeypatch, LIF_LINES.replace("F F 0.1582 0.299 2.358 9.050 -10.61", "F F 0.1582 0.299"))
    root = tmp_path / "runs"
    assert main(["run", "--study", study_file(tmp_path, ["fumi-tosi", "lif-lines"]), "--root", str(root),
                 "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "potential 'lif-lines'" in err[0] and "LAMMPS refused its lines: ERROR" in err[0]
    runs = [RunDir(p.parent) for p in root.rglob("summary.json")]
    assert len(runs) == 2 and {r.read().status for r in runs} == {"rendered"}  # nothing started


def test_rendering_for_a_cluster_checks_the_lines_before_writing_job_scripts(tmp_path, monkeypatch, capsys):
    """A study rendered for a cluster is checked here too: a bad line must not fail inside every array task."""
    from driver.__main__ import main
    from tests.test_cluster import site_file

    catalog(tmp_path, monkeypatch, LIF_LINES.replace("F F 0.1582 0.299 2.358 9.050 -10.61", "F F 0.1582 0.299"))
    root = tmp_path / "runs"
    assert main(["render", "--study", study_file(tmp_path, ["fumi-tosi", "lif-lines"]), "--root", str(root),
                 "--site", str(site_file(tmp_path))]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "potential 'lif-lines'" in err[0] and "LAMMPS refused its lines" in err[0]
    assert not list(root.rglob("submit.sh"))  # nothing to queue


def test_check_runs_checks_each_cheap_potential_once_and_leaves_the_others(tmp_path, monkeypatch):
    from driver.render import render_study
    from driver.session import check_runs
    from inputs.study import load_study
    from potentials import classical

    catalog(tmp_path, monkeypatch, LIF_LINES)
    study = load_study(study_file(tmp_path, ["fumi-tosi", "lif-lines"]))
    paths = render_study(study, tmp_path / "runs") * 2  # each potential's runs twice over: checked once
    assert check_runs(paths) == ["fumi-tosi", "lif-lines"]
    monkeypatch.setattr(classical, "CHEAP_ON_CPU", False)  # as the ML families: their models are not loaded
    assert check_runs(paths) == ["lif-lines"]
    assert {RunDir(p).read().status for p in paths} == {"rendered"}


def test_check_runs_works_under_a_root_with_spaces_and_dollars(tmp_path, monkeypatch):
    """The run decks name their data file relative to the run; so must the check (a path with a space or a $ in
    LAMMPS's read_data line is split or expanded, and the refusal would blame the potential)."""
    from driver.render import render_study
    from driver.session import check_runs
    from inputs.study import load_study

    catalog(tmp_path, monkeypatch, LIF_LINES)
    study = load_study(study_file(tmp_path, ["fumi-tosi", "lif-lines"]))
    paths = render_study(study, tmp_path / "my runs $HOME")
    assert check_runs(paths) == ["fumi-tosi", "lif-lines"]


def test_the_readme_s_example_entry_runs(tmp_path, monkeypatch):
    from driver.session import check_potential

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Bring your own LAMMPS or model", 1)[1]
    catalog(tmp_path, monkeypatch, section.split("```toml\n", 1)[1].split("```", 1)[0])
    s = licl(1)  # the example's numbers are this file's BUCK and charges: the lattice sum is its energy
    assert check_potential("my-licl", s) == pytest.approx(lattice_sum_ev(s), abs=1e-4 * s.n_atoms)
