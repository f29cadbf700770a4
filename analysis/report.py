"""The study report: one self-contained HTML page (``<study>/report/index.html``, images embedded) and the PNGs it
shows, from a study directory alone.

    python -m analysis.report runs/default [--out DIR]          (make report DIR=runs/default)

It shows: the Arrhenius plot of every potential (error bars, fitted lines, 1σ confidence bands); D at each
temperature per potential as bars with error bars; per potential, the MSD of every run with the fit window marked
and the local slope d ln MSD / d ln t (1 where the motion is diffusive, 2 ballistic); a table of Ea ± σ, D0 ± σ,
cov(ln D0, Ea), χ²_red, the temperatures, runs and simulated time behind each fit, and the value of arXiv
2510.05020 where the potential is the paper's (``paper_ea_ev`` in the catalog); D for all Li and for the defect
atom, with the hops behind each and a flag when they are too few; and the provenance of every number (run
directories, versions, checksums).

Statistics (see also README "How the error bars are made"): overlapping time origins make the points of one MSD
curve strongly correlated, so the scatter of a single fit says little. D's error comes from independent pieces
instead: each trajectory is cut into blocks, D is fitted in each block, and blocks of all replicas are pooled
(σ = s/√n, Student-t widened). This is checked on random walks (coverage ≈ 95% for ±2σ). The Arrhenius fit
weights ln D by (σ_D/D)⁻², propagates those errors into the covariance of (ln D0, Ea), and widens it by √χ²_red
when the points scatter more than their error bars.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np

from analysis.arrhenius import ArrheniusFit, fit_arrhenius
from analysis.hops import HOP_ANGSTROM, MIN_HOPS
from analysis.output import diffusivity_rows, plot_arrhenius, write_diffusivity_table
from analysis.study import StateResult, StudyAnalysis, analyse_study
from core import cli, plotting
from core.errors import AnalysisError
from core.files import atomic_write_text
from core.rundir import RunDir, RunSummary
from templates import render

PAPER = "arXiv 2510.05020"


def fits_by_potential(analysis: StudyAnalysis) -> tuple[dict[str, ArrheniusFit], dict[str, str]]:
    """The Arrhenius fit of each potential (the study's selection), and why a potential has none."""
    fits, why = {}, {}
    for pot, points in analysis.points().items():
        try:
            fits[pot] = fit_arrhenius(points)
        except AnalysisError as err:
            why[pot] = str(err)
    return fits, why


def plot_bars(results: list[StateResult], path: Path) -> Path:
    plt = plotting.pyplot()
    pots = list(dict.fromkeys(r.potential for r in results))
    temps = sorted({r.temperature_k for r in results})
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(pots) * max(1, len(temps)) / 2 + 2), 4.2))
    width = 0.8 / max(1, len(temps))
    for k, t in enumerate(temps):
        at = {r.potential: r for r in results if r.temperature_k == t}
        x = np.arange(len(pots)) - 0.4 + width * (k + 0.5)
        d = [at[p].estimate.d_cm2_s if p in at else np.nan for p in pots]
        e = [(at[p].estimate.d_stderr_cm2_s or 0) if p in at else np.nan for p in pots]
        bars = ax.bar(x, d, width, yerr=e, capsize=3, label=f"{t:g} K", alpha=0.85)
        for b, p in zip(bars, pots):
            if p in at and at[p].flag:
                b.set_hatch("//")
    ax.set_xticks(np.arange(len(pots)))
    ax.set_xticklabels(pots, rotation=20, ha="right")
    ax.set_ylabel("D (cm²/s)")
    ax.set_title("D ± 1σ per potential and temperature (hatched: too few hops)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return plotting.save(fig, path)


def plot_msd(pot: str, results: list[StateResult], analysis: StudyAnalysis, path: Path) -> Path:
    """Columns: temperatures; top: MSD of each run with the fit window; bottom: local log-log slope."""
    plt = plotting.pyplot()
    rs = sorted(results, key=lambda r: r.temperature_k)
    fig, axes = plt.subplots(2, len(rs), figsize=(3.4 * len(rs) + 0.6, 5.6), squeeze=False, sharex="col")
    for col, r in enumerate(rs):
        top, bottom = axes[0][col], axes[1][col]
        for d in r.run_dirs:
            curves = analysis.analyses[d].selections[r.selection].curves
            lags, m = curves.lags_ps, curves.full
            top.plot(lags, m, lw=1, label=Path(d).name)
            ok = (lags > 0) & (m > 0)
            lt, lm = np.log(lags[ok]), np.log(m[ok])
            if len(lt) > 5:
                k = max(1, len(lt) // 40)
                slope = (lm[2 * k:] - lm[:-2 * k]) / (lt[2 * k:] - lt[:-2 * k])
                bottom.semilogx(lags[ok][k:-k], slope, lw=1)
        e = r.estimate
        for ax in (top, bottom):
            ax.axvspan(e.fit_start_ps, e.fit_end_ps, color="0.85", zorder=0)
        bottom.axhline(1.0, color="k", lw=0.8, ls="--")
        bottom.axhline(2.0, color="0.5", lw=0.8, ls=":")
        bottom.set_ylim(0, 2.5)
        top.set_title(f"{r.temperature_k:g} K ({r.selection}, {r.n_hops} hops)", fontsize=9)
        top.set_ylabel("MSD (Å²)") if col == 0 else None
        bottom.set_ylabel("d ln MSD / d ln t") if col == 0 else None
        bottom.set_xlabel("lag time (ps)")
        top.legend(fontsize=6)
    fig.suptitle(f"{pot}: MSD per run, fit window shaded; slope 1 = diffusive, 2 = ballistic", fontsize=10)
    fig.tight_layout()
    return plotting.save(fig, path)


def provenance(study_dir: Path, runs: list[tuple[RunDir, RunSummary]]) -> list[dict]:
    rows = []
    for d, s in runs:
        rows.append({"run": str(d.path.relative_to(study_dir)), "status": s.status, "potential": s.potential,
                     "temperature_k": s.temperature_k, "seed": s.seed,
                     "lammps": s.lammps.version if s.lammps else None, "git": s.git, "versions": s.versions,
                     "deck_sha256": s.inputs.get(d.deck.name, {}).get("sha256"),
                     "data_sha256": s.inputs.get(d.data.name, {}).get("sha256"),
                     "models": {k: v.get("sha256") for k, v in s.inputs.items()
                                if k not in (d.deck.name, d.data.name)}, "wall_s": s.wall_s,
                     "segments": s.segments, "frames": s.outputs.frames if s.outputs else None})
    return rows


def paper_values(runs: list[tuple[RunDir, RunSummary]]) -> dict[str, float]:
    """The paper's Ea of each potential that has one (``paper_ea_ev`` in its catalog entry, kept in the summary)."""
    out = {}
    for _, s in runs:
        v = s.potential_entry.get("params", {}).get("paper_ea_ev")
        if v is not None:
            out[s.potential] = float(v)
    return out


def _fmt(v, spec=".3g", none="–") -> str:
    return none if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _pm(value, stderr, spec: str) -> str:
    if value is None:
        return "–"
    return f"{value:{spec}}" + (f" ± {stderr:{spec}}" if stderr is not None else " (fixed)")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def build_report(study_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report; returns the path of index.html."""
    study_dir = Path(study_dir)
    out = Path(out) if out else study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    analysis = analyse_study(study_dir)
    chosen = analysis.chosen()
    fits, why = fits_by_potential(analysis)
    figs = [(plot_arrhenius(fits, analysis.points(), out / "arrhenius.png"),
             f"Arrhenius plot ({analysis.selection} tracer D), fitted lines with 1σ bands"),
            (plot_bars(chosen, out / "d_bars.png"), f"D per potential and temperature ({analysis.selection})")]
    for pot in dict.fromkeys(r.potential for r in chosen):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pot)
        figs.append((plot_msd(pot, [r for r in chosen if r.potential == pot], analysis, out / f"msd-{safe}.png"),
                     f"{pot}: MSD and its log-log slope"))
    write_diffusivity_table(analysis.results, out / "diffusivity.csv")
    paper = paper_values(analysis.runs)
    fit_rows = []
    for pot in dict.fromkeys(r.potential for r in chosen):
        rs = [r for r in chosen if r.potential == pot]
        f = fits.get(pot)
        fit_rows.append({
            "potential": pot, "ea_ev": f.ea_ev if f else None, "ea_stderr_ev": f.ea_stderr_ev if f else None,
            "d0_cm2_s": f.d0_cm2_s if f else None, "d0_stderr_cm2_s": f.d0_stderr_cm2_s if f else None,
            "cov_ln_d0_ea": f.cov_ln_d0_ea if f else None, "chi2_reduced": f.chi2_reduced if f else None,
            "temperatures_k": sorted(r.temperature_k for r in rs), "runs": sum(len(r.run_dirs) for r in rs),
            "simulated_ps": sum(r.estimate.simulated_ps for r in rs), "min_hops": min(r.n_hops for r in rs),
            "flags": sorted({r.flag for r in rs if r.flag}), "paper_ea_ev": paper.get(pot),
            "no_fit": why.get(pot)})
    doc = {"study": analysis.study_name, "study_dir": str(study_dir.resolve()),
           "selection_for_arrhenius": analysis.selection, "fits": fit_rows,
           "diffusivity": [row | {"runs": list(r.run_dirs)}
                           for row, r in zip(diffusivity_rows(analysis.results), analysis.results)],
           "provenance": provenance(study_dir, analysis.runs), "pending": [str(p) for p in analysis.pending],
           "lammps_builds": analysis.lammps_builds(), "families": sorted({s.family for _, s in analysis.runs}),
           "figures": [p.name for p, _ in figs]}
    atomic_write_text(out / "report.json", json.dumps(doc, indent=1, default=str) + "\n")
    atomic_write_text(out / "index.html", render_html(doc, figs))
    return out / "index.html"


def render_html(doc: dict, figs: list[tuple[Path, str]]) -> str:
    """The page, from templates/report.html.j2 (every value escaped); numbers formatted here."""
    fits = [{"potential": r["potential"],
             "ea": f"{_fmt(r['ea_ev'], '.3f')} ± {_fmt(r['ea_stderr_ev'], '.3f')}" if r["ea_ev"] is not None else "–",
             "d0": f"{_fmt(r['d0_cm2_s'])} ± {_fmt(r['d0_stderr_cm2_s'])}" if r["d0_cm2_s"] is not None else "–",
             "cov": _fmt(r["cov_ln_d0_ea"]), "chi2": _fmt(r["chi2_reduced"], ".2f"),
             "temperatures": ", ".join(f"{t:g}" for t in r["temperatures_k"]), "runs": r["runs"],
             "simulated": f"{r['simulated_ps']:g}", "min_hops": r["min_hops"], "paper": _fmt(r["paper_ea_ev"], ".2f"),
             "notes": [r["no_fit"]] if r["no_fit"] else [], "flags": r["flags"]} for r in doc["fits"]]
    rows = [{"potential": d["potential"], "temperature": f"{d['temperature_k']:g}", "selection": d["selection"],
             "d": _fmt(d["d_cm2_s"]), "stderr": _fmt(d["d_stderr_cm2_s"]), "replicas": d["n_replicas"],
             "simulated": f"{d['simulated_ps']:g}", "window": f"{d['fit_start_ps']:g}–{d['fit_end_ps']:g}",
             "hops": d["n_hops"], "flag": "; ".join(f for f in (d["flag"], d.get("pressure_flag")) if f),
             "a": _pm(d.get("lattice_constant_angstrom"), d.get("lattice_constant_stderr_angstrom"), ".4f"),
             "p": _pm(d.get("pressure_bar"), d.get("pressure_stderr_bar"), ".0f")} for d in doc["diffusivity"]]
    prov = [{"run": p["run"], "status": p["status"], "lammps": str(p["lammps"]), "deck": str(p["deck_sha256"])[:12],
             "data": str(p["data_sha256"])[:12],
             "models": ", ".join(f"{k}: {str(v)[:12]}" for k, v in (p["models"] or {}).items()),
             "git": str(p["git"])[:12], "wall": _fmt(p["wall_s"], ".0f")} for p in doc["provenance"]]
    versions = doc["provenance"][0]["versions"] if doc["provenance"] else {}
    images = [{"src": _data_uri(p), "alt": alt, "name": p.name} for p, alt in figs]
    families = set(doc["families"])
    charged = "classical" in families and bool(families & {"mace", "deepmd"})
    return render("report.html.j2", study=doc["study"], charged_note=charged, builds=doc["lammps_builds"], study_dir=doc["study_dir"],
                  selection=doc["selection_for_arrhenius"], paper=PAPER, pending=doc["pending"], fits=fits,
                  rows=rows, provenance=prov, versions=", ".join(f"{k} {v}" for k, v in versions.items()),
                  top_figures=images[:2], msd_figures=images[2:], hop_angstrom=HOP_ANGSTROM, min_hops=MIN_HOPS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("study_dir")
    ap.add_argument("--out", help="directory for the report (default: STUDY_DIR/report)")
    args = ap.parse_args(argv)

    def command() -> int:
        print(f"report: {build_report(args.study_dir, args.out)}")
        return 0

    return cli.run(command)


if __name__ == "__main__":
    sys.exit(main())
