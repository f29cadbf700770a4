"""The potential catalog: a name -> family, parameters and files, read from ``potentials/catalog.toml``.

Models trained by ``python -m potentials.finetune`` register themselves as one TOML file each in
``<cache>/catalog.d/`` (see :mod:`potentials.registry`). A user catalog can be added with the environment variable
``LIF_DIFFUSION_CATALOG`` (a TOML file in the same format). Later sources override earlier ones of the same name:
built-in, then trained, then the user's. Each family is an adapter module with a
``pair_block(entry, type_order)`` function, registered in :data:`FAMILIES` and imported only when used.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from inputs.errors import PotentialError
from potentials.base import PairBlock

#: family -> module implementing ``pair_block``. Add a family by adding a line here.
FAMILIES: dict[str, str] = {
    "classical": "potentials.classical",
    "mace": "potentials.mace",
    "deepmd": "potentials.deepmd",
}


@dataclass(frozen=True)
class PotentialEntry:
    name: str
    family: str
    description: str
    source: str
    elements: tuple[str, ...]
    params: dict[str, Any]
    catalog: str


def _read(path: Path) -> dict[str, PotentialEntry]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PotentialError(f"cannot read potential catalog {path}: {e}") from None
    out = {}
    for name, t in data.items():
        if not isinstance(t, dict) or "family" not in t or "elements" not in t:
            raise PotentialError(f"{path}: entry [{name}] needs at least 'family' and 'elements'")
        params = {k: v for k, v in t.items() if k not in ("family", "description", "source", "elements")}
        out[name] = PotentialEntry(name, t["family"], t.get("description", ""), t.get("source", ""),
                                   tuple(t["elements"]), params, str(path))
    return out


def load_catalog() -> dict[str, PotentialEntry]:
    from potentials.registry import catalog_dir

    entries = _read(Path(str(resources.files("potentials").joinpath("catalog.toml"))))
    for path in sorted(catalog_dir().glob("*.toml")):
        entries.update(_read(path))
    extra = os.environ.get("LIF_DIFFUSION_CATALOG")
    if extra:
        entries.update(_read(Path(extra)))
    return entries


def get_entry(name: str) -> PotentialEntry:
    catalog = load_catalog()
    if name not in catalog:
        raise PotentialError(f"unknown potential {name!r}; the catalog has {', '.join(sorted(catalog))}")
    return catalog[name]


def resolve(name: str, type_order: tuple[str, ...], accelerator: str = "cpu") -> tuple[PotentialEntry, PairBlock]:
    """The catalog entry and pair block for ``name``, checked against the structure's element order."""
    entry = get_entry(name)
    if entry.family not in FAMILIES:
        raise PotentialError(f"potential {name!r} has family {entry.family!r}, which this build does not support; "
                             f"supported families: {', '.join(FAMILIES)}")
    missing = [e for e in type_order if e not in entry.elements]
    if missing:
        raise PotentialError(f"potential {name!r} covers elements {list(entry.elements)}, not {missing} "
                             f"that the structure has (LAMMPS types {list(type_order)})")
    block = importlib.import_module(FAMILIES[entry.family]).pair_block(entry, type_order, accelerator)
    return entry, block
