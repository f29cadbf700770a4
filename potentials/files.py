"""Where model files live: the project cache and catalog paths."""

from __future__ import annotations

import os
from pathlib import Path

from inputs.errors import ModelMissingError


def cache_dir() -> Path:
    """``$LIF_DIFFUSION_CACHE``, else ``$XDG_CACHE_HOME/lif-diffusion`` (``~/.cache/lif-diffusion``)."""
    root = os.environ.get("LIF_DIFFUSION_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lif-diffusion"


def catalog_model_path(potential: str, value: str) -> Path:
    """A catalog ``model`` value as an existing file: ``~`` and ``$VARS`` expanded, relative paths taken in
    ``<cache>/models/``. Raises :class:`ModelMissingError` (the study then runs its other potentials)."""
    path = Path(os.path.expandvars(os.path.expanduser(str(value))))
    if not path.is_absolute():
        path = cache_dir() / "models" / path
    if not path.is_file():
        raise ModelMissingError(f"potential {potential!r}: model file {path} does not exist")
    return path
