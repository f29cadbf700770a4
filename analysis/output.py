"""Writing results: the diffusivity table (CSV), the Arrhenius tables (CSV, JSON) and the Arrhenius plot (PNG).
Units are in every column name (cm²/s, eV, K, ps)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from analysis.arrhenius import ArrheniusFit
from analysis.diffusion import Diffusivity
from core import plotting
from core.files import atomic_write_text
from core.units import UNITS

DIFFUSIVITY_COLUMNS = ("potential", "temperature_k", "selection", "d_cm2_s", "d_stderr_cm2_s", "fit_start_ps",
                       "fit_end_ps", "n_replicas", "n_blocks", "n_samples", "n_atoms", "simulated_ps", "method",
                       "n_hops", "flag", "lattice_constant_angstrom", "lattice_constant_stderr_angstrom",
                       "pressure_bar", "pressure_stderr_bar", "target_pressure_bar", "pressure_flag")


def _csv(rows: list[dict], columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in columns} for r in rows)
    return buf.getvalue()


def diffusivity_rows(results) -> list[dict]:
    """One row per potential, temperature and selection (see DIFFUSIVITY_COLUMNS)."""
    rows = []
    for r in results:
        e = r.estimate
        rows.append({"potential": r.potential, "temperature_k": r.temperature_k, "selection": r.selection,
                     "d_cm2_s": e.d_cm2_s, "d_stderr_cm2_s": e.d_stderr_cm2_s, "fit_start_ps": e.fit_start_ps,
                     "fit_end_ps": e.fit_end_ps, "n_replicas": e.n_replicas, "n_blocks": e.n_blocks,
                     "n_samples": e.n_samples, "n_atoms": e.n_atoms, "simulated_ps": e.simulated_ps,
                     "method": e.method, "n_hops": r.n_hops, "flag": r.flag}
                    | (asdict(r.conditions) | {"pressure_flag": r.conditions.pressure_flag} if r.conditions else {}))
    return rows


def write_diffusivity_table(results, path: Path) -> Path:
    """CSV, one row per potential, temperature and atom selection; D in cm²/s, times in ps."""
    return atomic_write_text(Path(path), _csv(diffusivity_rows(results), DIFFUSIVITY_COLUMNS))

FIT_COLUMNS = ("potential", "ea_ev", "ea_stderr_ev", "d0_cm2_s", "d0_stderr_cm2_s", "cov_ln_d0_ea",
               "chi2_reduced", "n_points", "t_min_k", "t_max_k", "weighted")


def write_arrhenius(fits: dict[str, ArrheniusFit], table: dict[str, list[Diffusivity]], out_dir: Path,
                    plot: bool = True) -> list[Path]:
    out_dir = Path(out_dir)
    rows = []
    for pot, f in fits.items():
        rows.append({"potential": pot, "ea_ev": f.ea_ev, "ea_stderr_ev": f.ea_stderr_ev, "d0_cm2_s": f.d0_cm2_s,
                    "d0_stderr_cm2_s": f.d0_stderr_cm2_s, "cov_ln_d0_ea": f.cov_ln_d0_ea,
                    "chi2_reduced": f.chi2_reduced, "n_points": f.n_points, "t_min_k": min(f.temperatures_k),
                    "t_max_k": max(f.temperatures_k), "weighted": f.weighted})
    paths = [atomic_write_text(out_dir / "arrhenius.csv", _csv(rows, FIT_COLUMNS))]
    doc = {"units": UNITS | {"cov_ln_d0_ea": "eV (ln D0 in ln(cm^2/s))"},
           "fits": {pot: asdict(f) for pot, f in fits.items()},
           "points": {pot: [asdict(p) for p in pts] for pot, pts in table.items()}}
    paths.append(atomic_write_text(out_dir / "arrhenius.json", json.dumps(doc, indent=2) + "\n"))
    if plot:
        paths.append(plot_arrhenius(fits, table, out_dir / "arrhenius.png"))
    return paths


def plot_arrhenius(fits: dict[str, ArrheniusFit], table: dict[str, list[Diffusivity]], path: Path) -> Path:
    plt = plotting.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for i, (pot, pts) in enumerate(sorted(table.items())):
        color = f"C{i}"
        t = np.array([p.temperature_k for p in pts], float)
        d = np.array([p.d_cm2_s for p in pts], float)
        e = np.array([np.nan if p.d_stderr_cm2_s is None else p.d_stderr_cm2_s for p in pts], float)
        ok = d > 0
        ax.errorbar(1000 / t[ok], d[ok], yerr=np.nan_to_num(e[ok]), fmt="o", color=color, capsize=3,
                    label=pot if pot not in fits else None)
        if pot in fits:
            f = fits[pot]
            err = f"{f.ea_stderr_ev:.2f}" if f.ea_stderr_ev is not None else "?"
            tt = np.linspace(min(f.temperatures_k) * 0.95, max(f.temperatures_k) * 1.05, 100)
            fit = f.predict(tt)
            band = f.ln_d_band(tt)
            ax.plot(1000 / tt, fit, "-", color=color, label=f"{pot}: Ea = {f.ea_ev:.2f} ± {err} eV")
            if np.all(np.isfinite(band)):
                ax.fill_between(1000 / tt, fit * np.exp(-band), fit * np.exp(band), color=color, alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("D (cm²/s)")
    ax.set_title("Li tracer diffusivity (error bars 1σ, bands 1σ of the fit)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return plotting.save(fig, path, dpi=120)
