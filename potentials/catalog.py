"""The potential catalog: a name -> family, parameters and files, read from ``potentials/catalog.toml``.

Other sources extend it, later ones overriding earlier ones of the same name: the built-in file, then one TOML
file per trained model in ``<cache>/catalog.d/`` (written by :mod:`finetune.registry`), then a user catalog named
by the environment variable ``LIF_DIFFUSION_CATALOG`` (same format). Each family is a module (see
:mod:`potentials.base`) registered in :data:`FAMILIES` and imported only when used.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, cast

from core.errors import ModelMissingError, PotentialError
from core.files import cache_dir
from core.names import RULE, name_problem
from potentials.base import FAMILY_MEMBERS, Compute, Family, PairBlock, PotentialEntry

#: family -> module implementing it (see potentials.base). Add a family by adding a line here.
FAMILIES: dict[str, str] = {
    "classical": "potentials.classical",
    "mace": "potentials.mace",
    "deepmd": "potentials.deepmd",
    "lammps": "potentials.lammps_lines",
}


#: catalog keys every entry may have (``family`` required; ``elements`` too where the family's model does not name its
#: own: potentials.base); each family adds its own ``PARAMS``
COMMON_KEYS = frozenset({"family", "description", "source", "elements", "paper_ea_ev", "provenance"})


def trained_catalog_dir() -> Path:
    """Where trained models register their catalog entries (one TOML file each)."""
    return cache_dir() / "catalog.d"


def models_dir() -> Path:
    """Where relative ``model`` paths of catalog entries are looked up."""
    return cache_dir() / "models"


#: chemical element symbols (a catalog's ``elements`` must name real ones)
_SYMBOL = re.compile(r"^[A-Z][a-z]?$")


def _entry(name: str, t: Any, path: Path) -> PotentialEntry:
    """One catalog table as an entry; what is wrong with it goes into ``problem`` (see :class:`PotentialEntry`)."""
    where = f"{path}: [{name}]"
    problem = name_problem(name)
    if problem:
        return PotentialEntry(name, "", "", "", (), {}, str(path), f"{where}: the name {problem}; {RULE}")
    if not isinstance(t, dict) or "family" not in t:
        return PotentialEntry(name, "", "", "", (), {}, str(path),
                              f"{where} needs at least 'family' (a table of keys)")
    family_name, elements = t["family"], t.get("elements", [])
    if not isinstance(family_name, str):
        problem = f"family: expected a string, got {family_name!r}"
    elif "elements" in t and (not isinstance(elements, list) or not elements
                              or not all(isinstance(e, str) and _SYMBOL.match(e) for e in elements)):
        problem = f"elements: expected a list of element symbols (e.g. [\"Li\", \"F\"]), got {elements!r}"
    elif len(set(elements)) != len(elements):
        problem = f"elements: {elements!r} names an element twice"
    else:
        for key in ("description", "source"):
            if not isinstance(t.get(key, ""), str):
                problem = f"{key}: expected a string, got {t[key]!r}"
        if not isinstance(t.get("paper_ea_ev", 0.0), (int, float)) or isinstance(t.get("paper_ea_ev"), bool):
            problem = f"paper_ea_ev: expected a number, got {t['paper_ea_ev']!r}"
    params = {k: v for k, v in t.items() if k not in ("family", "description", "source", "elements")}
    return PotentialEntry(name, family_name if isinstance(family_name, str) else "", str(t.get("description", "")),
                          str(t.get("source", "")), tuple(elements) if isinstance(elements, list) else (), params,
                          str(path), f"{where}: {problem}" if problem else None)


def read_catalog_file(path: Path) -> dict[str, PotentialEntry]:
    """The entries of one catalog file; an unreadable file is a :class:`PotentialError`, a malformed entry an
    entry with a ``problem``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PotentialError(f"cannot read potential catalog {path}: {e}") from None
    return {name: _entry(name, t, path) for name, t in data.items()}


def _read(path: Path) -> dict[str, PotentialEntry]:
    return read_catalog_file(path)


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
    entry = catalog[name]
    if entry.problem:
        raise PotentialError(f"potential {name!r} cannot be used: {entry.problem}")
    return entry


def family(name: str) -> Family:
    """The module of a family, checked to provide what :class:`potentials.base.Family` says."""
    if name not in FAMILIES:
        raise PotentialError(f"family {name!r} is not supported by this build; supported families: "
                             f"{', '.join(FAMILIES)}")
    module = importlib.import_module(FAMILIES[name])
    lacking = [k for k in FAMILY_MEMBERS if not hasattr(module, k)]
    if lacking:
        raise PotentialError(f"family {name!r} ({FAMILIES[name]}) lacks {', '.join(lacking)} (potentials.base.Family)")
    return cast(Family, module)


def family_of(entry: PotentialEntry) -> Family:
    """The family module of an entry, whose keys are checked against what the family takes (a misspelt
    ``sha256`` or ``head`` must not be ignored silently)."""
    if entry.family not in FAMILIES:
        raise PotentialError(f"potential {entry.name!r} has family {entry.family!r}, which this build does not "
                             f"support; supported families: {', '.join(FAMILIES)}")
    if entry.problem:
        raise PotentialError(f"potential {entry.name!r} cannot be used: {entry.problem}")
    module = family(entry.family)
    if not entry.elements and not module.ELEMENTS_FROM_MODEL:
        raise PotentialError(f"{entry.catalog}: [{entry.name}] needs 'elements' (the elements its parameters are "
                             f"for, e.g. [\"Li\", \"F\"]): a {entry.family} entry has no model file to name them")
    unknown = sorted(set(entry.params) - COMMON_KEYS - set(module.PARAMS))
    if unknown:
        raise PotentialError(f"{entry.catalog}: [{entry.name}] has unknown key(s) {', '.join(unknown)}; a "
                             f"{entry.family} entry takes {', '.join(sorted(set(module.PARAMS) | COMMON_KEYS))}")
    entry.typed(module.PARAMS)  # each value of the type the family reads
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
    """The catalog entry and pair block for ``name``, checked against the structure's element order (the
    catalog's ``elements`` where given; a model's own elements when its family makes the block);
    ``compute`` is a :class:`~potentials.base.Compute` or an accelerator name."""
    entry = get_entry(name)
    module = family_of(entry)
    missing = [e for e in type_order if e not in entry.elements]
    if entry.elements and missing:
        raise PotentialError(f"potential {name!r} covers elements {list(entry.elements)}, not {missing} "
                             f"that the structure has (LAMMPS types {list(type_order)})")
    return entry, module.pair_block(entry, type_order, Compute.of(compute))
