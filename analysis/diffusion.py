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

Replicas are fitted one by one and combined by inverse-variance weighting; where they scatter significantly more
than their errors (χ² beyond its 95 % quantile) the error is widened by √χ²_red. The 95 % interval uses Student's t
with the degrees of freedom behind the variance model: the number of independent windows of the fit's first lag,
summed over replicas (``dof``). Every ``*_stderr_*`` is 1σ; intervals are separate fields.

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
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from analysis.msd import msd
from analysis.statistics import chi2_quantile, t_quantile
from core import cli
from core.errors import AnalysisError
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

def variance_model(stats: MsdStats, first_lag: int, iterations: int = 3) -> tuple[float, float]:
    """(A, B) of V(τ) = A τ² + B τ (τ in frames), fitted to the grid lags from ``first_lag`` up, weighted by
    the precision of each measured variance (~ (N - a) / a independent windows), A, B ≥ 0.

    The variance of S over overlapping time origins is measured about their own mean, which shares their
    fluctuations: E[var] = (n/(n-1)) (V - Var(mean)). Var(mean) follows from V itself (the diagonal of the
    overlap sums), so the measured variances are corrected and the model refitted a few times."""
    sel = (stats.lags >= first_lag) & (stats.s_var > 0)
    if sel.sum() < 2:
        sel = stats.s_var > 0
    tau, measured = stats.lags[sel].astype(float), stats.s_var[sel]
    if len(tau) == 0:
        return 0.0, 0.0
    n = stats.n_frames - tau  # origins of the MSD
    used = np.array([len(variance_origins(stats.n_frames, int(a))) for a in stats.lags[sel]], dtype=float)
    s1, s2 = _diagonal_overlap_sums(stats.lags[sel], stats.n_frames)
    v = measured
    a = b = 0.0
    for _ in range(iterations):
        a, b = _nonnegative_fit(tau, v, n / tau / v**2)
        var_mean = (a * s2 + b * s1) / n**2  # ~ that of the mean over the origins the spread was measured at
        v = measured * (used - 1) / used + var_mean
    return a, b


