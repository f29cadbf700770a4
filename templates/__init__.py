"""Jinja templates: LAMMPS decks, job scripts and the HTML report. Logic-light: substitution and optional blocks;
numbers come precomputed. In shell templates every value from outside goes through the ``sh`` filter (POSIX single
quoting); HTML templates (``*.html.j2``) are autoescaped.

Decks and scripts are line-oriented: a newline smuggled into a value would start a new command (a ``shell`` line in
a deck, a command above the ``#SBATCH`` lines of a job script). So every value substituted into them passes
:func:`one_line` (Jinja's ``finalize``, applied to every ``{{ ... }}``): a value with a control character stops
the render with an error. Names are refused earlier, at load (:mod:`core.names`); this guard covers any field."""

from __future__ import annotations

import shlex
from importlib import resources

import jinja2

from core.errors import InputError
from core.names import control_characters


def one_line(value: object) -> object:
    """``value`` unchanged if its text has no control character (newline, carriage return, NUL, escape ...; a
    tab is allowed), else an :class:`InputError`: a value must never break a line of a deck or a script."""
    text = value if isinstance(value, str) else str(value)
    bad = [c for c in control_characters(text) if c != "\\t"]
    if bad:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise InputError(f"refusing to render {shown!r} into a deck or script: it contains control character(s) "
                         f"{', '.join(bad)}, which would break its line")
    return value


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(resources.files("templates"))),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
    finalize=one_line,
)

_ENV.filters["sh"] = lambda value: shlex.quote(str(one_line(value)))

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
