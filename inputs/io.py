"""Small file helpers shared by every stage: atomic writes, checksums, TOML inputs (built-in by name or a path)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import tomllib
from importlib import resources
from pathlib import Path

from inputs.errors import InputError


def atomic_write_bytes(path: Path, data: bytes) -> Path:
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


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def builtin_names(package: str) -> list[str]:
    """Names of the built-in TOML files of a package (``inputs.studies`` ...)."""
    return sorted(p.name[:-5] for p in resources.files(package).iterdir() if p.name.endswith(".toml"))


def builtin_toml(name_or_path: str | Path, package: str, what: str) -> Path:
    """``name_or_path`` as a file: a built-in ``<package>/<name>.toml`` by name, otherwise the path itself."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        names = builtin_names(package)
        if str(name_or_path) not in names:
            raise InputError(f"unknown {what} {str(name_or_path)!r}; built-in {what}s are {', '.join(names)}, "
                             "or give the path of a .toml file")
        path = Path(str(resources.files(package).joinpath(f"{name_or_path}.toml")))
    return path


def read_toml(path: Path, what: str) -> dict:
    """A TOML input file as a dict; one clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
