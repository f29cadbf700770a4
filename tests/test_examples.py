"""The shipped worked example (inputs/examples/licl/): rock-salt LiCl from a CIF with a published potential from a
user catalog (Fumi-Tosi, ``licl-fumi-tosi``) runs end to end through the commands a user types, and the potential
holds experiment's lattice constant and lattice energy.

The example's own lengths take minutes; the end-to-end test runs a copy of its study file with short md lengths
(the CIF beside it, so the shipped file is the one read). The lattice check is an NPT run of the perfect crystal at
300 K and 0 bar, compared with experiment's room-temperature a = 5.13 Å (the CIF's header gives the source); the
static crystal's minimum and lattice energy are a second, cheap check of the parameters' units and signs.
"""

import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from core.rundir import RunDir
from inputs.structure import structure_of
from tests.test_system import toml

EXAMPLE = Path(__file__).parents[1] / "inputs" / "examples" / "licl"
LICL_A_EXPERIMENT = 5.13  # Å, room temperature (inputs/examples/licl/LiCl.cif)
#: LiCl's lattice energy, kJ/mol (Born-Haber cycle, as tabulated in the CRC Handbook's lattice-energy table)
LICL_LATTICE_ENERGY_KJ_MOL = 853.0
EV_PER_KJ_MOL = 1 / 96.485
#: ~12 ps per run, at the top of the example's ladder (where the vacancy hops most often): the end-to-end test checks
#: the path (render, NPT -> NVT, analysis, fit, report), not the numbers
SHORT = {"npt_ps": 2.0, "barostat_damping_ps": 0.5, "equilibration_ps": 0.5, "production_ps": 10.0,
         "dump_interval_ps": 0.02, "thermo_interval_ps": 0.1, "restart_interval_ps": 5.0}
SHORT_T = [750.0, 800.0, 850.0]
#: the vacancy hops every ~3 ps at 800 K (the example's 50 ps runs: 10-20 hops a run), a few times in 10 ps: too few
#: for the event-based window and the min_events gate, so the short copy fits the vacancy's D in a fixed window
#: (as tests/conftest.py's TINY does) and `analysis.arrhenius --with-few-events` fits it
SHORT_ANALYSIS = {"window_ps": [0.5, 3.0]}


def example_copy(folder: Path, monkeypatch, *, md: dict, system: dict | None = None, analysis: dict | None = None,
                 **top) -> Path:
    """The example's study file with its sections (and top-level keys) changed, beside a copy of its CIF; the
    example's catalog added to the built-in one, as its header tells a user to."""
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(EXAMPLE / "catalog.toml"))
    d = tomllib.loads((EXAMPLE / "study.toml").read_text())
    d["md"] |= md
    d["system"] |= system or {}
    d["analysis"] |= analysis or {}
    d |= top
    shutil.copy(EXAMPLE / d["system"]["structure"], folder)
    (folder / "study.toml").write_text(toml(d))
    return folder / "study.toml"


def run_study(study_file: Path, root: Path) -> list[RunDir]:
    from driver.__main__ import main

    assert main(["run", "--study", str(study_file), "--root", str(root), "--no-progress"]) == 0
    return [RunDir(p.parent) for p in sorted(root.rglob("summary.json"))]


def test_the_example_study_is_the_licl_cif_with_the_example_potential_and_renders(tmp_path, monkeypatch):
    from driver.render import render_study
    from inputs.study import load_study
    from inputs.system import build_structure, system_of

    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(EXAMPLE / "catalog.toml"))
    study = load_study(EXAMPLE / "study.toml")
    assert study.potentials == ("licl-fumi-tosi",) and study.system.structure == "LiCl.cif"
    s = system_of(study)
    assert s.material == "LiCl" and s.mobile == "Li" and s.host == ("Cl",)
    built = build_structure(study)
    assert built.count("Li") == 107 and built.count("Cl") == 108 and built.defect.kind == "vacancy"
    paths = render_study(study, tmp_path)
    assert len(paths) == len(study.temperatures_k) == 3
    deck = (paths[0] / "in.lammps").read_text()
    # Li is type 1 and Cl type 2 by the CIF's species (never assumed): each element pair's line lands on its types
    assert "pair_style born/coul/long 7.0\n" in deck and "kspace_style ewald 1e-6\n" in deck
    assert "pair_coeff 1 2 0.2901 0.342 2.401 1.2483 -1.4980" in deck
    assert "pair_coeff 2 2 0.1582 0.342 3.170 69.281 -139.19" in deck


