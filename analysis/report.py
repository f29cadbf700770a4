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
import html
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from analysis.arrhenius import ArrheniusFit, fit_arrhenius
from analysis.hops import HOP_ANGSTROM, MIN_HOPS
from analysis.msd import msd
from analysis.output import plot_arrhenius
from analysis.study import StateResult, analyse_study, find_runs, trajectory_of, write_diffusivity_table
from inputs.errors import AnalysisError, LifDiffusionError
from inputs.io import atomic_write_text

PAPER = "arXiv 2510.05020"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    _plt().close(fig)
    tmp.replace(path)
    return path


def fits_by_potential(results: list[StateResult]) -> tuple[dict[str, ArrheniusFit], dict[str, str], dict]:
    table: dict[str, list] = {}
    for r in results:
        table.setdefault(r.potential, []).append((r.temperature_k, r.estimate.d_cm2_s, r.estimate.d_stderr_cm2_s))
    fits, why = {}, {}
    for pot, pts in table.items():
        t, d, e = zip(*pts)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits[pot] = fit_arrhenius(t, d, None if any(v is None for v in e) else e)
        except AnalysisError as err:
            why[pot] = str(err)
    return fits, why, table


def plot_bars(results: list[StateResult], path: Path) -> Path:
    plt = _plt()
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
    return _save(fig, path)


def msd_curves(run_dirs: list[str], selection: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for d in run_dirs:
        s = json.loads((Path(d) / "summary.json").read_text())
        tr = trajectory_of(Path(d), s, selection)
        lags = np.arange(tr.n_frames) * tr.frame_interval_ps
        out.append((Path(d).name, lags, msd(tr.positions)))
    return out


def plot_msd(pot: str, results: list[StateResult], path: Path) -> Path:
    """Columns: temperatures; top: MSD of each run with the fit window; bottom: local log-log slope."""
    plt = _plt()
    rs = sorted(results, key=lambda r: r.temperature_k)
    fig, axes = plt.subplots(2, len(rs), figsize=(3.4 * len(rs) + 0.6, 5.6), squeeze=False, sharex="col")
    for col, r in enumerate(rs):
        top, bottom = axes[0][col], axes[1][col]
        for name, lags, m in msd_curves(list(r.run_dirs), r.selection):
            top.plot(lags, m, lw=1, label=name)
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
    return _save(fig, path)


def _fmt(v, spec=".3g", none="–") -> str:
    return none if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{html.escape(alt)} ({html.escape(path.name)})</figcaption></figure>')


def provenance(study_dir: Path, runs: list[tuple[Path, dict]]) -> list[dict]:
    rows = []
    for d, s in runs:
        rows.append({"run": str(d.relative_to(study_dir)), "status": s.get("status"),
                     "potential": s.get("potential"), "temperature_k": s.get("temperature_k"), "seed": s.get("seed"),
                     "lammps": (s.get("lammps") or {}).get("version"), "git": s.get("git"),
                     "versions": s.get("versions", {}),
                     "deck_sha256": s.get("inputs", {}).get("in.lammps", {}).get("sha256"),
                     "data_sha256": s.get("inputs", {}).get("data.lmp", {}).get("sha256"),
                     "models": {k: v.get("sha256") for k, v in s.get("inputs", {}).items()
                                if k not in ("in.lammps", "data.lmp")}, "wall_s": s.get("wall_s"),
                     "segments": s.get("segments"), "frames": (s.get("outputs") or {}).get("frames")})
    return rows


def paper_values() -> dict[str, float]:
    try:
        from potentials.catalog import load_catalog

        return {n: float(e.params["paper_ea_ev"]) for n, e in load_catalog().items() if "paper_ea_ev" in e.params}
    except LifDiffusionError:
        return {}


STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}.flag{color:#b00;font-weight:bold}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:.8em;color:#666}
details{margin:1em 0}code{font-size:.9em}"""

CHECK = """<script>window.addEventListener('load',function(){var ok=0,imgs=document.images;for(var i=0;i<imgs.length;i++)
{var im=imgs[i];im.setAttribute('data-size',im.naturalWidth+'x'+im.naturalHeight);if(im.naturalWidth>0)ok++;}
document.body.setAttribute('data-images-loaded',ok+'/'+imgs.length);});</script>"""


def build_report(study_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report; returns the path of index.html."""
    study_dir = Path(study_dir)
    out = Path(out) if out else study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = analyse_study(study_dir, selections="both")
    pending = [str(w.message) for w in caught if "not finished" in str(w.message)]
    summaries = find_runs(study_dir)
    choice = summaries[0][1]["config"]["analysis"]["selection"]
    study_name = summaries[0][1]["config"].get("name", study_dir.name)
    chosen = [r for r in results if r.selection == choice]
    fits, why, table = fits_by_potential(chosen)
    figs = [(plot_arrhenius(fits, table, out / "arrhenius.png"),
             f"Arrhenius plot ({choice} tracer D), fitted lines with 1σ bands"),
            (plot_bars(chosen, out / "d_bars.png"), f"D per potential and temperature ({choice})")]
    for pot in dict.fromkeys(r.potential for r in chosen):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pot)
        figs.append((plot_msd(pot, [r for r in chosen if r.potential == pot], out / f"msd-{safe}.png"),
                     f"{pot}: MSD and its log-log slope"))
    write_diffusivity_table(results, out / "diffusivity.csv")
    paper = paper_values()
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
    doc = {"study": study_name, "study_dir": str(study_dir.resolve()), "selection_for_arrhenius": choice,
           "fits": fit_rows, "diffusivity": [
               {"potential": r.potential, "temperature_k": r.temperature_k, "selection": r.selection,
                "d_cm2_s": r.estimate.d_cm2_s, "d_stderr_cm2_s": r.estimate.d_stderr_cm2_s,
                "n_replicas": r.estimate.n_replicas, "simulated_ps": r.estimate.simulated_ps,
                "fit_window_ps": [r.estimate.fit_start_ps, r.estimate.fit_end_ps], "method": r.estimate.method,
                "n_hops": r.n_hops, "flag": r.flag, "runs": list(r.run_dirs)} for r in results],
           "provenance": provenance(study_dir, summaries), "pending": pending,
           "figures": [p.name for p, _ in figs]}
    atomic_write_text(out / "report.json", json.dumps(doc, indent=1, default=str) + "\n")
    atomic_write_text(out / "index.html", render_html(doc, figs))
    return out / "index.html"


