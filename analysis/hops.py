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


def count_hops(positions: np.ndarray, hop_angstrom: float = HOP_ANGSTROM, smooth_frames: int = SMOOTH_FRAMES) -> int:
    """Hops of all atoms in unwrapped positions (n_frames, n_atoms, 3), Å."""
    p = smooth(np.asarray(positions, dtype=float), smooth_frames)
    if len(p) < 2:
        return 0
    total = p[0].copy()  # sum of positions since each atom's last hop
    count = np.ones(p.shape[1])
    hops = 0
    for frame in p[1:]:
        site = total / count[:, None]
        moved = np.linalg.norm(frame - site, axis=1) > hop_angstrom
        hops += int(moved.sum())
        total[moved] = 0.0
        count[moved] = 0
        total += frame
        count += 1
    return hops


def too_few(hops: int, min_hops: int = MIN_HOPS) -> bool:
    return hops < min_hops
