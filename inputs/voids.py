r"""The empty sites of a periodic crystal: where an interstitial atom can sit, found from the atoms alone.

The free radius of a point is its distance to the nearest atom (under periodic images). The candidate interstitial
sites are the local maxima of that distance: the centres of the largest spheres that fit between the atoms. They
are found exactly, without a grid:

1. The atoms and their periodic images within ``pad`` Å of the cell (any cell: orthogonal or triclinic) go into a
   Voronoi tessellation (``scipy.spatial.Voronoi``, Qhull). Every local maximum of the distance to the nearest atom
   is a Voronoi vertex: a point equidistant from four or more atoms with no atom nearer.
2. The vertices inside the cell are kept, their free radius measured with a KD-tree over the same atoms, and
   vertices closer than ``merge_angstrom`` (Qhull splits a highly symmetric vertex, e.g. the cube centre of rock
   salt with its 8 equidistant ions, into several coincident ones) are merged.
3. A vertex is a local maximum when it lies in the convex hull of its nearest atoms (those at its free radius):
   then every move brings it nearer to one of them. Checked as a non-negative least-squares problem
   (``scipy.optimize.nnls``): some convex combination of the unit vectors to those atoms must vanish. Vertices on an
   edge or face between two voids (saddles, the bottlenecks of a migration path) fail this test and are dropped.
4. The maxima are ranked by free radius and grouped into classes of equal radius and equal coordination (the
   number of atoms at that radius): symmetry-equivalent sites always share a class (a class may in principle join
   two inequivalent sites that happen to agree; no space-group analysis is made).

The result is exact up to Qhull's round-off (~1e-10 Å). A vertex whose free radius is below the padding has all
the atoms that decide it among the images, so it is a true vertex, and every true maximum below the padding is
found; if any vertex in the cell comes out at least as large as the padding (or none is found), the search is
repeated with twice the padding, so the answer does not depend on it (tested). Known answers (tested): rock salt's
empty sites are the cube centres (¼,¼,¼)·a of its conventional cell (free radius √3·a/4, 4 cations + 4 anions),
two per formula unit; antifluorite Li2O's are the octahedral sites of the O fcc lattice, (½,½,½)·a and
equivalents (free radius √3·a/4 to 8 Li), one per formula unit.

A search costs a Voronoi tessellation of the padded cell: run it on the smallest cell that carries the crystal's
periodicity and tile the result (``tile_sites``), not on a large supercell.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from core.errors import InputError

#: padding (Å) of periodic images around the cell for the first attempt; doubled while any free radius exceeds it
PAD_ANGSTROM = 4.0


@dataclass(frozen=True)
class Voids:
    """Candidate interstitial sites, largest free radius first: fractional coordinates in [0, 1), free radius
    (Å), coordination (atoms at the free radius), and class (0 = the largest sites; equal radius and coordination
    share a class)."""

    frac: np.ndarray  # (n, 3)
    radius_angstrom: np.ndarray  # (n,)
    coordination: np.ndarray  # (n,) int
    kind: np.ndarray  # (n,) int, 0 for the largest

    def __len__(self) -> int:
        return len(self.frac)

    def of_kind(self, kind: int = 0) -> np.ndarray:
        """The fractional sites of one class (0: the largest voids)."""
        return self.frac[self.kind == kind]

    def classes(self) -> list[tuple[float, int, int]]:
        """(free radius Å, coordination, number of sites) of each class, largest first."""
        return [(float(self.radius_angstrom[self.kind == k][0]), int(self.coordination[self.kind == k][0]),
                 int(np.count_nonzero(self.kind == k))) for k in range(int(self.kind.max()) + 1 if len(self) else 0)]


def find_voids(cell: np.ndarray, positions: np.ndarray, *, min_radius_angstrom: float = 0.0,
               merge_angstrom: float = 0.05, radius_tolerance_angstrom: float = 1e-3,
               pad_angstrom: float = PAD_ANGSTROM) -> Voids:
    """The local maxima of the distance to the nearest atom in a periodic ``cell`` (rows a, b, c; Å) holding atoms
    at Cartesian ``positions`` (Å): see the module's description. Sites with a free radius below
    ``min_radius_angstrom`` are left out."""
    cell = np.asarray(cell, dtype=float)
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    if cell.shape != (3, 3) or not np.isfinite(cell).all() or abs(np.linalg.det(cell)) < 1e-9:
        raise InputError(f"the void search needs a periodic cell of three independent vectors, got {cell.tolist()}")
    if len(positions) == 0 or not np.isfinite(positions).all():
        raise InputError("the void search needs the atoms' positions (finite, at least one atom)")
    pad = float(pad_angstrom)
    for _ in range(8):
        voids, largest = _search(cell, positions, pad, merge_angstrom, radius_tolerance_angstrom)
        if len(voids) and largest < pad:
            break
        pad *= 2
    else:
        raise InputError(f"the void search found no empty site with up to {pad / 2:g} Å of periodic images around "
                         "the cell; check the cell and the positions (units: Å)")
    keep = voids.radius_angstrom >= min_radius_angstrom
    return _classify(voids.frac[keep], voids.radius_angstrom[keep], voids.coordination[keep],
                     radius_tolerance_angstrom)


def tile_sites(frac: np.ndarray, reps: tuple[int, int, int]) -> np.ndarray:
    """Fractional sites of a cell, repeated ``reps`` times along a, b, c: the same sites in the fractional
    coordinates of the supercell, in the order in which ASE's ``Atoms.repeat`` tiles atoms: all sites of one copy,
    then the next copy, the last axis fastest."""
    frac = np.asarray(frac, dtype=float).reshape(-1, 3)
    n = np.asarray(reps, dtype=float)
    images = np.array(list(itertools.product(*(range(int(k)) for k in reps))), dtype=float)
    return ((frac[None, :, :] + images[:, None, :]) / n).reshape(-1, 3) % 1.0


def _search(cell: np.ndarray, positions: np.ndarray, pad: float, merge: float, tol: float
            ) -> tuple[Voids, float]:
    """The local maxima among the Voronoi vertices in the cell, and the largest free radius of any vertex there
    (the answer is exact when that is below ``pad``: every sphere that decided it holds all its atoms)."""
    from scipy.spatial import Voronoi, cKDTree

    inv = np.linalg.inv(cell)
    frac = (positions @ inv) % 1.0
    widths = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    p = pad / widths  # the padding in fractional units, per axis
    n = np.ceil(p).astype(int)
    shifts = np.array(list(itertools.product(*(range(-k, k + 1) for k in n))), dtype=float)
    images = (frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    images = images[np.all((images >= -p) & (images <= 1 + p), axis=1)]
    points = images @ cell
    tree = cKDTree(points)
    vertices = Voronoi(points).vertices
    vfrac = vertices @ inv
    inside = np.all((vfrac >= -1e-9) & (vfrac < 1 - 1e-9), axis=1)
    vfrac = vfrac[inside]
    vfrac[vfrac < 0] = 0.0  # round-off below a face: the site is on it
    if not len(vfrac):
        return Voids(np.empty((0, 3)), np.empty(0), np.empty(0, dtype=int), np.empty(0, dtype=int)), np.inf
    radius, _ = tree.query(vfrac @ cell)
    largest = float(radius.max())
    rep = _merge(vfrac, radius, cell, merge)
    vfrac, radius = vfrac[rep], radius[rep]
    out_frac, out_r, out_c = [], [], []
    for x, r in zip(vfrac, radius):
        centre = x @ cell
        near = points[tree.query_ball_point(centre, r + tol)]
        if _in_hull_of_directions(near - centre):
            out_frac.append(x)
            out_r.append(r)
            out_c.append(len(near))
    return Voids(np.array(out_frac).reshape(-1, 3), np.array(out_r), np.array(out_c, dtype=int),
                 np.zeros(len(out_r), dtype=int)), largest


def _merge(frac: np.ndarray, radius: np.ndarray, cell: np.ndarray, merge: float) -> np.ndarray:
    """Indices of one representative (the largest free radius) of each group of points closer than ``merge`` Å
    under periodic images."""
    from scipy.spatial import cKDTree

    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    n = len(frac)
    base = cKDTree(frac @ cell)  # images: shifted copies of the points are queried against it
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for s in shifts:
        for i, js in enumerate(base.query_ball_point((frac + s) @ cell, merge)):
            for j in js:
                ri, rj = root(i), root(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, int] = {}
    for i in range(n):
        r = root(i)
        if r not in groups or radius[i] > radius[groups[r]]:
            groups[r] = i
    return np.array(sorted(groups.values()), dtype=int)


def _in_hull_of_directions(vectors: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether the origin lies in the convex hull of the unit vectors along ``vectors`` (a local maximum of the
    distance to the nearest of those atoms)."""
    from scipy.optimize import nnls

    u = vectors / np.linalg.norm(vectors, axis=1)[:, None]
    weight = 10.0  # enforces Σλ = 1 through the least squares
    a = np.vstack([u.T, weight * np.ones(len(u))])
    b = np.concatenate([np.zeros(3), [weight]])
    _, residual = nnls(a, b)
    return residual < tol


def _classify(frac: np.ndarray, radius: np.ndarray, coordination: np.ndarray, tol: float) -> Voids:
    order = np.lexsort((frac[:, 2], frac[:, 1], frac[:, 0], -coordination, -np.round(radius / tol)))
    frac, radius, coordination = frac[order], radius[order], coordination[order]
    kind = np.zeros(len(radius), dtype=int)
    for i in range(1, len(radius)):
        same = abs(radius[i] - radius[i - 1]) <= tol and coordination[i] == coordination[i - 1]
        kind[i] = kind[i - 1] + (0 if same else 1)
    return Voids(frac, radius, coordination, kind)
