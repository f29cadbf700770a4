"""What every potential family provides.

A family is a module registered in :data:`potentials.catalog.FAMILIES` with:

- ``pair_block(entry, type_order, compute: Compute) -> PairBlock`` — the deck's interaction lines and what LAMMPS
  must have to run them, for the way the study computes (accelerator, precision, kernels);
- ``NEEDS_GPU: bool`` — whether its runs go to GPU nodes on a cluster;
- ``PARAMS: dict[str, type]`` — the catalog keys of its entries besides the common ones
  (:data:`potentials.catalog.COMMON_KEYS`) with their types (as :mod:`core.config` reads them: ``float``,
  ``str``, ``dict[str, float]`` ...); an entry with another key, or a value of another type, is refused when it
  is used, naming the catalog file, the entry and the key;
- ``model_file(entry) -> Path | None`` — the model file an entry names (``None``: no model file);
- ``ase_calculator(entry, device="cpu") -> ase.Calculator`` — the family's own calculator, independent of
  LAMMPS (validation, parity checks); raises :class:`~core.errors.PotentialError` where there is none.

Everything else reaches family knowledge through :func:`potentials.catalog.family`, never by testing names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from core.errors import PotentialError
from core.rundir import Requirements
from inputs.study import Precision

Accelerator = Literal["cpu", "cuda", "kokkos"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
ACCELERATORS: tuple[str, ...] = ("cpu", "cuda", "kokkos")
ALIASES = {"gpu": "kokkos"}  # the name the first release used for the KOKKOS route


@dataclass(frozen=True)
class Compute:
    """How a study's ML potentials compute.

    ``accelerator``: ``cpu`` (the project's LAMMPS, model on the CPU), ``cuda`` (the project's LAMMPS, no KOKKOS:
    the model on the CUDA device the task's environment gives, ``CUDA_VISIBLE_DEVICES``; DeePMD on the GPU through
    a plugin built against a CUDA torch), ``kokkos`` (a KOKKOS-CUDA LAMMPS, ``-k on g N -sf kk``; MACE through
    mace-torch's own adapter, which needs CuPy). ``precision`` and ``cuequivariance`` apply to MACE."""

    accelerator: Accelerator = "cpu"
    precision: Precision = "float64"
    cuequivariance: bool = False

    def __post_init__(self) -> None:
        acc = ALIASES.get(self.accelerator, self.accelerator)
        if acc not in ACCELERATORS:
            raise PotentialError(f"accelerator {self.accelerator!r} is not one of {ACCELERATORS}")
        if self.precision not in PRECISIONS:
            raise PotentialError(f"precision {self.precision!r} is not {' or '.join(PRECISIONS)}")
        object.__setattr__(self, "accelerator", acc)

    @property
    def kernels(self) -> str:
        """The MACE kernels, as recorded in ``settings`` and printed by the model: cuequivariance | e3nn."""
        return "cuequivariance" if self.cuequivariance else "e3nn"

    @classmethod
    def of(cls, value: "Compute | str") -> "Compute":
        return value if isinstance(value, Compute) else cls(accelerator=value)  # type: ignore[arg-type]


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
