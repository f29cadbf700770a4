"""Point defects of the mobile species in any perfect crystal (a :class:`inputs.structure.Structure` from a builder or
a structure file): a vacancy, an interstitial, a Frenkel pair.

- ``vacancy``: one atom of the mobile species is taken off a lattice site: the site given by its index into the
  structure's mobile-species sites (``li_sites``), or one drawn with ``seed``, or by default the site nearest the
  cell centre.
- ``interstitial``: one atom of the mobile species is added at ``interstitial_site`` (fractional coordinates of the
  cell that was repeated: the builder's conventional or primitive cell, the file's cell; placed in the copy of that
  cell nearest the supercell's centre), or by default at the largest void nearest the cell centre (the structure's
  interstitial sites, found by :mod:`inputs.voids`).
- ``frenkel``: the vacancy as above and the interstitial at the given site or, by default, at the interstitial site
  farthest from the vacancy, so the pair does not recombine at once.

The added atom gets the last id; with the defaults the defect sits near the cell centre. A given site closer
than :data:`inputs.structure.MIN_SEPARATION_ANGSTROM` to an atom of the crystal is refused. The perfect crystal's
sites are kept unchanged for the analysis. Charges for rigid-ion potentials: :func:`inputs.structure.charges_for` (a
neutralising background, or the net charge spread over the anions).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Sequence

import numpy as np

from core.errors import InputError
from inputs.structure import DEFECT_KINDS, MIN_SEPARATION_ANGSTROM, Defect, Structure, check_separation


def add_defect(structure: Structure, kind: str, *, vacancy: int | None = None, seed: int | None = None,
               interstitial_site: Sequence[float] | None = None) -> Structure:
    """``structure`` (a perfect crystal) with one point defect of its mobile species: see the module's description.
    ``vacancy`` (an index into the mobile species' sites) and ``seed`` choose the vacant site; ``interstitial_site``
    the added atom's site."""
    if kind not in DEFECT_KINDS:
        raise InputError(f"unknown defect {kind!r}; choose one of {', '.join(DEFECT_KINDS)}")
    if structure.defect.kind != "none":
        raise InputError(f"the structure already has a defect ({structure.defect.kind}); start from a perfect crystal")
    if kind == "none":
        return structure
    positions, species = structure.positions, list(structure.species)
    vacancy_site = None
    if kind in ("vacancy", "frenkel"):
        k = _vacant_site(structure, vacancy, seed)
        vacancy_site = structure.li_sites[k]
        mobile = [i for i, s in enumerate(species) if s == structure.mobile]
        frac = positions[mobile] @ np.linalg.inv(structure.cell) - vacancy_site
        d = (frac - np.round(frac)) @ structure.cell
        atom = mobile[int(np.argmin(np.einsum("ij,ij->i", d, d)))]
        positions = np.delete(positions, atom, axis=0)
        del species[atom]
    vacancy_tuple = None if vacancy_site is None else tuple(float(x) for x in vacancy_site)
    if kind == "vacancy":
        defect = Defect("vacancy", vacancy_site=vacancy_tuple)  # type: ignore[arg-type]
    else:
        site = _interstitial_site(structure, interstitial_site, vacancy_site)
        positions = np.vstack([positions, site @ structure.cell])
        species.append(structure.mobile)
        defect = Defect(kind, atom_ids=(len(species),), vacancy_site=vacancy_tuple)  # type: ignore[arg-type]
    out = replace(structure, positions=positions, species=tuple(species), defect=defect)
    check_separation(out)
    return out


def _vacant_site(structure: Structure, index: int | None, seed: int | None) -> int:
    n = len(structure.li_sites)
    if n == 0:
        raise InputError(f"the structure has no {structure.mobile} sites to leave vacant")
    if index is not None and seed is not None:
        raise InputError("choose the vacant site by index or by seed, not both")
    if index is not None:
        if not 0 <= index < n:
            raise InputError(f"vacancy site {index} is not one of the {n} {structure.mobile} sites (0 to {n - 1})")
        return int(index)
    if seed is not None:
        return int(np.random.default_rng(seed).integers(n))
    return _nearest(structure, structure.li_sites, np.full(3, 0.5))


def _interstitial_site(structure: Structure, given: Sequence[float] | None, vacancy: np.ndarray | None
                       ) -> np.ndarray:
    """The added atom's site in the supercell's fractional coordinates."""
    if given is not None:
        site = np.asarray(given, dtype=float)
        if site.shape != (3,) or not np.isfinite(site).all():
            raise InputError(f"interstitial_site must be three fractional coordinates, got {given!r}")
        reps = np.asarray(structure.supercell, dtype=float)
        k = np.round(0.5 * reps - site % 1.0)  # the copy of the repeated cell nearest the supercell's centre
        placed = ((site % 1.0 + k) / reps) % 1.0
        _check_empty(structure, placed, given)
        return placed
    sites = structure.interstitial_sites
    if len(sites) == 0:
        from inputs.voids import find_voids

        sites = find_voids(structure.cell, structure.positions).of_kind(0)
    if vacancy is None:
        return sites[_nearest(structure, sites, np.full(3, 0.5))]
    d = sites - vacancy
    d = (d - np.round(d)) @ structure.cell
    return sites[int(np.argmax(np.einsum("ij,ij->i", d, d)))]


def _check_empty(structure: Structure, frac: np.ndarray, given: Sequence[float]) -> None:
    """Refuse a given interstitial site (``frac``: in the supercell) closer than MIN_SEPARATION_ANGSTROM to an atom of
    the crystal (the nearest periodic image, for any cell shape)."""
    d = structure.positions @ np.linalg.inv(structure.cell) - frac
    d -= np.round(d)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    dist = np.linalg.norm((d[:, None, :] + shifts[None, :, :]) @ structure.cell, axis=2).min(axis=1)
    k = int(np.argmin(dist))
    if dist[k] < MIN_SEPARATION_ANGSTROM:
        raise InputError(f"interstitial_site {list(given)} is {dist[k]:.2f} Å from a {structure.species[k]} atom (at "
                         f"least {MIN_SEPARATION_ANGSTROM} Å needed): give an empty site, or leave it out to use the "
                         "largest void")


def _nearest(structure: Structure, sites: np.ndarray, point: np.ndarray) -> int:
    d = sites - point
    d = (d - np.round(d)) @ structure.cell
    return int(np.argmin(np.einsum("ij,ij->i", d, d)))
