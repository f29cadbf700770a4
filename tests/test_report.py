"""The study report: from synthetic studies (an interstitialcy with a known Arrhenius law) and from a small real
one, opened in headless Chromium (make chromium); hop counting without sites; error bars on walks with
correlated steps."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.diffusion import A2_PER_PS_TO_CM2_PER_S, estimate, msd_stats
from analysis.hops import count_hops
from analysis.report import build_report
from tests.conftest import interstitialcy, write_fake_run

CHROMIUM = Path(sys.prefix) / "bin" / "chromium-lif"
K_B = 8.617333262e-5


def synthetic_study(root: Path, ea_ev: float = 0.3, temps=(500.0, 600.0, 700.0, 800.0), frames: int = 1500):
    """Two potentials, four temperatures, one replica each: an interstitialcy whose event rate follows
    0.2/ps · exp(-Ea/k (1/T - 1/800 K)) (at 500 K ~0.015/ps: ~11 events in 750 ps, too few)."""
    for pot in ("mace-mpa-0", "my-model"):
        for k, t in enumerate(temps):
            rate = 0.2 * np.exp(-ea_ev / K_B * (1 / t - 1 / 800.0))
            x = interstitialcy(frames, 0.5, rate, seed=100 * k + len(pot))
            write_fake_run(root, pot, t, 1, x.positions, 0.5, structure=x.structure, cell=x.cell)
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


@pytest.mark.needs_build
def test_synthetic_study_report_recovers_ea_and_shows_the_paper_value(tmp_path):
    root = synthetic_study(tmp_path / "synthetic", ea_ev=0.3)
    index = build_report(root)
    doc = json.loads((index.parent / "report.json").read_text())
    fits = {f["potential"]: f for f in doc["fits"]}
    rows = {(d["potential"], d["temperature_k"]): d for d in doc["diffusivity"]}
    for pot in ("mace-mpa-0", "my-model"):
        f = fits[pot]["fit"]
        assert abs(f["ea_ev"] - 0.3) < 3 * f["ea_stderr_ev"], f
        assert f["ea_ci95_low_ev"] < f["ea_ev"] < f["ea_ci95_high_ev"] and f["cov_ln_d0_ea"] is not None
        left_out = [t for (p, t), d in rows.items() if p == pot and d["status"] != "ok"]
        assert sorted(list(f["temperatures_k"]) + left_out) == [500.0, 600.0, 700.0, 800.0]  # each state once
        assert [e["temperature_k"] for e in fits[pot]["excluded"]] == left_out  # left out, and said why
        few = {t for (p, t), d in rows.items() if p == pot and d["status"] == "few-events"}
        with_few = fits[pot]["fit_with_few_events"]  # shown beside where it differs (a few-event D may be <= 0)
        beside = set(f["temperatures_k"]) | {t for t in few if (rows[(pot, t)]["d_cm2_s"] or 0) > 0}
        if beside == set(f["temperatures_k"]):
            assert with_few is None
        else:
            assert set(with_few["temperatures_k"]) == beside
        for t in (600.0, 700.0, 800.0):  # per potential and temperature: the defect, its events, Haven
            d = rows[(pot, t)]
            assert d["events"] >= 20 and d["d_defect_cm2_s"] > 0 and d["fit_start_ps"] < d["fit_end_ps"]
            assert abs(d["haven_ratio"] - 1 / 3) < 4 * d["haven_ratio_stderr"]
            assert d["d_li_half_start_cm2_s"] is not None and d["per_defect_d_cm2_s"] > 0
    assert fits["mace-mpa-0"]["paper_ea_ev"] == 0.22 and fits["my-model"]["paper_ea_ev"] is None
    text = index.read_text()
    assert "0.22" in text and "arXiv 2510.05020" in text and "Haven ratio" in text and "running D(t)" in text
    assert all((index.parent / f).stat().st_size > 5000 for f in doc["figures"])
    check_in_browser(index, tmp_path, n_images=len(doc["figures"]))


def test_report_compares_cell_sizes(tmp_path):
    """The same migration in two cells: the per-defect quantities agree within their errors."""
    for name, cells in (("small", 3), ("large", 4)):
        for seed in (1, 2):
            x = interstitialcy(2000, 0.5, 0.1, seed=seed + 10 * cells, cells=cells)
            write_fake_run(tmp_path / name, "my-model", 500.0, seed, x.positions, 0.5, structure=x.structure,
                           cell=x.cell)
    index = build_report(tmp_path / "small", compare=tmp_path / "large")
    (row,) = json.loads((index.parent / "report.json").read_text())["finite_size"]["rows"]
    assert (row["n_li"], row["other_n_li"]) == (109, 257)
    assert abs(row["per_defect_d_z"]) < 3 and abs(row["defect_d_z"]) < 3
    assert "Cell size" in index.read_text()


@pytest.mark.integration
def test_the_report_names_the_mobile_species_of_the_runs(tmp_path):
    """The report's labels name the mobile species of the runs' structure records, not Li: the same migration
    relabelled as Na in NaCl is reported as Na (its tables, the D observable, N_Na, the defect's excess Na)."""
    for t in (600.0, 700.0):
        x = interstitialcy(800, 0.5, 0.2, seed=int(t))
        nacl = x.structure | {"type_order": ["Na", "Cl"], "mobile": "Na", "material": "NaCl"}
        write_fake_run(tmp_path, "my-model", t, 1, x.positions, 0.5, structure=nacl, cell=x.cell)
    index = build_report(tmp_path)
    doc = json.loads((index.parent / "report.json").read_text())
    assert doc["mobile"] == "Na" and doc["material"] == "Na in NaCl (interstitial)"
    text = index.read_text()
    for words in ("D all Na (cm²/s)", "N<sub>Na</sub>·D per defect", "collective D<sub>σ</sub> per Na",
                  "the excess Na occupancy", "the all-Na tracer D", "all Na (tracer)"):
        assert words in text, words
    assert not re.search(r"all Li|all-Li|<sub>Li</sub>|excess Li|per Li", text)


def test_observable_labels_name_the_mobile_species():
    from analysis.result import observable_label

    assert observable_label("li", "Li") == "all Li (tracer)"  # LiF's label as before
    assert observable_label("li", "Na") == "all Na (tracer)"
    assert observable_label("defect", "Na") == "the defect" and observable_label("collective", "Na") == "collective"
    assert observable_label("li") == "all mobile atoms (tracer)"  # a table read back without its runs


@pytest.mark.needs_build
def test_report_of_a_small_real_study_opens_in_chromium(tmp_path):
    from analysis.cli import report as main
    from driver.lammps import find_lammps
    from driver.render import render_study
    from driver.runner import run_many
    from tests.conftest import make_study

    study = make_study(temperatures_k=[600.0, 900.0], **{"analysis.min_events": 0})
    run_many(render_study(study, tmp_path), find_lammps(), progress=False)
    assert main([str(tmp_path / study.name)]) == 0
    index = tmp_path / study.name / "report" / "index.html"
    doc = json.loads((index.parent / "report.json").read_text())
    (fit,) = doc["fits"]
    assert fit["potential"] == "fumi-tosi" and fit["fit"]["ea_ev"] is not None and fit["runs"] == 2
    assert {p["status"] for p in doc["provenance"]} == {"finished"}
    assert all(len(p["deck_sha256"]) == 64 for p in doc["provenance"])
    check_in_browser(index, tmp_path, n_images=3)


def test_report_of_an_empty_directory_is_a_clear_error(tmp_path, capsys):
    from analysis.cli import report as main

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


def test_hops_are_counted_without_sites():
    assert count_hops(one_hop(), 0.1) == 1
    assert 355 <= count_hops(lattice_walk(120, dwell=12), 0.1) <= 360  # 120 jumps of each of 3 atoms, 1.2 ps apart
    assert count_hops(lattice_walk(0, dwell=400), 0.1) == 0  # vibration alone is no hop
    visits = one_hop(n_frames=400)
    visits[::10] += np.array([2.0, 0.0, 0.0])  # 0.1 ps excursions to a neighbouring site and back
    assert count_hops(visits, 0.1) == 1  # shorter than the residence time: not hops


def ar1_walk(seed, n_frames=1200, n_walkers=6, phi=0.8, s=0.1):
    """Walks whose steps are correlated (AR(1), correlation time ~5 frames): long-time D = s²/((1-φ)² 2 dt)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, s, (n_frames - 1, n_walkers, 3))
    v = np.zeros_like(eps)
    v[0] = eps[0] / np.sqrt(1 - phi**2)
    for k in range(1, len(eps)):
        v[k] = phi * v[k - 1] + eps[k]
    return np.concatenate([np.zeros((1, n_walkers, 3)), np.cumsum(v, axis=0)])


def test_intervals_cover_95_percent_on_walks_with_correlated_steps():
    """Increments correlated over ~0.5 ps: the window starts after 3 ps, where they have decorrelated."""
    truth = 0.1**2 / (1 - 0.8) ** 2 / (2 * 0.1) * A2_PER_PS_TO_CM2_PER_S
    hits = within_1sigma = 0
    for k in range(100):
        e = estimate([msd_stats(ar1_walk(500 + k), 0.1)], 3.0, 60.0, sensitivity=False)
        hits += e.d_ci95_low_cm2_s < truth < e.d_ci95_high_cm2_s
        within_1sigma += abs(e.d_cm2_s - truth) < e.d_stderr_cm2_s
    # ~95 % and ~68 % (binomial spread for 100 walks: ±2 and ±5): errors neither too small nor too large
    assert 88 <= hits <= 99 and 55 <= within_1sigma <= 80, (hits, within_1sigma)
