"""Property-based tests of every reader of outside input (issue 21): generated and mutated study files, catalog
files, LAMMPS dumps, DCD files and Arrhenius tables. Each input is either accepted with a finite result or refused
with the project's own error (:class:`core.errors.LifDiffusionError`) — never another exception, never a NaN.

Seeded (``derandomize``) and bounded, so CI time stays predictable: about 2,000 inputs in all, ~1 min.
"""

from __future__ import annotations

import json
import math
import string
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import LifDiffusionError
from tests.conftest import study_dict

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SOME = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# values a careless or hostile user puts where a number, a name or a list belongs
NASTY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20),
                    st.sampled_from([0, -1, 1e-300, 1e300, 2**31, 2**63]))
VALUES = st.one_of(NUMBERS, NASTY_TEXT, st.booleans(), st.lists(NUMBERS, max_size=4), st.none(),
                   st.dictionaries(st.text(max_size=5), NUMBERS, max_size=2))


def _paths(d: dict, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))
        else:
            yield prefix + (k,)


STUDY_KEYS = sorted(_paths(study_dict())) + [("md", "npt_ps"), ("md", "pressure_bar"), ("system", "cell"),
                                             ("md", "config_interval_ps"), ("analysis", "min_events")]


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(STUDY_KEYS), VALUES), min_size=1, max_size=3))
def test_study_loader_accepts_or_refuses_cleanly(changes):
    from inputs.study import study_from_dict

    d = study_dict()
    for path, value in changes:
        where = d
        for p in path[:-1]:
            where = where.setdefault(p, {})
        where[path[-1]] = value
    try:
        study = study_from_dict(d, "fuzz.toml")
    except LifDiffusionError as e:
        assert str(e).startswith("fuzz.toml") and "\n" not in str(e).replace("\\n", "")
        return
    for t in study.temperatures_k:
        assert math.isfinite(t) and t > 0
    for name in ("timestep_fs", "production_ps", "dump_interval_ps", "npt_ps", "pressure_bar"):
        assert math.isfinite(getattr(study.md, name))
    stages = study.md.stages(study.system.volume)
    assert 0 < stages.production_end < 2**31


@FUZZ
@given(text=st.one_of(NASTY_TEXT, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
       at=st.integers(0, 400))
def test_study_file_text_mutations(tmp_path, text, at):
    from inputs.study import load_study
    from tests.conftest import study_toml

    good = study_toml()
    p = tmp_path / "m.toml"
    p.write_text(good[:at] + text + good[at:], encoding="utf-8")
    try:
        load_study(p)
    except LifDiffusionError:
        pass


CATALOG_KEYS = ["family", "elements", "cutoff_angstrom", "kspace_style", "kspace_accuracy", "charges", "pairs",
                "model", "head", "description", "paper_ea_ev"]


@SOME
@given(entry=st.dictionaries(st.sampled_from(CATALOG_KEYS), VALUES, max_size=6),
       family=st.sampled_from(["classical", "mace", "deepmd", "nequip", 5]), name=NASTY_TEXT)
def test_catalog_loader_accepts_or_refuses_cleanly(tmp_path, monkeypatch, entry, family, name):
    from potentials.catalog import load_catalog, resolve

    entry = {"family": family, "elements": ["Li", "F"], **entry}
    doc = {name or "x": {k: v for k, v in entry.items() if v is not None}}
    p = tmp_path / "cat.toml"
    try:
        p.write_text(_toml(doc), encoding="utf-8")
    except (TypeError, ValueError):  # a value TOML cannot hold (nan keys ...): nothing to test
        return
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(p))
    try:
        catalog = load_catalog()
        assert "fumi-tosi" in catalog and catalog["fumi-tosi"].problem is None  # one bad entry breaks only itself
        resolve(name or "x", ("Li", "F"))
    except LifDiffusionError:
        pass


