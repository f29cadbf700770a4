"""Jinja templates for LAMMPS decks and job scripts. Logic-light: substitution and optional blocks; numbers come
precomputed. In shell templates every value from outside goes through the ``sh`` filter (POSIX single quoting)."""

from __future__ import annotations

import shlex
from importlib import resources

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(resources.files("templates"))),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)

_ENV.filters["sh"] = lambda value: shlex.quote(str(value))


def render(name: str, **context: object) -> str:
    """Render ``templates/<name>``; a missing variable is an error, never an empty string."""
    return _ENV.get_template(name).render(**context)
