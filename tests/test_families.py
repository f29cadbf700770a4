"""Potential families behind one typed interface (potentials.base.Family): every registered module satisfies it, its
parameters are types the catalog reader reads, and no module outside potentials/ tests a family by its name (so a
new family is one module and one line in potentials.catalog.FAMILIES)."""

import ast
import typing
from pathlib import Path

import pytest

from core.config import convert
from core.errors import InputError, PotentialError
from potentials import catalog
from potentials.base import FAMILY_MEMBERS, BuildNeeds, Family
from potentials.catalog import FAMILIES, family

ROOT = Path(__file__).parents[1]
#: packages whose modules may not test family names (potentials/ is where family knowledge lives)
OUTSIDE = ("core", "inputs", "templates", "analysis", "driver", "finetune", "tools")
CAPABILITIES = ("NEEDS_GPU", "CHEAP_ON_CPU", "HIDE_GPUS_ON_CPU", "FOUNDATION_MODELS", "ELEMENTS_FROM_MODEL")


def test_the_members_checked_at_load_are_the_protocol_s():
    assert set(FAMILY_MEMBERS) == set(typing._get_protocol_attrs(Family))  # type: ignore[attr-defined]
    assert set(CAPABILITIES) <= set(FAMILY_MEMBERS)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_satisfies_the_protocol(name):
    module = family(name)
    assert isinstance(module, Family)
    for flag in CAPABILITIES:
        assert type(getattr(module, flag)) is bool, f"{name}.{flag} is not a bool"
    assert isinstance(module.BUILD_NEEDS, BuildNeeds)
    for key, hint in module.PARAMS.items():
        assert key not in catalog.COMMON_KEYS, f"{name} redefines the common key {key}"
        with pytest.raises(InputError, match=key):  # a type core.config reads (a TypeError otherwise)
            convert(hint, object(), "cat.toml", key)


def test_a_module_that_lacks_members_is_refused_naming_them(monkeypatch):
    monkeypatch.setitem(FAMILIES, "broken", "json")
    with pytest.raises(PotentialError, match=r"family 'broken' \(json\) lacks NEEDS_GPU, .*pair_block"):
        family("broken")


def test_ml_entries_may_leave_elements_to_their_model(tmp_path, monkeypatch):
    """mace-mpa-0 names no elements: its model's own (89) are checked, so a Li2O study is not blocked by the catalog."""
    entry = catalog.get_entry("mace-mpa-0")
    assert entry.elements == () and family(entry.family).ELEMENTS_FROM_MODEL
    (tmp_path / "cat.toml").write_text('[m]\nfamily = "mace"\nmodel = "/nowhere.model"\n'
                                       '[c]\nfamily = "classical"\ncutoff_angstrom = 6.0\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(tmp_path / "cat.toml"))
    with pytest.raises(PotentialError, match="model file /nowhere.model does not exist"):  # past the catalog
        catalog.resolve("m", ("Li", "O"))
    with pytest.raises(PotentialError, match=r"\[c\] needs 'elements'"):
        catalog.resolve("c", ("Li", "O"))


# --- no family is tested by name outside potentials/ ----------------------------------------------------------------

def _names(node: ast.AST) -> set[str]:
    """The family names a literal spells: a string, or a tuple/list/set of strings."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & set(FAMILIES)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_names(e) for e in node.elts)) if node.elts else set()
    return set()


def _about_families(node: ast.AST) -> bool:
    return "famil" in ast.unparse(node).lower()


def family_name_tests(source: str) -> list[str]:
    """Comparisons (==, !=, in, not in, match/case, set operations) of a family-ish expression with a family name
    spelt as a literal, literal defaults for one (``families or ("mace", ...)``), and lists of family names kept
    to test against (``SCANNED = ("classical",)``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Tuple, ast.List, ast.Set)):
            elts = node.value.elts
            if elts and all(isinstance(e, ast.Constant) and e.value in FAMILIES for e in elts):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
            continue
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            sides = list(zip(operands, operands[1:]))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr, ast.Sub)):
            sides = [(node.left, node.right)]
        elif isinstance(node, ast.BoolOp):
            sides = list(zip(node.values, node.values[1:]))
        elif isinstance(node, ast.Match):
            sides = [(node.subject, c.pattern.value) for c in node.cases if isinstance(c.pattern, ast.MatchValue)]
        else:
            continue
        for a, b in sides:
            if (_names(a) and _about_families(b)) or (_names(b) and _about_families(a)):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("code, offends", [
    ('if s.family == "deepmd": pass', True),
    ('x = "mace" in families', True),
    ('x = entry.family not in ("mace", "deepmd")', True),
    ('x = families & {"mace", "deepmd"}', True),
    ('x = tuple(args.family or ("mace", "deepmd"))', True),
    ('match entry.family:\n    case "classical":\n        pass', True),
    ('SCANNED_FAMILIES = ("classical",)\nok = fam in SCANNED_FAMILIES', True),
    ('if req.strategy == "deepmd": pass', False),  # a training recipe, not a family
    ('family, model_name = "deepmd", "model.pth"', False),  # the family a trained model is registered as
    ('x = family(s.family).HIDE_GPUS_ON_CPU', False),
])
def test_the_checker_finds_name_tests(code, offends):
    assert bool(family_name_tests(code)) is offends


def test_no_module_outside_potentials_tests_a_family_name():
    offenders = {}
    for pkg in OUTSIDE:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found = family_name_tests(path.read_text(encoding="utf-8"))
            if found:
                offenders[str(path.relative_to(ROOT))] = found
    assert not offenders, f"test a capability of potentials.base.Family instead: {offenders}"


# --- what a family needs of a LAMMPS build: driver preflight reads BUILD_NEEDS --------------------------------------

def test_preflight_names_what_each_family_s_build_needs_lack(monkeypatch):
    from driver import lammps

    bare = lammps.LammpsInfo("/x/lmp", "4 Jul 2026", frozenset({"KSPACE"}), frozenset(), "", ())
    monkeypatch.setattr(lammps, "lammps_info", lambda executable: bare)
    problems = lammps.preflight("/x/lmp", "kokkos", ("mace", "deepmd", "lammps")).problems
    assert problems[0].startswith("LAMMPS has no KOKKOS package")
    assert "LAMMPS lacks ['ML-IAP', 'PYTHON'] for mace runs (MACE runs through ML-IAP's Python coupling" in problems[1]
    assert problems[2].startswith("LAMMPS has no pair style mliap/kk for mace runs")
    assert problems[3].startswith("LAMMPS has no pair style deepmd for deepmd runs: build DeePMD-kit's LAMMPS plugin")
    assert problems[4] == "LAMMPS has no PYTHON package: it embeds no Python to run mace in"
    assert len(problems) == 5  # the lammps family's styles are each entry's own: its pair blocks name them
    assert lammps.preflight("/x/lmp", "cpu", ("deepmd",)).problems == (problems[3],)
