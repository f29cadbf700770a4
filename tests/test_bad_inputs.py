"""The bad-input table of the README ("What a bad input gets"), one test per row: each case raises one clear
error naming the file and field (or the dump and frame), and leaves nothing half-written. The README row of each
case must quote the message this test matches, so the documentation cannot drift from the code."""

import re
from pathlib import Path

import numpy as np
import pytest

from analysis.arrhenius import fit_arrhenius
from analysis.diffusion import Diffusivity, estimate, msd_stats
from analysis.trajectory import read_dcd
from core.errors import LifDiffusionError
from tests.conftest import make_study, study_toml

README = Path(__file__).parents[1] / "README.md"


def render(tmp_path, **changes):
    from driver.render import render_study

    return render_study(make_study(**changes), tmp_path / "runs")


def study_file(tmp_path, text):
    from inputs.study import load_study

    p = tmp_path / "bad.toml"
    p.write_text(text)
    return load_study(p)


GOOD = study_toml()  # a valid study file, spoilt one line at a time below


def dump(tmp_path, columns="id type xu yu zu", steps=(0, 10, 20), types=(1, 1, 2), cut=False):
    lines = []
    for s in steps:
        lines += ["ITEM: TIMESTEP", str(s), "ITEM: NUMBER OF ATOMS", str(len(types)), "ITEM: BOX BOUNDS pp pp pp",
                  "0 10", "0 10", "0 10", f"ITEM: ATOMS {columns}"]
        lines += [" ".join([str(i + 1), str(t)] + ["1.0"] * (len(columns.split()) - 2)) for i, t in enumerate(types)]
    text = "\n".join(lines) + "\n"
    p = tmp_path / "t.dump"
    p.write_text(text[:-7] if cut else text)
    return p


def dump_changing(tmp_path):
    p = dump(tmp_path)
    text = p.read_text().split("ITEM: TIMESTEP\n")
    text[2] = text[2].replace("NUMBER OF ATOMS\n3", "NUMBER OF ATOMS\n2").rsplit("\n", 2)[0] + "\n"
    p.write_text("ITEM: TIMESTEP\n".join(text))
    return p


def wrapped_dcd(tmp_path):
    """A DCD of a walker that crosses the box: wrapped back in, it jumps by a box length."""
    from MDAnalysis.lib.formats.libdcd import DCDFile

    path = tmp_path / "w.dcd"
    with DCDFile(str(path), "w") as w:
        w.write_header(remarks="t", natoms=2, istart=0, nsavc=10, delta=0.001, is_periodic=True)
        for k in range(20):
            x = np.array([[(0.9 * k) % 10.0, 5.0, 5.0], [5.0, 5.0, 5.0]], dtype=np.float32)
            w.write(x, np.array([10.0, 90.0, 10.0, 90.0, 90.0, 10.0]))
    return path


def read(path, select="type 1"):
    from analysis.trajectory import read_dump

    return read_dump(path, 1.0, select=select)


def mace_catalog(tmp_path, monkeypatch, **kw):
    from tests.models import tiny_mace

    model = tiny_mace(tmp_path / "m.model", **kw)
    cat = tmp_path / "cat.toml"
    cat.write_text(f'[m]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{model}"\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))
    monkeypatch.setenv("LIF_DIFFUSION_CACHE", str(tmp_path / "cache"))


def catalog_entry(tmp_path, monkeypatch, text):
    cat = tmp_path / "cat.toml"
    cat.write_text(text)
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(cat))


