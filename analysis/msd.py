r"""Mean-squared displacement over all time origins, by FFT.

For a particle with unwrapped positions :math:`r(t_k)`, :math:`k = 0..N-1` equally spaced in time,

.. math:: \mathrm{MSD}(m) = \frac{1}{N-m} \sum_{k=0}^{N-m-1} |r(k+m) - r(k)|^2
          = S_1(m) - 2 S_2(m),

where :math:`S_2(m) = \frac{1}{N-m}\sum_k r(k)\cdot r(k+m)` is the position autocorrelation (computed by FFT with
zero padding) and :math:`S_1` follows from a running sum of :math:`|r|^2` (the "fast correlation algorithm",
Calandrini et al., Collection SFN 12, 201 (2011); the same as MDAnalysis ``EinsteinMSD(fft=True)``).
Coordinates **must be unwrapped**: a wrapped coordinate jumps by a box length when it crosses the boundary.
All arithmetic is float64 whatever the input precision. Pure functions: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np


def msd_by_particle(positions: np.ndarray) -> np.ndarray:
    """MSD (n_frames, n_particles) in the units of ``positions``² from positions (n_frames, n_particles, dim)."""
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"positions must be (n_frames, n_particles, dim), got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, x.shape[1]))
    # S2: autocorrelation of each coordinate, summed over dimensions
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(x, n=nfft, axis=0)
    acf = np.fft.irfft(f * f.conj(), n=nfft, axis=0)[:n].sum(axis=2)
    s2 = acf / (n - np.arange(n))[:, None]
    # S1: from |r|^2 with a recursion over lags
    d = np.einsum("fpd,fpd->fp", x, x)
    d = np.concatenate([d, np.zeros((1, x.shape[1]))])
    s1 = np.empty((n, x.shape[1]))
    q = 2.0 * d[:n].sum(axis=0)
    for m in range(n):
        q = q - d[m - 1] - d[n - m]
        s1[m] = q / (n - m)
    return s1 - 2.0 * s2


def msd(positions: np.ndarray) -> np.ndarray:
    """MSD (n_frames,) averaged over particles."""
    return msd_by_particle(positions).mean(axis=1)
