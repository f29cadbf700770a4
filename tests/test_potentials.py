import re
import subprocess

import pytest

from core.errors import LammpsError, PotentialError
from core.rundir import Requirements
from driver.lammps import check_requirements, find_lammps, lammps_env, lammps_info
from inputs.structure import rocksalt_lif, write_lammps_data
from potentials.catalog import load_catalog, resolve


def test_classical_block():
    entry, block = resolve("fumi-tosi", ("Li", "F"))
    assert block.lines[0] == "pair_style born/coul/long 6.0"
    assert "pair_modify table 0" in block.lines and block.charges == {"Li": 1.0, "F": -1.0}
    assert any(l.startswith("pair_coeff 1 2 0.2901 0.299 1.995 0.4993 -0.3745") for l in block.lines)
    assert "Tosi" in entry.source


def test_type_order_decides_the_pair_coeff_lines():
    _, swapped = resolve("fumi-tosi", ("F", "Li"))
    assert any(l.startswith("pair_coeff 1 1 0.1582") for l in swapped.lines)  # F-F now type 1-1


def test_unknown_potential_lists_the_catalog():
    with pytest.raises(PotentialError, match="fumi-tosi"):
        resolve("no-such-potential", ("Li", "F"))


def test_elements_are_checked(tmp_path, monkeypatch):
    (tmp_path / "cat.toml").write_text('[nacl]\nfamily = "classical"\nelements = ["Na", "Cl"]\n')
    monkeypatch.setenv("LIF_DIFFUSION_CATALOG", str(tmp_path / "cat.toml"))
    assert "nacl" in load_catalog()
    with pytest.raises(PotentialError, match=r"not \['Li', 'F'\]"):
        resolve("nacl", ("Li", "F"))


def test_missing_lammps_package_is_named():
    info = lammps_info(find_lammps())
    req = Requirements(packages=("NO-SUCH-PKG",), styles=(("pair", "no/such/style"),))
    with pytest.raises(LammpsError, match="NO-SUCH-PKG.*pair style no/such/style"):
        check_requirements(info, req, "x")
    assert "KSPACE" in info.packages and info.has_style("pair", "born/coul/long")


@pytest.mark.integration
def test_fumi_tosi_lattice_constant_is_about_4_01(tmp_path):
    """Relax a perfect 4x4x4 crystal's box at zero pressure: a ≈ 4.01 Å."""
    _, block = resolve("fumi-tosi", ("Li", "F"))
    write_lammps_data(rocksalt_lif(3.95, 4), tmp_path / "d.lmp", charges=block.charges)
    deck = "\n".join(["units metal", "atom_style charge", "boundary p p p", "read_data d.lmp", *block.lines,
                      "thermo_style custom step pe lx press", "fix relax all box/relax iso 0.0 vmax 0.001",
                      "minimize 1e-12 1e-8 2000 20000", 'print "LX $(lx:%.8f)"'])
    (tmp_path / "in.relax").write_text(deck + "\n")
    out = subprocess.run([find_lammps(), "-in", "in.relax", "-log", "none"], cwd=tmp_path, capture_output=True,
                         text=True, env=lammps_env(find_lammps()), timeout=300).stdout
    a = float(re.search(r"^LX (\S+)", out, re.M).group(1)) / 4
    assert a == pytest.approx(4.01, abs=0.015)
