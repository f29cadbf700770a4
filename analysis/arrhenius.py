r"""Arrhenius fit: :math:`D(T) = D_0 \exp(-E_a / k_B T)`, fitted as a weighted line in ln D against 1/(k_B T).

Each point is weighted by :math:`1/\sigma_{\ln D}^2` with :math:`\sigma_{\ln D} = \sigma_D / D`. The parameter
covariance is :math:`(A^T W A)^{-1}`, scaled by the reduced χ² when the scatter exceeds the error bars (never
shrunk below them), and reported with the fit (the covariance of ln D0 and Ea). Points with D ≤ 0 cannot enter a
logarithm and are dropped with a warning; fewer than two temperatures is an error.

Command line::

    python -m analysis.arrhenius STUDY_DIR_OR_CSV [--json] [--out DIR]

A CSV has the columns ``temperature_k,d_cm2_s,d_stderr_cm2_s`` and optionally ``potential``. A study directory
(``runs/<study>``) is analysed first (see :mod:`analysis.study`). Tables (CSV, JSON) and a PNG are written to
``--out`` (default: the study directory, or the CSV's directory).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.diffusion import Diffusivity
from core import cli
from core.errors import AnalysisError
from core.units import K_B_EV_PER_K

log = logging.getLogger(__name__)


def arrhenius(temperature_k: np.ndarray | float, d0_cm2_s: float, ea_ev: float) -> np.ndarray | float:
    """The physical model: D(T) in the units of ``d0_cm2_s``."""
    return d0_cm2_s * np.exp(-ea_ev / (K_B_EV_PER_K * np.asarray(temperature_k, dtype=float)))


@dataclass(frozen=True)
class ArrheniusFit:
    ea_ev: float
    ea_stderr_ev: float | None
    d0_cm2_s: float
    d0_stderr_cm2_s: float | None
    ln_d0: float
    ln_d0_stderr: float | None
    cov_ln_d0_ea: float | None  # covariance of ln(D0 / cm²/s) and Ea (eV)
    chi2_reduced: float | None
    n_points: int
    temperatures_k: tuple[float, ...]
    weighted: bool

    def predict(self, temperature_k: np.ndarray) -> np.ndarray:
        return arrhenius(temperature_k, self.d0_cm2_s, self.ea_ev)

    def ln_d_band(self, temperature_k: np.ndarray) -> np.ndarray:
        """1σ of the fitted ln D at each temperature (for confidence bands)."""
        if self.ln_d0_stderr is None or self.ea_stderr_ev is None or self.cov_ln_d0_ea is None:
            return np.full(np.shape(temperature_k), np.nan)
        x = 1.0 / (K_B_EV_PER_K * np.asarray(temperature_k, float))
        var = self.ln_d0_stderr**2 + x**2 * self.ea_stderr_ev**2 - 2 * x * self.cov_ln_d0_ea
        return np.sqrt(np.maximum(var, 0))


def fit_arrhenius(points: Sequence[Diffusivity]) -> ArrheniusFit:
    """Weighted fit of ln D vs 1/(k_B T) (unweighted where no point has an error)."""
    t = np.array([p.temperature_k for p in points], dtype=float)
    d = np.array([p.d_cm2_s for p in points], dtype=float)
    have = [p.d_stderr_cm2_s is not None for p in points]
    err = np.array([np.nan if p.d_stderr_cm2_s is None else p.d_stderr_cm2_s for p in points], dtype=float) \
        if all(have) else None
    if np.any(~np.isfinite(t)) or np.any(t <= 0):
        raise AnalysisError(f"temperatures must be positive (K), got {t.tolist()}")
    ok = np.isfinite(d) & (d > 0)
    if not ok.all():
        warnings.warn(f"dropping {int((~ok).sum())} point(s) with D <= 0 at T = {t[~ok].tolist()} K "
                      "(no diffusion resolved there)", stacklevel=2)
    t, d = t[ok], d[ok]
    err = err[ok] if err is not None else None
    if len(np.unique(t)) < 2:
        raise AnalysisError(f"an Arrhenius fit needs at least two temperatures with D > 0; have {sorted({float(v) for v in t})} K")
    weighted = err is not None and bool(np.all(np.isfinite(err) & (err > 0)))
    x = 1.0 / (K_B_EV_PER_K * t)
    y = np.log(d)
    w = 1.0 / (err / d) ** 2 if weighted else np.ones_like(y)
    A = np.column_stack([np.ones_like(x), -x])  # y = ln D0 - Ea x
    AtW = A.T * w
    cov = np.linalg.inv(AtW @ A)
    ln_d0, ea = cov @ (AtW @ y)
    resid = y - A @ np.array([ln_d0, ea])
    dof = len(y) - 2
    chi2_red = float(np.sum(w * resid**2) / dof) if dof > 0 else None
    if not weighted:
        if chi2_red is None:
            cov = None  # two unweighted points: a line through them, no error
        else:
            cov = cov * chi2_red
    elif chi2_red is not None and chi2_red > 1:
        cov = cov * chi2_red
    sd = np.sqrt(np.diag(cov)) if cov is not None else (None, None)
    d0 = float(math.exp(ln_d0))
    return ArrheniusFit(
        ea_ev=float(ea), ea_stderr_ev=None if cov is None else float(sd[1]),
        d0_cm2_s=d0, d0_stderr_cm2_s=None if cov is None else float(d0 * sd[0]),
        ln_d0=float(ln_d0), ln_d0_stderr=None if cov is None else float(sd[0]),
        cov_ln_d0_ea=None if cov is None else float(cov[0, 1]),
        chi2_reduced=chi2_red if weighted else None, n_points=len(y),
        temperatures_k=tuple(float(v) for v in t), weighted=weighted)


# --- tables in, tables out -------------------------------------------------------------------------------

def read_table(path: Path) -> dict[str, list[Diffusivity]]:
    """A diffusivity CSV (columns temperature_k, d_cm2_s, d_stderr_cm2_s[, n_samples, potential]) → points by
    potential."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as e:
        raise AnalysisError(f"cannot read {path}: {e}") from None
    need = {"temperature_k", "d_cm2_s", "d_stderr_cm2_s"}
    if not rows or not need <= set(rows[0]):
        raise AnalysisError(f"{path} needs the columns {', '.join(sorted(need))} (and optionally potential)")
    out: dict[str, list[Diffusivity]] = {}
    for i, r in enumerate(rows, start=2):
        try:
            err = r["d_stderr_cm2_s"].strip()
            n = (r.get("n_samples") or "").strip()
            point = Diffusivity(float(r["temperature_k"]), float(r["d_cm2_s"]),
                                float(err) if err not in ("", "None") else None, int(n) if n else 0)
        except ValueError:
            raise AnalysisError(f"{path}:{i}: not a number in {r}") from None
        out.setdefault(r.get("potential") or "-", []).append(point)
    return out


