"""What every potential family provides.

A family is a module registered in :data:`potentials.catalog.FAMILIES` with:

- ``pair_block(entry, type_order, accelerator) -> PairBlock`` — the deck's interaction lines and what LAMMPS
  must have to run them;
- ``NEEDS_GPU: bool`` — whether its runs go to GPU nodes on a cluster;
- ``model_file(entry) -> Path | None`` — the model file an entry names (``None``: no model file);
- ``ase_calculator(entry, device="cpu") -> ase.Calculator`` — the family's own calculator, independent of
  LAMMPS (validation, parity checks); raises :class:`~core.errors.PotentialError` where there is none.

Everything else reaches family knowledge through :func:`potentials.catalog.family`, never by testing names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.rundir import Requirements


@dataclass(frozen=True)
class PairBlock:
    """The interaction part of a deck, and what it needs.

    ``lines`` go verbatim into the deck after the structure is read. ``charges`` (element -> e) makes the data
    file use ``atom_style charge``. ``requirements`` are what LAMMPS must have (checked before a run) and its
    extra command-line arguments (accelerator flags); ``files`` are model files whose checksums go into the run
    summary; ``settings`` are choices that change the numbers (precision, device, kernels), recorded per run.
    """

    lines: tuple[str, ...]
    elements: tuple[str, ...]
    cutoff_angstrom: float
    charges: dict[str, float] | None = None
    requirements: Requirements = field(default_factory=Requirements)
    files: tuple[str, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
