r"""Following the defect itself: Li atoms assigned to the perfect crystal's sites, frame by frame.

Under the interstitialcy mechanism the interstitial Li pushes a lattice Li into the next interstitial site and
takes its place: after one event the atom that *started* as the interstitial is an ordinary lattice atom, so its
displacement is neither the defect's nor the average tracer's. The defect is followed instead as the excess
occupancy of the sites. Each frame, every Li is assigned to the nearest site of the perfect crystal (its Li
lattice sites and its interstitial sites, kept with the run in ``structure.json``, scaled to the production cell);
an assignment only changes once the atom has stayed at the new site for ``residence_ps`` (a residence filter:
vibrations and failed attempts are not events). The defect is where the occupancy exceeds the crystal's: a Li on
an interstitial site, or a second Li on a lattice site (for a vacancy: the empty lattice site). Its path, unwrapped
across periodic images, gives its own MSD and D; every change of its site is an event.

What the dump interval must resolve: an event is the defect changing site, and the residence filter needs
``residence_ps`` at the new site to count it, so events closer together than that merge. Dump at least a few
times per ``residence_ps`` (default 0.5 ps) and residence times of the defect (several ps at 400-600 K for
barriers of ~0.2 eV) are resolved. Cost on disk, Li positions only: ~12 bytes per Li per frame in DCD (float32),
~40 in a text dump; the paper's 217 Li every 0.5 ps for 9 ns is 47 MB of DCD per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import AnalysisError

#: an atom farther than this from every site is "between sites"; many such atoms: the host lattice has melted
OFF_SITE_ANGSTROM = 1.0


@dataclass(frozen=True)
class DefectTrack:
    """The defect's unwrapped path (site positions, Å), its site index per frame, its events and diagnostics."""

    positions: np.ndarray  # (n_frames, 3)
    site: np.ndarray  # (n_frames,) index into the sites (lattice first, then interstitial)
    n_events: int
    off_site_fraction: float  # of Li atom-frames farther than OFF_SITE_ANGSTROM from every site
    ambiguous_fraction: float  # of frames where the excess occupancy did not single out one site


def nearest_sites(frac: np.ndarray, sites_frac: np.ndarray, cell: np.ndarray, chunk: int = 200_000
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance in Å) of the nearest site for points in fractional coordinates, under periodic images
    of a triclinic cell: a KD-tree over the sites and their 26 neighbouring images."""
    from scipy.spatial import cKDTree

    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)
    images = (sites_frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ cell
    tree = cKDTree(images)
    pts = (frac % 1.0).reshape(-1, 3) @ cell
    idx = np.empty(len(pts), dtype=np.int64)
    dist = np.empty(len(pts))
    for lo in range(0, len(pts), chunk):
        d, i = tree.query(pts[lo:lo + chunk])
        idx[lo:lo + chunk], dist[lo:lo + chunk] = i % len(sites_frac), d
    return idx.reshape(frac.shape[:-1]), dist.reshape(frac.shape[:-1])


def residence_filter(raw: np.ndarray, frames: int) -> np.ndarray:
    """Per atom (columns), a site assignment that changes only after ``frames`` consecutive frames at the new
    site; the change is dated to the first of them."""
    out = raw.copy()
    if frames <= 1:
        return out
    n = len(raw)
    current = raw[0].copy()
    candidate = raw[0].copy()
    since = np.zeros(raw.shape[1], dtype=np.int64)
    for t in range(n):
        same = raw[t] == candidate
        since = np.where(same, since + 1, 1)
        candidate = np.where(same, candidate, raw[t])
        switch = (candidate != current) & (since >= frames)
        if switch.any():
            cols = np.nonzero(switch)[0]
            for c in cols:  # back-date: the atom has been at the new site since `since` frames
                out[t - since[c] + 1:t + 1, c] = candidate[c]
            current = np.where(switch, candidate, current)
        out[t] = current
    return out


def track_defect(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, lattice: np.ndarray,
                 interstitial: np.ndarray, kind: str, residence_frames: int) -> DefectTrack:
    """Follow the defect through Li ``positions`` (n_frames, n_li, 3; Å, unwrapped, in the host lattice's frame)
    in a cell (rows a, b, c) with ``origin``; ``lattice`` and ``interstitial`` are the perfect crystal's sites in
    fractional coordinates; ``kind`` is the study's defect (interstitial, frenkel: the excess Li; vacancy: the
    empty site)."""
    if kind not in ("interstitial", "frenkel", "vacancy"):
        raise AnalysisError(f"no defect to follow in a structure with defect {kind!r}")
    n_lat = len(lattice)
    sites = np.vstack([lattice, interstitial])
    inv = np.linalg.inv(cell)
    frac = (np.asarray(positions, dtype=np.float64) - origin) @ inv
    # the host lattice may sit slightly off the sites it was built on (equilibration moved it as a whole): the
    # median offset of the Li nearest to lattice sites in the first frame, removed from every frame
    idx0, _ = nearest_sites(frac[0], lattice, cell)
    off = frac[0] - lattice[idx0]
    frac = frac - np.median(off - np.round(off), axis=0)
    raw, dist = nearest_sites(frac, sites, cell)
    site = residence_filter(raw, residence_frames)
    n_frames = len(site)
    counts = np.zeros((n_frames, len(sites)), dtype=np.int32)
    np.add.at(counts, (np.repeat(np.arange(n_frames), site.shape[1]), site.ravel()), 1)
    ideal = np.concatenate([np.ones(n_lat, dtype=np.int32), np.zeros(len(interstitial), dtype=np.int32)])
    mark = (counts - ideal > 0) if kind != "vacancy" else (counts - ideal < 0)
    defect = np.empty(n_frames, dtype=np.int64)
    ambiguous = 0
    previous = -1
    for t in range(n_frames):
        candidates = np.nonzero(mark[t])[0]
        if len(candidates) == 1:
            previous = int(candidates[0])
        elif len(candidates) > 1:
            ambiguous += 1
            if previous not in candidates:  # the candidate nearest to where the defect was
                if previous < 0:
                    previous = int(candidates[0])
                else:
                    d = sites[candidates] - sites[previous]
                    d = (d - np.round(d)) @ cell
                    previous = int(candidates[np.argmin(np.einsum("ij,ij->i", d, d))])
        elif previous < 0:
            raise AnalysisError("the first frame has no defect on the sites of the perfect crystal")
        defect[t] = previous
    step = np.diff(sites[defect], axis=0)
    step = (step - np.round(step)) @ cell
    path = np.concatenate([np.zeros((1, 3)), np.cumsum(step, axis=0)]) + sites[defect[0]] @ cell + origin
    return DefectTrack(path, defect, int(np.count_nonzero(np.diff(defect))),
                       float(np.mean(dist > OFF_SITE_ANGSTROM)), ambiguous / n_frames)
