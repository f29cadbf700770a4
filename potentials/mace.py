"""The MACE family: a ``.model`` file → a model LAMMPS runs through ``pair_style mliap unified``.

Where the model comes from (catalog parameters):

- ``model = "path/to/file.model"``: a local file (``~`` and ``$VARS`` expanded; a relative path is taken in
  ``<cache>/models/``, the cache being ``$LIF_DIFFUSION_CACHE`` or ``~/.cache/lif-diffusion``);
- ``foundation = "mace-mpa-0"`` with ``url`` (and optionally ``sha256``): downloaded once into the cache and
  checked; without network, the error says where to put the file by hand.

The model is converted once per (checksum, head, accelerator, precision, kernels) and cached under
``<cache>/mliap/``; the study chooses (``[mace]`` precision and cuequivariance, ``--accelerator``):

- ``cpu`` and ``cuda``: :class:`potentials.mace_mliap.MACEMliapSerial`, which runs on LAMMPS's plain ML-IAP
  coupling (serial, no KOKKOS, no CuPy) in the project's own LAMMPS; the deck registers the LAMMPS handle it needs
  (``python lif_attach ... SELF``). The model moves to its device when LAMMPS first calls it: ``cpu``, or for
  ``cuda`` the first CUDA device of the task's environment (``CUDA_VISIBLE_DEVICES``); ``LIF_DIFFUSION_DEVICE``
  (``cpu``, ``cuda``, ``cuda:1``, ``auto``) overrides it at run time. It prints the device it chose, which the
  driver records in ``summary.json``.
- ``kokkos``: mace-torch's own ``LAMMPS_MLIAP_MACE`` for a KOKKOS-CUDA LAMMPS, run with
  ``-k on g 1 -sf kk -pk kokkos newton on neigh half``; LAMMPS hands it CuPy arrays.
- ``precision = "float32"`` converts the weights to single precision (forces go back to LAMMPS in double);
  ``cuequivariance = true`` converts the model to NVIDIA cuEquivariance kernels (on the GPU when one is present,
  which fuses the convolution), or stops with a message naming the missing package. Both are in the cache key
  and in each run's ``summary.json`` (``settings``).
- ``MACE_*`` environment variables (``MACE_TIME``, ``MACE_PROFILE``, ``MACE_FORCE_CPU``, ``MACE_ALLOW_CPU``) are
  read by mace-torch's adapter when the model is **converted**, not when LAMMPS runs: the values in the
  environment of the ``render``/``run`` command are frozen into the cached file. Set them there (and remove the
  cached file to change them); setting them in a job script changes nothing.

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
from potentials.base import BuildNeeds, Compute, PairBlock
from potentials.catalog import PotentialEntry, catalog_model_path, models_dir

NEEDS_GPU = True
CHEAP_ON_CPU = False
HIDE_GPUS_ON_CPU = False  # the device is chosen by the deck (potentials.mace_mliap), not by what is visible
FOUNDATION_MODELS = True
ELEMENTS_FROM_MODEL = True  # the model's atomic_numbers
BUILD_NEEDS = BuildNeeds(packages=("ML-IAP", "PYTHON"), kokkos_styles=(("pair", "mliap/kk"),), embedded_python=True,
                         hint="MACE runs through ML-IAP's Python coupling (on kokkos: ML-IAP built with KOKKOS)")
PARAMS: dict[str, object] = {"model": str, "url": str, "sha256": str, "foundation": str, "head": str}
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


def load_model(path: Path, precision: str = "float64"):
    """A MACE model from a ``.model`` file, on the CPU in ``precision``; clear errors for files that are not one."""
    import torch

    try:
        model = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # pickle, zip and torch errors alike
        raise PotentialError(f"{path} is not a readable MACE model ({type(e).__name__}: {e})") from None
    if not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
        raise PotentialError(f"{path} holds a {type(model).__name__}, not a MACE model")
    return (model.float() if precision == "float32" else model.double()).to("cpu")


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


def cache_tag(digest: str, head: str | None, compute: Compute) -> str:
    """The converted file's key. The plain CPU conversion keeps the key of the first release, so the decks of
    studies rendered then stay the same decks."""
    if compute == Compute():
        doc = f"{digest}|{head}|cpu|v1"
    else:
        doc = f"{digest}|{head}|{compute.accelerator}|{compute.precision}|cueq={compute.cuequivariance}|v2"
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def convert(path: Path, head: str | None, compute: Compute | str, type_order: tuple[str, ...]) -> tuple[Path, float]:
    """The ML-IAP file for ``path`` (converted once, cached by checksum) and the model's cutoff in Å."""
    compute = Compute.of(compute)
    if compute.cuequivariance:
        require_cuequivariance()
    digest = sha256_file(path)
    model = load_model(path, compute.precision)
    elements = model_elements(model)
    missing = [e for e in type_order if e not in elements]
    if missing:
        raise PotentialError(f"MACE model {path} covers elements {list(elements)}, not {missing}")
    head = choose_head(model, head, path)
    out = cache_dir() / "mliap" / f"{path.stem}-{cache_tag(digest, head, compute)}-mliap_lammps.pt"
    if not out.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript notices about mace-torch's own classes
            _write_converted(model, head, compute, out)
    return out, float(model.r_max)


