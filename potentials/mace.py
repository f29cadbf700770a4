"""The MACE family: a ``.model`` file → a model LAMMPS runs through ``pair_style mliap unified``.

Where the model comes from (catalog parameters):

- ``model = "path/to/file.model"``: a local file (``~`` and ``$VARS`` expanded; a relative path is taken in
  ``<cache>/models/``, the cache being ``$LIF_DIFFUSION_CACHE`` or ``~/.cache/lif-diffusion``);
- ``foundation = "mace-mpa-0"`` with ``url`` (and optionally ``sha256``): downloaded once into the cache and
  checked; without network, the error says where to put the file by hand.

The model is converted once per (checksum, head, accelerator) and cached under ``<cache>/mliap/``:

- ``cpu``: :class:`potentials.mace_mliap.MACEMliapCPU`, which runs on LAMMPS's plain ML-IAP coupling (serial);
  the deck registers the LAMMPS handle it needs (``python lif_attach ... SELF``);
- ``gpu``: mace-torch's own ``LAMMPS_MLIAP_MACE`` (with cuEquivariance kernels when installed) for a KOKKOS build,
  run with ``-k on g 1 -sf kk -pk kokkos newton on neigh half``.

Multi-head models need ``head``; the elements of the model must cover the structure's (checked, never assumed).
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
import warnings
from pathlib import Path

from core.errors import ModelMissingError, PotentialError
from core.files import atomic_copy, cache_dir, sha256_file
from core.rundir import Requirements
from potentials.base import PairBlock
from potentials.catalog import PotentialEntry, catalog_model_path, models_dir

ACCELERATORS = ("cpu", "gpu")
NEEDS_GPU = True
KOKKOS_GPU_ARGS = ("-k", "on", "g", "1", "-sf", "kk", "-pk", "kokkos", "newton", "on", "neigh", "half")


def model_file(entry: PotentialEntry) -> Path:
    """The ``.model`` file of an entry: a local path, or a foundation model fetched into the cache."""
    p = entry.params
    if "model" in p:
        return catalog_model_path(entry.name, p["model"])
    if "url" not in p:
        raise PotentialError(f"potential {entry.name!r}: catalog entry needs 'model' (a path) or 'url'")
    url, want = str(p["url"]), p.get("sha256")
    path = models_dir() / url.rsplit("/", 1)[-1]
    if not path.is_file():
        _download(entry.name, url, path)
    if want and sha256_file(path) != want:
        raise PotentialError(f"potential {entry.name!r}: {path} has sha256 {sha256_file(path)}, expected {want}; "
                             "delete it to download again")
    return path


def _download(name: str, url: str, path: Path) -> None:
    def fetch(tmp: str) -> None:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as out:
            shutil.copyfileobj(r, out)

    try:
        atomic_copy(fetch, path)
    except OSError as e:
        raise ModelMissingError(f"potential {name!r}: cannot download {url} ({e}); without network, download it "
                                f"elsewhere and put it at {path}") from None


def load_model(path: Path):
    """A MACE model from a ``.model`` file, in float64 on the CPU; clear errors for files that are not one."""
    import torch

    try:
        model = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # pickle, zip and torch errors alike
        raise PotentialError(f"{path} is not a readable MACE model ({type(e).__name__}: {e})") from None
    if not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
        raise PotentialError(f"{path} holds a {type(model).__name__}, not a MACE model")
    return model.double().to("cpu")


def model_elements(model) -> tuple[str, ...]:
    from ase.data import chemical_symbols

    return tuple(chemical_symbols[int(z)] for z in model.atomic_numbers)


def choose_head(model, head: str | None, path: Path) -> str | None:
    heads = list(getattr(model, "heads", None) or [])
    if len(heads) <= 1:
        if head not in (None, *heads):
            raise PotentialError(f"{path} has no head {head!r}; heads: {heads or ['(single head)']}")
        return heads[0] if heads else None
    if head is None:
        raise PotentialError(f"{path} is a multi-head model {heads}; choose one with head = \"...\" in the catalog")
    if head not in heads:
        raise PotentialError(f"{path} has no head {head!r}; heads: {heads}")
    return head


def convert(path: Path, head: str | None, accelerator: str, type_order: tuple[str, ...]) -> tuple[Path, float]:
    """The ML-IAP file for ``path`` (converted once, cached by checksum) and the model's cutoff in Å."""
    if accelerator not in ACCELERATORS:
        raise PotentialError(f"accelerator {accelerator!r} is not one of {ACCELERATORS}")
    digest = sha256_file(path)
    model = load_model(path)
    elements = model_elements(model)
    missing = [e for e in type_order if e not in elements]
    if missing:
        raise PotentialError(f"MACE model {path} covers elements {list(elements)}, not {missing}")
    head = choose_head(model, head, path)
    tag = hashlib.sha256(f"{digest}|{head}|{accelerator}|v1".encode()).hexdigest()[:20]
    out = cache_dir() / "mliap" / f"{path.stem}-{tag}-mliap_lammps.pt"
    if not out.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript notices about mace-torch's own classes
            _write_converted(model, head, accelerator, out)
    return out, float(model.r_max)


def _write_converted(model, head: str | None, accelerator: str, out: Path) -> None:
    import torch

    kwargs = {"head": head} if head is not None else {}
    model.lammps_mliap = True
    if accelerator == "cpu":
        from potentials.mace_mliap import MACEMliapCPU

        wrapped = MACEMliapCPU(model, **kwargs)
    else:
        import copy

        from mace.calculators.lammps_mliap_mace import LAMMPS_MLIAP_MACE

        try:
            from mace.cli.convert_e3nn_cueq import run as to_cueq

            model = to_cueq(copy.deepcopy(model))
        except Exception:  # cuEquivariance absent: the plain e3nn path runs on GPU too, more slowly
            pass
        wrapped = LAMMPS_MLIAP_MACE(model, **kwargs)
    atomic_copy(lambda tmp: torch.save(wrapped, tmp), out)


def ase_calculator(entry: PotentialEntry, device: str = "cpu"):
    """mace-torch's own ASE calculator for the entry's model (float64), independent of LAMMPS."""
    from mace.calculators import MACECalculator

    head = entry.params.get("head")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.load / weights_only notices from mace-torch's loader
        return MACECalculator(model_paths=str(model_file(entry)), device=device, default_dtype="float64",
                              **({"head": head} if head else {}))


def pair_block(entry: PotentialEntry, type_order: tuple[str, ...], accelerator: str = "cpu") -> PairBlock:
    path = model_file(entry)
    converted, r_max = convert(path, entry.params.get("head"), accelerator, type_order)
    lines = []
    if accelerator == "cpu":
        lines += ['python lif_attach input 1 SELF format p here "from potentials.mace_mliap import attach as lif_attach"',
                  "python lif_attach invoke"]
    lines += [f"pair_style mliap unified {converted} 0", f"pair_coeff * * {' '.join(type_order)}"]
    return PairBlock(
        lines=tuple(lines),
        elements=tuple(type_order),
        cutoff_angstrom=r_max,
        requirements=Requirements(
            packages=("ML-IAP", "PYTHON") + (("KOKKOS",) if accelerator == "gpu" else ()),
            styles=(("pair", "mliap"),) + ((("pair", "mliap/kk"),) if accelerator == "gpu" else ()),
            args=KOKKOS_GPU_ARGS if accelerator == "gpu" else ()),
        files=(str(path), str(converted)),
    )
