"""One strict loader for every TOML input (core.config): the dataclass's annotations are the schema, choices come
from its Literal types, and every error names the file and the field. Checked on its own and through the three
kinds of input file: study, site, sweep."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from core.config import choices, from_dict
from core.errors import InputError


@dataclass(frozen=True)
class Inner:
    n: tuple[int, ...]
    kind: Literal["fps", "random"] = "fps"


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    x: float = 1.0
    flag: bool = False
    pair: tuple[float, float] | None = None
    table: dict[str, int] = field(default_factory=dict)
    source: str = field(default="", metadata={"from_file": False})


def test_a_good_table_becomes_the_typed_record():
    o = from_dict(Outer, {"name": "a", "inner": {"n": [1, 2], "kind": "random"}, "x": 2, "pair": [1, 2.5],
                          "table": {"k": 3}}, "f.toml")
    assert o == Outer("a", Inner((1, 2), "random"), 2.0, False, (1.0, 2.5), {"k": 3}, source="f.toml")
    assert isinstance(o.x, float) and choices(Inner, "kind") == ("fps", "random")


@pytest.mark.parametrize("data, message", [
    ({"inner": {"n": [1]}}, "f.toml: name: missing (required)"),
    ({"name": "a", "inner": {"n": ["ten"]}}, "f.toml: inner.n[0]: expected an integer, got 'ten'"),
    ({"name": "a", "inner": {"n": [1], "kind": "kmeans"}}, "f.toml: inner.kind: 'kmeans' is not one of fps, random"),
    ({"name": "a", "inner": {"n": [1]}, "x": "2"}, "f.toml: x: expected a number, got '2'"),
    ({"name": "a", "inner": {"n": [1]}, "x": True}, "f.toml: x: expected a number, got True"),
    ({"name": "a", "inner": {"n": [1]}, "flag": 1}, "f.toml: flag: expected true or false, got 1"),
    ({"name": "a", "inner": {"n": [1]}, "pair": [1]}, "f.toml: pair: expected a list of 2, got [1]"),
    ({"name": "a", "inner": {"n": [1]}, "colour": "red"}, "f.toml: colour: unknown key; an outer has name, inner"),
    ({"name": "a", "inner": {"n": [1], "m": 2}}, "f.toml: inner.m: unknown key; inner takes n, kind"),
    ({"name": "a", "inner": {"n": [1]}, "source": "x"}, "f.toml: source: unknown key"),
    ({"name": "a", "inner": [1]}, "f.toml: inner: expected a table, got [1]"),
    ({"name": "a", "inner": {"n": [1]}, "table": {"k": "v"}}, "f.toml: table.k: expected an integer, got 'v'"),
])
def test_bad_tables_are_refused_with_file_and_field(data, message):
    with pytest.raises(InputError) as e:
        from_dict(Outer, data, "f.toml")
    assert str(e.value).startswith(message), str(e.value)


SWEEP = """name = "s"
foundation = "mace-mpa-0"
[data]
target = ["x.xyz"]
[selection]
{selection}
[training]
strategies = ["naive"]
"""


@pytest.mark.parametrize("selection, message", [
    ('n = ["ten"]', "selection.n[0]: expected an integer, got 'ten'"),
    ('n = [5]\nmethod = "kmeans"', "selection.method: 'kmeans' is not one of fps, random"),
    ('n = [5]\ndescriptor = "soap"', "selection.descriptor: 'soap' is not one of rdf, mace"),
    ('n = 5', "selection.n: expected a list, got 5"),
    ('n = [5]\nsize = 3', "selection.size: unknown key; selection takes n, method, descriptor"),
])
def test_sweep_files_are_read_strictly(tmp_path, selection, message):
    from finetune.sweep import load_sweep

    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(selection=selection))
    with pytest.raises(InputError) as e:
        load_sweep(path)
    assert str(e.value) .startswith(f"{path}: {message}"), str(e.value)


def test_a_good_sweep_resolves_its_paths_against_its_folder(tmp_path):
    from finetune.sweep import load_sweep

    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(selection="n = [5, 10]"))
    sweep = load_sweep(path)
    assert sweep.data.target == (str(tmp_path / "x.xyz"),) and sweep.selection.n == (5, 10)
    assert sweep.selection.method == "fps" and sweep.source == str(path)


@pytest.mark.parametrize("text, message", [
    ('scheduler = "lsf"', "scheduler: 'lsf' is not one of slurm, pbs"),
    ('max_parallel = "4"', "max_parallel: expected an integer, got '4'"),
    ('requeue_on_timeout = "yes"', "requeue_on_timeout: expected true or false, got 'yes'"),
    ('[gpu]\ngpus = 2', "gpu.gpus: unknown key; gpu takes cpus_per_task, gpus_per_task, mem"),
    ('modules = "cuda"', "modules: expected a list, got 'cuda'"),
])
def test_site_files_are_read_strictly(tmp_path, text, message):
    from driver.cluster import load_site

    path = tmp_path / "site.toml"
    path.write_text(text + "\n")
    with pytest.raises(InputError) as e:
        load_site(path)
    assert str(e.value).startswith(f"{path}: {message}"), str(e.value)


def test_site_sections_keep_their_own_defaults(tmp_path):
    from driver.cluster import load_site

    path = tmp_path / "site.toml"
    path.write_text('[gpu]\nmem = "64G"\n[cpu]\ncpus_per_task = 2\n')
    site = load_site(path)
    assert (site.gpu.cpus_per_task, site.gpu.gpus_per_task, site.gpu.mem) == (8, 1, "64G")
    assert (site.cpu.cpus_per_task, site.cpu.gpus_per_task, site.cpu.mem) == (2, 0, "4G")