def require_cuequivariance() -> None:
    try:
        import cuequivariance_torch  # noqa: F401
    except ImportError as e:
        raise PotentialError(
            f"[mace] cuequivariance = true, but cuEquivariance cannot be imported here ({e}); install it with "
            "`.venv/bin/pip install cuequivariance-torch cuequivariance-ops-torch-cu12` (cu13 on CUDA 13), or set "
            "cuequivariance = false") from None


def _write_converted(model, head: str | None, compute: Compute, out: Path) -> None:
    import torch

    kwargs = {"head": head} if head is not None else {}
    if compute.cuequivariance:
        from mace.cli.convert_e3nn_cueq import run as to_cueq

        device = "cuda" if torch.cuda.is_available() else "cpu"  # on a GPU the convolution is fused
        dtype = torch.get_default_dtype()
        try:
            model = to_cueq(model, device=device).to("cpu")  # saved on the CPU: moved to its device at run time
        finally:
            torch.set_default_dtype(dtype)  # the converter sets the model's dtype as the process default
    model.lammps_mliap = True
    if compute.accelerator in ("cpu", "cuda"):
        from potentials.mace_mliap import MACEMliapSerial

        wrapped = MACEMliapSerial(model, device=compute.accelerator, kernels=compute.kernels, **kwargs)
    else:
        from mace.calculators.lammps_mliap_mace import LAMMPS_MLIAP_MACE

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


def pair_block(entry: PotentialEntry, type_order: tuple[str, ...], compute: Compute = Compute()) -> PairBlock:
    path = model_file(entry)
    converted, r_max = convert(path, entry.params.get("head"), compute, type_order)
    kokkos = compute.accelerator == "kokkos"
    lines = []
    if not kokkos:
        attach = '"from potentials.mace_mliap import attach as lif_attach"'
        lines += [f"python lif_attach input 1 SELF format p here {attach}", "python lif_attach invoke"]
    lines += [f"pair_style mliap unified {converted} 0", f"pair_coeff * * {' '.join(type_order)}"]
    return PairBlock(
        lines=tuple(lines),
        elements=tuple(type_order),
        cutoff_angstrom=r_max,
        requirements=Requirements(
            packages=("ML-IAP", "PYTHON") + (("KOKKOS",) if kokkos else ()),
            styles=(("pair", "mliap"),) + ((("pair", "mliap/kk"),) if kokkos else ()),
            args=KOKKOS_GPU_ARGS if kokkos else (), kokkos_gpu=kokkos),
        files=(str(path), str(converted)),
        settings={"accelerator": compute.accelerator, "precision": compute.precision,
                  "kernels": compute.kernels,
                  "converted": converted.name},
    )
