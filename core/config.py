"""Typed configuration from TOML (and JSON): one strict loader for every input file of the project.

A configuration is a frozen dataclass; :func:`from_dict` builds it from a parsed table. The dataclass's own type
annotations are the schema: ``float`` takes finite integers and floats (not booleans, not nan or inf), ``int``
whole numbers, ``bool`` only ``true``/``false``, a ``Literal[...]`` only its values (the error lists them),
``tuple[X, ...]`` a list of X, ``tuple[X, Y]`` a list of exactly two, a ``Name`` a string that passes the rule of
:mod:`core.names`, a nested dataclass a table, ``dict[str, X]`` a table of X, ``X | None`` an X or a missing key.
Unknown keys are refused, a missing key without a default is refused, and every error names the file and the field
(``study.toml: md.timestep_fs: expected a number, got 'one'``). Fields whose metadata has ``from_file=False`` (for
example where the record came from) are not read from the file.

Built-in files: a name such as ``default`` is looked up in a package's folder (``inputs/studies/default.toml``);
anything else is a path.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from core.errors import InputError
from core.names import RULE, name_problem

T = TypeVar("T")


class Name(str):
    """A field type: a string that names a directory, a job or a label (see :mod:`core.names`), checked at load."""


def fail(source: str, where: str, message: str) -> InputError:
    return InputError(f"{source}: {where}: {message}" if where else f"{source}: {message}")


def file_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that a file may set."""
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("from_file", True)]


def choices(cls: type, name: str) -> tuple:
    """The values a ``Literal`` field (or a tuple of them) of ``cls`` accepts."""
    hint = typing.get_type_hints(cls)[name]
    while get_origin(hint) in (tuple, Union, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not Ellipsis and a is not type(None))
    return get_args(hint)


def from_dict(cls: type[T], data: Any, source: str, where: str = "", **extra: Any) -> T:
    """An instance of the dataclass ``cls`` from a table, strictly (see the module docstring). ``extra`` sets
    fields that do not come from the file (``source=...``)."""
    if not isinstance(data, dict):
        raise fail(source, where, f"expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in file_fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        noun = cls.__name__.lower()
        whose = f"{where} takes" if where else f"{'an' if noun[0] in 'aeiou' else 'a'} {noun} has"
        raise fail(source, key, f"unknown key; {whose} {', '.join(known)}")
    kw: dict[str, Any] = dict(extra)
    if not where and "source" not in kw and any(f.name == "source" and not f.metadata.get("from_file", True)
                                                 for f in dataclasses.fields(cls)):
        kw["source"] = source  # where the record came from
    for name, f in known.items():
        key = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise fail(source, key, "missing (required)")
            continue
        kw[name] = convert(hints[name], data[name], source, key)
    try:
        return cls(**kw)
    except TypeError as e:  # a dataclass that needs more than the file gives
        raise fail(source, where, str(e)) from None


def convert(hint: Any, value: Any, source: str, where: str) -> Any:
    """``value`` as the type ``hint`` describes, or an :class:`InputError` naming ``where``."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        errors = []
        for option in options:
            try:
                return convert(option, value, source, where)
            except InputError as e:
                errors.append(str(e).rsplit(": ", 1)[-1])
        raise fail(source, where, " or ".join(dict.fromkeys(errors)))
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise fail(source, where, f"{value!r} is not one of {', '.join(map(str, args))}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(source, where, f"expected a number, got {value!r}")
        if not math.isfinite(value):  # TOML has nan and inf; no physical input is either
            raise fail(source, where, f"must be a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(source, where, f"expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise fail(source, where, f"expected true or false, got {value!r}")
        return value
    if hint is Name:
        problem = name_problem(value)
        if problem:
            raise fail(source, where, f"{value!r} {problem}; {RULE}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise fail(source, where, f"expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise fail(source, where, f"expected a path (a string), got {value!r}")
        return Path(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail(source, where, f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise fail(source, where, f"expected a list of {len(args)}, got {list(value)!r}")
        return tuple(convert(a, v, source, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, typing.Mapping) or hint is dict:
        if not isinstance(value, dict):
            raise fail(source, where, f"expected a table, got {value!r}")
        if not args:
            return dict(value)
        return {convert(args[0], k, source, where): convert(args[1], v, source, f"{where}.{k}")
                for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, source, where)
    raise TypeError(f"core.config cannot read a field of type {hint!r} ({where})")


def to_dict(record: Any) -> dict:
    """A dataclass as plain JSON-able data (tuples as lists, paths as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(record), default=str))


# --- files ---------------------------------------------------------------------------------------------------

def builtin_names(package: str) -> list[str]:
    """Names of the built-in TOML files of a package (``inputs.studies`` ...)."""
    return sorted(p.name[:-5] for p in resources.files(package).iterdir() if p.name.endswith(".toml"))


def builtin_toml(name_or_path: str | Path, package: str, what: str) -> Path:
    """``name_or_path`` as a file: a built-in ``<package>/<name>.toml`` by name, otherwise the path itself."""
    if "\0" in str(name_or_path):
        raise InputError(f"{what} {str(name_or_path)!r}: a file name cannot contain a NUL character")
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        names = builtin_names(package)
        if str(name_or_path) not in names:
            raise InputError(f"unknown {what} {str(name_or_path)!r}; built-in {what}s are {', '.join(names)}, "
                             "or give the path of a .toml file")
        path = Path(str(resources.files(package).joinpath(f"{name_or_path}.toml")))
    return path


def read_toml(path: str | Path, what: str) -> dict:
    """A TOML input file as a dict; one clear error for a missing or malformed file."""
    if "\0" in str(path):
        raise InputError(f"{what} file {str(path)!r}: a file name cannot contain a NUL character")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a text file ({e})") from None


def load(cls: type[T], name_or_path: str | Path, package: str, what: str) -> T:
    """A built-in (by name) or user (by path) TOML file as a ``cls``, strictly."""
    path = builtin_toml(name_or_path, package, what)
    return from_dict(cls, read_toml(path, what), str(path))
