"""The one command-line runner: every ``python -m ...`` entry point parses its arguments, then hands its command
to :func:`run`, which sets up logging and turns a :class:`~core.errors.LifDiffusionError` into one line on
stderr and exit status 2 (bad input never ends in a traceback)."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from core.errors import LifDiffusionError

#: the project's packages: their progress messages (INFO) reach a command-line user, other libraries' do not
PACKAGES = ("core", "inputs", "potentials", "templates", "analysis", "driver", "finetune")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno == logging.INFO else f"{record.levelname.lower()}: {msg}"


def setup_logging(quiet: bool = False) -> None:
    """Messages on stderr: the project's progress (unless ``quiet``), everybody's warnings and errors."""
    root = logging.getLogger()
    if not any(getattr(h, "_lif", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Format())
        handler._lif = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in PACKAGES:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)
    logging.getLogger("MDAnalysis").setLevel(logging.ERROR)  # chatty about optional readers and guessers


def run(command: Callable[[], int | None], quiet: bool = False) -> int:
    """Run ``command``; its return value (None: 0) is the exit status, a project error gives 2."""
    setup_logging(quiet)
    try:
        return command() or 0
    except LifDiffusionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
