"""Files: atomic writes (a reader sees the old file or the whole new one, never a part), checksums, and the
project's cache directory. Every file that must not be seen half-written goes through :func:`atomic_write_bytes`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so a reader sees either the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it (mkstemp makes 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(write, path: str | Path) -> Path:
    """Let ``write(tmp_path)`` produce a file (a library that writes by path: torch.save, savefig, numpy), then
    move it into place at ``path`` atomically. The temporary file keeps ``path``'s suffix (some writers need it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """``$LIF_DIFFUSION_CACHE``, else ``$XDG_CACHE_HOME/lif-diffusion`` (``~/.cache/lif-diffusion``): models,
    converted models, the trained-model catalog and the LAMMPS build live there, outside the work tree."""
    root = os.environ.get("LIF_DIFFUSION_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lif-diffusion"


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float (nan, inf) as None: JSON has no NaN, and a bare ``NaN`` makes a
    file no strict reader accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return jsonable(value.item())  # numpy scalars
    return value


def json_dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (``allow_nan=False``) of ``value``, non-finite numbers written as null."""
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)