def fit_table(table: dict[str, list[Diffusivity]]) -> dict[str, ArrheniusFit]:
    fits = {}
    for pot, pts in table.items():
        try:
            fits[pot] = fit_arrhenius(pts)
        except AnalysisError as err:
            raise AnalysisError(f"potential {pot}: {err}") from None
    return fits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.arrhenius", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="a study directory (runs/<study>) or a CSV of temperature_k,d_cm2_s,d_stderr_cm2_s")
    ap.add_argument("--json", action="store_true", help="print one JSON object per potential")
    ap.add_argument("--out", help="directory for arrhenius.csv/.json/.png (default: beside the source)")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args = ap.parse_args(argv)

    def command() -> int:
        from analysis import output

        src = Path(args.source)
        if src.is_dir():
            from analysis.study import analyse_study

            analysis = analyse_study(src)
            table = analysis.points()
            out_dir = Path(args.out) if args.out else src
            output.write_diffusivity_table(analysis.results, out_dir / "diffusivity.csv")
            for p in analysis.pending:
                log.warning("left out (not finished): %s", p)
        elif src.is_file():
            table, out_dir = read_table(src), Path(args.out) if args.out else src.parent
        else:
            raise AnalysisError(f"{src} is neither a study directory nor a CSV file")
        fits = fit_table(table)
        written = output.write_arrhenius(fits, table, out_dir, plot=not args.no_plot)
        if args.json:
            for pot, f in fits.items():
                print(json.dumps({"potential": pot, **asdict(f)}))
        else:
            for pot, f in fits.items():
                err = f"{f.ea_stderr_ev:.3f}" if f.ea_stderr_ev is not None else "n/a"
                chi = f"{f.chi2_reduced:.2f}" if f.chi2_reduced is not None else "n/a"
                print(f"{pot}: Ea = {f.ea_ev:.3f} ± {err} eV, D0 = {f.d0_cm2_s:.3e} cm²/s, {f.n_points} "
                      f"temperatures {min(f.temperatures_k):g}-{max(f.temperatures_k):g} K, χ²_red = {chi}")
            log.info("wrote %s", ", ".join(str(p) for p in written))
        return 0

    return cli.run(command)


if __name__ == "__main__":
    sys.exit(main())