# (case id, what is wrong, how to provoke it, the message it must produce)
CASES = [
    ("study-missing-key", "a required key is missing",
     lambda tp, mp: study_file(tp, GOOD.replace("timestep_fs = 1.0\n", "")), "bad.toml: md.timestep_fs: missing"),
    ("study-wrong-type", "a value of the wrong type",
     lambda tp, mp: study_file(tp, GOOD.replace("seeds = [1]", 'seeds = ["one"]')), "bad.toml: seeds"),
    ("study-unknown-key", "a misspelt key",
     lambda tp, mp: study_file(tp, GOOD.replace("seeds = [1]", "seeds = [1]\ntemperature = 5")),
     "bad.toml: temperature: unknown key"),
    ("study-unknown-potential", "a potential the catalog does not have",
     lambda tp, mp: render(tp, potentials=["nope"]), "test.toml: potentials: unknown potential 'nope'"),
    ("study-negative-temperature", "T ≤ 0",
     lambda tp, mp: render(tp, temperatures_k=[-5.0]), "temperatures_k"),
    ("study-zero-timestep", "timestep ≤ 0",
     lambda tp, mp: render(tp, **{"md.timestep_fs": 0.0}), "md.timestep_fs: must be positive"),
    ("study-dump-longer-than-run", "dump interval longer than the production run",
     lambda tp, mp: render(tp, **{"md.dump_interval_ps": 5.0}), "md.dump_interval_ps: 5.0 ps is longer than"),
    ("study-duplicate-runs", "the same run twice (a repeated seed, temperature or potential)",
     lambda tp, mp: render(tp, seeds=[1, 1]), "duplicate"),
    ("structure-too-small", "supercell narrower than twice the cutoff",
     lambda tp, mp: render(tp, **{"system.supercell": [2, 2, 2]}), "test.toml: system.supercell [2, 2, 2]: "),
    ("structure-overlap", "atoms closer than physical (lattice constant far too small)",
     lambda tp, mp: render(tp, **{"system.lattice_constant_angstrom": 1.0}),
     "test.toml: system (structure = 'LiF', lattice_constant_angstrom = 1.0, supercell = [3, 3, 3], "
     "cell = 'conventional', defect = 'interstitial'): atoms overlap"),
    ("model-wrong-elements", "a model without Li or F",
     lambda tp, mp: (mace_catalog(tp, mp, atomic_numbers=(3, 8)), render(tp, potentials=["m"])),
     "covers elements ['Li', 'O'], not ['F']"),
    ("model-corrupt", "a model file that is not one",
     lambda tp, mp: (catalog_entry(tp, mp, f'[m]\nfamily = "mace"\nelements = ["Li", "F"]\nmodel = "{tp}/c.model"\n'),
                     (tp / "c.model").write_bytes(b"garbage"), render(tp, potentials=["m"])),
     "is not a readable MACE model"),
    ("model-wrong-family", "a family this build does not know",
     lambda tp, mp: (catalog_entry(tp, mp, '[m]\nfamily = "nequip"\nelements = ["Li", "F"]\n'),
                     render(tp, potentials=["m"])), "has family 'nequip', which this build does not support"),
    ("model-unknown-key", "a misspelt key in a catalog entry",
     lambda tp, mp: (catalog_entry(tp, mp, f'[m]\nfamily = "deepmd"\nelements = ["Li", "F"]\nmodel = "{tp}/x.pth"\n'
                                           'sha265 = "ab"\n'), render(tp, potentials=["m"])),
     "[m] has unknown key(s) sha265; a deepmd entry takes"),
    ("model-wrong-file-kind", "a MACE file given as a DeePMD model",
     lambda tp, mp: (catalog_entry(tp, mp, f'[m]\nfamily = "deepmd"\nelements = ["Li", "F"]\nmodel = "{tp}/x.model"\n'),
                     (tp / "x.model").write_bytes(b"x"), render(tp, potentials=["m"])),
     "is not a frozen DeePMD model"),
    ("dump-wrapped", "wrapped coordinates (x y z)",
     lambda tp, mp: read(dump(tp, "id type x y z")), "has no unwrapped coordinates (columns: id type x y z)"),
    ("dump-missing-columns", "no coordinates at all",
     lambda tp, mp: read(dump(tp, "id type vx vy vz")), "has no unwrapped coordinates (columns: id type vx vy vz)"),
    ("dump-non-monotonic", "timesteps that go back",
     lambda tp, mp: read(dump(tp, steps=(0, 10, 5, 20))), "timesteps are not increasing at frame 2"),
    ("dump-no-li", "no Li atoms selected",
     lambda tp, mp: read(dump(tp, types=(2, 2, 2))), "matches no atoms"),
    ("dump-atom-count-changes", "a frame with other atoms than the first",
     lambda tp, mp: read(dump_changing(tp)), "frame 1 (step 10) has 2 atoms, the first frame 3"),
    ("dcd-wrapped", "a DCD written without dump_modify unwrap yes",
     lambda tp, mp: read_dcd(wrapped_dcd(tp), 1.0), "the coordinates are wrapped; write the DCD with "
                                                     "'dump_modify ID unwrap yes'"),
    ("analysis-fit-window", "fit window outside the data",
     lambda tp, mp: estimate([msd_stats(read(dump(tp, steps=tuple(range(0, 300, 10)))).positions, 0.01)], 0.1, 5.0),
     "fit window ends at 5 ps, beyond"),
    ("analysis-one-temperature", "an Arrhenius fit with one temperature",
     lambda tp, mp: fit_arrhenius([Diffusivity(500.0, 1e-6, 1e-7), Diffusivity(500.0, 2e-6, 1e-7)]),
     "needs at least two temperatures"),
    ("arrhenius-d-not-positive", "D ≤ 0 at a temperature",
     lambda tp, mp: fit_arrhenius([Diffusivity(500.0, -1e-9, 1e-9), Diffusivity(600.0, 2e-6, 1e-7)]),
     "has no logarithm: leave those temperatures out"),
    ("arrhenius-no-error", "a point without its standard error",
     lambda tp, mp: fit_arrhenius([Diffusivity(500.0, 1e-6, None), Diffusivity(600.0, 2e-6, 1e-7)]),
     "no standard error of D at T = [500.0] K: a weighted fit needs every point's error"),
]


@pytest.mark.parametrize("case, what, provoke, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_message(tmp_path, monkeypatch, case, what, provoke, message):
    with pytest.raises(LifDiffusionError, match=re.escape(message)) as info:
        provoke(tmp_path, monkeypatch)
    assert "\n" not in str(info.value).strip() or case.startswith("model")
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.rglob("*")), "a refused input left files behind"


def test_truncated_dump_is_read_up_to_the_last_whole_frame_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="the last frame is incomplete"):
        traj = read(dump(tmp_path, steps=(0, 10, 20, 30), cut=True))
    assert traj.n_frames == 3


def test_readme_table_quotes_every_message():
    text = README.read_text()
    section = text.split("## What a bad input gets", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines()
            if line.startswith("| `")}
    for case, _, _, message in CASES:
        assert case in rows, f"README bad-input table has no row for {case}"
        assert message in rows[case].replace("\\|", "|"), f"README row {case} does not quote {message!r}"
