"""The deck template: its rendered text is pinned by a golden file, and LAMMPS accepts it (tests/test_driver.py
runs it). Regenerate the golden file after an intended change with UPDATE_GOLDEN=1."""

import os
from pathlib import Path

import jinja2
import pytest

from driver.render import RunSpec, render_deck
from potentials.catalog import resolve
from templates import render
from tests.conftest import make_study

GOLDEN = Path(__file__).parent / "golden" / "md_fumi-tosi_600K_seed1.lammps"
#: the paper's kind of deck: zero-pressure NPT, then NVT, in the rhombohedral (triclinic) cell
NPT = {"system.volume": "npt", "system.cell": "primitive", "system.supercell": [6, 6, 6], "md.npt_ps": 0.2}


def rendered(**changes) -> str:
    _, block = resolve("fumi-tosi", ("Li", "F"))
    return render_deck(make_study(**changes), RunSpec("fumi-tosi", 600.0, 1), block)


def test_deck_matches_golden_file():
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered(**NPT))
    assert rendered(**NPT) == GOLDEN.read_text()


def test_missing_variable_is_an_error_not_an_empty_string():
    with pytest.raises(jinja2.UndefinedError):
        render("md.lammps.j2", title="x")


def test_deck_has_what_diffusion_needs():
    text = rendered()
    assert "units           metal" in text
    assert "custom 5 traj.${segment}.dump id type xu yu zu" in text  # unwrapped Li every 5 steps
    assert "fix             nvt all nvt temp 600.0 600.0 0.1" in text
    assert "velocity all create 600.0 1 mom yes dist gaussian" in text and "rot yes" not in text
    assert "variable        production_end index 700\n" in text and "run             ${production_end} upto" in text
    assert "fix             momentum all momentum 5 linear 1 1 1" in text  # no drift of the whole crystal
    assert "c_hostcom[1] c_hostcom[2] c_hostcom[3] file fcom.${segment}.txt" in text  # the host lattice's frame
    assert "fix             npt" not in text and "change_box" not in text  # a fixed volume: NVT only


def test_npt_deck_finds_the_cell_and_never_restarts_inside_its_average():
    text = rendered(**NPT)
    lines = text.splitlines()
    npt = lines.index(next(l for l in lines if l.startswith("fix             npt")))
    assert "iso 0.0 0.0 1.0" in lines[npt]
    avg = lines.index("label           npt_average")
    assert lines[avg - 1].startswith("write_restart") and lines[avg + 2] == "restart         0"
    assert "fix             cell all ave/time 1 100 100 v_cell_lx" in text  # the second half: steps 101..200
    change = next(l for l in lines if l.startswith("change_box"))
    assert "xy final $(f_cell[4]:%.12f)" in change and change.endswith("remap units box")  # triclinic
    assert lines.index("label           nvt") > lines.index(change)
    assert "then \"run 300 upto\"" in text  # NPT 200 + NVT equilibration 100 steps
    conventional = rendered(**(NPT | {"system.cell": "conventional", "system.supercell": [3, 3, 3]}))
    assert "xy final" not in conventional  # orthogonal box: no tilt to set