def _nonnegative_fit(tau: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    X = np.column_stack([tau**2, tau])

    def solve(cols):
        return np.linalg.lstsq(X[:, cols] * np.sqrt(w)[:, None], v * np.sqrt(w), rcond=None)[0]

    a, b = solve([0, 1])
    if a < 0 or b < 0:  # non-negative least squares with two parameters: the better of the one-term fits
        (a1,), (b1,) = solve([0]), solve([1])
        r_a = np.sum(w * (v - max(a1, 0) * tau**2) ** 2)
        r_b = np.sum(w * (v - max(b1, 0) * tau) ** 2)
        a, b = (max(a1, 0.0), 0.0) if r_a <= r_b else (0.0, max(b1, 0.0))
    return float(a), float(b)


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
    L = len(lags)
    s1 = np.zeros((L, L))
    s2 = np.zeros((L, L))
    for i in range(L):
        for j in range(i, L):
            a, b = int(lags[i]), int(lags[j])
            delta = np.arange(-(b - 1), a)  # m - k, where the windows [k, k+a) and [m, m+b) overlap
            o = np.minimum(a, delta + b) - np.maximum(0, delta)
            count = np.minimum(n_frames - 1 - a, n_frames - 1 - b - delta) - np.maximum(0, -delta) + 1
            count = np.maximum(count, 0)
            s1[i, j] = s1[j, i] = float(np.dot(count, o))
            s2[i, j] = s2[j, i] = float(np.dot(count, o.astype(float) ** 2))
    return s1, s2


def msd_covariance(stats: MsdStats, lags: np.ndarray, a: float, b: float) -> np.ndarray:
    """Σ of the MSD at ``lags`` for V(τ) = a τ² + b τ (see the module docstring)."""
    s1, s2 = overlap_sums(lags, stats.n_frames)
    origins = stats.n_frames - lags.astype(float)
    return (a * s2 + b * s1) / (stats.n_walkers**2 * np.outer(origins, origins))


@dataclass(frozen=True)
class Fit:
    d_a2_ps: float
    stderr_a2_ps: float
    intercept_a2: float


def gls(stats: MsdStats, start_ps: float, end_ps: float) -> Fit | None:
    """The generalised least-squares fit of one replica's MSD over the window (None: no motion to fit)."""
    dt = stats.frame_interval_ps
    first = max(1, int(math.ceil(start_ps / dt - 1e-9)))
    last = min(stats.n_frames - 2, int(math.floor(end_ps / dt + 1e-9)))
    in_window = stats.lags[(stats.lags >= first) & (stats.lags <= last)]
    if len(in_window) < 2:
        in_window = np.unique(np.linspace(first, last, 8).round().astype(np.int64))
    if len(in_window) < 2:
        raise AnalysisError(f"fit window {start_ps:g}-{end_ps:g} ps holds fewer than 2 lags of {dt:g} ps")
    lags = in_window[np.unique(np.linspace(0, len(in_window) - 1, FIT_LAGS).round().astype(int))]
    a, b = variance_model(stats, int(lags[0]))
    if a <= 0 and b <= 0:
        return None
    cov = msd_covariance(stats, lags, a, b)
    cov += np.eye(len(lags)) * 1e-12 * np.trace(cov) / len(lags)
    y = stats.msd[lags]
    X = np.column_stack([2 * DIMENSIONS * lags * dt, np.ones(len(lags))])
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    Xw = np.linalg.solve(chol, X)
    yw = np.linalg.solve(chol, y)
    xtx_inv = np.linalg.inv(Xw.T @ Xw)
    beta = xtx_inv @ Xw.T @ yw
    return Fit(float(beta[0]), float(math.sqrt(xtx_inv[0, 0])), float(beta[1]))


@dataclass(frozen=True)
class DiffusionEstimate:
    """D of one observable at one state point, pooled over replicas. ``d_stderr_cm2_s`` is 1σ; the 95 % interval
    is ``d ± t(0.975, dof) σ``; ``d_half_start``/``d_double_start`` are D with the window's start halved and
    doubled (None where that window does not fit)."""

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
    chi2_replicas: float | None  # χ²/dof of the replicas about their mean (None: one replica)
    method: str

    @property
    def window_sensitivity(self) -> float | None:
        """The largest relative change of D when the window's start is halved or doubled."""
        others = [v for v in (self.d_half_start_cm2_s, self.d_double_start_cm2_s) if v is not None]
        if not others or self.d_cm2_s == 0:
            return None
        return max(abs(v / self.d_cm2_s - 1) for v in others)


def _combine(fits: list[Fit]) -> tuple[float, float, float | None]:
    d = np.array([f.d_a2_ps for f in fits])
    s = np.array([f.stderr_a2_ps for f in fits])
    w = 1 / s**2
    mean = float(np.sum(w * d) / np.sum(w))
    err = float(1 / math.sqrt(np.sum(w)))
    if len(fits) < 2:
        return mean, err, None
    chi2 = float(np.sum(w * (d - mean) ** 2))
    dof = len(fits) - 1
    if chi2 > chi2_quantile(0.95, dof):  # the replicas disagree beyond their errors: widen (Birge ratio)
        err *= math.sqrt(chi2 / dof)
    return mean, err, chi2 / dof


def estimate(stats: Sequence[MsdStats], start_ps: float, end_ps: float, sensitivity: bool = True
             ) -> DiffusionEstimate | None:
    """D ± σ of one observable from its replicas over the window [start_ps, end_ps]; None where there is no
    motion to fit (every replica's squared displacements are constant)."""
    if not stats:
        raise AnalysisError("no trajectories to analyse")
    if not 0 < start_ps < end_ps:
        raise AnalysisError(f"fit window {start_ps:g}-{end_ps:g} ps is empty or starts at zero")
    longest = max(s.duration_ps for s in stats)
    if end_ps > longest + 1e-9:
        raise AnalysisError(f"fit window ends at {end_ps:g} ps, beyond the {longest:g} ps of the trajectories")
    fits = [gls(s, start_ps, min(end_ps, s.duration_ps)) for s in stats]
    if any(f is None for f in fits):
        return None
    mean, err, chi2 = _combine(fits)  # type: ignore[arg-type]
    dof = max(1, int(sum(s.duration_ps for s in stats) / start_ps) - 2)
    t = t_quantile(0.975, dof)
    half = double = None
    if sensitivity:
        if start_ps / 2 >= min(s.frame_interval_ps for s in stats):
            e = estimate(stats, start_ps / 2, end_ps, sensitivity=False)
            half = e.d_cm2_s if e else None
        if 2 * start_ps < end_ps / 2:
            e = estimate(stats, 2 * start_ps, end_ps, sensitivity=False)
            double = e.d_cm2_s if e else None
    k = A2_PER_PS_TO_CM2_PER_S
    return DiffusionEstimate(
        d_cm2_s=mean * k, d_stderr_cm2_s=err * k, d_ci95_low_cm2_s=(mean - t * err) * k,
        d_ci95_high_cm2_s=(mean + t * err) * k, dof=dof, fit_start_ps=float(start_ps), fit_end_ps=float(end_ps),
        d_half_start_cm2_s=half, d_double_start_cm2_s=double, n_replicas=len(stats),
        n_walkers=stats[0].n_walkers, simulated_ps=float(sum(s.duration_ps for s in stats)),
        chi2_replicas=chi2, method=f"GLS with the MSD's covariance, {len(stats)} replica(s) combined")


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.diffusion", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dumps", nargs="+", help="LAMMPS text dump(s) with unwrapped coordinates (also .gz/.bz2), or "
                                             "DCD files (every atom in them is analysed); several = replicas")
    ap.add_argument("--timestep-fs", type=float, required=True, help="MD timestep in fs (dump steps -> time)")
    ap.add_argument("--data", help="LAMMPS data file to evaluate the selection on (atoms matched by id)")
    ap.add_argument("--select", default=None, help='selection, e.g. "type 1" (default: all atoms)')
    ap.add_argument("--fit-start-ps", type=float, help="fit window start in ps (default: from the hop rate)")
    ap.add_argument("--fit-end-ps", type=float, help="fit window end in ps (default: half the trajectory)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    def command() -> int:
        from analysis.hops import hop_window
        from analysis.trajectory import read_trajectory

        trajs = [read_trajectory(p, args.timestep_fs, select=args.select, data=args.data) for p in args.dumps]
        if {t.positions.shape[1] for t in trajs} != {trajs[0].positions.shape[1]}:
            raise AnalysisError("the replicas select different numbers of atoms")
        stats = [msd_stats(t.positions, t.frame_interval_ps) for t in trajs]
        end = args.fit_end_ps if args.fit_end_ps is not None else min(s.duration_ps for s in stats) / 2
        start = args.fit_start_ps if args.fit_start_ps is not None else hop_window(trajs)
        est = estimate(stats, start, end)
        if args.json:
            print(json.dumps(None if est is None else asdict(est) | {"n_atoms": est.n_walkers}))
        else:
            print(format_d(est) + ("" if est is None else
                  f"  (fit {est.fit_start_ps:g}-{est.fit_end_ps:g} ps, {est.n_walkers} atoms, "
                  f"{est.simulated_ps:g} ps simulated; {est.method})"))
        return 0

    return cli.run(command)


if __name__ == "__main__":
    sys.exit(main())
