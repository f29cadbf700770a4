"""Classical rigid-ion LiF: Born-Mayer-Huggins + Coulomb (``pair_style born/coul/long`` with Ewald or PPPM).

``pair_modify table 0`` switches off LAMMPS's tabulated real-space Coulomb: with the default table the energy
and the forces disagree by ~2% in a finite-difference check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PotentialError
from core.rundir import Requirements
from potentials.base import BuildNeeds, Compute, PairBlock

if TYPE_CHECKING:
    from potentials.catalog import PotentialEntry

KSPACE_STYLES = ("ewald", "pppm")
NEEDS_GPU = False
CHEAP_ON_CPU = True
HIDE_GPUS_ON_CPU = False
FOUNDATION_MODELS = False
ELEMENTS_FROM_MODEL = False
BUILD_NEEDS = BuildNeeds(packages=("KSPACE",), styles=(("pair", "born/coul/long"),),
                         hint="the classical rigid-ion model needs LAMMPS's KSPACE package")
#: the catalog keys of a classical entry and their types (checked when the entry is used: potentials.catalog)
PARAMS: dict[str, object] = {"cutoff_angstrom": float, "kspace_style": str, "kspace_accuracy": float,
                             "pairs": dict[str, tuple[float, ...]], "charges": dict[str, float]}


def model_file(entry: "PotentialEntry") -> Path | None:
    return None  # parameters live in the catalog


def ase_calculator(entry: "PotentialEntry", device: str = "cpu"):
    raise PotentialError(f"potential {entry.name!r} is a classical catalog model: it has no ASE calculator here "
                         "(validation and parity checks take mace or deepmd models)")


def pair_block(entry: "PotentialEntry", type_order: tuple[str, ...], compute: Compute = Compute()) -> PairBlock:
    """Rigid-ion pairs with Ewald/PPPM electrostatics; runs on the CPU whatever the study's accelerator."""
    p = entry.params
    try:
        cutoff = float(p["cutoff_angstrom"])
        kspace, accuracy = str(p["kspace_style"]), float(p["kspace_accuracy"])
        pairs, charges = dict(p["pairs"]), {k: float(v) for k, v in dict(p["charges"]).items()}
    except KeyError as e:
        raise PotentialError(f"potential {entry.name!r}: catalog entry lacks {e.args[0]!r}") from None
    if kspace not in KSPACE_STYLES:
        raise PotentialError(f"potential {entry.name!r}: kspace_style {kspace!r} is not one of {KSPACE_STYLES}")
    lines = [f"pair_style born/coul/long {cutoff}"]
    for i, a in enumerate(type_order, start=1):
        for j, b in enumerate(type_order[i - 1 :], start=i):
            coeffs = pairs.get(f"{a}-{b}", pairs.get(f"{b}-{a}"))
            if coeffs is None or len(coeffs) != 5:
                raise PotentialError(f"potential {entry.name!r}: pair {a}-{b} needs [A, rho, sigma, C, D]")
            lines.append(f"pair_coeff {i} {j} " + " ".join(f"{float(c):g}" for c in coeffs) + f"  # {a}-{b}")
    lines += ["pair_modify table 0", f"kspace_style {kspace} {accuracy:g}"]
    return PairBlock(
        lines=tuple(lines),
        elements=tuple(entry.elements),
        cutoff_angstrom=cutoff,
        charges=charges,
        requirements=Requirements(packages=("KSPACE",), styles=(("pair", "born/coul/long"), ("kspace", kspace))),
    )
