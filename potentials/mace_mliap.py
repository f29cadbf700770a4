"""MACE inside LAMMPS through ML-IAP (``pair_style mliap unified``) on CPU, without KOKKOS.

MACE passes messages twice (or more), so between layers the features of ghost atoms must be refreshed from their
owners. mace-torch's adapter (``LAMMPS_MLIAP_MACE``) asks LAMMPS for that through ``forward_exchange`` and
``reverse_exchange``, which only LAMMPS's KOKKOS ML-IAP coupling has. In a serial run every ghost atom is a
periodic image of a local atom, so the exchange is a gather (ghost row ← owner row) and its adjoint a
scatter-add (owner row += ghost row). :class:`SerialGhostExchange` does exactly that; the owners come from atom
tags, read through the LAMMPS handle the deck registers with ``python lif_attach input 1 SELF ...``.

On GPUs use LAMMPS built with KOKKOS and mace-torch's own adapter (``potentials.mace`` converts for both).
"""

from __future__ import annotations

import numpy as np
import torch
from mace.calculators.lammps_mliap_mace import LAMMPS_MLIAP_MACE

_LMP = None  # the LAMMPS instance running this model, registered by attach()


def attach(lmpptr) -> None:
    """Called from the deck (``python lif_attach invoke``): keep a handle on the running LAMMPS."""
    global _LMP
    from lammps import lammps

    _LMP = lammps(ptr=lmpptr)


class SerialGhostExchange:
    """forward/reverse exchange for one MPI rank: ``index[k]`` is the local atom that atom k is (an image of)."""

    def __init__(self, index: torch.Tensor):
        self.index = index

    def forward_exchange(self, feats: torch.Tensor, out: torch.Tensor, vec_len: int) -> None:
        out.copy_(feats.index_select(0, self.index))

    def reverse_exchange(self, grad: torch.Tensor, gout: torch.Tensor, vec_len: int) -> None:
        gout.zero_()
        gout.index_add_(0, self.index, grad)


def owner_index(tags: np.ndarray, nlocal: int) -> np.ndarray:
    """For local + ghost atom tags, the local index of each atom's owner."""
    local = tags[:nlocal]
    inverse = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
    inverse[local] = np.arange(nlocal)
    index = inverse[tags]
    if (index < 0).any():
        raise RuntimeError("a ghost atom has no local owner: MACE without KOKKOS runs on one MPI rank only")
    return index


class MACEMliapCPU(LAMMPS_MLIAP_MACE):
    """mace-torch's ML-IAP adapter, made to run on LAMMPS's plain (non-KOKKOS) ML-IAP coupling."""

    def _exchange(self, data) -> SerialGhostExchange:
        if _LMP is None:
            raise RuntimeError("MACE on CPU needs the deck's `python lif_attach ... SELF` lines before pair_style")
        if _LMP.extract_setting("world_size") != 1:
            raise RuntimeError("MACE without KOKKOS runs on one MPI rank; use a KOKKOS build for parallel runs")
        ntotal = data.ntotal
        tags = np.asarray(_LMP.numpy.extract_atom("id", nelem=ntotal), dtype=np.int64)[:ntotal]
        return SerialGhostExchange(torch.as_tensor(owner_index(tags, data.nlocal), device=self.device))

    def _prepare_batch(self, data, natoms, nghosts, species):
        batch = super()._prepare_batch(data, natoms, nghosts, species)
        batch["lammps_class"] = self._exchange(data)
        return batch

    def _update_lammps_data(self, data, atom_energies, pair_forces, natoms):
        eatoms = atom_energies[:natoms].detach().to(torch.float64).cpu().numpy()
        data.eatoms = np.ascontiguousarray(eatoms)
        data.energy = float(eatoms.sum())
        data.update_pair_forces(np.ascontiguousarray(pair_forces.detach().to(torch.float64).cpu().numpy()))
