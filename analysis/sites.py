r"""Following the defect itself: Li atoms assigned to the perfect crystal's sites, frame by frame.

Under the interstitialcy mechanism the interstitial Li pushes a lattice Li into the next interstitial site and
takes its place: after one event the atom that *started* as the interstitial is an ordinary lattice atom, so its
displacement is neither the defect's nor the average tracer's. The defect is followed instead as the excess
occupancy of the sites. Each frame, every Li is assigned to the nearest site of the perfect crystal (its Li
lattice sites and its interstitial sites, kept with the run in ``structure.json``, scaled to the production cell);
an assignment only changes once the atom has stayed at the new site for ``residence_ps`` (a residence filter:
vibrations and failed attempts are not events). The defect is where the occupancy exceeds the crystal's: a Li on
an interstitial site, or a second Li on a lattice site (for a vacancy: the empty lattice site). Its path, unwrapped
across periodic images, gives its own MSD and D; every change of its site is an event. "Li" stands for the mobile
species of any crystal (the structure record's ``mobile``): its sites are that species' lattice sites and the
perfect crystal's candidate interstitial sites (rock salt's cube centres; in general the largest voids found by
:mod:`inputs.voids`, e.g. antifluorite Li2O's octahedral sites).

Split configurations. A frame may show two Li on interstitial sites beside one empty lattice site (the split
interstitial the collinear interstitialcy passes through: in the classical LiF runs at 400-600 K, 14-21 % of the
frames after the residence filter) or a doubly occupied lattice site. The defect's position is then defined by the
centroid of the excess occupancy (:func:`excess_centroids`): the sites whose occupancy differs from the perfect
crystal's are grouped into clusters (sites within ``link_angstrom`` of each other, by default 1.5 times the
shortest distance between two sites), and a cluster's position is Σ w·r / Σ w, with w = occupancy − perfect and r
the site positions unwrapped around the cluster. The defect is the cluster whose net excess has the defect's sign
(+ for an interstitial or a Frenkel pair's interstitial, − for a vacancy). A symmetric split interstitial,
(+1 at L + d, +1 at L − d, −1 at L), is placed at its centre L; a doubly occupied lattice site at that site; a lone
interstitial at its site, as before. It holds for any structure: nothing in it knows rock salt. Where several
clusters have the defect's sign (a thermal Frenkel pair beside the defect, say), the one nearest the defect's last
position is taken and the frame counted as ambiguous; where none has (a Frenkel pair recombined into a net-zero
cluster), the defect stays where it was. Events are still counted as changes of the defect's site, the site of
excess occupancy kept while a split lasts (the rule before the centroid: the candidate nearest the last one), so a
passage through a split configuration is one event, not two. ``rule="site"`` in :func:`track_defect` gives the
positions of that older rule (the chosen site itself, so a split frame sits on one of its two interstitial sites).

What the dump interval must resolve: an event is the defect changing site, and the residence filter needs
``residence_ps`` at the new site to count it, so events closer together than that merge. Dump at least a few
times per ``residence_ps`` (default 0.5 ps) and residence times of the defect (several ps at 400-600 K for
barriers of ~0.2 eV) are resolved. Cost on disk, Li positions only: ~12 bytes per Li per frame in DCD (float32),
~40 in a text dump; the paper's 217 Li every 0.5 ps for 9 ns is 47 MB of DCD per run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import AnalysisError

#: an atom farther than this from every site is "between sites"; many such atoms: the host lattice has melted
OFF_SITE_ANGSTROM = 1.0
#: sites of changed occupancy closer than this many times the shortest site-to-site distance form one defect
LINK_FACTOR = 1.5
_SHIFTS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)


@dataclass(frozen=True)
class DefectTrack:
    """The defect's unwrapped path (site positions, Å), its site index per frame, its events and diagnostics."""

    positions: np.ndarray  # (n_frames, 3): the centroid of the excess occupancy (rule "centroid") or the site
    site: np.ndarray  # (n_frames,) index into the sites (lattice first, then interstitial) of the excess occupancy
    n_events: int
    off_site_fraction: float  # of Li atom-frames farther than OFF_SITE_ANGSTROM from every site
    ambiguous_fraction: float  # of frames where the excess occupancy did not single out one defect (one site,
    # rule "site"; one cluster of the defect's sign, rule "centroid": a split configuration is one cluster)


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
                 interstitial: np.ndarray, kind: str, residence_frames: int,
                 rule: Literal["centroid", "site"] = "centroid") -> DefectTrack:
    """Follow the defect through Li ``positions`` (n_frames, n_li, 3; Å, unwrapped, in the host lattice's frame)
    in a cell (rows a, b, c) with ``origin``; ``lattice`` and ``interstitial`` are the perfect crystal's sites in
    fractional coordinates; ``kind`` is the study's defect (interstitial, frenkel: the excess Li; vacancy: the
    empty site). ``rule``: the defect's position is the centroid of its excess occupancy (``centroid``, see the
    module's description) or the site of excess occupancy chosen each frame (``site``)."""
    if kind not in ("interstitial", "frenkel", "vacancy"):
        raise AnalysisError(f"no defect to follow in a structure with defect {kind!r}")
    if rule not in ("centroid", "site"):
        raise AnalysisError(f"unknown defect position rule {rule!r}; choose centroid or site")
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
    if rule == "centroid":
        where, n_ambiguous = excess_centroids(counts - ideal, sites, cell, -1 if kind == "vacancy" else 1)
        ambiguous = n_ambiguous
    else:
        where = sites[defect]
    step = np.diff(where, axis=0)
    step = (step - np.round(step)) @ cell
    path = np.concatenate([np.zeros((1, 3)), np.cumsum(step, axis=0)]) + where[0] @ cell + origin
    return DefectTrack(path, defect, int(np.count_nonzero(np.diff(defect))),
                       float(np.mean(dist > OFF_SITE_ANGSTROM)), ambiguous / n_frames)


