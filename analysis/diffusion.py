r"""Diffusivity from the MSD: a generalised least-squares fit with the MSD's own covariance, and an honest 1σ.

Einstein relation in 3D: :math:`\mathrm{MSD}(t) = 6 D t + c` in the diffusive regime (c: the vibrational plateau).
The MSD is averaged over all time origins and walkers, so its values at different lags are strongly correlated;
an ordinary least-squares slope ignores that and its scatter-based error is wrong. Here, as in kinisi (McCluskey
et al.), the fit is generalised least squares with the covariance matrix Σ of the MSD, and
:math:`\sigma_D^2 = [(X^T \Sigma^{-1} X)^{-1}]_{00} / 36`.

The covariance. Let :math:`S(\tau) = \sum_i |\Delta r_i(\tau)|^2` be the walkers' summed squared displacement
over a window of length τ (summing first keeps correlations *between* walkers, such as the two atoms one
interstitialcy event moves). For motion with independent, symmetric increments, two windows overlapping by o
frames have :math:`\mathrm{Cov}(S, S') = V(o)`, the variance of S over a window of length o. V is measured: the
variance of S over time origins at a grid of lags, fitted by :math:`V(\tau) = A\tau^2 + B\tau` (A ≥ 0, B ≥ 0;
A: Gaussian spreading, :math:`24 D^2 \tau^2` per walker for a random walk; B: the excess of discrete jumps,
:math:`\lambda \ell^4 \tau` for jumps of length ℓ at rate λ). Then, exactly for such processes,

.. math:: \mathrm{Cov}(\mathrm{MSD}_a, \mathrm{MSD}_b) = \frac{1}{W^2 (N-a)(N-b)} \sum_{k,m} V(o_{km}),

summed over the origins k, m of the two lags (N frames, W walkers). Unlike kinisi's approximate Σ this one is
positive definite by construction and exact for random walks, so the fit is stable over many lags and at least
as precise (``make bench`` compares the two on the same walks).

Replicas are more walkers of one ensemble (:func:`pooled_fit`): one variance model is fitted to all their measured
variances, and one fit with a common slope and intercept to all their MSDs. Combining replicas fitted one by one by
their own inverse variances is biased low where events are few: a replica's σ grows with its own D̂, so the one
that saw fewer events weighs more (0.65-0.92 of the true D on synthetic rare-jump walks, tests/test_diffusion.py).
Each replica's own D is kept (``d_replicas_cm2_s``); where they scatter about the pooled D significantly more than
their errors (χ² beyond its 95 % quantile) the error is widened by √χ²_red. The 95 % interval uses Student's t
with the degrees of freedom behind the variance model: the number of independent windows of the fit's first lag,
summed over replicas (``dof``). Every ``*_stderr_*`` is 1σ; intervals are separate fields.

A coordinate that vibrates as much as it diffuses over the window — the collective Σ r_i, which carries the optical
vibration of Li against F — is fitted with ``plateau=True``: V gets a lag-independent term, Σ the vibration's own
covariance, and the slope is ordinary least squares with the sandwich σ (see :func:`pooled_fit`).

The window. It starts where the motion has forgotten its short-time correlations — for defect-mediated diffusion,
a few migration events (``events_before_window`` times the mean time between events, see
:mod:`analysis.sites`) and no earlier than ``min_window_start_ps`` (vibrations) — and ends at half the trajectory.
How D moves when the start is halved and doubled is reported with it. Without events (or a window shorter than
a factor two) there is no diffusive regime, and no number is given.

Units: positions Å, times ps inside; D is reported in cm²/s (1 Å²/ps = 1e-4 cm²/s).

Command line (any LAMMPS dump with unwrapped coordinates, or DCD)::

    python -m analysis.diffusion DUMP [DUMP ...] --timestep-fs 1 [--data DATAFILE] [--select "type 1"]
                                 [--fit-start-ps 5 --fit-end-ps 50] [--json]

Several dumps are treated as replicas of one state point.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.msd import msd
from analysis.statistics import chi2_quantile, t_quantile
from core import cli
from core.errors import AnalysisError
from core.estimate import Estimate
from core.files import json_dumps
from core.units import A2_PER_PS_TO_CM2_PER_S

DIMENSIONS = 3
#: lags (frames) at which the variance of S is measured: this many, log-spaced from 1 to half the trajectory
GRID_LAGS = 48
#: at most this many lags in a fit (evenly spread over the window's grid lags)
FIT_LAGS = 48

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Diffusivity:
    """D at one temperature, as it travels from the estimate to the Arrhenius fit: the value, its 1σ standard
    error (None: no error estimate) and the degrees of freedom behind that error (0: unknown)."""

    temperature_k: float
    d_cm2_s: float
    d_stderr_cm2_s: float | None
    n_samples: int = 0

    @property
    def estimate(self) -> Estimate:
        """D as an :class:`core.estimate.Estimate` (cm²/s; dof None where unknown)."""
        return Estimate(self.d_cm2_s, self.d_stderr_cm2_s, float(self.n_samples) if self.n_samples else None)


@dataclass(frozen=True)
class MsdStats:
    """What one trajectory contributes to an estimate of one observable: the MSD per walker at every lag (for
    plots), and at the grid lags the variance over time origins of the walkers' summed squared displacement S."""

    frame_interval_ps: float
    n_walkers: int
    msd: np.ndarray  # (n_frames,) Å², lag k * frame_interval_ps
    lags: np.ndarray  # (L,) grid lags in frames
    s_var: np.ndarray  # (L,) Å⁴

    @property
    def n_frames(self) -> int:
        return len(self.msd)

    @property
    def lags_ps(self) -> np.ndarray:
        return np.arange(self.n_frames) * self.frame_interval_ps

    @property
    def duration_ps(self) -> float:
        return (self.n_frames - 1) * self.frame_interval_ps


