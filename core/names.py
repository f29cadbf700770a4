"""Names that reach a path, a deck, a script or a report (a study, a potential, a site, a label): one rule, checked
where the name is loaded.

A name is 1 to :data:`NAME_MAX` printable characters: no control characters (newline, carriage return, tab, NUL,
escape ...), no ``/`` or ``\\``, not starting with ``.`` or ``-``, no leading or trailing space. Shell and LAMMPS
metacharacters (quotes, ``$``, ``;``, backticks) are allowed: the scripts quote every name and the decks carry
names in comments only. The templates refuse any value with a control character as well (``templates``), so a
field added later cannot break a line of a deck or a script either.
"""

from __future__ import annotations

import unicodedata

from core.errors import InputError

#: the longest name: it becomes a directory name (255 bytes at most on common file systems) inside longer paths
NAME_MAX = 64
RULE = (f"a name is 1-{NAME_MAX} printable characters: no control characters (newline, tab, NUL ...), "
        "no '/' or '\\', not starting with '.' or '-', no leading or trailing space")


def control_characters(text: str) -> list[str]:
    """The control (and other non-printing line- or paragraph-separating) characters in ``text``, as escapes."""
    return sorted({repr(c)[1:-1] for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")})


def name_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a name, or None."""
    if not isinstance(value, str):
        return f"expected a string, got {value!r}"
    if not value:
        return "is empty"
    if len(value) > NAME_MAX:
        return f"is {len(value)} characters long"
    bad = control_characters(value) + [c for c in value if unicodedata.category(c) in ("Cf", "Cs", "Co", "Cn")]
    if bad:
        return f"contains control character(s) {', '.join(dict.fromkeys(bad))}"
    if "/" in value or "\\" in value:
        return "contains '/' or '\\'"
    if value[0] in ".-":
        return f"starts with {value[0]!r}"
    if value != value.strip():
        return "has leading or trailing space"
    return None


def check_name(value: object, where: str) -> str:
    """``value`` if it is a valid name, else an :class:`InputError` naming ``where`` and the rule."""
    problem = name_problem(value)
    if problem:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:77] + "...")
        raise InputError(f"{where}: {shown} {problem}; {RULE}")
    return value  # type: ignore[return-value]
