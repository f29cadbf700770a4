"""The DeePMD family: a frozen DeePMD-kit model (``.pth`` PyTorch, or ``.pb`` TensorFlow where that backend
exists) run by ``pair_style deepmd`` from the DeePMD-kit LAMMPS plugin.

The plugin is found through ``LAMMPS_PLUGIN_PATH`` (LAMMPS loads every plugin there at start-up); the LAMMPS that
``make lammps`` builds carries one built against its own source and this environment's torch, and the driver
points ``LAMMPS_PLUGIN_PATH`` at it. On a cluster, load your site's DeePMD-kit module instead.

Catalog parameters: ``model`` (a path; a relative one is taken in ``<cache>/models/``). The model's type map
must contain the structure's elements; ``pair_coeff * * Li F`` maps LAMMPS types to it by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import PotentialError
from core.rundir import Requirements
from potentials.base import BuildNeeds, Compute, PairBlock
from potentials.catalog import PotentialEntry, catalog_model_path

SUFFIXES = (".pth", ".pb")
NEEDS_GPU = True
CHEAP_ON_CPU = False
HIDE_GPUS_ON_CPU = True  # DeePMD-kit takes a GPU whenever its torch sees one
FOUNDATION_MODELS = False
ELEMENTS_FROM_MODEL = True  # the model's type map
BUILD_NEEDS = BuildNeeds(styles=(("pair", "deepmd"),),
                         hint="build DeePMD-kit's LAMMPS plugin and put its directory on LAMMPS_PLUGIN_PATH (site "
                              "file: plugin_path), or use a LAMMPS with DeePMD built in")
PARAMS: dict[str, object] = {"model": str}


def model_file(entry: PotentialEntry) -> Path:
    if "model" not in entry.params:
        raise PotentialError(f"potential {entry.name!r}: catalog entry needs 'model' (a frozen .pth or .pb file)")
    path = catalog_model_path(entry.name, entry.params["model"])
    if path.suffix not in SUFFIXES:
        raise PotentialError(f"potential {entry.name!r}: {path} is not a frozen DeePMD model ({', '.join(SUFFIXES)})")
    return path


def inspect_model(path: Path) -> tuple[tuple[str, ...], float]:
    """(type map, cutoff in Å) of a frozen model, read by DeePMD-kit itself."""
    # deepmd-kit imports e3nn when installed (mace-torch pins 0.4.4), whose torch.load of its own constants
    # torch >= 2.6 refuses by default; mace-torch sets this same variable on import
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    try:
        from deepmd.infer import DeepPot

        dp = DeepPot(str(path))
        return tuple(dp.get_type_map()), float(dp.get_rcut())
    except ImportError as e:
        raise PotentialError(f"DeePMD-kit is not installed ({e}); run `make install`") from None
    except Exception as e:  # torch.jit / protobuf / deepmd errors for files that are not a model
        raise PotentialError(f"{path} is not a readable DeePMD model ({type(e).__name__}: {e})") from None


def ase_calculator(entry: PotentialEntry, device: str = "cpu"):
    """DeePMD-kit's own ASE calculator for the entry's model, independent of LAMMPS (its device follows
    CUDA_VISIBLE_DEVICES, as DeePMD-kit decides)."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # see inspect_model
    os.environ.setdefault("DP_INFER_BATCH_SIZE", "1024")  # its default; set, DeePMD-kit stops warning
    from deepmd.calculator import DP

    return DP(str(model_file(entry)))


def pair_block(entry: PotentialEntry, type_order: tuple[str, ...], compute: Compute = Compute()) -> PairBlock:
    """``pair_style deepmd`` (plugin or built in). On ``cuda``/``kokkos`` the plugin runs on the GPU when it was
    built against a CUDA torch (DeePMD-kit picks the device from ``CUDA_VISIBLE_DEVICES``); the model's own
    precision applies."""
    path = model_file(entry)
    type_map, rcut = inspect_model(path)
    missing = [e for e in type_order if e not in type_map]
    if missing:
        raise PotentialError(f"DeePMD model {path} has type map {list(type_map)}, without {missing}")
    return PairBlock(
        lines=(f"pair_style deepmd {path}", f"pair_coeff * * {' '.join(type_order)}"),
        elements=tuple(type_order),
        cutoff_angstrom=rcut,
        requirements=Requirements(packages=("PLUGIN",), styles=(("pair", "deepmd"),)),
        files=(str(path),),
        settings={"accelerator": compute.accelerator},
    )
