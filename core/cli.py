"""The one command-line runner: every ``python -m ...`` entry point parses its arguments, then hands its command
to :func:`run`, which sets up logging and turns a :class:`~core.errors.LifDiffusionError` or an :class:`OSError`
(a full disk, a read-only directory, a file deleted while read) into one line on stderr and exit status 2 (bad
input never ends in a traceback). SIGTERM ends a command as Ctrl-C does (status 143), so that its ``finally``
blocks run: no temporary file is left behind."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from typing import Callable

from core.errors import LifDiffusionError

#: the project's packages: their progress messages (INFO) reach a command-line user, other libraries' do not
PACKAGES = ("core", "inputs", "potentials", "templates", "analysis", "driver", "finetune")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno == logging.INFO else f"{record.levelname.lower()}: {msg}"


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is now, not to the one there when it was made (a command
    run twice in one process, e.g. under a test's captured stderr, must not write to a stream that has gone)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(quiet: bool = False) -> None:
    """Messages on stderr: the project's progress (unless ``quiet``), everybody's warnings and errors."""
    root = logging.getLogger()
    if not any(getattr(h, "_lif", False) for h in root.handlers):
        handler = _Stderr()
        handler.setFormatter(_Format())
        handler._lif = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in PACKAGES:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)
    logging.getLogger("MDAnalysis").setLevel(logging.ERROR)  # chatty about optional readers and guessers


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the command like KeyboardInterrupt, so its clean-up runs."""


def _on_term(signum, frame) -> None:
    raise Terminated()


def os_error_message(e: OSError) -> str:
    """One line for an OSError: the path(s) and the reason (``runs/x: Permission denied``)."""
    reason = e.strerror or str(e)
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(str(p) for p in paths)}: {reason}" if paths else reason


def run(command: Callable[[], int | None], quiet: bool = False) -> int:
    """Run ``command``; its return value (None: 0) is the exit status, a project error or an OSError gives 2,
    SIGTERM or Ctrl-C 143 or 130 (commands that must react to SIGTERM themselves install their own handler)."""
    setup_logging(quiet)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_term)
    except ValueError:  # not the main thread (a test calling main() from a worker thread)
        previous = None
    try:
        return command() or 0
    except LifDiffusionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# --- arguments and output -----------------------------------------------------------------------------------

def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (``--timestep-fs inf`` is refused by argparse, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def finite_number(text: str) -> float:
    """An argparse ``type``: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value
