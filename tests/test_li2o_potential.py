"""The rigid-ion Li2O catalog entry (li2o-teter): its pair block, and its static zero-pressure lattice constant from a
LAMMPS box relaxation against a direct lattice sum (Buckingham pairs summed over images within the cutoff plus the
fluorite Madelung energy), the independent estimate."""

import re
import subprocess

import numpy as np
import pytest

from driver.lammps import find_lammps, lammps_env
from inputs.structure import antifluorite_li2o, write_lammps_data
from potentials.catalog import resolve

#: Coulomb's constant in LAMMPS metal units (eV Å / e²), and the Madelung constant of the fluorite structure
#: (referred to the shortest cation-anion distance √3a/4, per formula unit, charges z and 2z)
COULOMB_EV_A, MADELUNG_FLUORITE = 14.399645, 2.51939


def test_the_li2o_entry_is_a_neutral_rigid_ion_block():
    entry, block = resolve("li2o-teter", ("Li", "O"))
    assert block.lines[0] == "pair_style born/coul/long 9.0" and "pair_modify table 0" in block.lines
    assert 2 * block.charges["Li"] + block.charges["O"] == pytest.approx(0.0)  # Li2O is neutral
    assert any(line.startswith("pair_coeff 2 2 2029.22 0.343645 0 192.58 0") for line in block.lines)
    assert "Du" in entry.source and "s41524-020-0291-z" in entry.source


def lattice_sum_energy_ev(a: float, params: dict, charges: dict, cutoff: float) -> float:
    """Energy per formula unit of perfect antifluorite Li2O: born pairs within ``cutoff`` plus the Madelung energy."""
    s = antifluorite_li2o(a, 1)
    species = np.array(s.species)
    n = int(np.ceil(cutoff / a)) + 1
    shifts = np.array([(i, j, k) for i in range(-n, n + 1) for j in range(-n, n + 1) for k in range(-n, n + 1)]) @ s.cell
    energy = 0.0
    for i, pi in enumerate(s.positions):
        for j, pj in enumerate(s.positions):
            r = np.linalg.norm(pj + shifts - pi, axis=1)
            r = r[(r > 1e-9) & (r < cutoff)]
            key = f"{species[i]}-{species[j]}"
            big_a, rho, sigma, c, d = params.get(key, params.get("-".join(reversed(key.split("-")))))
            energy += 0.5 * np.sum(big_a * np.exp((sigma - r) / rho) - c / r**6 + d / r**8)
    madelung = -MADELUNG_FLUORITE * charges["Li"] * abs(charges["O"]) * COULOMB_EV_A / (np.sqrt(3) * a / 4)
    return energy / 4 + madelung


@pytest.mark.integration
def test_li2o_static_lattice_constant_matches_a_direct_lattice_sum(tmp_path):
    from scipy.optimize import minimize_scalar

    entry, block = resolve("li2o-teter", ("Li", "O"))
    write_lammps_data(antifluorite_li2o(4.55, 4), tmp_path / "d.lmp", charges=block.charges, type_order=("Li", "O"))
    deck = "\n".join(["units metal", "atom_style charge", "boundary p p p", "read_data d.lmp", *block.lines,
                      "fix relax all box/relax iso 0.0 vmax 0.001", "minimize 1e-12 1e-8 2000 20000",
                      'print "A $(lx/4:%.8f) E $(pe/256:%.8f)"'])
    (tmp_path / "in.relax").write_text(deck + "\n")
    out = subprocess.run([find_lammps(), "-in", "in.relax", "-log", "none"], cwd=tmp_path, capture_output=True,
                         text=True, env=lammps_env(find_lammps()), timeout=300).stdout
    found = re.search(r"^A (\S+) E (\S+)", out, re.M)
    assert found, out[-2000:]
    a_lammps, e_lammps = float(found.group(1)), float(found.group(2))
    pairs = {k: tuple(float(x) for x in v) for k, v in entry.params["pairs"].items()}
    best = minimize_scalar(lattice_sum_energy_ev, bounds=(4.3, 4.8), method="bounded", options={"xatol": 1e-6},
                           args=(pairs, block.charges, float(entry.params["cutoff_angstrom"])))
    assert a_lammps == pytest.approx(best.x, abs=2e-4) and e_lammps == pytest.approx(best.fun, abs=1e-3)
    assert a_lammps == pytest.approx(4.61, rel=0.03)  # static, 0 K: below the 300 K cell (4.555 Å measured)
