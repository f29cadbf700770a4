"""The floor plan, checked: which package may import which, and who owns the run directory's file names.

Layers, bottom to top (README "How it is organised"): core < inputs < potentials < templates < analysis < driver <
finetune. A package imports only from the layers below it (imports inside functions count too); command-line
``__main__`` modules may sit on top of everything."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LAYERS = ("core", "inputs", "potentials", "templates", "analysis", "driver", "finetune")
#: the run directory's file names: spelt in core/rundir.py alone
RUNDIR_NAMES = ("summary.json", "in.lammps", "data.lmp", "structure.json", "traj.", "restart.a.bin",
                "restart.b.bin", "final.restart", "analysis.json", "analysis.npz", "configs.", "log.")


def modules():
    for pkg in LAYERS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield pkg, path


def imported_packages(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & set(LAYERS)


def package_graph(skip_main: bool = True) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {p: set() for p in LAYERS}
    for pkg, path in modules():
        if skip_main and path.name == "__main__.py":
            continue
        graph[pkg] |= imported_packages(path) - {pkg}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack + [node, nxt]
            if nxt not in state and (found := visit(nxt, stack + [node])):
                return found
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_no_import_cycle_between_packages():
    assert find_cycle(package_graph()) is None, find_cycle(package_graph())


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("pkg", LAYERS)
def test_each_package_imports_only_the_layers_below(pkg):
    below = set(LAYERS[:LAYERS.index(pkg)])
    offenders = {}
    for p, path in modules():
        if p == pkg and path.name != "__main__.py":
            bad = imported_packages(path) - below - {pkg}
            if bad:
                offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"{pkg} may import only {sorted(below)}: {offenders}"


def _code_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_only_core_rundir_spells_the_run_directory():
    owner = ROOT / "core" / "rundir.py"
    found = []
    for _, path in modules():
        if path == owner:
            continue
        for line, s in _code_strings(path):
            if any(s == name or (name.endswith(".") and s.startswith(name) and len(s) > len(name))
                   for name in RUNDIR_NAMES):
                found.append(f"{path.relative_to(ROOT)}:{line}: {s!r}")
    assert not found, "run-directory file names outside core/rundir.py:\n" + "\n".join(found)


#: the chemistry is named once: element names of the built-in crystals appear in string literals only in the data
#: of inputs/structure.py (module-level assignments: LIF_TYPE_ORDER, BUILTINS, ...); everything else reads the species
#: from a structure, its record or the study (catalog.toml, tests and docs may name elements freely)
ELEMENTS = ("Li", "F", "O")
CHEMISTRY_OWNER = ROOT / "inputs" / "structure.py"
#: an element name as a whole word (not inside another word, a dotted name, a %-format, a {{ placeholder }} or a
#: norm: |F| is a force)
ELEMENT_WORD = re.compile(r"(?<![\w.%{|])(Li|F|O)(?![\w}|])")
#: text after this in a string is an example for the reader (``e.g. ["Li", "F"]`` in a message): it assumes nothing
EXAMPLE = "e.g."


def element_literals(source: str, data_only: bool = False) -> list[tuple[int, str]]:
    """(line, name) of every element name of :data:`ELEMENTS` written as a whole word into a string constant of
    Python ``source``: the whole string (``"Li"``) or a word of it (``"all Li (tracer)"``), the constant parts of
    f-strings included (``f"{t} K: all Li {d}"``); docstrings left out (a name in prose assumes nothing), and the
    text after :data:`EXAMPLE`; ``data_only``: constants inside module-level assignments are allowed."""
    tree = ast.parse(source)
    allowed: set[int] = set()
    if data_only:
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                allowed |= {id(n) for n in ast.walk(node)}
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, m.group(1)) for n in ast.walk(tree)  # ast.walk visits an f-string's constant parts too
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in allowed | docstrings
            for m in ELEMENT_WORD.finditer(n.value.split(EXAMPLE)[0])]


def template_elements(text: str, comments: bool = False) -> list[tuple[int, str]]:
    """(line, word) of element names of :data:`ELEMENTS` written into a template's lines: a deck's LAMMPS lines
    (its ``#`` comments aside), or every line of the report's text (``comments``: HTML has none of LAMMPS's)."""
    return [(k, m.group(1)) for k, line in enumerate(text.splitlines(), start=1)
            if comments or not line.lstrip().startswith("#") for m in ELEMENT_WORD.finditer(line)]


def test_the_chemistry_is_named_once():
    found = []
    for path in [p for _, p in modules()] + sorted((ROOT / "tools").rglob("*.py")):
        for line, s in element_literals(path.read_text(), data_only=path == CHEMISTRY_OWNER):
            found.append(f"{path.relative_to(ROOT)}:{line}: {s!r}")
    for path in sorted((ROOT / "templates").glob("*.j2")):  # the report's prose too: its species are passed in
        for line, s in template_elements(path.read_text(), comments=path.name.endswith(".html.j2")):
            found.append(f"{path.relative_to(ROOT)}:{line}: {s!r}")
    assert not found, ("element names outside the built-in crystals' data (inputs/structure.py): read them from "
                       "the structure or its record:\n" + "\n".join(found))


def test_the_chemistry_check_finds_an_element_name():
    render = (ROOT / "driver" / "render.py").read_text()
    assert element_literals(render) == []
    assert element_literals(render + '\nMOBILE = "Li"\n') == [(render.count("\n") + 2, "Li")]
    assert element_literals('def f(s):\n    return s.count("F")\n') == [(2, "F")]
    assert element_literals('TYPES = ("Li", "F")\n', data_only=True) == []  # the owner's data
    assert element_literals('def f():\n    return ("Li", "F")\n', data_only=True) == [(2, "Li"), (2, "F")]
    assert template_elements("group           Li type 1\ncompute         fcom F com\n") == [(1, "Li"), (2, "F")]
    assert template_elements("# Li positions\ngroup mobile type {{ mobile_type }}\nformat float %.8f\n") == []
    # words of prose, in plain strings, f-strings' constant parts and the report's HTML, but not in examples
    assert element_literals('LABELS = {"li": "all Li (tracer)"}\n') == [(1, "Li")]
    assert element_literals('def f(t):\n    print(f"{t:g} K: all Li {t}; the all-Li D")\n') == [(2, "Li"), (2, "Li")]
    assert element_literals('def f(t):\n    return f"{t:.3F} %F {t.Li} LiF F2 {{O}} max |F|"\n') == []
    assert element_literals('def f(x):\n    raise ValueError(f"got {x}, e.g. [\\"Li\\", \\"F\\"]")\n') == []
    assert template_elements("<th>N<sub>Li</sub>·D</th>\n# F ions\n", comments=True) == [(1, "Li"), (2, "F")]
    assert template_elements("<th>N<sub>{{ mobile }}</sub>·D</th>\n", comments=True) == []
