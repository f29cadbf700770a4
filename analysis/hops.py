"""Counting hops: how many discrete site-to-site jumps lie behind a diffusivity.

A D from a handful of jumps is a guess, whatever its formal error bar says (e.g. a single interstitial in a short
run). Each atom's unwrapped path is first averaged over a short window of frames (``smooth_frames``, to remove
thermal vibration), then a hop is counted each time the smoothed position is more than ``hop_angstrom`` from the
current site, the site being the mean of the smoothed positions since the last hop (hysteresis: vibration about
a site never counts, and the site estimate settles on where the atom rests). The default threshold, 1.2 Å,
is about 0.7 of the shortest Li site-to-site distance in rock-salt LiF (lattice site to tetrahedral interstitial,
a√3/4 ≈ 1.74 Å at a = 4.01 Å); jumps between interstitial sites (a/2 ≈ 2.0 Å) and lattice sites (a/√2 ≈ 2.8 Å)
are longer. States with fewer than ``MIN_HOPS`` hops in all their trajectories are flagged in the tables and the
report.
"""

from __future__ import annotations

import numpy as np

HOP_ANGSTROM = 1.2
SMOOTH_FRAMES = 5
MIN_HOPS = 20


def smooth(positions: np.ndarray, frames: int) -> np.ndarray:
    """Moving average over ``frames`` frames (valid part only) of (n_frames, n_atoms, 3)."""
    if frames <= 1 or len(positions) < frames:
        return positions
    c = np.cumsum(np.concatenate([np.zeros_like(positions[:1]), positions]), axis=0)
    return (c[frames:] - c[:-frames]) / frames


def count_hops(positions: np.ndarray, hop_angstrom: float = HOP_ANGSTROM, smooth_frames: int = SMOOTH_FRAMES,
               budget_bytes: int = 256 * 2**20) -> int:
    """Hops of all atoms in unwrapped positions (n_frames, n_atoms, 3), Å; atoms are taken in chunks that fit
    ``budget_bytes`` of float64 work space."""
    x = np.asarray(positions)
    n_frames, n_atoms = x.shape[0], x.shape[1]
    chunk = max(1, int(budget_bytes // max(1, n_frames * 3 * 8 * 3)))
    return sum(_hops(x[:, lo:lo + chunk], hop_angstrom, smooth_frames) for lo in range(0, n_atoms, chunk))


def _hops(positions: np.ndarray, hop_angstrom: float, smooth_frames: int) -> int:
    p = smooth(np.asarray(positions, dtype=np.float64), smooth_frames)
    if len(p) < 2:
        return 0
    total = p[0].copy()  # sum of positions since each atom's last hop
    count = np.ones(p.shape[1])
    hops = 0
    limit2 = hop_angstrom * hop_angstrom
    for frame in p[1:]:
        delta = frame - total / count[:, None]
        moved = np.einsum("ij,ij->i", delta, delta) > limit2
        if moved.any():
            hops += int(moved.sum())
            total[moved] = 0.0
            count[moved] = 0
        total += frame
        count += 1
    return hops


def too_few(hops: int, min_hops: int = MIN_HOPS) -> bool:
    return hops < min_hops
