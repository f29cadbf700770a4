"""Writing results: the diffusivity table (CSV), the Arrhenius tables (CSV, JSON) and the Arrhenius plot (PNG).
Units are in every column name (cm²/s, eV, K, ps, Å, bar); every ``*_stderr_*`` is a 1σ standard error and every
``*_ci95_*`` a bound of the 95 % interval. Every table and title names the material (``Li in LiF (interstitial)``).

A study's ``diffusivity.csv`` has one writer, :func:`write_diffusivity_table`, which ``driver run``,
``python -m analysis.arrhenius`` and the report all call with the study's stored result."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

import numpy as np

from analysis.arrhenius import ArrheniusFit, expansion_parts
from analysis.diffusion import Diffusivity
from analysis.result import StateResult, StudyAnalysis, observable_label
from analysis.runs import OBSERVABLES
from core import plotting
from core.files import atomic_write_text, json_dumps
from core.units import UNITS

#: per observable: D, its 1σ error, 95 % interval, degrees of freedom, and D with the window's start halved/doubled
_D = ("cm2_s", "stderr_cm2_s", "ci95_low_cm2_s", "ci95_high_cm2_s", "dof", "half_start_cm2_s",
      "double_start_cm2_s")
DIFFUSIVITY_COLUMNS = (
    "potential", "temperature_k", "observable", "d_cm2_s", "d_stderr_cm2_s", "n_samples", "status", "flag",
    "events", "fit_start_ps", "fit_end_ps",
    *(f"d_{o}_{k}" for o in OBSERVABLES for k in _D),
    "per_defect_d_cm2_s", "per_defect_d_stderr_cm2_s", "collective_d_per_li_cm2_s",
    "collective_d_per_li_stderr_cm2_s", "haven_ratio", "haven_ratio_stderr", "haven_ratio_defect",
    "haven_ratio_defect_stderr", "undetermined", "series", "ensemble", "material", "d_replicas_cm2_s",
    "n_li", "n_defects", "n_replicas", "simulated_ps", "off_site_fraction",
    "lattice_constant_angstrom", "lattice_constant_stderr_angstrom", "pressure_bar", "pressure_stderr_bar",
    "target_pressure_bar")


def _csv(rows: list[dict], columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in columns} for r in rows)
    return buf.getvalue()


def diffusivity_rows(results: list[StateResult], observable: str, material: str = "") -> list[dict]:
    """One row per potential and temperature (see DIFFUSIVITY_COLUMNS); ``d_cm2_s``, ``d_stderr_cm2_s`` and
    ``n_samples`` are the ``observable``'s (the one the Arrhenius fit uses), so the table is also a valid input
    of ``python -m analysis.arrhenius``; ``material``: what diffuses in what, in every row."""
    rows = []
    for r in results:
        row = {"potential": r.potential, "temperature_k": r.temperature_k, "observable": observable,
               "status": r.status, "flag": "; ".join(r.flags), "events": r.events,
               "fit_start_ps": r.window_ps[0] if r.window_ps else None,
               "fit_end_ps": r.window_ps[1] if r.window_ps else None, "n_li": r.n_li, "n_defects": r.n_defects,
               "n_replicas": len(r.run_dirs), "off_site_fraction": r.off_site_fraction}
        for name, e in r.estimates.items():
            if e is not None:
                row |= {f"d_{name}_cm2_s": e.d_cm2_s, f"d_{name}_stderr_cm2_s": e.d_stderr_cm2_s,
                        f"d_{name}_ci95_low_cm2_s": e.d_ci95_low_cm2_s,
                        f"d_{name}_ci95_high_cm2_s": e.d_ci95_high_cm2_s,
                        f"d_{name}_dof": e.dof, f"d_{name}_half_start_cm2_s": e.d_half_start_cm2_s,
                        f"d_{name}_double_start_cm2_s": e.d_double_start_cm2_s, "simulated_ps": e.simulated_ps}
        chosen = r.point(observable)
        if chosen is not None:
            row |= {"d_cm2_s": chosen.d_cm2_s, "d_stderr_cm2_s": chosen.d_stderr_cm2_s, "n_samples": chosen.n_samples,
                    # each replica's own D over the window (the pooled D should lie within its σ of their mean)
                    "d_replicas_cm2_s": " ".join(f"{v:.6g}" for v in r.estimates[observable].d_replicas_cm2_s)}
        for key, v in (("per_defect_d", r.per_defect_d), ("collective_d_per_li", r.collective_d),
                       ("haven_ratio", r.haven_ratio), ("haven_ratio_defect", r.haven_ratio_defect)):
            if v is not None:
                unit = "" if key.startswith("haven_ratio") else "_cm2_s"
                row |= {f"{key}{unit}": v.value, f"{key}_stderr{unit}": v.stderr}
        # a value whose 1σ is as large as itself is named here: it is only bounded, not determined
        row |= {"undetermined": " ".join(r.undetermined), "series": r.series, "ensemble": r.ensemble,
                "material": material}
        if r.conditions is not None:
            row |= r.conditions.columns()
        rows.append(row)
    return rows


#: the diffusivity table's name, in a study directory, an Arrhenius output directory and a report
DIFFUSIVITY_CSV = "diffusivity.csv"


def write_diffusivity_table(analysis: StudyAnalysis, out_dir: Path, observable: str | None = None) -> Path:
    """``out_dir/diffusivity.csv``: one row per potential and temperature of the study's result (D in cm²/s, times
    in ps), the fit's columns those of ``observable`` (default: the study's ``analysis.selection``)."""
    rows = diffusivity_rows(analysis.results, observable or analysis.selection, analysis.material)
    return atomic_write_text(Path(out_dir) / DIFFUSIVITY_CSV, _csv(rows, DIFFUSIVITY_COLUMNS))


FIT_COLUMNS = ("potential", "material", "ensemble", "lattice_constants_angstrom", "ea_ev", "ea_stderr_ev",
               "ea_ci95_low_ev", "ea_ci95_high_ev", "dof", "d0_cm2_s", "d0_stderr_cm2_s", "cov_ln_d0_ea", "chi2_reduced",
               "widened", "n_points", "temperatures_k", "weighted", "excluded", "undetermined_temperatures_k")


def write_arrhenius(fits: dict[str, ArrheniusFit], table: dict[str, list[Diffusivity]], out_dir: Path,
                    plot: bool = True, excluded: dict | None = None, ensembles: dict | None = None,
                    material: str = "", observable: str = "", mobile: str = "") -> list[Path]:
    """arrhenius.csv, arrhenius.json and (``plot``) arrhenius.png; ``excluded``: the states left out of each
    potential's fit, with why (listed in the tables); ``ensembles``: per series its ensemble, what its Ea means
    and its a(T) (:meth:`analysis.result.StudyAnalysis.ensembles`), stamped beside each Ea, and the expansion part
    where a potential has both ladders; ``material`` (``Li in LiF (interstitial)``) and ``observable`` (which D, of
    the ``mobile`` species) name what was fitted in the tables and the plot's title."""
    out_dir = Path(out_dir)
    excluded = excluded or {}
    ensembles = ensembles or {}
    # points whose 1σ is as large as D: fitted (their weight is small), and named
    undetermined = {pot: [p.temperature_k for p in pts if p.estimate.undetermined] for pot, pts in table.items()}
    rows = []
    for pot, f in fits.items():
        ens = ensembles.get(pot, {})
        rows.append({k: v for k, v in asdict(f).items() if k in FIT_COLUMNS} | {
            "potential": pot, "material": material, "temperatures_k": " ".join(f"{t:g}" for t in f.temperatures_k),
            "ensemble": ens.get("ensemble"),
            "lattice_constants_angstrom": " ".join(f"{t}:{a:.4f}" for t, a in
                                                   ens.get("lattice_constant_angstrom", {}).items()),
            "excluded": "; ".join(f"{e.temperature_k:g} K: {e.reason}" for e in excluded.get(pot, [])),
            "undetermined_temperatures_k": " ".join(f"{t:g}" for t in undetermined.get(pot, []))})
    paths = [atomic_write_text(out_dir / "arrhenius.csv", _csv(rows, FIT_COLUMNS))]
    doc = {"units": UNITS | {"cov_ln_d0_ea": "eV (ln D0 in ln(cm^2/s))"}, "material": material,
           "observable": observable or None,
           "fits": {pot: asdict(f) for pot, f in fits.items()},
           "ensembles": ensembles, "expansion": expansion_parts(fits, ensembles),
           "undetermined_temperatures_k": {pot: ts for pot, ts in undetermined.items() if ts},
           "points": {pot: [asdict(p) for p in pts] for pot, pts in table.items()},
           "excluded": {pot: [asdict(e) for e in es] for pot, es in excluded.items()}}
    paths.append(atomic_write_text(out_dir / "arrhenius.json", json_dumps(doc, indent=2) + "\n"))
    if plot:
        paths.append(plot_arrhenius(fits, table, out_dir / "arrhenius.png",
                                    title=arrhenius_title(material, observable, mobile)))
    return paths


def arrhenius_title(material: str = "", observable: str = "", mobile: str = "") -> str:
    """``D of all Li (tracer), Li in LiF (interstitial) (error bars 1σ, bands 1σ of the fit)``; ``mobile``: the
    species the observable is of."""
    what = f"D of {observable_label(observable, mobile)}" if observable else "Diffusivity"
    return f"{what}{', ' + material if material else ''} (error bars 1σ, bands 1σ of the fit)"


def plot_arrhenius(fits: dict[str, ArrheniusFit], table: dict[str, list[Diffusivity]], path: Path,
                   title: str = "") -> Path:
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
    ax.set_title(title or arrhenius_title(), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return plotting.save(fig, path, dpi=120)