def render_html(doc: dict, figs: list[tuple[Path, str]]) -> str:
    e = html.escape
    fit_head = ("<tr><th class=l>potential</th><th>Ea (eV)</th><th>D0 (cm²/s)</th><th>cov(ln D0, Ea) (eV)</th>"
                f"<th>χ²<sub>red</sub></th><th>T (K)</th><th>runs</th><th>simulated (ps)</th><th>fewest hops</th>"
                f"<th>{PAPER} Ea (eV)</th><th class=l>notes</th></tr>")
    fit_rows = []
    for r in doc["fits"]:
        ea = f"{_fmt(r['ea_ev'], '.3f')} ± {_fmt(r['ea_stderr_ev'], '.3f')}" if r["ea_ev"] is not None else "–"
        d0 = f"{_fmt(r['d0_cm2_s'])} ± {_fmt(r['d0_stderr_cm2_s'])}" if r["d0_cm2_s"] is not None else "–"
        notes = "; ".join([r["no_fit"]] if r["no_fit"] else []) + "".join(
            f"<span class=flag>{e(f)}</span>" for f in r["flags"])
        fit_rows.append(
            f"<tr><td class=l>{e(r['potential'])}</td><td>{ea}</td><td>{d0}</td><td>{_fmt(r['cov_ln_d0_ea'])}</td>"
            f"<td>{_fmt(r['chi2_reduced'], '.2f')}</td><td>{', '.join(f'{t:g}' for t in r['temperatures_k'])}</td>"
            f"<td>{r['runs']}</td><td>{r['simulated_ps']:g}</td><td>{r['min_hops']}</td>"
            f"<td>{_fmt(r['paper_ea_ev'], '.2f')}</td><td class=l>{notes}</td></tr>")
    d_rows = [f"<tr><td class=l>{e(d['potential'])}</td><td>{d['temperature_k']:g}</td><td class=l>{e(d['selection'])}</td>"
              f"<td>{_fmt(d['d_cm2_s'])}</td><td>{_fmt(d['d_stderr_cm2_s'])}</td><td>{d['n_replicas']}</td>"
              f"<td>{d['simulated_ps']:g}</td><td>{d['fit_window_ps'][0]:g}–{d['fit_window_ps'][1]:g}</td>"
              f"<td>{d['n_hops']}</td><td class=l><span class=flag>{e(d['flag'])}</span></td></tr>"
              for d in doc["diffusivity"]]
    prov_rows = [f"<tr><td class=l><code>{e(p['run'])}</code></td><td class=l>{e(str(p['status']))}</td>"
                 f"<td class=l>{e(str(p['lammps']))}</td><td class=l><code>{e(str(p['deck_sha256'])[:12])}</code></td>"
                 f"<td class=l><code>{e(str(p['data_sha256'])[:12])}</code></td>"
                 f"<td class=l>{e(', '.join(f'{k}: {str(v)[:12]}' for k, v in (p['models'] or {}).items()))}</td>"
                 f"<td class=l><code>{e(str(p['git'])[:12])}</code></td><td>{_fmt(p['wall_s'], '.0f')}</td></tr>"
                 for p in doc["provenance"]]
    versions = doc["provenance"][0]["versions"] if doc["provenance"] else {}
    pending = "".join(f"<p class=flag>{e(p)}</p>" for p in doc["pending"])
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(doc['study'])}: Li diffusion report</title>
<style>{STYLE}</style>{CHECK}</head><body>
<h1>Li diffusion in LiF — study <code>{e(doc['study'])}</code></h1>
<p>From <code>{e(doc['study_dir'])}</code>. Arrhenius fits use the <b>{e(doc['selection_for_arrhenius'])}</b> tracer D
(the study's <code>analysis.selection</code>); D of all Li and of the defect atom are both tabulated below.
Errors are 1σ. {e(PAPER)} values are shown where the potential is the paper's.</p>{pending}
<h2>Activation energies</h2><table>{fit_head}{''.join(fit_rows)}</table>
{''.join(_img(p, alt) for p, alt in figs[:2])}
<h2>Diffusivities</h2><table><tr><th class=l>potential</th><th>T (K)</th><th class=l>atoms</th><th>D (cm²/s)</th>
<th>σ (cm²/s)</th><th>replicas</th><th>simulated (ps)</th><th>fit window (ps)</th><th>hops</th><th class=l>flag</th></tr>
{''.join(d_rows)}</table>
<p>Hops: smoothed displacements of more than {HOP_ANGSTROM} Å from the last site (analysis/hops.py); fewer than
{MIN_HOPS} behind a D flags it. σ: block averaging over all replicas (blocks of each trajectory are independent; the
overlapping time origins inside one MSD are not), Student-t widened; the Arrhenius fit weights ln D by (σ/D)⁻² and
widens its covariance by √χ²<sub>red</sub> when χ²<sub>red</sub> &gt; 1.</p>
<h2>MSD diagnostics</h2>{''.join(_img(p, alt) for p, alt in figs[2:])}
<h2>Provenance</h2><p>Versions: {e(', '.join(f'{k} {v}' for k, v in versions.items()))}</p>
<details open><summary>{len(prov_rows)} run directories</summary><table><tr><th class=l>run</th><th class=l>status</th>
<th class=l>LAMMPS</th><th class=l>deck sha256</th><th class=l>data sha256</th><th class=l>model files sha256</th>
<th class=l>git</th><th>wall (s)</th></tr>{''.join(prov_rows)}</table></details>
<p>Machine-readable: <code>report.json</code>, <code>diffusivity.csv</code> beside this page.</p>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("study_dir")
    ap.add_argument("--out", help="directory for the report (default: STUDY_DIR/report)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("MDAnalysis").setLevel(logging.ERROR)
    try:
        path = build_report(args.study_dir, args.out)
    except LifDiffusionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
