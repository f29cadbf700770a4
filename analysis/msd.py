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
    import os

    from scipy import fft

    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"positions must be (n_frames, n_particles, dim), got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, x.shape[1]))
    # S2: autocorrelation by FFT with zero padding to a fast length >= 2n; the power spectra of the dimensions
    # are summed before the inverse transform (it is linear)
    nfft = fft.next_fast_len(2 * n, real=True)
    workers = os.cpu_count() or 1
    f = fft.rfft(x, n=nfft, axis=0, workers=workers)
    power = (f.real**2 + f.imag**2).sum(axis=2)
    del f
    acf = fft.irfft(power, n=nfft, axis=0, workers=workers)[:n]
    s2 = acf / (n - np.arange(n))[:, None]
    # S1(m) = (1/(n-m)) [sum_{k<n-m} |r(k)|^2 + sum_{k>=m} |r(k)|^2], from cumulative sums of |r|^2
    d = np.einsum("fpd,fpd->fp", x, x)
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(d, axis=0)])
    m = np.arange(n)
    s1 = (c[n - m] + (c[n] - c[m])) / (n - m)[:, None]
    return s1 - 2.0 * s2


#: bytes of FFT work space per chunk of particles (the complex spectrum of a chunk): bounds the memory of
#: :func:`msd` whatever the number of frames and particles
CHUNK_BYTES = 64 * 2**20


def particles_per_chunk(n_frames: int, dim: int = 3, budget: int = CHUNK_BYTES) -> int:
    from scipy import fft

    nfft = fft.next_fast_len(max(2, 2 * n_frames), real=True)
    per_particle = (nfft // 2 + 1) * dim * 16 + n_frames * dim * 8 * 3  # spectrum + float64 copy and temporaries
    return max(1, int(budget // per_particle))


def msd(positions: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """MSD (n_frames,) averaged over particles, computed ``chunk`` particles at a time (default: as many as fit
    in :data:`CHUNK_BYTES`), so memory is bounded by a chunk of particles × frames; sums in float64. The input
    may be float32 (DCD) and is converted chunk by chunk."""
    x = np.asarray(positions)
    if x.ndim != 3:
        raise ValueError(f"positions must be (n_frames, n_particles, dim), got shape {x.shape}")
    n_frames, n_particles, dim = x.shape
    chunk = chunk or particles_per_chunk(n_frames, dim)
    total = np.zeros(n_frames)
    for lo in range(0, n_particles, chunk):
        total += msd_by_particle(x[:, lo:lo + chunk]).sum(axis=1)
    return total / max(1, n_particles)