def excess_centroids(excess: np.ndarray, sites: np.ndarray, cell: np.ndarray, sign: int,
                     link_angstrom: float | None = None) -> tuple[np.ndarray, int]:
    """The defect's position per frame (fractional, (n_frames, 3)) as the centroid of the excess occupancy, and the
    number of ambiguous frames: ``excess`` (n_frames, n_sites) is occupancy − perfect of each site (fractional
    ``sites`` of a ``cell``), ``sign`` +1 to follow an excess atom, −1 a vacancy. See the module's description."""
    excess = np.asarray(excess)
    if sign not in (1, -1):
        raise AnalysisError(f"the defect's sign is +1 (an excess atom) or -1 (a vacancy), got {sign!r}")
    link = min_site_distance(sites, cell) * LINK_FACTOR if link_angstrom is None else float(link_angstrom)
    out = np.empty((len(excess), 3))
    previous: np.ndarray | None = None
    ambiguous = 0
    for t, w in enumerate(excess):
        found = [c for c, net in _clusters(np.nonzero(w)[0], w, sites, cell, link) if net * sign > 0]
        if len(found) > 1:
            ambiguous += 1
            if previous is not None:
                found.sort(key=lambda c: float(np.linalg.norm(_min_image(c - previous, cell))))
        if found:
            previous = found[0] % 1.0
        elif previous is None:
            raise AnalysisError("the first frame has no defect on the sites of the perfect crystal")
        out[t] = previous
    return out, ambiguous


def min_site_distance(sites: np.ndarray, cell: np.ndarray) -> float:
    """The shortest distance (Å) between two of the ``sites`` (fractional) under periodic images."""
    from scipy.spatial import cKDTree

    images = (sites[None, :, :] + _SHIFTS[:, None, :]).reshape(-1, 3) @ cell
    d, _ = cKDTree(images).query(sites @ cell, k=2)
    return float(d[:, 1].min())


def _clusters(idx: np.ndarray, w: np.ndarray, sites: np.ndarray, cell: np.ndarray, link: float
              ) -> list[tuple[np.ndarray, int]]:
    """(fractional centroid Σw·r/Σw, net Σw) of each cluster of the sites ``idx`` whose neighbours lie within
    ``link`` Å (positions unwrapped along the links); a cluster of net zero has its unweighted centre instead."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components
    from scipy.spatial import cKDTree

    k = len(idx)
    if k == 0:
        return []
    frac = sites[idx] % 1.0
    if k == 1:
        return [(frac[0], int(w[idx[0]]))]
    images = (frac[None, :, :] + _SHIFTS[:, None, :]).reshape(-1, 3)  # image m: site m % k shifted by m // k
    near = cKDTree(images @ cell).query_ball_point(frac @ cell, link)
    rows = np.repeat(np.arange(k), [len(m) for m in near])
    cols_img = np.concatenate([np.asarray(m, dtype=np.int64) for m in near])
    keep = cols_img % k != rows
    rows, cols_img = rows[keep], cols_img[keep]
    cols = cols_img % k
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(k, k)).tocsr()
    n, label = connected_components(graph, directed=False)
    size = np.bincount(label, minlength=n)
    out = [(frac[i], int(w[idx[i]])) for i in np.nonzero(size[label] == 1)[0]]  # lone sites: no unwrapping
    disp = {(int(a), int(b)): images[m] - frac[a] for a, b, m in zip(rows, cols, cols_img)}
    for c in np.nonzero(size > 1)[0]:
        first = int(np.nonzero(label == c)[0][0])
        order, pred = breadth_first_order(graph, first, directed=False)
        rel = np.zeros((k, 3))
        for j in order[1:]:
            a = int(pred[j])
            rel[j] = rel[a] + (disp[(a, int(j))] if (a, int(j)) in disp else -disp[(int(j), a)])
        weights = w[idx[order]].astype(float)
        net = int(round(weights.sum()))
        centre = (weights @ rel[order]) / weights.sum() if net else rel[order].mean(axis=0)
        out.append((frac[first] + centre, net))
    return out


def _min_image(dfrac: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """The periodic image of a fractional displacement that is shortest in Å (any cell, however skewed)."""
    base = dfrac - np.round(dfrac)
    cand = base[None, :] + _SHIFTS
    return cand[int(np.argmin(np.linalg.norm(cand @ cell, axis=1)))]
