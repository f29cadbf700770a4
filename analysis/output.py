"""Writing Arrhenius results: a CSV and a JSON table, and a PNG plot (matplotlib, imported only here)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from analysis.arrhenius import ArrheniusFit
from inputs.io import atomic_write_bytes, atomic_write_text

FIT_COLUMNS = ("potential", "ea_ev", "ea_stderr_ev", "d0_cm2_s", "d0_stderr_cm2_s", "cov_ln_d0_ea",
               "chi2_reduced", "n_points", "t_min_k", "t_max_k", "weighted")


def write_arrhenius(fits: dict[str, ArrheniusFit], table: dict[str, list], out_dir: Path,
                    plot: bool = True) -> list[Path]:
    out_dir = Path(out_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for pot, f in fits.items():
        w.writerow({"potential": pot, "ea_ev": f.ea_ev, "ea_stderr_ev": f.ea_stderr_ev, "d0_cm2_s": f.d0_cm2_s,
                    "d0_stderr_cm2_s": f.d0_stderr_cm2_s, "cov_ln_d0_ea": f.cov_ln_d0_ea,
                    "chi2_reduced": f.chi2_reduced, "n_points": f.n_points, "t_min_k": min(f.temperatures_k),
                    "t_max_k": max(f.temperatures_k), "weighted": f.weighted})
    paths = [atomic_write_text(out_dir / "arrhenius.csv", buf.getvalue())]
    doc = {"units": {"ea": "eV", "d0": "cm^2/s", "temperature": "K", "cov_ln_d0_ea": "eV (ln D0 in ln(cm^2/s))"},
           "fits": {pot: asdict(f) for pot, f in fits.items()},
           "points": {pot: [{"temperature_k": t, "d_cm2_s": d, "d_stderr_cm2_s": e} for t, d, e in pts]
                      for pot, pts in table.items()}}
    paths.append(atomic_write_text(out_dir / "arrhenius.json", json.dumps(doc, indent=2) + "\n"))
    if plot:
        paths.append(plot_arrhenius(fits, table, out_dir / "arrhenius.png"))
    return paths


def plot_arrhenius(fits: dict[str, ArrheniusFit], table: dict[str, list], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for i, (pot, pts) in enumerate(sorted(table.items())):
        color = f"C{i}"
        t, d, e = (np.array([p[k] if p[k] is not None else np.nan for p in pts], float) for k in range(3))
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())
