"""What every potential family provides: the deck's pair block and what LAMMPS must have to run it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PairBlock:
    """The interaction part of a deck, and what it needs.

    ``lines`` go verbatim into the deck after the structure is read. ``charges`` (element -> e) makes the data
    file use ``atom_style charge``. ``packages``/``styles`` are what LAMMPS must have (checked before a run);
    ``lmp_args`` are extra command-line arguments (accelerator flags); ``files`` are model files whose
    checksums go into the run summary.
    """

    lines: tuple[str, ...]
    elements: tuple[str, ...]
    cutoff_angstrom: float
    charges: dict[str, float] | None = None
    packages: tuple[str, ...] = ()
    styles: tuple[tuple[str, str], ...] = ()  # (category, style), e.g. ("pair", "born/coul/long")
    lmp_args: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default_factory=tuple)