@pytest.mark.needs_build
def test_the_licl_potential_binds_the_crystal_as_experiment_does(monkeypatch):
    """The static perfect crystal (216 ions, LAMMPS through driver.session): the energy minimum over a lies below
    experiment's room-temperature cell (thermal expansion is positive) and within 1.5 % of it, and the lattice energy
    there (relative to free ions: Ewald and Born terms both vanish at infinity) is within 2 % of the Born-Haber value.
    Measured: a0 = 5.084 Å (-0.9 %), -8.742 eV per LiCl (-843 kJ/mol, 1.1 % above it). C and D left in Mayer's
    1e-60 erg units give a0 = 4.985 Å and -8.92 eV (-861 kJ/mol)."""
    from ase.build import bulk

    from driver.session import evaluate

    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(EXAMPLE / "catalog.toml"))
    cells = np.linspace(4.95, 5.25, 7)
    energies = [evaluate("licl-fumi-tosi", bulk("LiCl", "rocksalt", a=a, cubic=True).repeat(3))[0] / 108
                for a in cells]
    assert np.argmin(energies) not in (0, len(cells) - 1)  # a minimum inside the scan
    fit = np.polynomial.Polynomial.fit(cells, energies, 4)
    stationary = fit.deriv().roots()
    (a0,) = [r.real for r in stationary if abs(r.imag) < 1e-9 and cells[0] < r.real < cells[-1]]
    assert a0 < LICL_A_EXPERIMENT and a0 == pytest.approx(LICL_A_EXPERIMENT, rel=0.015)
    assert -fit(a0) == pytest.approx(LICL_LATTICE_ENERGY_KJ_MOL * EV_PER_KJ_MOL, rel=0.02)


@pytest.mark.integration
def test_the_licl_example_runs_end_to_end(tmp_path, monkeypatch):
    """driver run -> analysis.arrhenius -> analysis.report on the shipped example, with short md lengths."""
    from analysis.cli import arrhenius, report

    study_file = example_copy(tmp_path, monkeypatch, md=SHORT, analysis=SHORT_ANALYSIS, temperatures_k=SHORT_T)
    root = tmp_path / "runs"
    runs = run_study(study_file, root)
    assert len(runs) == 3
    for run in runs:
        summary = run.read()
        assert summary.status == "finished"
        assert structure_of(summary.structure).material == "LiCl"
        # the NPT cell of each temperature: the example's potential keeps LiCl near its own lattice constant
        a = (4 * summary.state.volume_per_formula_unit_a3) ** (1 / 3)
        assert a == pytest.approx(LICL_A_EXPERIMENT, rel=0.05)
    study_dir = root / "licl-vacancy"
    assert arrhenius([str(study_dir), "--with-few-events", "--json"]) == 0
    fit = json.loads((study_dir / "arrhenius.json").read_text())
    assert "licl-fumi-tosi" in json.dumps(fit)
    assert report([str(study_dir)]) == 0
    html = next((study_dir / "report").glob("*.html")).read_text()
    assert "licl-fumi-tosi" in html and "LiCl" in html


@pytest.mark.integration
def test_the_licl_potential_gives_experiments_lattice_constant_at_300_k(tmp_path, monkeypatch):
    """Zero-pressure NPT of the perfect 3x3x3 crystal (216 ions) at 300 K: a within 1 % of experiment's 5.13 Å.

    Measured here (2026-12-02): a = 5.1524 ± 0.0004 Å from 20 ps of NPT (+0.44 %; the static minimum is 5.084 Å);
    this test's 6 ps (the mean cell of the second half) has a standard error of ~0.0015 Å. The tolerance, 1 %
    (0.05 Å), is that deviation with room for the short run (30 standard errors), and still catches the slips this
    entry could hide: with D's sign flipped (the r^-8 term repulsive) the same run gives 5.204 ± 0.001 Å (+1.4 %);
    with C and D left in Mayer's 1e-60 erg cm^6 units (x1.6) the static cell shrinks by 2 %.
    """
    md = SHORT | {"npt_ps": 6.0, "production_ps": 0.5, "dump_interval_ps": 0.01, "restart_interval_ps": 0.5}
    study_file = example_copy(tmp_path, monkeypatch, md=md, system={"defect": "none"},
                              analysis={"selection": "li", "window_ps": [0.1, 0.2]}, temperatures_k=[300])
    (run,) = run_study(study_file, tmp_path / "runs")
    st = run.read().state
    v, v_err = st.volume_per_formula_unit_a3, st.volume_per_formula_unit_stderr_a3
    a = (4 * v) ** (1 / 3)
    a_err = a * v_err / (3 * v)
    # the kinetic temperature of 216 atoms fluctuates by ~17 K (300 K x sqrt(2 / 3N)); 0.5 ps of NVT averages few
    assert abs(st.temperature_k - 300) < 30 and a_err < 0.005
    assert a == pytest.approx(LICL_A_EXPERIMENT, rel=0.01)
