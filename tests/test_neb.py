"""Static barriers (driver.neb): the ASE calculator on the project's LAMMPS, and climbing-image NEBs checked against
the symmetry of the hops and an independent constrained relaxation (the drag method) at their midpoint."""

import numpy as np
import pytest

from core.errors import InputError
from driver.neb import LammpsCalculator, interstitialcy_barrier, neb_barrier, vacancy_barrier
from driver.session import evaluate, open_lammps
from driver.stability import relax
from inputs.defects import add_defect
from inputs.structure import antifluorite_li2o, rocksalt_lif


@pytest.mark.needs_build
@pytest.mark.parametrize("cell", ["conventional", "primitive"])
def test_the_calculator_matches_a_fresh_lammps_after_the_atoms_move(cell):
    """Each evaluation reuses one LAMMPS: its energy and forces must equal a fresh one's, also in a triclinic cell
    (LAMMPS's frame is rotated from ASE's), whatever order LAMMPS keeps its atoms in."""
    s = rocksalt_lif(4.03, 3 if cell == "conventional" else 5, cell)  # type: ignore[arg-type]
    atoms = s.atoms()
    rng = np.random.default_rng(0)
    with LammpsCalculator("fumi-tosi", atoms, s.type_order) as calc:
        for _ in range(3):
            moved = atoms.copy()
            moved.positions += rng.normal(0, 0.1, moved.positions.shape)
            moved.calc = calc
            energy, forces = evaluate("fumi-tosi", moved)
            assert moved.get_potential_energy() == pytest.approx(energy, abs=1e-8)
            assert np.abs(moved.get_forces() - forces).max() < 1e-8
        assert calc.evaluations == 3


@pytest.mark.needs_build
def test_the_calculator_refuses_another_cell():
    s = rocksalt_lif(4.03, 3)
    with LammpsCalculator("fumi-tosi", s.atoms(), s.type_order) as calc:
        other = rocksalt_lif(4.10, 3).atoms()
        other.calc = calc
        with pytest.raises(InputError, match="different cell"):
            other.get_potential_energy()


@pytest.mark.needs_build
def test_end_points_that_are_one_state_are_refused():
    atoms = rocksalt_lif(4.03, 3).atoms()
    with pytest.raises(InputError, match="same state"):
        neb_barrier("fumi-tosi", atoms, atoms.copy(), "nothing")


def test_antifluorite_has_no_collinear_interstitialcy():
    """The octahedral interstitial of Li2O pushes a Li along <111> towards an O site, not another void."""
    with pytest.raises(InputError, match="no collinear interstitialcy"):
        interstitialcy_barrier("li2o-teter", antifluorite_li2o, 4.555, 4)


@pytest.mark.integration
def test_fumi_tosi_interstitialcy_barrier_at_4_107_angstrom_and_its_fall_with_expansion():
    """The audit's regression number: ~0.065 eV at 4.107 Å (DESIGN: each moving atom shifts ~1.2 Å); the barrier
    falls as the lattice expands towards the instability of the host (4.15 Å)."""
    b = interstitialcy_barrier("fumi-tosi", rocksalt_lif, 4.107, 4)
    assert b.converged and b.n_atoms == 513
    assert abs(b.asymmetry_ev) < 1e-4  # the two end points are equivalent by symmetry
    assert b.barrier_ev == pytest.approx(0.065, abs=0.005)
    assert b.hop_angstrom == pytest.approx(1.2, abs=0.1)
    assert max(b.energies_ev) == b.barrier_ev and b.energies_ev[0] == 0.0
    wider = interstitialcy_barrier("fumi-tosi", rocksalt_lif, 4.13, 4)
    assert wider.barrier_ev < b.barrier_ev - 0.005


def midpoint_energy(potential: str, initial, hopper: int, midpoint: np.ndarray) -> float:
    """The drag method: the hopping atom held at the hop's midpoint (a point its symmetry makes the saddle), every
    other atom relaxed; the energy (eV)."""
    atoms = initial.atoms()
    atoms.positions[hopper] = midpoint
    with open_lammps(potential, atoms, type_order=initial.type_order) as lmp:
        lmp.commands_list(["thermo_style one", f"group hop id {hopper + 1}", "fix hold hop setforce 0 0 0",
                           "min_style fire", "min_modify norm max", "minimize 0 1e-4 20000 200000"])
        return float(lmp.get_thermo("pe"))


@pytest.mark.integration
def test_li2o_vacancy_barrier_is_symmetric_and_matches_the_drag_method():
    """li2o-teter at its 300 K cell (4.555 Å), 767 atoms: the NEB barrier of the <100> hop (a/2) equals the energy
    of the hopping Li held at the midpoint with the rest relaxed, both from the relaxed vacancy cell."""
    a = 4.555
    b = vacancy_barrier("li2o-teter", antifluorite_li2o, a, 4)
    assert b.converged and b.n_atoms == 767 and abs(b.asymmetry_ev) < 1e-4
    assert 1.5 < b.hop_angstrom < a / 2 + 0.01  # the hopping Li relaxes towards the vacancy in both end states
    initial = add_defect(antifluorite_li2o(a, 4), "vacancy")
    site = np.asarray(initial.defect.vacancy_site) @ initial.cell
    li = [i for i, s in enumerate(initial.species) if s == "Li"]
    d = initial.positions[li] - site
    d -= np.round(d @ np.linalg.inv(initial.cell)) @ initial.cell
    k = int(np.argmin(np.round(np.linalg.norm(d, axis=1), 6)))
    assert np.linalg.norm(d[k]) == pytest.approx(a / 2)
    e0 = relax("li2o-teter", initial.atoms(), type_order=initial.type_order).energy_ev
    drag = midpoint_energy("li2o-teter", initial, li[k], site + d[k] / 2) - e0
    assert b.barrier_ev == pytest.approx(drag, abs=0.005), (b.barrier_ev, drag)
    assert 0.05 < b.barrier_ev < 1.0  # a Li vacancy hop: tenths of an eV (measured 0.20 eV; literature 0.3-0.5)
