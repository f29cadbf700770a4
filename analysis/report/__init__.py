"""The study report: one self-contained HTML page (``<study>/report/index.html``, images embedded) and the PNGs it
shows, from a study directory alone.

    python -m analysis.report runs/default [--out DIR] [--compare runs/other-study]    (make report DIR=...)

(the command line: :func:`analysis.cli.report`).

Every title and table names the material (``Li in LiF (interstitial)``, from the runs' structure records) and the
temperatures where the host is not a stable crystal (``stability.json``: listed, left out of the fits). The numbers
come from the study's stored result (:func:`analysis.study.analyse_study`: computed once, shared with ``driver run``
and ``python -m analysis.arrhenius``). It shows: the Arrhenius plot of every potential (error bars, fitted lines, 1σ bands) and the fit table (Ea ± σ
with its 95 % interval, D0, χ²_red, the temperatures fitted and those left out with why, the fit with few-event
states beside, and the value of arXiv 2510.05020 where the potential is the paper's and the system is the
paper's, an interstitial Li in LiF); per potential and
temperature the tracer D of all Li, the defect's own D and its migration events, D per defect (N_Li·D, free of
the cell size), the collective (charge) diffusivity and the Haven ratio, the fit window and how D moves when its
start is halved and doubled, the lattice constant and pressure of the runs; per potential, the MSD of every run
and the running D(t) with the window marked (it must sit where D(t) is flat); for every pair of potentials
of one ensemble, ΔEa ± σ, z and D(b)/D(a) (:mod:`analysis.compare`), and a plot of them; with ``--compare``, the
per-defect quantities of another study (a larger cell) beside these (finite-size check); provenance of every run.

Statistics: see :mod:`analysis.diffusion` (GLS with the MSD's covariance) and :mod:`analysis.arrhenius`.
"""

from __future__ import annotations

import base64
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from analysis.arrhenius import expansion_parts, fit_table
from analysis.compare import compare_all, plot_pairs, report_rows, series_from, study_simulated_ps
from analysis.diffusion import running_d
from analysis.output import arrhenius_title, diffusivity_rows, plot_arrhenius, write_diffusivity_table
from analysis.result import StateResult, StudyAnalysis, observable_label
from analysis.study import analyse_study
from core import plotting
from core.errors import AnalysisError
from core.files import atomic_write_text, json_dumps
from core.rundir import RunDir, RunSummary
from templates import render

PAPER = "arXiv 2510.05020"
#: the figure of ΔEa between potentials (analysis.compare)
PAIRS_PNG = "compare-ea.png"