def grid_lags(n_frames: int, count: int = GRID_LAGS) -> np.ndarray:
    return np.unique(np.geomspace(1, max(1, n_frames // 2), count).round().astype(np.int64))


def variance_origins(n_frames: int, lag: int) -> np.ndarray:
    """The time origins at which the spread of S is measured for a lag: every ``lag // 8``-th one."""
    return np.arange(0, n_frames - lag, max(1, lag // 8))


def msd_stats(positions: np.ndarray, frame_interval_ps: float, chunk_bytes: int = 64 * 2**20) -> MsdStats:
    """The :class:`MsdStats` of positions (n_frames, n_walkers, 3), Å."""
    x = np.asarray(positions)
    n, w = x.shape[0], x.shape[1]
    if n < 4:
        raise AnalysisError(f"{n} frames are too few for a diffusion estimate")
    lags = grid_lags(n)
    per = max(1, int(chunk_bytes // max(1, n * 3 * 8 * 2)))  # walkers per chunk
    s_var = np.empty(len(lags))
    for j, a in enumerate(lags):
        # origins a/8 apart carry nearly all the information of every origin about S's spread at lag a (windows
        # that share 7/8 of their length are almost the same window), at a fraction of the cost
        origins = variance_origins(n, int(a))
        s = np.zeros(len(origins))
        for lo in range(0, w, per):
            part = np.asarray(x[:, lo:lo + per], dtype=np.float64)
            d = part[origins + a] - part[origins]
            s += np.einsum("kwd,kwd->k", d, d)
        s_var[j] = s.var(ddof=1) if len(s) > 1 else 0.0
    return MsdStats(float(frame_interval_ps), w, msd(x), lags, s_var)


def collective(positions: np.ndarray) -> np.ndarray:
    """The collective coordinate of the walkers, Σ_i r_i (n_frames, 1, 3): its MSD / (6 N t) is the collective
    (charge) diffusivity per walker."""
    return np.asarray(positions, dtype=np.float64).sum(axis=1, keepdims=True)


# --- the covariance and the fit ------------------------------------------------------------------------------

@dataclass(frozen=True)
class VarianceModel:
    """V(τ) = c + a τ² + b τ: the variance of one walker's share of S over a window of τ ps (Å⁴). a: Gaussian
    spreading; b: discrete jumps; c: a lag-independent part (a vibrational plateau; fitted where asked)."""

    a: float
    b: float
    c: float = 0.0

    def per_frame(self, stats: MsdStats, b: float | None = None) -> tuple[float, float]:
        """(a, b) of V for the walkers' whole S, τ in frames of ``stats``."""
        dt, w = stats.frame_interval_ps, stats.n_walkers
        return self.a * dt**2 * w, (self.b if b is None else b) * dt * w


def pooled_variance_model(stats: Sequence[MsdStats], first_lag_ps: float, plateau: bool = False,
                          iterations: int = 4, known_b: float = 0.0) -> VarianceModel:
    """One :class:`VarianceModel` for all replicas, fitted to their measured variances of S (per walker) at the
    grid lags from ``first_lag_ps`` up: the replicas are more walkers of one ensemble, so none of them gets a
    covariance, and so a weight, of its own making. Weights are the precision of each measured variance
    (~ (N - a) / a independent windows over the model's V²); a, b, c ≥ 0.

    The variance of S over overlapping time origins is measured about their own mean, which shares their
    fluctuations: E[var] = (n/(n-1)) (V - Var(mean)). Var(mean) follows from V itself (the diagonal of the
    overlap sums), so the measured variances are corrected and the model refitted a few times.

    ``known_b`` (Å⁴/ps per walker): a part of V linear in τ that is known and not of the jumps (the cross term of
    a vibration, see :func:`pooled_fit`); it is taken off the measured variances before the fit."""
    cols = []
    for s in stats:
        dt, w = s.frame_interval_ps, max(1, s.n_walkers)
        first = max(1, int(math.ceil(first_lag_ps / dt - 1e-9)))
        sel = s.lags >= first
        if sel.sum() < 2:
            sel = np.ones(len(s.lags), dtype=bool)
        lags = s.lags[sel]
        used = np.array([len(variance_origins(s.n_frames, int(a))) for a in lags], dtype=float)
        s1, s2 = _diagonal_overlap_sums(lags, s.n_frames)
        n = (s.n_frames - lags).astype(float)
        cols.append((lags * dt, s.s_var[sel] / w - known_b * lags * dt, n / lags, used, s1 * dt / n**2,
                     s2 * dt**2 / n**2))
    tau, measured, windows, used, m1, m2 = (np.concatenate(c) for c in zip(*cols))
    if not np.any(measured > 0):
        return VarianceModel(0.0, 0.0, 0.0)
    design = np.column_stack([tau**2, tau] + ([np.ones_like(tau)] if plateau else []))
    scale = float(np.mean(np.abs(measured)))
    v, weights = measured, windows / tau**2 / scale**2  # first pass: V ~ τ
    coef = np.zeros(design.shape[1])
    for _ in range(iterations):
        coef = _nonnegative_fit(design, v, weights)
        model = design @ coef
        v = measured * (used - 1) / used + coef[0] * m2 + coef[1] * m1  # + Var(mean) of the model
        weights = windows / np.maximum(model, 1e-6 * scale) ** 2
    return VarianceModel(float(coef[0]), float(coef[1]), float(coef[2]) if plateau else 0.0)


def variance_model(stats: MsdStats, first_lag: int, iterations: int = 3) -> tuple[float, float]:
    """(A, B) of V(τ) = A τ² + B τ of one trajectory's S, τ in frames (see :func:`pooled_variance_model`)."""
    model = pooled_variance_model([stats], first_lag * stats.frame_interval_ps, iterations=iterations + 1)
    return model.per_frame(stats)


def _nonnegative_fit(design: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares of v on the columns of ``design`` with non-negative coefficients: the best of the
    fits on every subset of the columns whose coefficients are all non-negative (a handful of columns)."""
    sw = np.sqrt(w)
    k = design.shape[1]
    best, best_r = np.zeros(k), float(np.sum(w * v**2))
    for mask in range(1, 2**k):
        cols = [j for j in range(k) if mask >> j & 1]
        coef = np.linalg.lstsq(design[:, cols] * sw[:, None], v * sw, rcond=None)[0]
        if np.any(coef < 0):
            continue
        full = np.zeros(k)
        full[cols] = coef
        r = float(np.sum(w * (v - design @ full) ** 2))
        if r < best_r:
            best, best_r = full, r
    return best


def _diagonal_overlap_sums(lags: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """For each lag a, Σ over pairs of its origins of the overlap o and o² (the diagonal of overlap_sums)."""
    s1, s2 = np.empty(len(lags)), np.empty(len(lags))
    for i, a in enumerate(int(x) for x in lags):
        delta = np.abs(np.arange(-(a - 1), a))
        o = (a - delta).astype(float)
        count = np.maximum(n_frames - a - delta, 0).astype(float)
        s1[i], s2[i] = np.dot(count, o), np.dot(count, o * o)
    return s1, s2


def overlap_sums(lags: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """For every pair of lags (a, b): Σ over their time origins of the overlap o and of o² (in frames)."""
    s1, s2 = _overlap_sums(tuple(int(x) for x in lags), int(n_frames))
    return s1.copy(), s2.copy()


@functools.lru_cache(maxsize=64)
def _overlap_sums(lags: tuple[int, ...], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    L = len(lags)
    s1 = np.zeros((L, L))
    s2 = np.zeros((L, L))
    for i in range(L):
        for j in range(i, L):
            a, b = lags[i], lags[j]
            delta = np.arange(-(b - 1), a)  # m - k, where the windows [k, k+a) and [m, m+b) overlap
            o = np.minimum(a, delta + b) - np.maximum(0, delta)
            count = np.minimum(n_frames - 1 - a, n_frames - 1 - b - delta) - np.maximum(0, -delta) + 1
            count = np.maximum(count, 0)
            s1[i, j] = s1[j, i] = float(np.dot(count, o))
            s2[i, j] = s2[j, i] = float(np.dot(count, o.astype(float) ** 2))
    return s1, s2


def msd_covariance(stats: MsdStats, lags: np.ndarray, a: float, b: float) -> np.ndarray:
    """Σ of the MSD at ``lags`` for V(τ) = a τ² + b τ (τ in frames; see the module docstring)."""
    s1, s2 = _overlap_sums(tuple(int(x) for x in lags), int(stats.n_frames))
    origins = stats.n_frames - lags.astype(float)
    return (a * s2 + b * s1) / (stats.n_walkers**2 * np.outer(origins, origins))


def vibration_covariance(stats: MsdStats, lags: np.ndarray, msd_short: np.ndarray, slope_per_frame: float,
                         intercept_a2: float) -> np.ndarray:
    r"""Σ of the MSD at ``lags`` (frames) from a vibration u of the walkers about their path, for lags beyond
    its memory: the MSD holds :math:`-2\hat c(\tau)`, the vibration's autocorrelation estimated over the time
    origins, whose covariance is Bartlett's :math:`\frac{1}{3n}\sum_d [c(d) c(d+b-a) + c(d+b) c(d-a)]` (Gaussian,
    isotropic u; n origins). c is read off the MSD at the lags below the window (``msd_short``, per walker), where
    :math:`\mathrm{MSD}(d) = 2c(0) - 2c(d) + \text{slope}\cdot d` and 2c(0) is the fit's intercept."""
    d = np.arange(len(msd_short))
    c = 0.5 * (intercept_a2 - msd_short + slope_per_frame * d)
    full = np.concatenate([c[:0:-1], c])
    r = np.correlate(full, full, "full")
    centre = len(full) - 1

    def autocorr(s: np.ndarray) -> np.ndarray:
        s = np.abs(s)
        out = np.zeros(s.shape)
        inside = s <= centre
        out[inside] = r[centre + s[inside]]
        return out

    a, b = np.meshgrid(lags.astype(np.int64), lags.astype(np.int64), indexing="ij")
    origins = stats.n_frames - np.minimum(a, b).astype(float)
    return 4.0 / 3.0 * (autocorr(b - a) + autocorr(a + b)) / origins / max(1, stats.n_walkers)


@dataclass(frozen=True)
class Fit:
    d_a2_ps: float
    stderr_a2_ps: float
    intercept_a2: float


def window_lags(stats: MsdStats, start_ps: float, end_ps: float) -> np.ndarray:
    """The lags (frames) a fit over [start_ps, end_ps] uses: at most FIT_LAGS of the grid lags inside it."""
    dt = stats.frame_interval_ps
    first = max(1, int(math.ceil(start_ps / dt - 1e-9)))
    last = min(stats.n_frames - 2, int(math.floor(end_ps / dt + 1e-9)))
    in_window = stats.lags[(stats.lags >= first) & (stats.lags <= last)]
    if len(in_window) < 2:
        in_window = np.unique(np.linspace(first, last, 8).round().astype(np.int64))
    if len(in_window) < 2:
        raise AnalysisError(f"fit window {start_ps:g}-{end_ps:g} ps holds fewer than 2 lags of {dt:g} ps")
    return in_window[np.unique(np.linspace(0, len(in_window) - 1, FIT_LAGS).round().astype(int))]


def _gls(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    """(β, cov β) of the generalised least squares over independent parts (y, X, Σ) with common β."""
    xtx, xty = 0.0, 0.0
    for y, X, cov in parts:
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return None
        Xw, yw = np.linalg.solve(chol, X), np.linalg.solve(chol, y)
        xtx, xty = xtx + Xw.T @ Xw, xty + Xw.T @ yw
    cov_beta = np.linalg.inv(xtx)
    return cov_beta @ xty, cov_beta


def _ols(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(β, cov β) of ordinary least squares over independent parts (y, X, Σ) with common β; cov β from their Σ
    (the sandwich (XᵀX)⁻¹ Xᵀ Σ X (XᵀX)⁻¹)."""
    X = np.vstack([p[1] for p in parts])
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ sum(X.T @ y for y, X, _ in parts)
    meat = sum(X.T @ cov @ X for _, X, cov in parts)
    return beta, bread @ meat @ bread


def _plateau_start(stats: Sequence[MsdStats], lags: list[np.ndarray], ys: list[np.ndarray], Xs: list[np.ndarray]
                   ) -> tuple[float, float, dict[float, np.ndarray]]:
    """(slope Å²/ps, intercept Å²) of the ordinary least-squares line through every replica's MSD, and per frame
    interval the mean MSD of the replicas below the window (from which the vibration's autocorrelation is read)."""
    beta = np.linalg.lstsq(np.vstack(Xs), np.concatenate(ys), rcond=None)[0]
    short = {}
    for dt in {s.frame_interval_ps for s in stats}:
        same = [(s, l) for s, l in zip(stats, lags) if s.frame_interval_ps == dt]
        cut = min(int(l[0]) for _, l in same)
        short[dt] = np.mean([s.msd[:cut] for s, _ in same], axis=0)
    return 2 * DIMENSIONS * float(beta[0]), float(beta[1]), short


def pooled_fit(stats: Sequence[MsdStats], start_ps: float, end_ps: float, plateau: bool = False
               ) -> tuple[Fit, list[Fit]] | None:
    """One fit of every replica's MSD over the window, with a common slope and intercept and each replica's
    covariance from the common :func:`pooled_variance_model`; and each replica's own fit with that covariance
    (for the check of their scatter). None: no motion to fit.

    By default the fit is generalised least squares. ``plateau``: the walkers may also vibrate with an amplitude
    comparable to their diffusive displacement over the window (the collective coordinate Σ r_i carries the
    optical vibration of Li against F: a plateau of tens of Å², oscillating with the phonon period, over a signal
    of the same size). V is then c + aτ² + bτ — c the vibration's own, lag-independent variance; b freed of the
    cross term 4 Var(ΔY·Δu) = (4/3) · slope · intercept · τ between jumps Y and vibration u; a no less than a
    Gaussian spreading's (2/3) slope² — and Σ gets the vibration's covariance (:func:`vibration_covariance`).
    The MSD then holds the vibration's autocorrelation estimated over the time origins, a noise with the phonon's
    period that a GLS slope, weighting lags by a model of it, turns into a bias (-10 to -40 % on synthetic walks
    with an oscillating plateau, tests/test_diffusion.py); so the slope is ordinary least squares (the oscillation
    averages out over the window's lags), always (choosing GLS where the data look quiet would select on the slope
    itself), with the sandwich σ from that Σ. Where the vibration is weak this costs precision (~2x in σ): the
    Haven ratio from the defect's D (:mod:`analysis.study`) is then the better-determined one."""
    lags = [window_lags(s, start_ps, min(end_ps, s.duration_ps)) for s in stats]
    first_ps = min(int(l[0]) * s.frame_interval_ps for l, s in zip(lags, stats))
    ys = [s.msd[l] for s, l in zip(stats, lags)]
    Xs = [np.column_stack([2 * DIMENSIONS * l * s.frame_interval_ps, np.ones(len(l))]) for s, l in zip(stats, lags)]
    solve, (slope_ps, intercept, short) = (_ols, _plateau_start(stats, lags, ys, Xs)) if plateau else (_gls, (0, 0, {}))
    cross = 4.0 / 3.0 * max(slope_ps, 0.0) * max(intercept, 0.0)
    model = pooled_variance_model(stats, first_ps, plateau, known_b=cross)
    if plateau:  # the jumps' share of V is no less than a Gaussian spreading's of the fitted slope, (2/3) (slope τ)²
        model = VarianceModel(max(model.a, 2.0 / 3.0 * slope_ps**2), model.b, model.c)
    if model.a <= 0 and model.b <= 0:
        return None
    parts = []
    for s, l, y, X in zip(stats, lags, ys, Xs):
        cov = msd_covariance(s, l, *model.per_frame(s))
        if plateau:
            cov = cov + vibration_covariance(s, l, short[s.frame_interval_ps], slope_ps * s.frame_interval_ps,
                                             intercept)
        cov += np.eye(len(l)) * 1e-12 * max(np.trace(cov) / len(l), 1e-300)
        parts.append((y, X, cov))
    fits = []
    for group in [parts] + ([[p] for p in parts] if len(parts) > 1 else []):
        done = solve(group)
        if done is None:
            return None
        beta, cov_beta = done
        fits.append(Fit(float(beta[0]), float(math.sqrt(max(cov_beta[0, 0], 0.0))), float(beta[1])))
    return fits[0], fits[1:] or fits[:1]


def gls(stats: MsdStats, start_ps: float, end_ps: float, plateau: bool = False) -> Fit | None:
    """The generalised least-squares fit of one trajectory's MSD over the window (None: no motion to fit)."""
    done = pooled_fit([stats], start_ps, end_ps, plateau)
    return None if done is None else done[0]


@dataclass(frozen=True)
class DiffusionEstimate:
    """D of one observable at one state point, pooled over replicas. ``d_stderr_cm2_s`` is 1σ; the 95 % interval
    is ``d ± t(0.975, dof) σ``; ``d_half_start``/``d_double_start`` are D with the window's start halved and
    doubled (None where that window does not fit); ``d_replicas_cm2_s``: each replica's own D over the window."""

    d_cm2_s: float
    d_stderr_cm2_s: float | None
    d_ci95_low_cm2_s: float | None
    d_ci95_high_cm2_s: float | None
    dof: int
    fit_start_ps: float
    fit_end_ps: float
    d_half_start_cm2_s: float | None
    d_double_start_cm2_s: float | None
    n_replicas: int
    n_walkers: int
    simulated_ps: float  # summed over replicas
    chi2_replicas: float | None  # χ²/dof of the replicas about the pooled D (None: one replica)
    method: str
    d_replicas_cm2_s: tuple[float, ...] = ()

    @property
    def window_sensitivity(self) -> float | None:
        """The largest relative change of D when the window's start is halved or doubled."""
        others = [v for v in (self.d_half_start_cm2_s, self.d_double_start_cm2_s) if v is not None]
        if not others or self.d_cm2_s == 0:
            return None
        return max(abs(v / self.d_cm2_s - 1) for v in others)

    @property
    def estimate(self) -> Estimate:
        """D ± 1σ as an :class:`core.estimate.Estimate` (cm²/s), with the degrees of freedom behind σ."""
        return Estimate(self.d_cm2_s, self.d_stderr_cm2_s, float(self.dof))

    @property
    def undetermined(self) -> bool:
        """The 1σ error is as large as D itself (or there is none): D is not determined, only bounded."""
        return self.estimate.undetermined


def _scatter(pooled: Fit, singles: list[Fit]) -> tuple[float, float | None]:
    """The pooled error, widened by √χ²_red where the replicas scatter about the pooled D beyond their errors
    (χ² beyond its 95 % quantile; Birge ratio), and χ²_red (None: one replica)."""
    err = pooled.stderr_a2_ps
    if len(singles) < 2:
        return err, None
    if any(not f.stderr_a2_ps > 0 for f in singles):
        return err, None
    chi2 = float(sum((f.d_a2_ps - pooled.d_a2_ps) ** 2 / f.stderr_a2_ps**2 for f in singles))
    dof = len(singles) - 1
    if chi2 > chi2_quantile(0.95, dof):
        err *= math.sqrt(chi2 / dof)
    return err, chi2 / dof


def estimate(stats: Sequence[MsdStats], start_ps: float, end_ps: float, sensitivity: bool = True,
             plateau: bool = False) -> DiffusionEstimate | None:
    """D ± σ of one observable from its replicas over the window [start_ps, end_ps]; None where there is no
    motion to fit (every replica's squared displacements are constant). ``plateau``: see :func:`pooled_fit`
    (for the collective coordinate)."""
    if not stats:
        raise AnalysisError("no trajectories to analyse")
    if not 0 < start_ps < end_ps:
        raise AnalysisError(f"fit window {start_ps:g}-{end_ps:g} ps is empty or starts at zero")
    longest = max(s.duration_ps for s in stats)
    if end_ps > longest + 1e-9:
        raise AnalysisError(f"fit window ends at {end_ps:g} ps, beyond the {longest:g} ps of the trajectories")
    done = pooled_fit(stats, start_ps, end_ps, plateau)
    if done is None:
        return None
    pooled, singles = done
    mean = pooled.d_a2_ps
    err, chi2 = _scatter(pooled, singles)
    dof = max(1, int(sum(s.duration_ps for s in stats) / start_ps) - 2)
    t = t_quantile(0.975, dof)
    half = double = None
    if sensitivity:
        if start_ps / 2 >= min(s.frame_interval_ps for s in stats):
            e = estimate(stats, start_ps / 2, end_ps, sensitivity=False, plateau=plateau)
            half = e.d_cm2_s if e else None
        if 2 * start_ps < end_ps / 2:
            e = estimate(stats, 2 * start_ps, end_ps, sensitivity=False, plateau=plateau)
            double = e.d_cm2_s if e else None
    k = A2_PER_PS_TO_CM2_PER_S
    how = "with a vibrational plateau, " if plateau else ""
    return DiffusionEstimate(
        d_cm2_s=mean * k, d_stderr_cm2_s=err * k, d_ci95_low_cm2_s=(mean - t * err) * k,
        d_ci95_high_cm2_s=(mean + t * err) * k, dof=dof, fit_start_ps=float(start_ps), fit_end_ps=float(end_ps),
        d_half_start_cm2_s=half, d_double_start_cm2_s=double, n_replicas=len(stats),
        n_walkers=stats[0].n_walkers, simulated_ps=float(sum(s.duration_ps for s in stats)),
        chi2_replicas=chi2, method=f"GLS with the MSD's covariance {how}pooled over {len(stats)} replica(s)",
        d_replicas_cm2_s=tuple(f.d_a2_ps * k for f in singles))


def running_d(stats: MsdStats, points: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(t, D_loc(t)) in (ps, cm²/s): the local slope of the MSD over [t/1.5, 1.5 t] divided by 6 — flat where the
    motion is diffusive, the diagnostic the fit window must sit in."""
    lags = stats.lags_ps
    ts = np.geomspace(max(lags[1], 1e-9) * 1.5, lags[-1] / 1.5, points) if stats.n_frames > 4 else np.array([])
    out = []
    for t in ts:
        sel = (lags >= t / 1.5) & (lags <= t * 1.5)
        if sel.sum() >= 3:
            tt, yy = lags[sel], stats.msd[sel]
            tc = tt - tt.mean()
            out.append((t, float(np.dot(tc, yy - yy.mean()) / np.dot(tc, tc)) / (2 * DIMENSIONS)))
    arr = np.array(out).reshape(-1, 2)
    return arr[:, 0], arr[:, 1] * A2_PER_PS_TO_CM2_PER_S


def diffusivity_from_msd(times_ps: np.ndarray, msd_a2: np.ndarray, start_ps: float, end_ps: float) -> float:
    """D in cm²/s from the ordinary least-squares slope of an MSD curve (Å²) over a window (ps): for exact or
    synthetic curves; trajectories go through :func:`estimate`."""
    sel = (times_ps >= start_ps - 1e-9) & (times_ps <= end_ps + 1e-9)
    if sel.sum() < 2:
        raise AnalysisError(f"fit window {start_ps:g}-{end_ps:g} ps holds {sel.sum()} MSD point(s); need at least 2")
    t, y = times_ps[sel], msd_a2[sel]
    tc = t - t.mean()
    return float(np.dot(tc, y - y.mean()) / np.dot(tc, tc)) / (2 * DIMENSIONS) * A2_PER_PS_TO_CM2_PER_S


def format_d(est: DiffusionEstimate | None) -> str:
    if est is None:
        return "D: no diffusive regime"
    err = f" ± {est.d_stderr_cm2_s:.2e}" if est.d_stderr_cm2_s is not None else " (no error estimate)"
    return f"D = {est.d_cm2_s:.3e}{err} cm²/s"


def check_distinct_files(paths) -> None:
    """Replicas must be different files: the same trajectory given twice (by another name, a link or a copy)
    would count as two independent replicas and shrink σ by √2."""
    import hashlib

    seen: dict[tuple, str] = {}
    for p in paths:
        st = Path(p).stat()
        if (st.st_dev, st.st_ino) in seen:
            raise AnalysisError(f"{p} and {seen[st.st_dev, st.st_ino]} are the same file: each replica must be its "
                                "own trajectory")
        seen[st.st_dev, st.st_ino] = str(p)
    by_content: dict[tuple, str] = {}
    for p in paths:
        with open(p, "rb") as fh:
            key = (Path(p).stat().st_size, hashlib.sha256(fh.read(1 << 20)).hexdigest())
        if key in by_content and _same_content(by_content[key], p):
            raise AnalysisError(f"{p} and {by_content[key]} hold the same trajectory (identical contents): each "
                                "replica must be its own run")
        by_content[key] = str(p)


def _same_content(a, b, chunk: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.diffusion", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dumps", nargs="+", help="LAMMPS text dump(s) with unwrapped coordinates (also .gz/.bz2), or "
                                             "DCD files (every atom in them is analysed); several = replicas")
    ap.add_argument("--timestep-fs", type=cli.positive_number, required=True,
                    help="MD timestep in fs (dump steps -> time)")
    ap.add_argument("--data", help="LAMMPS data file to evaluate the selection on (atoms matched by id)")
    ap.add_argument("--select", default=None, help='selection, e.g. "type 1" (default: all atoms)')
    ap.add_argument("--fit-start-ps", type=cli.finite_number, help="fit window start in ps (default: from the hop rate)")
    ap.add_argument("--fit-end-ps", type=cli.finite_number, help="fit window end in ps (default: half the trajectory)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    def command() -> int:
        from analysis.hops import hop_window
        from analysis.trajectory import read_trajectory

        check_distinct_files(args.dumps)
        trajs = [read_trajectory(p, args.timestep_fs, select=args.select, data=args.data) for p in args.dumps]
        if {t.positions.shape[1] for t in trajs} != {trajs[0].positions.shape[1]}:
            raise AnalysisError("the replicas select different numbers of atoms")
        stats = [msd_stats(t.positions, t.frame_interval_ps) for t in trajs]
        end = args.fit_end_ps if args.fit_end_ps is not None else min(s.duration_ps for s in stats) / 2
        start = args.fit_start_ps if args.fit_start_ps is not None else hop_window(trajs)
        est = estimate(stats, start, end)
        if args.json:
            print(json_dumps(None if est is None else asdict(est) | {"n_atoms": est.n_walkers}))
        else:
            print(format_d(est) + ("" if est is None else
                  f"  (fit {est.fit_start_ps:g}-{est.fit_end_ps:g} ps, {est.n_walkers} atoms, "
                  f"{est.simulated_ps:g} ps simulated; {est.method})"))
        return 0

    return cli.run(command)


if __name__ == "__main__":
    sys.exit(main())
