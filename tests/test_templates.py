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

GOLDEN = Path(__file__).parent / "golden" / "nvt_fumi-tosi_700K_seed1.lammps"


def rendered() -> str:
    _, block = resolve("fumi-tosi", ("Li", "F"))
    return render_deck(make_study(), RunSpec("fumi-tosi", 700.0, 1), block)


def test_deck_matches_golden_file():
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered())
    assert rendered() == GOLDEN.read_text()


def test_missing_variable_is_an_error_not_an_empty_string():
    with pytest.raises(jinja2.UndefinedError):
        render("nvt.lammps.j2", title="x")


def test_deck_has_what_diffusion_needs():
    text = rendered()
    assert "units           metal" in text
    assert "custom 5 traj.${segment}.dump id type xu yu zu" in text  # unwrapped Li every 5 steps
    assert "fix             nvt all nvt temp 700.0 700.0 0.1" in text
    assert "velocity all create 700.0 1 " in text and "run             700 upto" in text
