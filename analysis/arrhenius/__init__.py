r"""Arrhenius fit: :math:`D(T) = D_0 \exp(-E_a / k_B T)`, fitted as a weighted line in ln D against 1/(k_B T).

Each point is weighted by :math:`1/\sigma_{\ln D}^2` with :math:`\sigma_{\ln D} = \sigma_D / D`, σ_D being the
point's 1σ standard error; a point without one is refused (an unweighted fit is asked for explicitly). The
parameter covariance is :math:`(A^T W A)^{-1}`: the standard errors of Ea and ln D0 as the points' errors imply.
The reduced χ² tells whether the points scatter about the line as their errors say; where it exceeds its 95 %
quantile they do not (curvature, or error bars too small) and the covariance is widened by χ²_red. The 95 %
interval of Ea is ``Ea ± t(0.975, dof) σ`` — dof the smallest of the points' own degrees of freedom, or n - 2
where the covariance was widened by the scatter. D ≤ 0 has no logarithm: such a point is refused with a message
(a study's analysis leaves out, and lists, the states without a diffusive regime).

What Ea means depends on the ensemble of the ladder, and every table says which (``ensemble``):

- ``npt``: each temperature ran at the potential's own zero-pressure cell, so the lattice expands along the ladder.
  The slope is then an activation *enthalpy* along a(T): with the barrier E(a) falling as the lattice expands,
  :math:`-\partial \ln D / \partial (1/k_B T) = E(a(T)) - T\,(\mathrm{d}E/\mathrm{d}a)(\mathrm{d}a/\mathrm{d}T)`,
  larger than the barrier at any one volume by the expansion part :math:`-T E'(a)\, a'(T)` (a few hundredths of
  an eV for LiF; as large as the differences between potentials). It is what an experiment at ambient pressure
  measures.
- ``nvt-fixed``: every temperature at one cell: the barrier at that volume (plus its vibrational entropy).

A study run with ``system.fixed_beside_angstrom`` has both ladders; :func:`expansion_part` is their difference.

Command line (:func:`analysis.cli.arrhenius`)::

    python -m analysis.arrhenius STUDY_DIR_OR_CSV [--json] [--out DIR] [--with-few-events] [--unweighted]

A CSV has the columns ``temperature_k,d_cm2_s,d_stderr_cm2_s`` and optionally ``potential`` and ``n_samples``
(degrees of freedom of the error). A study directory (``runs/<study>``) is analysed first (see
:mod:`analysis.study`; its stored result where the runs are unchanged): states with too few migration events
or an unstable host are left out of the fit (the few-event ones unless asked for). Tables (CSV, JSON, both naming
the material) and a PNG are written to ``--out`` (default: the study directory, or the CSV's directory).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from analysis.diffusion import Diffusivity
from analysis.statistics import chi2_quantile, interval95
from core.errors import AnalysisError
from core.units import K_B_EV_PER_K

log = logging.getLogger(__name__)

Ensemble = Literal["npt", "nvt-fixed"]
#: what Ea means for a ladder of each ensemble (the tables and the report say it beside every Ea)
ENSEMBLES: dict[str, str] = {
    "npt": "activation enthalpy along the potential's own zero-pressure a(T) (each temperature at its own cell)",
    "nvt-fixed": "activation energy at one fixed volume (every temperature at the same cell)",
}
#: state statuses no Arrhenius fit takes (few-event states are left out by default, and can be taken)
NEVER_FITTED = ("no-diffusive-regime", "host-unstable")


def arrhenius(temperature_k: np.ndarray | float, d0_cm2_s: float, ea_ev: float) -> np.ndarray | float:
    """The physical model: D(T) in the units of ``d0_cm2_s``."""
    return d0_cm2_s * np.exp(-ea_ev / (K_B_EV_PER_K * np.asarray(temperature_k, dtype=float)))


@dataclass(frozen=True)
class ArrheniusFit:
    """Ea and D0 with 1σ standard errors, Ea's 95 % interval and the degrees of freedom behind it, the covariance
    of ln D0 and Ea, χ²_red (and whether it widened the errors), and the temperatures fitted."""

    ea_ev: float
    ea_stderr_ev: float | None
    ea_ci95_low_ev: float | None
    ea_ci95_high_ev: float | None
    dof: float | None
    d0_cm2_s: float
    d0_stderr_cm2_s: float | None
    ln_d0: float
    ln_d0_stderr: float | None
    cov_ln_d0_ea: float | None  # covariance of ln(D0 / cm²/s) and Ea (eV)
    chi2_reduced: float | None
    widened: bool
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


def fit_arrhenius(points: Sequence[Diffusivity], weighted: bool = True) -> ArrheniusFit:
    """The fit of ln D vs 1/(k_B T) (see the module docstring); ``weighted=False`` ignores the errors."""
    t = np.array([p.temperature_k for p in points], dtype=float)
    d = np.array([p.d_cm2_s for p in points], dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t <= 0):
        raise AnalysisError(f"temperatures must be positive (K), got {t.tolist()}")
    bad = [p.temperature_k for p in points if not (math.isfinite(p.d_cm2_s) and p.d_cm2_s > 0)]
    if bad:
        raise AnalysisError(f"D ≤ 0 (or not a number) at T = {bad} K has no logarithm: leave those temperatures "
                            "out (no diffusion was resolved there) or run them longer")
    if weighted:
        missing = [p.temperature_k for p in points if p.d_stderr_cm2_s is None or not p.d_stderr_cm2_s > 0]
        if missing:
            raise AnalysisError(f"no standard error of D at T = {missing} K: a weighted fit needs every point's "
                                "error (ask for an unweighted fit explicitly)")
    if len(np.unique(t)) < 2:
        raise AnalysisError(f"an Arrhenius fit needs at least two temperatures with D > 0; have "
                            f"{sorted({float(v) for v in t})} K")
    x = 1.0 / (K_B_EV_PER_K * t)
    y = np.log(d)
    w = 1.0 / (np.array([p.d_stderr_cm2_s for p in points], float) / d) ** 2 if weighted else np.ones_like(y)
    A = np.column_stack([np.ones_like(x), -x])  # y = ln D0 - Ea x
    AtW = A.T * w
    try:
        cov = np.linalg.inv(AtW @ A)
    except np.linalg.LinAlgError:
        cov = None
    if cov is None or not np.isfinite(cov).all():
        raise AnalysisError(f"the Arrhenius fit is singular at T = {sorted({float(v) for v in t})} K: the points' "
                            "errors leave fewer than two temperatures with weight (an error of 0, inf or far beyond "
                            "its D?)")
    ln_d0, ea = cov @ (AtW @ y)
    resid = y - A @ np.array([ln_d0, ea])
    n_dof = len(y) - 2
    chi2_red = float(np.sum(w * resid**2) / n_dof) if n_dof > 0 else None
    widened = False
    own = [p.n_samples for p in points if p.n_samples > 0]
    dof: float | None = float(min(own)) if own else math.inf
    if not weighted:  # the scale of the errors comes from the scatter alone
        cov, dof = (cov * chi2_red, float(n_dof)) if chi2_red is not None else (None, None)
    elif chi2_red is not None and chi2_red * n_dof > chi2_quantile(0.95, n_dof):
        cov, dof, widened = cov * chi2_red, float(n_dof), True
    sd = np.sqrt(np.diag(cov)) if cov is not None else (None, None)
    ci = interval95(float(ea), None if cov is None else float(sd[1]), dof) if dof else None
    d0 = float(math.exp(ln_d0))
    return ArrheniusFit(
        ea_ev=float(ea), ea_stderr_ev=None if cov is None else float(sd[1]),
        ea_ci95_low_ev=ci[0] if ci else None, ea_ci95_high_ev=ci[1] if ci else None,
        dof=None if dof is None or math.isinf(dof) else dof,
        d0_cm2_s=d0, d0_stderr_cm2_s=None if cov is None else float(d0 * sd[0]),
        ln_d0=float(ln_d0), ln_d0_stderr=None if cov is None else float(sd[0]),
        cov_ln_d0_ea=None if cov is None else float(cov[0, 1]),
        chi2_reduced=chi2_red if weighted else None, widened=widened, n_points=len(y),
        temperatures_k=tuple(float(v) for v in t), weighted=weighted)


def expansion_part(npt: ArrheniusFit, fixed: ArrheniusFit) -> tuple[float, float | None]:
    """(Ea_npt - Ea_fixed, its 1σ) in eV: the part of the zero-pressure Ea that comes from the lattice expanding
    along the ladder (the two ladders are independent runs, so their errors add in quadrature)."""
    diff = npt.ea_ev - fixed.ea_ev
    if npt.ea_stderr_ev is None or fixed.ea_stderr_ev is None:
        return diff, None
    return diff, math.hypot(npt.ea_stderr_ev, fixed.ea_stderr_ev)


def expansion_parts(fits: dict[str, ArrheniusFit], ensembles: dict[str, dict]) -> list[dict]:
    """For every potential with a fitted ``npt`` series and a fitted ``nvt-fixed`` series: both Ea, the fixed
    cell and the expansion part ± 1σ (``ensembles``: per series its ``potential`` and ``ensemble``, as
    :meth:`analysis.result.StudyAnalysis.ensembles` gives them)."""
    rows = []
    for npt_series, e in ensembles.items():
        if e["ensemble"] != "npt" or npt_series not in fits:
            continue
        for fixed_series, f in ensembles.items():
            if f["ensemble"] == "nvt-fixed" and f["potential"] == e["potential"] and fixed_series in fits:
                diff, err = expansion_part(fits[npt_series], fits[fixed_series])
                cells = list(f.get("lattice_constant_angstrom", {}).values())
                rows.append({"potential": e["potential"], "npt_series": npt_series, "fixed_series": fixed_series,
                             "ea_npt_ev": fits[npt_series].ea_ev, "ea_npt_stderr_ev": fits[npt_series].ea_stderr_ev,
                             "ea_fixed_ev": fits[fixed_series].ea_ev,
                             "ea_fixed_stderr_ev": fits[fixed_series].ea_stderr_ev,
                             "fixed_lattice_constant_angstrom": float(np.mean(cells)) if cells else None,
                             "expansion_ev": diff, "expansion_stderr_ev": err})
    return rows


# --- tables in, tables out -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Excluded:
    """A state left out of an Arrhenius fit, and why."""

    temperature_k: float
    reason: str


#: the most rows a diffusivity table may have: one per potential, temperature (and observable) is a few dozen
MAX_TABLE_ROWS = 100_000


def _cell(row: dict, column: str, where: str) -> str:
    value = row.get(column)
    if value is None:  # csv's DictReader fills a short row's missing cells with None
        raise AnalysisError(f"{where}: the row has no cell for column {column!r} (fewer cells than the header)")
    return value.strip()


def _finite(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnalysisError(f"{where}: {column} = {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise AnalysisError(f"{where}: {column} = {text!r} is not a finite number")
    return value


def read_table(path: Path, include_few_events: bool = False
               ) -> tuple[dict[str, list[Diffusivity]], dict[str, list[Excluded]]]:
    """A diffusivity CSV (columns temperature_k, d_cm2_s, d_stderr_cm2_s[, n_samples, potential, status, flag]) →
    the points by potential, and the rows left out with why. With a ``status`` column (the tables this package
    writes), ``no-diffusive-regime`` and ``host-unstable`` rows are always left out and ``few-events`` rows unless
    ``include_few_events``; a row with no D is left out only where its status says why, else refused. Every
    number must be finite (a D that is not a number is left for the fit to refuse with its temperature); a file
    saved with a byte-order mark (Excel's "CSV UTF-8") is read as any other."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = []
            for row in reader:
                rows.append(row)
                if len(rows) > MAX_TABLE_ROWS:
                    raise AnalysisError(f"{path} has more than {MAX_TABLE_ROWS} rows; a diffusivity table has one "
                                        "row per potential and temperature")
            header = reader.fieldnames or []
    except UnicodeDecodeError as e:
        raise AnalysisError(f"cannot read {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise AnalysisError(f"cannot read {path}: not a CSV table ({e})") from None
    need = {"temperature_k", "d_cm2_s", "d_stderr_cm2_s"}
    if not need <= {h.strip() for h in header if h}:
        raise AnalysisError(f"{path} needs the columns {', '.join(sorted(need))} (and optionally potential); it has "
                            f"{', '.join(h for h in header if h) or 'none'}")
    if not rows:
        raise AnalysisError(f"{path} has a header but no rows")
    out: dict[str, list[Diffusivity]] = {}
    excluded: dict[str, list[Excluded]] = {}
    for i, r in enumerate(rows, start=2):
        r = {(k or "").strip(): v for k, v in r.items() if k is not None}
        where = f"{path}:{i}"
        pot = (r.get("series") or r.get("potential") or "").strip() or "-"
        status = (r.get("status") or "ok").strip()
        why = (r.get("flag") or "").strip() or status
        t = _finite(_cell(r, "temperature_k", where), "temperature_k", where)
        if t <= 0:
            raise AnalysisError(f"{where}: temperature_k = {t:g} must be positive (K)")
        if status in NEVER_FITTED or (status == "few-events" and not include_few_events):
            excluded.setdefault(pot, []).append(Excluded(t, why))
            continue
        d_text, err = _cell(r, "d_cm2_s", where), _cell(r, "d_stderr_cm2_s", where)
        try:
            d = float(d_text)  # nan or <= 0: refused by the fit with its temperature
        except ValueError:
            raise AnalysisError(f"{where}: d_cm2_s = {d_text[:40]!r} is not a number") from None
        if math.isinf(d):
            raise AnalysisError(f"{where}: d_cm2_s = {d_text!r} is not a finite number")
        stderr = None if err in ("", "None") else _finite(err, "d_stderr_cm2_s", where)
        if stderr is not None and stderr < 0:
            raise AnalysisError(f"{where}: d_stderr_cm2_s = {stderr:g} is negative")
        n = (r.get("n_samples") or "").strip()
        n_samples = _finite(n, "n_samples", where) if n else 0
        out.setdefault(pot, []).append(Diffusivity(t, d, stderr, int(n_samples)))
    temps = [p.temperature_k for pts in out.values() for p in pts]
    if temps and max(temps) < 273.15:
        log.warning("%s: every temperature is below 273.15 K (highest %g): the fit takes kelvin; were these "
                    "degrees Celsius?", path, max(temps))
    return out, excluded


def read_ensembles(path: Path) -> dict[str, dict]:
    """Per series of a diffusivity CSV with an ``ensemble`` column (the tables this package writes): its potential,
    ensemble, what its Ea means and its lattice constant per temperature; {} for other tables."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    out: dict[str, dict] = {}
    for r in rows:
        ens = (r.get("ensemble") or "").strip()
        if ens not in ENSEMBLES:
            continue
        pot = (r.get("potential") or "").strip() or "-"
        e = out.setdefault((r.get("series") or "").strip() or pot,
                           {"potential": pot, "ensemble": ens, "meaning": ENSEMBLES[ens],
                            "lattice_constant_angstrom": {}})
        try:
            e["lattice_constant_angstrom"][f"{float(r['temperature_k']):g}"] = float(r["lattice_constant_angstrom"])
        except (KeyError, TypeError, ValueError):
            pass
    return out


def read_material(path: Path) -> str:
    """The material a diffusivity CSV names in its ``material`` column (the tables this package writes), else
    empty."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            names = [(r.get("material") or "").strip() for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return ""
    return ", ".join(dict.fromkeys(n for n in names if n))


def fit_table(table: dict[str, list[Diffusivity]], weighted: bool = True
              ) -> tuple[dict[str, ArrheniusFit], dict[str, str]]:
    """A fit per potential, and why a potential has none (fewer than two usable temperatures ...)."""
    fits, why = {}, {}
    for pot, pts in table.items():
        try:
            fits[pot] = fit_arrhenius(pts, weighted)
        except AnalysisError as err:
            why[pot] = str(err)
    return fits, why


def temperatures_text(temperatures_k) -> str:
    """The temperatures of a fit for a line of text: all of them when few, else their count and range."""
    temps = sorted(temperatures_k)
    if len(temps) <= 12:
        return ", ".join(f"{t:g}" for t in temps)
    return f"{len(temps)} temperatures from {temps[0]:g} to {temps[-1]:g}"


def describe(fit: ArrheniusFit) -> str:
    err = f" ± {fit.ea_stderr_ev:.3f}" if fit.ea_stderr_ev is not None else ""
    ci = (f" (95 %: {fit.ea_ci95_low_ev:.3f}-{fit.ea_ci95_high_ev:.3f})" if fit.ea_ci95_low_ev is not None else "")
    chi = f", χ²_red = {fit.chi2_reduced:.2f}" + (" (errors widened)" if fit.widened else "") \
        if fit.chi2_reduced is not None else ""
    return (f"Ea = {fit.ea_ev:.3f}{err} eV{ci}, D0 = {fit.d0_cm2_s:.3e} cm²/s, T = "
            f"{temperatures_text(fit.temperatures_k)} K{chi}")
