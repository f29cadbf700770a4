"""What every potential family provides: the :class:`Family` protocol.

A family is a module registered in :data:`potentials.catalog.FAMILIES` that satisfies :class:`Family` (checked when
it is loaded, and by tests/test_families.py):

- ``pair_block(entry, type_order, compute: Compute) -> PairBlock`` — the deck's interaction lines and what LAMMPS
  must have to run them, for the way the study computes (accelerator, precision, kernels), with LAMMPS type
  ``i`` the element ``type_order[i - 1]``;
- ``PARAMS: dict[str, type]`` — the catalog keys of its entries besides the common ones
  (:data:`potentials.catalog.COMMON_KEYS`) with their types (as :mod:`core.config` reads them: ``float``,
  ``str``, ``dict[str, float]``, ``tuple[str, ...]`` ...); an entry with another key, or a value of another type,
  is refused when it is used, naming the catalog file, the entry and the key;
- ``model_file(entry) -> Path | None`` — the model file an entry names (``None``: no model file);
- ``ase_calculator(entry, device="cpu") -> ase.Calculator`` — the family's own calculator, independent of
  LAMMPS (validation, parity checks); raises :class:`~core.errors.PotentialError` where there is none;
- capabilities, each a ``bool`` named for what it means (see :class:`Family`) and what a LAMMPS build needs for
  the family's runs (:class:`BuildNeeds`, for ``driver preflight``).

Elements: an entry's ``elements`` are the elements it covers; the structure's must be among them. Where the catalog
holds the parameters (``ELEMENTS_FROM_MODEL = False``: classical, lammps) ``elements`` is required. Where a model file
names its own elements (``ELEMENTS_FROM_MODEL = True``: mace, deepmd) ``elements`` may be left out: the model's own
elements are then checked against the structure's when the pair block is made (the model loaded), and a catalog
list, where given, must cover the structure as well.

Everything else reaches family knowledge through :func:`potentials.catalog.family`, never by testing names
(tests/test_families.py checks that no module outside ``potentials/`` compares a family name to a literal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from core.config import convert
from core.errors import InputError, PotentialError
from core.rundir import Requirements
from inputs.study import Precision

@dataclass(frozen=True)
class PotentialEntry:
    """A catalog entry (read by :mod:`potentials.catalog`; here beside the other types a family works with).
    ``problem`` says what is wrong with an entry that cannot be used (a malformed table, a value of the wrong type):
    it is refused with that message where it is used, while the other entries of the same catalog stay usable."""

    name: str
    family: str
    description: str
    source: str
    elements: tuple[str, ...]
    params: dict[str, Any]
    catalog: str
    problem: str | None = None

    def typed(self, hints: dict[str, Any]) -> dict[str, Any]:
        """The entry's values of the keys in ``hints`` (a family's ``PARAMS``: key -> type), each converted to its
        type; a value of the wrong type is a :class:`PotentialError` naming the catalog file, the entry and the key."""
        where = f"{self.catalog}: [{self.name}]"
        try:
            return {key: convert(hint, self.params[key], where, key) for key, hint in hints.items()
                    if key in self.params}
        except InputError as e:
            raise PotentialError(str(e)) from None

    def record(self) -> dict[str, Any]:
        """The entry as the run summary keeps it (provenance)."""
        return {"name": self.name, "family": self.family, "description": self.description, "source": self.source,
                "catalog": self.catalog, "elements": list(self.elements), "params": self.params}


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


@dataclass(frozen=True)
class BuildNeeds:
    """What a LAMMPS build must have for a family's runs, whatever the entry (``driver preflight`` checks it for the
    families a cluster study's GPU runs use, before anything is submitted): ``packages``, ``styles`` (category,
    style) on every accelerator, ``kokkos_styles`` on ``kokkos`` only; ``embedded_python``: the model runs in the
    Python that LAMMPS embeds (torch, mace-torch and the project's adapter must import there; CuPy on ``kokkos``);
    ``hint``: how to get what is missing."""

    packages: tuple[str, ...] = ()
    styles: tuple[tuple[str, str], ...] = ()
    kokkos_styles: tuple[tuple[str, str], ...] = ()
    embedded_python: bool = False
    hint: str = ""


@runtime_checkable
class Family(Protocol):
    """A potential family module (see the module docstring). Capabilities:

    ``NEEDS_GPU``: its runs go to GPU nodes on a cluster. ``CHEAP_ON_CPU``: LAMMPS evaluates it in microseconds per
    atom on a CPU, with no model to load, so a ``run 0`` check before a study starts (and side calculations such as
    relaxations) cost nothing worth saving. ``HIDE_GPUS_ON_CPU``: its LAMMPS code takes a GPU whenever one is
    visible, so a run rendered for the CPU is started with ``CUDA_VISIBLE_DEVICES`` empty. ``FOUNDATION_MODELS``: its
    entries can be the foundation model that ``python -m finetune`` fine-tunes. ``ELEMENTS_FROM_MODEL``: its model
    file names the elements it covers (catalog ``elements`` optional)."""

    NEEDS_GPU: bool
    CHEAP_ON_CPU: bool
    HIDE_GPUS_ON_CPU: bool
    FOUNDATION_MODELS: bool
    ELEMENTS_FROM_MODEL: bool
    BUILD_NEEDS: BuildNeeds
    PARAMS: dict[str, object]

    def pair_block(self, entry: "PotentialEntry", type_order: tuple[str, ...], compute: Compute = ...
                   ) -> PairBlock: ...

    def model_file(self, entry: "PotentialEntry") -> Path | None: ...

    def ase_calculator(self, entry: "PotentialEntry", device: str = "cpu") -> Any: ...


#: what a family module must have (the members of :class:`Family`), checked when it is loaded
FAMILY_MEMBERS: tuple[str, ...] = tuple(Family.__annotations__) + ("pair_block", "model_file", "ase_calculator")
