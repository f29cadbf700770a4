"""The analysis's command lines, thin: each parses its arguments, reads a study through its stored result
(:func:`analysis.study.analyse_study`, computed once) or a diffusivity table, calls the library and writes what it
says it writes. Every command runs through :func:`core.cli.run` (a bad input is one line on stderr, status 2).

    python -m analysis.arrhenius STUDY_DIR_OR_CSV [--json] [--out DIR] ...     :func:`arrhenius`
    python -m analysis.compare STUDY_DIR | TABLE.csv ... [--potentials A B]     :func:`compare`
    python -m analysis.report STUDY_DIR [--out DIR] [--compare OTHER_STUDY]     :func:`report`

The modules named keep their ``python -m`` entry (each hands over to the function here).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from analysis import compare as comparison
from analysis import output
from analysis.arrhenius import describe, expansion_parts, fit_table, read_ensembles, read_material, read_table
from analysis.diffusion import Diffusivity
from analysis.runs import OBSERVABLES
from analysis.study import analyse_study
from core import cli
from core.errors import AnalysisError, InputError
from core.files import json_dumps

log = logging.getLogger("analysis")
_ARRHENIUS = "Arrhenius fit: D(T) = D0 exp(-Ea / kB T), fitted as a weighted line in ln D against 1/(kB T)."


def _first_paragraph(module) -> str:
    return (module.__doc__ or "").split("\n\n")[0]


def arrhenius(argv: list[str] | None = None) -> int:
    """``python -m analysis.arrhenius STUDY_DIR_OR_CSV``: Ea ± σ per series, the tables and the plot."""
    ap = argparse.ArgumentParser(prog="python -m analysis.arrhenius", description=_ARRHENIUS)
    ap.add_argument("source", help="a study directory (runs/<study>) or a CSV of temperature_k,d_cm2_s,d_stderr_cm2_s")
    ap.add_argument("--json", action="store_true", help="print one JSON object per potential")
    ap.add_argument("--out", help="directory for arrhenius.csv/.json/.png (default: beside the source)")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    ap.add_argument("--observable", choices=OBSERVABLES,
                    help="which D to fit (study directories; default: the study's analysis.selection)")
    ap.add_argument("--with-few-events", action="store_true",
                    help="fit states with few migration events too (they are left out by default)")
    ap.add_argument("--unweighted", action="store_true", help="ignore the errors of D (not recommended)")
    args = ap.parse_args(argv)

    def command() -> int:
        src = Path(args.source)
        excluded: dict = {}
        if src.is_dir():
            analysis = analyse_study(src)  # the stored result, where the runs are unchanged
            observable = args.observable or analysis.selection
            table, excluded = analysis.points(observable, include_few_events=args.with_few_events)
            ensembles, material, mobile = analysis.ensembles(), analysis.material, analysis.mobile
            out_dir = Path(args.out) if args.out else src
            output.write_diffusivity_table(analysis, out_dir, observable)
            for p in analysis.pending:
                log.warning("left out (not finished): %s", p)
        elif src.is_file():
            table, excluded = read_table(src, args.with_few_events)
            ensembles, material, observable, mobile = read_ensembles(src), read_material(src), "", ""
            out_dir = Path(args.out) if args.out else src.parent
        else:
            raise AnalysisError(f"{src} is neither a study directory nor a CSV file")
        fits, why = fit_table(table, weighted=not args.unweighted)
        if not fits:
            reasons = [f"{p}: {w}" for p, w in why.items()] + [
                f"{p}: every state was left out ({'; '.join(f'{e.temperature_k:g} K {e.reason}' for e in ex[:6])}"
                f"{' ...' if len(ex) > 6 else ''})" for p, ex in excluded.items() if p not in table]
            raise AnalysisError("no potential has an Arrhenius fit: " + ("; ".join(reasons) or "no usable rows"))
        written = output.write_arrhenius(fits, table, out_dir, plot=not args.no_plot, excluded=excluded,
                                         ensembles=ensembles, material=material, observable=observable,
                                         mobile=mobile)
        if material and not args.json:
            print(f"{material}:")
        for pot in sorted(set(table) | set(excluded)):
            left_out = excluded.get(pot, [])
            left = "; ".join(f"{e.temperature_k:g} K ({e.reason})" for e in left_out[:12]) + (
                f"; and {len(left_out) - 12} more" if len(left_out) > 12 else "")
            if args.json:
                print(json_dumps({"potential": pot, "fit": asdict(fits[pot]) if pot in fits else None,
                                  "no_fit": why.get(pot), "excluded": [asdict(e) for e in excluded.get(pot, [])],
                                  "ensemble": ensembles.get(pot)}))
            else:
                ens = ensembles.get(pot, {}).get("ensemble")
                print(f"{pot}{f' [{ens}]' if ens else ''}: " + (describe(fits[pot]) if pot in fits else
                                     f"no Arrhenius fit: {why.get(pot) or 'fewer than two temperatures to fit'}")
                      + (f"; left out: {left}" if left else ""))
        for row in expansion_parts(fits, ensembles):
            err = "" if row["expansion_stderr_ev"] is None else f" ± {row['expansion_stderr_ev']:.3f}"
            print(f"{row['potential']}: Ea at zero pressure - Ea at fixed volume = {row['expansion_ev']:.3f}{err} eV "
                  "(the lattice's expansion along the ladder)")
        log.info("wrote %s", ", ".join(str(p) for p in written))
        return 0

    return cli.run(command)


def _study_series(study_dir: Path, observable: str | None, few: bool) -> list[comparison.Series]:
    analysis = analyse_study(study_dir)  # the stored result, where the runs are unchanged
    observable = observable or analysis.selection
    table, excluded = analysis.points(observable, include_few_events=few)
    fits, why = fit_table(table)
    for name, reason in why.items():
        log.warning("%s: no Arrhenius fit, not compared: %s", name, reason)
    for name in set(excluded) - set(table):
        log.warning("%s: every state was left out of the fit, not compared", name)
    for p in analysis.pending:
        log.warning("left out (not finished): %s", p)
    simulated = comparison.study_simulated_ps(analysis, observable, table)
    return comparison.series_from(table, fits, analysis.ensembles(), simulated)


def _table_series(paths: Sequence[Path], few: bool) -> list[comparison.Series]:
    table: dict[str, list[Diffusivity]] = {}
    ensembles: dict[str, dict] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path} is not a file: give one study directory or one or more CSV tables")
        points, _ = read_table(path, few)
        for name, pts in points.items():
            if name in origin:
                raise InputError(f"potential {name!r} is in both {origin[name]} and {path}: give each potential in "
                                 "one table (or rename one in its potential column)")
            origin[name] = path
            table[name] = pts
        ensembles |= {k: v for k, v in read_ensembles(path).items() if k in points}
    fits, why = fit_table(table)
    for name, reason in why.items():
        log.warning("%s: no Arrhenius fit, not compared: %s", name, reason)
    return comparison.series_from(table, fits, ensembles)


def compare(argv: list[str] | None = None) -> int:
    """``python -m analysis.compare``: ΔEa ± σ, z and p of every pair of series of one ensemble."""
    ap = argparse.ArgumentParser(prog="python -m analysis.compare", description=_first_paragraph(comparison))
    ap.add_argument("sources", nargs="+", help="a study directory (runs/<study>), or one or more CSV tables with "
                                               "temperature_k,d_cm2_s,d_stderr_cm2_s,potential")
    ap.add_argument("--potentials", nargs="+", metavar="NAME",
                    help="the series to compare, in order (ΔEa = later − earlier; default: all fitted series)")
    ap.add_argument("--observable", choices=OBSERVABLES,
                    help="which D (study directories; default: the study's analysis.selection)")
    ap.add_argument("--with-few-events", action="store_true", help="fit states with few migration events too")
    ap.add_argument("--json", action="store_true", help="print a JSON list of the pairs")
    args = ap.parse_args(argv)

    def command() -> int:
        sources = [Path(s) for s in args.sources]
        if any(s.is_dir() for s in sources):
            if len(sources) > 1:
                raise InputError("give one study directory, or CSV tables (not both, nor two studies)")
            series = _study_series(sources[0], args.observable, args.with_few_events)
        else:
            if args.observable:
                raise InputError("--observable is for study directories; a table holds one D per row")
            series = _table_series(sources, args.with_few_events)
        if len(series) < 2:
            raise AnalysisError(f"a comparison needs at least two series with an Arrhenius fit; have "
                                f"{', '.join(s.name for s in series) or 'none'}")
        pairs, notes = comparison.compare_all(series, args.potentials)
        for note in notes:
            log.warning("%s", note)
        if not pairs:
            raise AnalysisError("no pair of series of one ensemble to compare")
        if args.json:
            print(json_dumps([asdict(c) for c in pairs], indent=1))
        else:
            for c in pairs:
                print(c.text)
                for r in c.d_ratios:
                    err = "" if r.d_ratio_stderr is None else f" ± {r.d_ratio_stderr:.2g}"
                    fit_err = "" if r.fit_d_ratio_stderr is None else f" ± {r.fit_d_ratio_stderr:.2g}"
                    print(f"  {r.temperature_k:g} K: D({c.b}) / D({c.a}) = {r.d_ratio:.3g}{err} (measured), "
                          f"{r.fit_d_ratio:.3g}{fit_err} (fits)")
        return 0

    return cli.run(command)


def report(argv: list[str] | None = None) -> int:
    """``python -m analysis.report STUDY_DIR``: the study's HTML report."""
    from analysis import report as reporting  # plotting and templates: only for the report

    ap = argparse.ArgumentParser(prog="python -m analysis.report", description=_first_paragraph(reporting))
    ap.add_argument("study_dir")
    ap.add_argument("--out", help="directory for the report (default: STUDY_DIR/report)")
    ap.add_argument("--compare", help="another study directory (e.g. a larger cell): per-defect quantities beside")
    args = ap.parse_args(argv)

    def command() -> int:
        print(f"report: {reporting.build_report(args.study_dir, args.out, args.compare)}")
        return 0

    return cli.run(command)
