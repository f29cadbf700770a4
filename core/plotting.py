"""The one matplotlib set-up: a headless backend, imported only when a figure is made, and figures saved
atomically (a reader never sees half a PNG)."""

from __future__ import annotations

from pathlib import Path

from core.files import atomic_copy


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it."""
    plt = pyplot()
    try:
        return atomic_copy(lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), path)
    finally:
        plt.close(fig)
