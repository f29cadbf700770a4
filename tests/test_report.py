"""The study report: from synthetic studies (random walks with a known Arrhenius law) and from a small real one,
opened in headless Chromium (make chromium); hop counting; error bars on walks with correlated steps."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.diffusion import A2_PER_PS_TO_CM2_PER_S, estimate_diffusion
from analysis.hops import count_hops, too_few
from analysis.report import build_report
from analysis.trajectory import Trajectory
from tests.conftest import random_walk, write_fake_run

CHROMIUM = Path(sys.prefix) / "bin" / "chromium-lif"
K_B = 8.617333262e-5


def synthetic_study(root: Path, ea_ev: float = 0.3, d0_a2_ps: float = 2.0e3, temps=(500.0, 600.0, 700.0, 800.0)):
    rng = np.random.default_rng(7)
    for pot in ("mace-mpa-0", "my-model"):
        for t in temps:
            d = d0_a2_ps * np.exp(-ea_ev / (K_B * t))
            for seed in (1, 2):
                write_fake_run(root, pot, t, seed, 5.0 + random_walk(400, 12, d, 0.05, rng), 0.05, defect_ids=(12,))
    return root


def chromium(*args) -> subprocess.CompletedProcess:
    assert CHROMIUM.is_file(), "run `make chromium` (make test does)"
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           *args], capture_output=True, text=True, timeout=180)


def check_in_browser(index: Path, tmp_path: Path, n_images: int) -> None:
    dom = chromium("--dump-dom", index.as_uri()).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded and loaded.group(1) == loaded.group(2) == str(n_images), loaded and loaded.group(0)
    sizes = re.findall(r'data-size="(\d+)x(\d+)"', dom)
    assert len(sizes) == n_images and all(int(w) > 300 and int(h) > 200 for w, h in sizes)
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2600", index.as_uri())
    import matplotlib.image

    img = matplotlib.image.imread(str(shot))[..., :3]
    colored = np.mean(np.ptp(img, axis=2) > 0.15)  # plot lines, bars, bands: not grey text on white
    assert colored > 0.01, colored


def test_synthetic_study_report_recovers_ea_and_shows_the_paper_value(tmp_path):
    root = synthetic_study(tmp_path / "synthetic", ea_ev=0.3)
    index = build_report(root)
    doc = json.loads((index.parent / "report.json").read_text())
    fits = {f["potential"]: f for f in doc["fits"]}
    for pot in ("mace-mpa-0", "my-model"):
        f = fits[pot]
        assert abs(f["ea_ev"] - 0.3) < 3 * f["ea_stderr_ev"], f
        assert f["runs"] == 8 and f["temperatures_k"] == [500.0, 600.0, 700.0, 800.0]
        assert f["cov_ln_d0_ea"] is not None and f["chi2_reduced"] is not None
    assert fits["mace-mpa-0"]["paper_ea_ev"] == 0.22 and fits["my-model"]["paper_ea_ev"] is None
    selections = {(d["potential"], d["temperature_k"], d["selection"]) for d in doc["diffusivity"]}
    assert ("my-model", 500.0, "defect") in selections and ("my-model", 500.0, "li") in selections
    text = index.read_text()
    assert "0.22" in text and "arXiv 2510.05020" in text and "mace-mpa-0" in text
    assert all((index.parent / f).stat().st_size > 5000 for f in doc["figures"])
    check_in_browser(index, tmp_path, n_images=len(doc["figures"]))


@pytest.mark.integration
def test_report_of_a_small_real_study_opens_in_chromium(tmp_path):
    from analysis.report import main
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import run_many
    from tests.conftest import make_study

    study = make_study(temperatures_k=[600.0, 900.0])
    run_many(render_study(study, tmp_path), find_lammps(), progress=False)
    assert main([str(tmp_path / study.name)]) == 0
    index = tmp_path / study.name / "report" / "index.html"
    doc = json.loads((index.parent / "report.json").read_text())
    (fit,) = doc["fits"]
    assert fit["potential"] == "fumi-tosi" and fit["ea_ev"] is not None and fit["runs"] == 2
    assert {p["status"] for p in doc["provenance"]} == {"finished"}
    assert all(len(p["deck_sha256"]) == 64 for p in doc["provenance"])
    check_in_browser(index, tmp_path, n_images=3)


def test_report_of_an_empty_directory_is_a_clear_error(tmp_path, capsys):
    from analysis.report import main

    assert main([str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err


def one_hop(n_frames=400, rng=None):
    rng = rng or np.random.default_rng(0)
    site = np.where(np.arange(n_frames)[:, None] < n_frames // 2, 0.0, 2.0) * np.array([1.0, 0.0, 0.0])
    return (site + rng.normal(0, 0.15, (n_frames, 3)))[:, None, :]


def lattice_walk(n_hops: int, dwell: int = 8, n_atoms: int = 3, rng=None):
    """Atoms resting on sites of a cubic lattice (2 Å), vibrating, jumping to a neighbour every ``dwell`` frames."""
    rng = rng or np.random.default_rng(1)
    moves = np.eye(3)[rng.integers(3, size=(n_hops, n_atoms))] * rng.choice([-2.0, 2.0], size=(n_hops, n_atoms, 1))
    sites = np.concatenate([np.zeros((1, n_atoms, 3)), np.cumsum(moves, axis=0)])
    return np.repeat(sites, dwell, axis=0) + rng.normal(0, 0.15, (len(sites) * dwell, n_atoms, 3))


def test_one_hop_is_flagged_hundreds_are_not():
    assert count_hops(one_hop()) == 1 and too_few(count_hops(one_hop()))
    walk = lattice_walk(120)
    n = count_hops(walk)
    assert 355 <= n <= 360 and not too_few(n)  # 120 jumps of each of 3 atoms
    assert count_hops(lattice_walk(0, dwell=400)) == 0  # vibration alone is no hop


def ar1_walk(seed, n_frames=600, n_walkers=6, phi=0.8, s=0.1):
    """Walks whose steps are correlated (AR(1), correlation time ~5 frames): long-time D = s²/((1-φ)² 2 dt)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, s, (n_frames - 1, n_walkers, 3))
    v = np.zeros_like(eps)
    v[0] = eps[0] / np.sqrt(1 - phi**2)
    for k in range(1, len(eps)):
        v[k] = phi * v[k - 1] + eps[k]
    x = np.concatenate([np.zeros((1, n_walkers, 3)), np.cumsum(v, axis=0)])
    t = np.arange(n_frames) * 0.1
    return Trajectory(x, t, np.arange(n_frames), np.arange(n_walkers), f"ar1-{seed}")


def test_error_bars_cover_95_percent_on_walks_with_correlated_steps():
    truth = 0.1**2 / (1 - 0.8) ** 2 / (2 * 0.1) * A2_PER_PS_TO_CM2_PER_S
    hits = sum(abs((e := estimate_diffusion([ar1_walk(500 + k)])).d_cm2_s - truth) < 2 * e.d_stderr_cm2_s
               for k in range(100))
    assert 88 <= hits <= 100, hits
