"""Small statistics without scipy.stats (whose import costs an analysis process ~0.3-0.6 s): block averages of a
correlated series, and Student-t quantiles for confidence intervals.

Conventions (README "How the error bars are made"): every ``*_stderr_*`` is a 1σ standard error; a 95 %
interval is ``value ± t(0.975, dof) · stderr``, with the degrees of freedom of the error estimate named beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class BlockMean:
    mean: float
    stderr: float | None  # None: too few samples for an error
    n_blocks: int


def block_mean(x, n_blocks: int = 10) -> BlockMean:
    """Mean of a time series and its 1σ standard error from the scatter of ``n_blocks`` consecutive block means
    (fewer when the series is short: at least 5 samples a block). Blocks longer than the series' correlation
    time are independent; that is what makes the error honest for correlated samples."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        raise ValueError("no samples to average")
    n = min(n_blocks, len(x) // 5)
    if n < 2:
        return BlockMean(float(x.mean()), None, 1)
    blocks = np.array([b.mean() for b in np.array_split(x[:len(x) // n * n], n)])
    return BlockMean(float(x.mean()), float(blocks.std(ddof=1) / math.sqrt(n)), n)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, dof: float) -> float:
    """Student's t cumulative distribution function."""
    tail = 0.5 * _betainc(dof / 2, 0.5, dof / (dof + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, dof: float) -> float:
    """The p-quantile of Student's t distribution with ``dof`` degrees of freedom: exact for 1 and 2, the
    Cornish-Fisher expansion to fourth order from 30 (relative error below 1e-6), and the t distribution function
    inverted by bisection between; the normal quantile for infinite dof."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not dof > 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    if math.isinf(dof):
        return NormalDist().inv_cdf(p)
    if dof == 1:
        return math.tan(math.pi * (p - 0.5))
    if dof == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    if dof < 30:
        lo, hi = (0.0, 1e3) if p > 0.5 else (-1e3, 0.0)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if t_cdf(mid, dof) < p else (lo, mid)
            if hi - lo < 1e-12 * max(1.0, abs(mid)):
                break
        return 0.5 * (lo + hi)
    v = float(dof)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4))


def interval95(value: float, stderr: float | None, dof: float) -> tuple[float, float] | None:
    """``value ± t(0.975, dof) · stderr``; None without an error."""
    if stderr is None or not math.isfinite(stderr):
        return None
    h = t_quantile(0.975, dof) * stderr
    return value - h, value + h


def chi2_quantile(p: float, dof: float) -> float:
    """The p-quantile of the χ² distribution (Wilson-Hilferty: within ~1 % of the exact value from 1 dof)."""
    z = NormalDist().inv_cdf(p)
    h = 2.0 / (9.0 * dof)
    return dof * (1 - h + z * math.sqrt(h)) ** 3
