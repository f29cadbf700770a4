r"""Do two potentials give different activation energies? ΔEa ± σ, z and p for each pair, D ratios, and the
sampling that would resolve the difference.

For two Arrhenius series a and b fitted from independent runs (different potentials), the difference of their
activation energies and its 1σ are

.. math:: \Delta E_a = E_a^{(b)} - E_a^{(a)}, \qquad \sigma_\Delta = \sqrt{\sigma_a^2 + \sigma_b^2},

and :math:`z = \Delta E_a / \sigma_\Delta`. The two-sided p-value is that of the normal distribution, or of Student's
t with the Welch-Satterthwaite degrees of freedom where a fit names its own (a fit whose errors were widened by its
scatter has n - 2). |z| ≥ 2 is called *resolved* (at 2σ).

How much more sampling would resolve an unresolved difference: a fit's σ(Ea) scales as 1/√(simulated time) of its
ladder (every σ_D does), so with every ladder run f times longer :math:`\sigma_\Delta \to \sigma_\Delta/\sqrt f`,
and |Δ| = 2σ needs :math:`f = (2\sigma_\Delta / |\Delta E_a|)^2`. The estimate takes the observed Δ at face value (Δ
is itself uncertain); where f would exceed :data:`MAX_FACTOR` the difference is consistent with zero and *not
resolvable by sampling* (a difference that small is not worth resolving, or is not there).

The ratio of diffusivities at the temperatures both series ran: D_b / D_a with the 1σ of ln(D_b/D_a) from the
measured points (σ_D/D added in quadrature) and from the fits' 1σ bands of ln D (which use every temperature).

Only series of one ensemble are compared: an ``npt`` Ea is an activation enthalpy along each potential's own a(T),
an ``nvt-fixed`` one the barrier at one cell (see :mod:`analysis.arrhenius`); an npt-vs-nvt-fixed pair is refused
(:func:`analysis.arrhenius.expansion_part` is the difference of one potential's two ladders).

Command line (:func:`analysis.cli.compare`)::

    python -m analysis.compare STUDY_DIR [--potentials A B ...] [--observable li] [--json]
    python -m analysis.compare TABLE.csv [TABLE.csv ...] [--potentials A B ...] [--json]

A table is a CSV in the Arrhenius table format (:func:`analysis.arrhenius.read_table`: ``temperature_k, d_cm2_s,
d_stderr_cm2_s`` and a ``potential`` column; one table may hold several potentials, a potential in two tables is an
error). ``--json`` prints a list of pairs, each with ``a``, ``b``, ``delta_ea_ev`` (b − a), ``delta_ea_stderr_ev``,
``z``, ``p_value``, the D ratios and ``text`` (the pair in words).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import Sequence

import numpy as np

from analysis.arrhenius import ArrheniusFit
from analysis.diffusion import Diffusivity
from analysis.statistics import t_cdf
from core.errors import AnalysisError, InputError

#: |z| at and beyond which a difference is called resolved
RESOLVED_Z = 2.0
#: more than this factor of simulated time to resolve a difference at 2σ: "not resolvable by sampling" (|z| < 0.2)
MAX_FACTOR = 100.0


@dataclass(frozen=True)
class Series:
    """One Arrhenius series to compare: its name (the potential, or ``<potential> @ a Å`` for a fixed-volume
    ladder), its fit and the points behind it, its ensemble where known, and the simulated time behind it (ps,
    all its fitted states and replicas; None where not known)."""

    name: str
    fit: ArrheniusFit
    points: tuple[Diffusivity, ...]
    ensemble: str | None = None
    simulated_ps: float | None = None


@dataclass(frozen=True)
class DRatio:
    """D_b / D_a at one temperature both series ran: from the measured points (``d_ratio``, with the 1σ of its
    logarithm and the ratio's linearised 1σ, and z = ln ratio / σ) and from the two fits (``fit_d_ratio``)."""

    temperature_k: float
    d_ratio: float
    d_ratio_stderr: float | None
    ln_d_ratio_stderr: float | None
    z: float | None
    fit_d_ratio: float
    fit_d_ratio_stderr: float | None
    fit_ln_d_ratio_stderr: float | None


@dataclass(frozen=True)
class PairComparison:
    """ΔEa = Ea(b) − Ea(a) (eV) with its 1σ, z, the two-sided p (with the degrees of freedom behind it; None:
    normal), whether |z| ≥ 2, the factor of simulated time that would resolve it at 2σ (None where resolved, or
    where not resolvable by sampling), the D ratios at shared temperatures, and the pair in words."""

    a: str
    b: str
    ensemble: str | None
    ea_a_ev: float
    ea_a_stderr_ev: float
    ea_b_ev: float
    ea_b_stderr_ev: float
    delta_ea_ev: float
    delta_ea_stderr_ev: float
    z: float
    p_value: float
    dof: float | None
    resolved: bool
    resolvable_by_sampling: bool
    sampling_factor: float | None
    simulated_ps_a: float | None
    simulated_ps_b: float | None
    d_ratios: tuple[DRatio, ...]
    text: str


def two_sided_p(z: float, dof: float | None = None) -> float:
    """P(|Z| ≥ |z|) for a standard normal Z, or Student's t with ``dof`` degrees of freedom."""
    if dof is None or math.isinf(dof):
        return 2.0 * (1.0 - NormalDist().cdf(abs(z)))
    return 2.0 * (1.0 - t_cdf(abs(z), dof))


def welch_dof(stderr_a: float, dof_a: float | None, stderr_b: float, dof_b: float | None) -> float | None:
    """The Welch-Satterthwaite degrees of freedom of σ_a² + σ_b² (None, i.e. infinite, where neither has any)."""
    terms = [s**4 / d for s, d in ((stderr_a, dof_a), (stderr_b, dof_b)) if d is not None and not math.isinf(d)]
    if not terms:
        return None
    total = (stderr_a**2 + stderr_b**2) ** 2
    return total / sum(terms) if sum(terms) > 0 else None


def sampling_factor(delta_ev: float, stderr_ev: float) -> float:
    """The factor of simulated time (every ladder f times longer) after which |Δ| is 2σ: (2σ/|Δ|)²; inf for
    Δ = 0."""
    return math.inf if delta_ev == 0 else (RESOLVED_Z * stderr_ev / abs(delta_ev)) ** 2


def d_ratios(a: Series, b: Series) -> tuple[DRatio, ...]:
    """D_b / D_a at every temperature both series have a measured point (see :class:`DRatio`)."""
    pa = {round(p.temperature_k, 6): p for p in a.points}
    pb = {round(p.temperature_k, 6): p for p in b.points}
    out = []
    for t in sorted(set(pa) & set(pb)):
        da, db = pa[t].estimate, pb[t].estimate
        ratio = db.value / da.value
        ln_err = None  # σ of ln(D_b / D_a): the relative errors in quadrature
        if da.relative_error is not None and db.relative_error is not None:
            ln_err = math.hypot(da.relative_error, db.relative_error)
        fit_ratio = float(b.fit.predict(np.array([t]))[0] / a.fit.predict(np.array([t]))[0])
        band = math.hypot(float(a.fit.ln_d_band(np.array([t]))[0]), float(b.fit.ln_d_band(np.array([t]))[0]))
        fit_err = band if math.isfinite(band) else None
        out.append(DRatio(t, ratio, None if ln_err is None else ratio * ln_err, ln_err,
                          None if not ln_err else math.log(ratio) / ln_err, fit_ratio,
                          None if fit_err is None else fit_ratio * fit_err, fit_err))
    return tuple(out)


def _decimals(stderr: float) -> int:
    """Decimals that show a 1σ with one or two significant digits (at least two)."""
    return max(2, -math.floor(math.log10(stderr))) if stderr > 0 else 3


def _signed(x: float, decimals: int) -> str:
    return f"{x:+.{decimals}f}".replace("-", "−")


def _time(ps: float) -> str:
    return f"{ps / 1000:.3g} ns" if ps >= 1000 else f"{ps:.3g} ps"


def in_words(c: PairComparison) -> str:
    """``mace-mpa-0 vs deepmd-lif: ΔEa = −0.02 ± 0.01 eV, 2.0σ (p = 0.046): resolved at 2σ`` (ΔEa = b − a), and
    what more sampling would do."""
    n = _decimals(c.delta_ea_stderr_ev)
    head = (f"{c.a} vs {c.b}: ΔEa = {_signed(c.delta_ea_ev, n)} ± {c.delta_ea_stderr_ev:.{n}f} eV, "
            f"{abs(c.z):.1f}σ (p = {c.p_value:.2g})")
    if c.resolved:
        side = c.b if c.delta_ea_ev > 0 else c.a
        return f"{head}: resolved at 2σ ({side} has the higher Ea)"
    if not c.resolvable_by_sampling:
        return (f"{head}: not resolved, and not resolvable by sampling (ΔEa ≈ 0: more than {MAX_FACTOR:g}× the "
                "simulated time would be needed)")
    more = f"~{c.sampling_factor:.2g}× the simulated time of both ladders"
    if c.simulated_ps_a is not None and c.simulated_ps_b is not None:
        more += (f" ({_time(c.simulated_ps_a)} → {_time(c.sampling_factor * c.simulated_ps_a)} and "
                 f"{_time(c.simulated_ps_b)} → {_time(c.sampling_factor * c.simulated_ps_b)})")
    return f"{head}: not resolved; {more} would resolve a difference this large at 2σ"


def compare_pair(a: Series, b: Series) -> PairComparison:
    """ΔEa = Ea(b) − Ea(a) and the rest of :class:`PairComparison`; series of different ensembles, or without an
    error of Ea, are refused."""
    if a.ensemble is not None and b.ensemble is not None and a.ensemble != b.ensemble:
        raise AnalysisError(
            f"{a.name} is an {a.ensemble} ladder and {b.name} an {b.ensemble} one: their Ea are different "
            "quantities (npt: an activation enthalpy along each potential's own a(T); nvt-fixed: the barrier at one "
            "cell); compare series of one ensemble (the expansion part of one potential is in analysis.arrhenius)")
    for s in (a, b):
        if s.fit.ea_stderr_ev is None or not s.fit.ea_stderr_ev > 0:
            raise AnalysisError(f"{s.name}: its Ea has no standard error (an unweighted fit of two temperatures?); "
                                "a comparison needs one: fit with the errors of D")
    sa, sb = float(a.fit.ea_stderr_ev), float(b.fit.ea_stderr_ev)  # type: ignore[arg-type]
    delta = b.fit.ea_ev - a.fit.ea_ev
    err = math.hypot(sa, sb)
    z = delta / err
    dof = welch_dof(sa, a.fit.dof, sb, b.fit.dof)
    resolved = abs(z) >= RESOLVED_Z
    factor = sampling_factor(delta, err)
    resolvable = resolved or factor <= MAX_FACTOR
    c = PairComparison(
        a=a.name, b=b.name, ensemble=a.ensemble or b.ensemble, ea_a_ev=a.fit.ea_ev, ea_a_stderr_ev=sa,
        ea_b_ev=b.fit.ea_ev, ea_b_stderr_ev=sb, delta_ea_ev=delta, delta_ea_stderr_ev=err, z=z,
        p_value=two_sided_p(z, dof), dof=dof, resolved=resolved, resolvable_by_sampling=resolvable,
        sampling_factor=None if resolved or not resolvable else factor, simulated_ps_a=a.simulated_ps,
        simulated_ps_b=b.simulated_ps, d_ratios=d_ratios(a, b), text="")
    return replace(c, text=in_words(c))


def series_from(table: dict[str, list[Diffusivity]], fits: dict[str, ArrheniusFit], ensembles: dict[str, dict],
                simulated_ps: dict[str, float] | None = None) -> list[Series]:
    """The fitted series of an Arrhenius table (``ensembles``: per series its ``ensemble``, as
    :func:`analysis.arrhenius.read_ensembles` and :meth:`analysis.result.StudyAnalysis.ensembles` give them)."""
    simulated_ps = simulated_ps or {}
    return [Series(name, fits[name], tuple(table.get(name, ())), ensembles.get(name, {}).get("ensemble"),
                   simulated_ps.get(name)) for name in table if name in fits]


def compare_all(series: Sequence[Series], names: Sequence[str] | None = None
                ) -> tuple[list[PairComparison], list[str]]:
    """Every pair (a before b in the order given) of the series named (default: all), and notes on the pairs left
    out: those of different ensembles, unless both were named (then refused)."""
    by_name = {s.name: s for s in series}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise InputError(f"--potentials: {', '.join(unknown)} not among the fitted series "
                             f"({', '.join(by_name) or 'none'})")
        if len(set(names)) < 2:
            raise InputError("--potentials: name at least two different series to compare")
        chosen = [by_name[n] for n in dict.fromkeys(names)]
    else:
        chosen = list(series)
    pairs, notes = [], []
    for i, a in enumerate(chosen):
        for b in chosen[i + 1:]:
            if not names and a.ensemble and b.ensemble and a.ensemble != b.ensemble:
                notes.append(f"{a.name} ({a.ensemble}) vs {b.name} ({b.ensemble}) not compared: Ea of different "
                             "ensembles are different quantities")
                continue
            pairs.append(compare_pair(a, b))
    return pairs, notes


def plot_pairs(pairs: Sequence[PairComparison], path: Path) -> Path:
    """ΔEa (b − a) of every pair with its 1σ (thick) and 2σ (thin) bars; red where resolved at 2σ."""
    from core import plotting

    plt = plotting.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.55 * len(pairs)), dpi=120)
    for k, c in enumerate(pairs):
        color = "C3" if c.resolved else "C0"
        ax.errorbar(c.delta_ea_ev, k, xerr=2 * c.delta_ea_stderr_ev, fmt="none", ecolor=color, lw=1, capsize=3)
        ax.errorbar(c.delta_ea_ev, k, xerr=c.delta_ea_stderr_ev, fmt="o", color=color, lw=3)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(range(len(pairs)))
    ax.set_yticklabels([f"{c.b} − {c.a}" for c in pairs], fontsize=8)
    ax.set_ylim(-0.7, len(pairs) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel("ΔEa (eV)")
    ax.set_title("ΔEa between potentials: bars 1σ (thick) and 2σ (thin); red: resolved at 2σ", fontsize=9)
    fig.tight_layout()
    return plotting.save(fig, path, dpi=120)


def report_rows(pairs: Sequence[dict]) -> list[dict]:
    """The report's table (templates/report.html.j2): a pair as :func:`dataclasses.asdict` gives it → its cells
    as text."""
    rows = []
    for c in pairs:
        n = _decimals(c["delta_ea_stderr_ev"])
        more = ("resolved" if c["resolved"] else "not resolvable by sampling" if not c["resolvable_by_sampling"]
                else f"~{c['sampling_factor']:.2g}× the simulated time")
        ratios = [f"{r['temperature_k']:g} K: {r['d_ratio']:.3g}"
                  + ("" if r["d_ratio_stderr"] is None else f" ± {r['d_ratio_stderr']:.2g}") for r in c["d_ratios"]]
        rows.append({"a": c["a"], "b": c["b"], "ensemble": c["ensemble"] or "–",
                     "delta": f"{_signed(c['delta_ea_ev'], n)} ± {c['delta_ea_stderr_ev']:.{n}f}",
                     "z": f"{c['z']:+.1f}", "p": f"{c['p_value']:.2g}", "resolved": c["resolved"], "more": more,
                     "ratios": "; ".join(ratios) or "–", "text": c["text"]})
    return rows


def study_simulated_ps(analysis, observable: str, table: dict[str, list[Diffusivity]]) -> dict[str, float]:
    """Per series of a :class:`analysis.result.StudyAnalysis`: the simulated time (ps, replicas summed) of the
    states its fit uses."""
    out: dict[str, float] = {}
    for r in analysis.results:
        fitted = {round(p.temperature_k, 6) for p in table.get(r.series, [])}
        if r.estimates.get(observable) is not None and round(r.temperature_k, 6) in fitted:
            out[r.series] = out.get(r.series, 0.0) + (r.simulated_ps or 0.0)
    return out