def plot_bars(results: list[StateResult], observable: str, path: Path, material: str = "", mobile: str = ""
              ) -> Path:
    """D per potential and temperature, bars ± 1σ; ``material`` and ``mobile`` (the species) name it in the title."""
    plt = plotting.pyplot()
    pots = list(dict.fromkeys(r.series for r in results))
    temps = sorted({r.temperature_k for r in results})
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(pots) * max(1, len(temps)) / 2 + 2), 4.2))
    width = 0.8 / max(1, len(temps))
    for k, t in enumerate(temps):
        at = {r.series: r for r in results if r.temperature_k == t}
        x = np.arange(len(pots)) - 0.4 + width * (k + 0.5)
        est = [at[p].estimates.get(observable) if p in at else None for p in pots]
        d = [e.d_cm2_s if e else np.nan for e in est]
        err = [(e.d_stderr_cm2_s or 0) if e else np.nan for e in est]
        bars = ax.bar(x, d, width, yerr=err, capsize=3, label=f"{t:g} K", alpha=0.85)
        for b, p in zip(bars, pots):
            if p in at and at[p].status != "ok":
                b.set_hatch("//")
    ax.set_xticks(np.arange(len(pots)))
    ax.set_xticklabels(pots, rotation=20, ha="right")
    ax.set_ylabel("D (cm²/s)")
    ax.set_title(f"D of {observable_label(observable, mobile)}{', ' + material if material else ''} ± 1σ "
                 "(hatched: not ok)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return plotting.save(fig, path)


def plot_diagnostics(pot: str, results: list[StateResult], analysis: StudyAnalysis, observable: str,
                     path: Path) -> Path:
    """Columns: temperatures; top: the MSD of every run with the fit window; bottom: the running D(t) (local slope
    / 6) with the window and the fitted D ± 1σ — the window must sit where D(t) is flat."""
    plt = plotting.pyplot()
    rs = sorted(results, key=lambda r: r.temperature_k)
    fig, axes = plt.subplots(2, len(rs), figsize=(3.6 * len(rs) + 0.6, 6.0), squeeze=False, sharex="col")
    for col, r in enumerate(rs):
        top, bottom = axes[0][col], axes[1][col]
        for d in r.run_dirs:
            stats = analysis.analyses[d].stats.get(observable)
            if stats is None:
                continue
            top.plot(stats.lags_ps[1:], stats.msd[1:], lw=1, label=Path(d).name)
            t, dloc = running_d(stats)
            bottom.semilogx(t, dloc, lw=1)
        e = r.estimates.get(observable)
        if r.window_ps:
            for ax in (top, bottom):
                ax.axvspan(*r.window_ps, color="0.88", zorder=0)
        if e is not None:
            bottom.axhline(e.d_cm2_s, color="k", lw=1)
            if e.d_stderr_cm2_s:
                bottom.axhspan(e.d_cm2_s - e.d_stderr_cm2_s, e.d_cm2_s + e.d_stderr_cm2_s, color="k", alpha=0.15)
            scale = max(abs(e.d_cm2_s), e.d_stderr_cm2_s or 0)
            bottom.set_ylim(e.d_cm2_s - 4 * scale, e.d_cm2_s + 4 * scale)
        top.set_xscale("log")
        top.set_yscale("log")
        status = "" if r.status == "ok" else f", {r.status}"
        top.set_title(f"{r.temperature_k:g} K ({r.events if r.events is not None else '?'} events{status})",
                      fontsize=9)
        if col == 0:
            top.set_ylabel("MSD (Å²)")
            bottom.set_ylabel("running D(t) (cm²/s)")
        bottom.set_xlabel("lag time (ps)")
        top.legend(fontsize=6)
    material = f" ({analysis.material})" if analysis.material else ""
    fig.suptitle(f"{pot}, {observable_label(observable, analysis.mobile)}{material}: MSD per run and the running "
                 "D(t), fit window shaded; line and band: the fitted D ± 1σ", fontsize=10)
    fig.tight_layout()
    return plotting.save(fig, path)


def provenance(study_dir: Path, runs: list[tuple[RunDir, RunSummary]]) -> list[dict]:
    rows = []
    for d, s in runs:
        rows.append({"run": str(d.path.relative_to(study_dir)), "status": s.status, "potential": s.potential,
                     "temperature_k": s.temperature_k, "seed": s.seed,
                     "lammps": s.lammps.version if s.lammps else None,
                     "lammps_build": s.lammps.build if s.lammps else None, "git": s.git, "versions": s.versions,
                     "deck_sha256": s.inputs.get(d.deck.name, {}).get("sha256"),
                     "data_sha256": s.inputs.get(d.data.name, {}).get("sha256"),
                     "models": {k: v.get("sha256") for k, v in s.inputs.items()
                                if k not in (d.deck.name, d.data.name)}, "wall_s": s.wall_s,
                     "segments": s.segments, "frames": s.outputs.frames if s.outputs else None})
    return rows


def paper_values(analysis: StudyAnalysis) -> dict[str, float]:
    """The paper's Ea of each potential that has one (``paper_ea_ev`` in its catalog entry, kept in the summary),
    for the paper's system only (an interstitial Li in LiF): for any other material it is not a reference."""
    out: dict[str, float] = {}
    if not analysis.paper_system:
        return out
    for _, s in analysis.runs:
        v = s.potential_entry.get("params", {}).get("paper_ea_ev")
        if v is not None:
            out[s.potential] = float(v)
    return out


def finite_size(a: StudyAnalysis, b: StudyAnalysis) -> list[dict]:
    """Per potential and temperature in both studies: the per-defect diffusivity (N_Li·D) and the defect's own D of
    each, and their difference in units of its standard error (|z| < 2: no finite-size effect resolved)."""
    rows = []
    others = {(r.potential, r.temperature_k): r for r in b.results}
    for r in a.results:
        o = others.get((r.potential, r.temperature_k))
        if o is None:
            continue
        row = {"potential": r.potential, "temperature_k": r.temperature_k, "n_li": r.n_li, "other_n_li": o.n_li}
        for key, mine, theirs in (("per_defect_d", r.per_defect_d, o.per_defect_d),
                                  ("defect_d", r.value("defect"), o.value("defect"))):
            row[key] = mine and mine.to_dict()
            row[f"other_{key}"] = theirs and theirs.to_dict()
            z = None
            if mine and theirs and mine.stderr and theirs.stderr:
                z = (mine.value - theirs.value) / math.hypot(mine.stderr, theirs.stderr)
            row[f"{key}_z"] = z
        rows.append(row)
    return rows


def _fmt(v, spec=".3g", none="–") -> str:
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _pm(value, stderr, spec: str = ".3g", fixed: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:{spec}}" + (f" ± {stderr:{spec}}" if stderr is not None else fixed)


def _determined(row: dict, name: str, value, stderr, spec: str = ".3g") -> dict:
    """A table cell for a value that may be undetermined (its 1σ as large as itself): then it says so, in red,
    with the value and error beside, never as a plain number."""
    text = _pm(value, stderr, spec)
    if value is not None and name in (row.get("undetermined") or "").split():
        return {"text": f"undetermined ({text})", "flag": True}
    return {"text": text, "flag": False}


def _replicas(row: dict) -> str:
    """The replicas' own D of the fitted observable and their plain mean, beside which the pooled D should lie
    within its σ."""
    values = [float(v) for v in (row.get("d_replicas_cm2_s") or "").split()]
    if len(values) < 2:
        return "–"
    return f"{' / '.join(f'{v:.3g}' for v in values)} (mean {np.mean(values):.3g})"


def _ensemble_text(ens: dict) -> dict:
    """What a series' Ea is: its ensemble, in words, and the lattice constant(s) of its runs."""
    cells = ens.get("lattice_constant_angstrom") or {}
    if ens.get("ensemble") == "nvt-fixed":
        values = sorted(set(f"{a:.4f}" for a in cells.values()))
        cell = f"a = {', '.join(values)} Å at every T" if values else ""
    else:
        cell = "a(T): " + ", ".join(f"{a:.4f} Å at {t} K" for t, a in cells.items()) if cells else ""
    return {"ensemble": ens.get("ensemble") or "–", "meaning": ens.get("meaning") or "", "cells": cell}


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def build_report(study_dir: str | Path, out: str | Path | None = None, compare: str | Path | None = None) -> Path:
    """Write the report; returns the path of index.html."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise AnalysisError(f"{study_dir} is not a study directory (runs/<study>)")
    out = Path(out) if out else study_dir / "report"
    analysis = analyse_study(study_dir)  # refuses a directory without runs before anything is created
    out.mkdir(parents=True, exist_ok=True)
    observable = analysis.selection
    table, excluded = analysis.points()
    fits, why = fit_table(table)
    table_all, excluded_all = analysis.points(include_few_events=True)
    fits_all, _ = fit_table(table_all)
    material, mobile = analysis.material, analysis.mobile
    label = observable_label(observable, mobile)
    figs = [(plot_arrhenius(fits, table, out / "arrhenius.png", title=arrhenius_title(material, observable, mobile)),
             f"Arrhenius plot of {material} ({label}), states with a diffusive regime and enough events"),
            (plot_bars(analysis.results, observable, out / "d_bars.png", material, mobile),
             f"D per potential and temperature, {material} ({label})")]
    for pot in dict.fromkeys(r.series for r in analysis.results):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pot)
        rs = [r for r in analysis.results if r.series == pot]
        figs.append((plot_diagnostics(pot, rs, analysis, observable, out / f"msd-{safe}.png"),
                     f"{pot}: MSD and running D(t), fit window shaded"))
    write_diffusivity_table(analysis, out)
    paper = paper_values(analysis)
    fit_rows = []
    ensembles = analysis.ensembles()
    for pot in dict.fromkeys(r.series for r in analysis.results):
        rs = [r for r in analysis.results if r.series == pot]
        f, fa = fits.get(pot), fits_all.get(pot)
        fit_rows.append({
            "potential": pot, "ensemble": ensembles.get(pot), "fit": asdict(f) if f else None,
            "fit_with_few_events": asdict(fa) if fa and (not f or fa.temperatures_k != f.temperatures_k) else None,
            "excluded": [asdict(e) for e in excluded.get(pot, [])], "runs": sum(len(r.run_dirs) for r in rs),
            "simulated_ps": sum(r.simulated_ps or 0 for r in rs),
            "paper_ea_ev": paper.get(rs[0].potential),
            "no_fit": None if f else (why.get(pot) or "fewer than two temperatures with a diffusive regime and "
                                                      "enough events")})
    comparison = None
    if compare:
        other = analyse_study(compare)
        comparison = {"study": other.study_name, "study_dir": str(Path(compare).resolve()),
                      "rows": finite_size(analysis, other)}
    # do the potentials differ? ΔEa ± σ of every pair of series of one ensemble (analysis.compare)
    pairs, pair_notes = compare_all(series_from(table, fits, ensembles,
                                                study_simulated_ps(analysis, observable, table)))
    if pairs:
        figs.append((plot_pairs(pairs, out / PAIRS_PNG), "ΔEa between potentials (b − a), bars 1σ and 2σ"))
    doc = {"study": analysis.study_name, "study_dir": str(study_dir.resolve()), "observable": observable,
           "material": material, "mobile": mobile, "paper_system": analysis.paper_system,
           "host_unstable": [{"series": r.series, "temperature_k": r.temperature_k, "reason": r.stability}
                             for r in analysis.unstable],
           "fits": fit_rows, "diffusivity": [row | {"runs": list(r.run_dirs)} for row, r in
                                             zip(diffusivity_rows(analysis.results, observable, material),
                                                 analysis.results)],
           "provenance": provenance(study_dir, analysis.runs), "pending": [str(p) for p in analysis.pending],
           "lammps_builds": analysis.lammps_builds(), "families": sorted({s.family for _, s in analysis.runs}),
           "point_charges": sorted({bool((s.potential_entry.get("params") or {}).get("charges"))
                                    for _, s in analysis.runs}),  # runs of rigid-ion models beside neutral ones
           "finite_size": comparison, "figures": [p.name for p, _ in figs],
           "expansion": expansion_parts(fits, ensembles),
           "potentials_compared": {"pairs": [asdict(c) for c in pairs], "notes": pair_notes}}
    atomic_write_text(out / "report.json", json_dumps(doc, indent=1, default=str) + "\n")
    atomic_write_text(out / "index.html", render_html(doc, figs))
    return out / "index.html"


def _fit_text(f: dict | None) -> dict:
    if not f:
        return {"ea": "–", "ci": "", "d0": "–", "cov": "–", "chi2": "–", "temperatures": ""}
    return {"ea": _pm(f["ea_ev"], f["ea_stderr_ev"], ".3f"),
            "ci": (f"{f['ea_ci95_low_ev']:.3f} – {f['ea_ci95_high_ev']:.3f}" if f["ea_ci95_low_ev"] is not None
                   else "–"),
            "d0": _pm(f["d0_cm2_s"], f["d0_stderr_cm2_s"]), "cov": _fmt(f["cov_ln_d0_ea"]),
            "chi2": _fmt(f["chi2_reduced"], ".2f") + (" (errors widened)" if f["widened"] else ""),
            "temperatures": ", ".join(f"{t:g}" for t in f["temperatures_k"])}


def render_html(doc: dict, figs: list[tuple[Path, str]]) -> str:
    """The page, from templates/report.html.j2 (every value escaped); numbers formatted here."""
    fits = []
    for r in doc["fits"]:
        few = r["fit_with_few_events"]
        ens = r.get("ensemble") or {}
        fits.append({"potential": r["potential"], **_fit_text(r["fit"]), **_ensemble_text(ens),
                     "few": (f"{_pm(few['ea_ev'], few['ea_stderr_ev'], '.3f')} eV "
                             f"(T = {', '.join(f'{t:g}' for t in few['temperatures_k'])} K)") if few else "",
                     "excluded": [f"{e['temperature_k']:g} K: {e['reason']}" for e in r["excluded"]],
                     "runs": r["runs"], "simulated": f"{r['simulated_ps']:g}", "paper": _fmt(r["paper_ea_ev"], ".2f"),
                     "no_fit": r["no_fit"]})

    def sens(d, name):
        e, h, dbl = (d.get(f"d_{name}_cm2_s"), d.get(f"d_{name}_half_start_cm2_s"),
                     d.get(f"d_{name}_double_start_cm2_s"))
        if e is None or not e:
            return "–"
        return " / ".join("–" if v is None else f"{100 * (v / e - 1):+.0f} %" for v in (h, dbl))

    rows = [{"potential": d["potential"], "temperature": f"{d['temperature_k']:g}", "status": d["status"],
             "events": "–" if d.get("events") is None else d["events"],
             "window": "–" if d.get("fit_start_ps") is None else f"{d['fit_start_ps']:.3g}–{d['fit_end_ps']:.3g}",
             "sensitivity": sens(d, d["observable"]),
             "replicas": _replicas(d),
             "li": _pm(d.get("d_li_cm2_s"), d.get("d_li_stderr_cm2_s")),
             "defect": _pm(d.get("d_defect_cm2_s"), d.get("d_defect_stderr_cm2_s")),
             "per_defect": _pm(d.get("per_defect_d_cm2_s"), d.get("per_defect_d_stderr_cm2_s")),
             "collective": _determined(d, "collective_d", d.get("collective_d_per_li_cm2_s"),
                                       d.get("collective_d_per_li_stderr_cm2_s")),
             "haven": _determined(d, "haven_ratio", d.get("haven_ratio"), d.get("haven_ratio_stderr"), ".2f"),
             "haven_defect": _determined(d, "haven_ratio_defect", d.get("haven_ratio_defect"),
                                         d.get("haven_ratio_defect_stderr"), ".2f"),
             "series": d.get("series") or d["potential"],
             "a": _pm(d.get("lattice_constant_angstrom"), d.get("lattice_constant_stderr_angstrom"), ".4f",
                      " (fixed)"),
             "p": _pm(d.get("pressure_bar"), d.get("pressure_stderr_bar"), ".0f"),
             "flag": d["flag"]} for d in doc["diffusivity"]]
    prov = [{"run": p["run"], "status": p["status"], "lammps": f"{p['lammps']} ({p['lammps_build']})",
             "deck": str(p["deck_sha256"])[:12], "data": str(p["data_sha256"])[:12],
             "models": ", ".join(f"{k}: {str(v)[:12]}" for k, v in (p["models"] or {}).items()),
             "git": str(p["git"])[:12], "wall": _fmt(p["wall_s"], ".0f")} for p in doc["provenance"]]
    versions = doc["provenance"][0]["versions"] if doc["provenance"] else {}
    images = [{"src": _data_uri(p), "alt": alt, "name": p.name} for p, alt in figs]
    pair_figures = [i for i in images if i["name"] == PAIRS_PNG]
    images = [i for i in images if i["name"] != PAIRS_PNG]
    comparison = None
    if doc["finite_size"]:
        c = doc["finite_size"]

        def v(x):
            return _pm(x["value"], x["stderr"]) if x else "–"

        comparison = {"study": c["study"], "rows": [
            {"potential": r["potential"], "temperature": f"{r['temperature_k']:g}",
             "n": f"{r['n_li']} / {r['other_n_li']}",
             "per_defect": f"{v(r['per_defect_d'])} / {v(r['other_per_defect_d'])}",
             "per_defect_z": _fmt(r["per_defect_d_z"], "+.1f"),
             "defect": f"{v(r['defect_d'])} / {v(r['other_defect_d'])}", "defect_z": _fmt(r["defect_d_z"], "+.1f")}
            for r in c["rows"]]}
    return render("report.html.j2", study=doc["study"], study_dir=doc["study_dir"],
                  observable=observable_label(doc["observable"], doc.get("mobile", "")),
                  mobile=doc.get("mobile") or "mobile", material=doc["material"],
                  paper=PAPER if doc["paper_system"] else "",
                  unstable=[f"{u['series']} at {u['temperature_k']:g} K: {u['reason']}" for u in doc["host_unstable"]],
                  pending=doc["pending"], builds=doc["lammps_builds"],
                  charged_note=doc["point_charges"] == [False, True], fits=fits, rows=rows,
                  provenance=prov, versions=", ".join(f"{k} {v}" for k, v in versions.items()),
                  top_figures=images[:2], msd_figures=images[2:], comparison=comparison,
                  pairs=report_rows((doc.get("potentials_compared") or {}).get("pairs") or []),
                  pair_notes=(doc.get("potentials_compared") or {}).get("notes") or [], pair_figures=pair_figures,
                  expansion=[{"potential": e["potential"], "npt": _pm(e["ea_npt_ev"], e["ea_npt_stderr_ev"], ".3f"),
                              "fixed": _pm(e["ea_fixed_ev"], e["ea_fixed_stderr_ev"], ".3f"),
                              "cell": _fmt(e["fixed_lattice_constant_angstrom"], ".4f"),
                              "difference": _pm(e["expansion_ev"], e["expansion_stderr_ev"], ".3f")}
                             for e in doc.get("expansion") or []])
