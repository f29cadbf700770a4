"""Counting hops without a lattice: the event rate behind a trajectory whose sites are not known.

Run directories know their crystal's sites and follow the defect on them (:mod:`analysis.sites`); a dump given to
``python -m analysis.diffusion`` alone does not. For it, each atom's path is averaged over ``smooth_ps`` (thermal
vibration out), and a hop is counted when the averaged position has stayed more than ``hop_angstrom`` from the
atom's current site (the mean of its averaged positions since its last hop) for ``residence_ps`` — the same
residence filter as on sites. The default threshold, 1.5 Å, is well above the vibrations and below the shortest
jump between Li sites in LiF (lattice to interstitial site, √3·a/4 ≈ 1.75 Å, which each of the two atoms of a
collinear interstitialcy event moves by ~1.2-1.75 Å: events, rather than every atom's hop, are what it counts).
"""

from __future__ import annotations

import numpy as np

HOP_ANGSTROM = 1.5
SMOOTH_PS = 0.2
RESIDENCE_PS = 0.5
#: the fit window starts this many mean times between hops into the trajectory
EVENTS_BEFORE_WINDOW = 3.0


def smooth(positions: np.ndarray, frames: int) -> np.ndarray:
    """Moving average over ``frames`` frames (valid part only) of (n_frames, n_atoms, 3)."""
    if frames <= 1 or len(positions) < frames:
        return positions
    c = np.cumsum(np.concatenate([np.zeros_like(positions[:1]), positions]), axis=0)
    return (c[frames:] - c[:-frames]) / frames


def count_hops(positions: np.ndarray, frame_interval_ps: float, hop_angstrom: float = HOP_ANGSTROM,
               smooth_ps: float = SMOOTH_PS, residence_ps: float = RESIDENCE_PS,
               budget_bytes: int = 256 * 2**20) -> int:
    """Hops of all atoms in unwrapped positions (n_frames, n_atoms, 3), Å; atoms in chunks within
    ``budget_bytes`` of float64 work space."""
    x = np.asarray(positions)
    n_frames, n_atoms = x.shape[0], x.shape[1]
    chunk = max(1, int(budget_bytes // max(1, n_frames * 3 * 8 * 3)))
    smooth_frames = max(1, int(round(smooth_ps / frame_interval_ps)))
    stay = max(1, int(round(residence_ps / frame_interval_ps)))
    return sum(_hops(x[:, lo:lo + chunk], hop_angstrom, smooth_frames, stay) for lo in range(0, n_atoms, chunk))


def _hops(positions: np.ndarray, hop_angstrom: float, smooth_frames: int, stay: int) -> int:
    p = smooth(np.asarray(positions, dtype=np.float64), smooth_frames)
    if len(p) < 2:
        return 0
    total = p[0].copy()  # sum of positions since each atom's last hop
    count = np.ones(p.shape[1])
    away = np.zeros(p.shape[1], dtype=np.int64)  # consecutive frames away from the site
    hops = 0
    limit2 = hop_angstrom * hop_angstrom
    for frame in p[1:]:
        delta = frame - total / count[:, None]
        far = np.einsum("ij,ij->i", delta, delta) > limit2
        away = np.where(far, away + 1, 0)
        moved = away >= stay
        if moved.any():
            hops += int(moved.sum())
            total[moved] = 0.0
            count[moved] = 0
            away[moved] = 0
        keep = ~far | moved
        total[keep] += frame[keep]
        count[keep] += 1
    return hops


def hop_window(trajectories, min_start_ps: float = 1.0) -> float:
    """The start of the fit window for trajectories without known sites: ``EVENTS_BEFORE_WINDOW`` mean times
    between hops (all atoms' hops pooled), no earlier than ``min_start_ps`` and two frames; without hops, a
    tenth of the shortest trajectory."""
    total = sum((t.n_frames - 1) * t.frame_interval_ps for t in trajectories)
    hops = sum(count_hops(t.positions, t.frame_interval_ps) for t in trajectories)
    dt = max(t.frame_interval_ps for t in trajectories)
    shortest = min((t.n_frames - 1) * t.frame_interval_ps for t in trajectories)
    start = EVENTS_BEFORE_WINDOW * total / hops if hops else 0.1 * shortest
    return float(min(max(start, min_start_ps, 2 * dt), 0.25 * shortest))
