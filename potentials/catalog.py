"""The potential catalog: a name -> family, parameters and files, read from ``potentials/catalog.toml``.

Other sources extend it, later ones overriding earlier ones of the same name: the built-in file, then one TOML
file per trained model in ``<cache>/catalog.d/`` (written by :mod:`finetune.registry`), then a user catalog named
by the environment variable ``LIF_DIFFUSION_CATALOG`` (same format). Each family is a module (see
:mod:`potentials.base`) registered in :data:`FAMILIES` and imported only when used.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from core.errors import ModelMissingError, PotentialError
from core.files import cache_dir
from potentials.base import Compute, PairBlock

#: family -> module implementing it (see potentials.base). Add a family by adding a line here.
FAMILIES: dict[str, str] = {
    "classical": "potentials.classical",
    "mace": "potentials.mace",
    "deepmd": "potentials.deepmd",
}


#: catalog keys every entry may have (``family`` and ``elements`` required); each family adds its own ``PARAMS``
COMMON_KEYS = frozenset({"family", "description", "source", "elements", "paper_ea_ev", "provenance"})


@dataclass(frozen=True)
class PotentialEntry:
    name: str
    family: str
    description: str
    source: str
    elements: tuple[str, ...]
    params: dict[str, Any]
    catalog: str

    def record(self) -> dict[str, Any]:
        """The entry as the run summary keeps it (provenance)."""
        return {"name": self.name, "family": self.family, "description": self.description, "source": self.source,
                "catalog": self.catalog, "elements": list(self.elements), "params": self.params}


def trained_catalog_dir() -> Path:
    """Where trained models register their catalog entries (one TOML file each)."""
    return cache_dir() / "catalog.d"


def models_dir() -> Path:
    """Where relative ``model`` paths of catalog entries are looked up."""
    return cache_dir() / "models"


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
    entries = _read(Path(str(resources.files("potentials").joinpath("catalog.toml"))))
    for path in sorted(trained_catalog_dir().glob("*.toml")):
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


def family(name: str) -> ModuleType:
    """The module of a family (see :mod:`potentials.base` for what it provides)."""
    if name not in FAMILIES:
        raise PotentialError(f"family {name!r} is not supported by this build; supported families: "
                             f"{', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name])


def family_of(entry: PotentialEntry) -> ModuleType:
    """The family module of an entry, whose keys are checked against what the family takes (a misspelt
    ``sha256`` or ``head`` must not be ignored silently)."""
    if entry.family not in FAMILIES:
        raise PotentialError(f"potential {entry.name!r} has family {entry.family!r}, which this build does not "
                             f"support; supported families: {', '.join(FAMILIES)}")
    module = family(entry.family)
    unknown = sorted(set(entry.params) - COMMON_KEYS - module.PARAMS)
    if unknown:
        raise PotentialError(f"{entry.catalog}: [{entry.name}] has unknown key(s) {', '.join(unknown)}; a "
                             f"{entry.family} entry takes {', '.join(sorted(module.PARAMS | COMMON_KEYS))}")
    return module


def needs_gpu(family_name: str) -> bool:
    """Whether runs of this family go to GPU nodes on a cluster."""
    return bool(family(family_name).NEEDS_GPU)


def catalog_model_path(potential: str, value: str) -> Path:
    """A catalog ``model`` value as an existing file: ``~`` and ``$VARS`` expanded, relative paths taken in
    ``<cache>/models/``. Raises :class:`ModelMissingError` (the study then runs its other potentials)."""
    path = Path(os.path.expandvars(os.path.expanduser(str(value))))
    if not path.is_absolute():
        path = models_dir() / path
    if not path.is_file():
        raise ModelMissingError(f"potential {potential!r}: model file {path} does not exist")
    return path


def resolve(name: str, type_order: tuple[str, ...], compute: Compute | str = "cpu"
            ) -> tuple[PotentialEntry, PairBlock]:
    """The catalog entry and pair block for ``name``, checked against the structure's element order;
    ``compute`` is a :class:`~potentials.base.Compute` or an accelerator name."""
    entry = get_entry(name)
    module = family_of(entry)
    missing = [e for e in type_order if e not in entry.elements]
    if missing:
        raise PotentialError(f"potential {name!r} covers elements {list(entry.elements)}, not {missing} "
                             f"that the structure has (LAMMPS types {list(type_order)})")
    return entry, module.pair_block(entry, type_order, Compute.of(compute))
