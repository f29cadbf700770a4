"""Trained models as catalog entries: ``<cache>/models/trained/<name>/`` holds the model, its provenance and
training log; ``<cache>/catalog.d/<name>.toml`` makes it a potential every study can name.

A model is registered last, after training, validation and conversion for LAMMPS all succeeded: the model
directory is moved into place with one rename and the catalog file written atomically, so a crash leaves either
nothing registered or everything (an unfinished attempt stays in ``.staging-<name>`` for its log).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from core.errors import InputError
from core.files import atomic_write_text
from potentials.catalog import models_dir, trained_catalog_dir

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def catalog_dir() -> Path:
    return trained_catalog_dir()


def trained_root() -> Path:
    return models_dir() / "trained"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InputError(f"model name {name!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit")
    return name


def model_dir(name: str) -> Path:
    return trained_root() / check_name(name)


def staging_dir(name: str) -> Path:
    d = trained_root() / f".staging-{check_name(name)}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def is_registered(name: str) -> bool:
    return (catalog_dir() / f"{name}.toml").is_file() and model_dir(name).is_dir()


def provenance(name: str) -> dict:
    p = model_dir(name) / "provenance.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string is a JSON string


def register(name: str, staging: Path, family: str, model_file: str, elements: tuple[str, ...],
             description: str, prov: dict, extra: dict | None = None, replace: bool = False) -> Path:
    """Move ``staging`` into place as the model directory of ``name`` and write its catalog entry."""
    final = model_dir(name)
    entry = catalog_dir() / f"{name}.toml"
    if (final.exists() or entry.exists()) and not replace:
        raise InputError(f"a trained model {name!r} is already registered ({final}); choose another name or "
                         "pass --force to replace it")
    atomic_write_text(staging / "provenance.json", json.dumps(prov, indent=1, default=str) + "\n")
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    fields = {"family": family, "description": description,
              "source": f"trained by python -m finetune; provenance in {final / 'provenance.json'}",
              "elements": list(elements), "model": str(final / model_file),
              "provenance": str(final / "provenance.json"), **(extra or {})}
    text = f"# registered by python -m finetune\n[{json.dumps(name)}]\n" + "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in fields.items())
    entry.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(entry, text)
    return final