def _toml(doc: dict) -> str:
    """A small TOML writer for the generated catalogs (basic strings, numbers, arrays, inline tables)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(v)

    return "".join(f"[{json.dumps(k)}]\n" + "".join(f"{kk} = {value(vv)}\n" for kk, vv in t.items())
                   for k, t in doc.items())


def _dump_text(n_frames=8, ids=(1, 2, 3)) -> bytes:
    lines = []
    for k in range(n_frames):
        lines += ["ITEM: TIMESTEP", str(10 * k), "ITEM: NUMBER OF ATOMS", str(len(ids)), "ITEM: BOX BOUNDS pp pp pp",
                  "0 10", "0 10", "0 10", "ITEM: ATOMS id type xu yu zu"]
        lines += [f"{i} 1 {1 + 0.01 * k * i:.4f} 2.0 3.0" for i in ids]
    return ("\n".join(lines) + "\n").encode()


MUTATIONS = st.lists(st.tuples(st.sampled_from(["delete", "insert", "replace", "cut", "dup-line"]),
                               st.integers(0, 10**6), st.binary(min_size=1, max_size=12)), min_size=1, max_size=4)


def _mutate(data: bytes, mutations) -> bytes:
    for kind, at, blob in mutations:
        at = at % (len(data) + 1)
        if kind == "delete":
            data = data[:at] + data[at + len(blob):]
        elif kind == "insert":
            data = data[:at] + blob + data[at:]
        elif kind == "replace":
            data = data[:at] + blob + data[at + len(blob):]
        elif kind == "cut":
            data = data[:at]
        else:  # a whole line repeated
            lines = data.split(b"\n")
            k = at % max(1, len(lines))
            data = b"\n".join(lines[:k + 1] + lines[k:])
    return data


def _check_trajectory(traj):
    assert np.isfinite(np.asarray(traj.positions, dtype=float)).all()
    assert len(set(traj.atom_ids.tolist())) == len(traj.atom_ids)
    assert np.all(np.diff(traj.steps) > 0)


@FUZZ
@given(mutations=MUTATIONS, text_mutation=st.sampled_from([None, b"nan", b"inf", b"-5", b"ITEM: ATOMS id",
                                                           b"1e999", b"\x00", b"3 1 1 1 1 1"]),
       compress=st.sampled_from([None, "gzip", "bz2"]))
def test_dump_reader_accepts_or_refuses_cleanly(tmp_path, mutations, text_mutation, compress):
    import bz2
    import gzip

    from analysis.trajectory import read_dump

    data = _dump_text()
    if text_mutation is not None:
        mutations = mutations + [("replace", mutations[0][1] + 7, text_mutation)]
    data = _mutate(data, mutations)
    if compress == "gzip":
        data = gzip.compress(data)
        data = data[: max(10, len(data) - mutations[0][1] % 20)]  # a compressed stream possibly cut short
    elif compress == "bz2":
        data = bz2.compress(data)
    p = tmp_path / "f.dump"
    p.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traj = read_dump(p, 1.0, select="type 1")
    except LifDiffusionError:
        return
    _check_trajectory(traj)


@pytest.fixture(scope="module")
def good_dcd(tmp_path_factory) -> bytes:
    from MDAnalysis.lib.formats.libdcd import DCDFile

    path = tmp_path_factory.mktemp("dcd") / "g.dcd"
    with DCDFile(str(path), "w") as w:
        w.write_header(remarks="t", natoms=3, istart=0, nsavc=10, delta=0.001, is_periodic=True)
        for k in range(12):
            x = np.full((3, 3), 5.0, dtype=np.float32)
            x[:, 0] += 0.01 * k
            w.write(x, np.array([10.0, 90.0, 10.0, 90.0, 90.0, 10.0]))
    return path.read_bytes()


@FUZZ
@given(mutations=MUTATIONS)
def test_dcd_reader_accepts_or_refuses_cleanly(tmp_path, good_dcd, mutations):
    from analysis.trajectory import read_dcd

    p = tmp_path / "f.dcd"
    p.write_bytes(_mutate(good_dcd, mutations))
    try:
        traj = read_dcd(p, 1.0)
    except LifDiffusionError:
        return
    _check_trajectory(traj)


CELLS = st.one_of(st.sampled_from(["500", "600", "1e-6", "2e-6", "1e-7", "", "nan", "inf", "-1", "0", "x", "None",
                                   "1e400", " 700 ", "ok", "few-events", "no-diffusive-regime"]),
                  st.text(alphabet=string.printable, max_size=6))


@FUZZ
@given(rows=st.lists(st.lists(CELLS, min_size=0, max_size=6), min_size=0, max_size=6),
       header=st.sampled_from(["temperature_k,d_cm2_s,d_stderr_cm2_s",
                               "\ufefftemperature_k,d_cm2_s,d_stderr_cm2_s,n_samples,potential,status",
                               "temperature_k,d_cm2_s", "potential,temperature_k,d_stderr_cm2_s,d_cm2_s"]))
def test_arrhenius_table_reader_accepts_or_refuses_cleanly(tmp_path, rows, header):
    from analysis.arrhenius import fit_table, read_table

    p = tmp_path / "t.csv"
    p.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table, _ = read_table(p)
            fits, why = fit_table(table)
    except LifDiffusionError:
        return
    for fit in fits.values():
        assert math.isfinite(fit.ea_ev) and math.isfinite(fit.d0_cm2_s)
        assert fit.ea_stderr_ev is None or math.isfinite(fit.ea_stderr_ev)
    assert all(isinstance(w, str) and w for w in why.values())
