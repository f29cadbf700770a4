"""Jinja templates: LAMMPS decks, job scripts and the HTML report. Logic-light: substitution and optional blocks;
numbers come precomputed. In shell templates every value from outside goes through the ``sh`` filter (POSIX single
quoting); HTML templates (``*.html.j2``) are autoescaped."""

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

_HTML = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(resources.files("templates"))),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=True,
)


def render(name: str, **context: object) -> str:
    """Render ``templates/<name>``; a missing variable is an error, never an empty string. HTML templates
    (``*.html.j2``) escape every substituted value."""
    env = _HTML if name.endswith(".html.j2") else _ENV
    return env.get_template(name).render(**context)
