"""``python -m analysis.arrhenius``: the Arrhenius fit of a study directory or a diffusivity table (see
:mod:`analysis.arrhenius`). The command line lives here, apart from the fit, because it reaches up to the study
analysis and the table writers, which themselves use the fit."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from analysis.arrhenius import describe, expansion_parts, fit_table, read_ensembles, read_table
from core import cli
from core.errors import AnalysisError
from core.files import json_dumps

log = logging.getLogger("analysis.arrhenius")
_DESCRIPTION = "Arrhenius fit: D(T) = D0 exp(-Ea / kB T), fitted as a weighted line in ln D against 1/(kB T)."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.arrhenius", description=_DESCRIPTION)
    ap.add_argument("source", help="a study directory (runs/<study>) or a CSV of temperature_k,d_cm2_s,d_stderr_cm2_s")
    ap.add_argument("--json", action="store_true", help="print one JSON object per potential")
    ap.add_argument("--out", help="directory for arrhenius.csv/.json/.png (default: beside the source)")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    ap.add_argument("--observable", choices=("li", "defect", "collective"),
                    help="which D to fit (study directories; default: the study's analysis.selection)")
    ap.add_argument("--with-few-events", action="store_true",
                    help="fit states with few migration events too (they are left out by default)")
    ap.add_argument("--unweighted", action="store_true", help="ignore the errors of D (not recommended)")
    args = ap.parse_args(argv)

    def command() -> int:
        from analysis import output

        src = Path(args.source)
        excluded: dict = {}
        if src.is_dir():
            from analysis.study import analyse_study

            analysis = analyse_study(src)
            observable = args.observable or analysis.selection
            table, excluded = analysis.points(observable, include_few_events=args.with_few_events)
            ensembles = analysis.ensembles()
            out_dir = Path(args.out) if args.out else src
            output.write_diffusivity_table(analysis.results, out_dir / "diffusivity.csv", observable)
            for p in analysis.pending:
                log.warning("left out (not finished): %s", p)
        elif src.is_file():
            table, excluded = read_table(src, args.with_few_events)
            ensembles = read_ensembles(src)
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
                                         ensembles=ensembles)
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


if __name__ == "__main__":
    sys.exit(main())
