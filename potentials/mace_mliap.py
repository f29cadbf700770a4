"""MACE inside LAMMPS through ML-IAP (``pair_style mliap unified``) without KOKKOS, on a CPU or a CUDA device.

MACE passes messages twice (or more), so between layers the features of ghost atoms must be refreshed from their
owners. mace-torch's adapter (``LAMMPS_MLIAP_MACE``) asks LAMMPS for that through ``forward_exchange`` and
``reverse_exchange``, which only LAMMPS's KOKKOS ML-IAP coupling has. In a serial run every ghost atom is a
periodic image of a local atom, so the exchange is a gather (ghost row ← owner row) and its adjoint a
scatter-add (owner row += ghost row). :class:`SerialGhostExchange` does exactly that; the owners come from atom
tags, read through the LAMMPS handle the deck registers with ``python lif_attach input 1 SELF ...``.

Nothing in that exchange is tied to the CPU: the model runs on the device its conversion names (``cpu`` or
``cuda``), chosen when LAMMPS first calls it, and ``LIF_DIFFUSION_DEVICE`` overrides that at run time. LAMMPS's
plain coupling hands over numpy arrays on the host; the neighbour vectors go to the device, the per-pair forces
come back (one copy each way per step: for a few hundred atoms that is microseconds).
For multi-GPU domain decomposition use a KOKKOS LAMMPS and mace-torch's own adapter (``potentials.mace``).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from mace.calculators.lammps_mliap_mace import LAMMPS_MLIAP_MACE

from core.rundir import DEVICE_MARK

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


def choose_device(rendered: str, override: str | None = None) -> torch.device:
    """The device a model runs on: ``override`` (``LIF_DIFFUSION_DEVICE``) if set, else the one it was rendered
    for; ``auto`` takes a CUDA device when torch sees one. A CUDA device that is not there is an error, never a
    silent fall-back to the CPU."""
    want = (override or rendered or "cpu").strip().lower()
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"MACE is set to run on {want}, but torch {torch.__version__} in LAMMPS's Python sees no CUDA device "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}, torch built for CUDA "
                f"{torch.version.cuda}); render with --accelerator cpu, or set LIF_DIFFUSION_DEVICE=cpu")
        dev = torch.device(want)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"MACE is set to run on {want}, but this task sees {torch.cuda.device_count()} "
                               "CUDA device(s)")
        return dev
    if want != "cpu":
        raise RuntimeError(f"LIF_DIFFUSION_DEVICE={want!r}: expected cpu, cuda, cuda:N or auto")
    return torch.device("cpu")


class MACEMliapSerial(LAMMPS_MLIAP_MACE):
    """mace-torch's ML-IAP adapter, made to run on LAMMPS's plain (non-KOKKOS) ML-IAP coupling, on the CPU or a
    CUDA device."""

    def __init__(self, model, device: str = "cpu", kernels: str = "e3nn", **kwargs):
        super().__init__(model, **kwargs)
        self.lif_device = device
        self.lif_kernels = kernels

    def _initialize_device(self, data) -> None:
        # pickles of the first release (class MACEMliapCPU) lack the attributes: they ran on the CPU
        device = choose_device(getattr(self, "lif_device", "cpu"), os.environ.get("LIF_DIFFUSION_DEVICE"))
        self.device = device
        self.model = self.model.to(device)
        self.initialized = True
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "host"
        precision = str(self.dtype).removeprefix("torch.")
        print(f"{DEVICE_MARK} {device} {precision} {getattr(self, 'lif_kernels', 'e3nn')} {name}", flush=True)

    def _exchange(self, data) -> SerialGhostExchange:
        if _LMP is None:
            raise RuntimeError("MACE without KOKKOS needs the deck's `python lif_attach ... SELF` lines before "
                               "pair_style")
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


MACEMliapCPU = MACEMliapSerial  # the first release's name: its cached conversions unpickle as this class
