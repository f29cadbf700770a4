"""Model errors on a held-out set: energy (per atom), force-component and stress RMSE and MAE, and a parity plot.

Predictions come from each family's own ASE calculator (mace-torch's ``MACECalculator``, DeePMD-kit's ``DP``),
independent of LAMMPS. Units in the outputs: meV/atom, meV/Å, meV/Å³.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core import plotting
from core.errors import InputError
from core.files import atomic_write_text
from finetune.datasets import labels
from potentials.catalog import PotentialEntry, family_of


def calculator(family: str, model_path: str | Path, head: str | None = None):
    """The family's own ASE calculator (see potentials.base) for a model file, e.g. one not registered yet."""
    entry = PotentialEntry(name=Path(model_path).stem, family=family, description="", source="",
                           elements=(), params={"model": str(Path(model_path).resolve()),
                                                **({"head": head} if head else {})}, catalog="<file>")
    return family_of(entry).ase_calculator(entry)


def predict(calc, frames: list) -> list[tuple[float, np.ndarray, np.ndarray | None]]:
    out = []
    for a in frames:
        b = a.copy()
        b.calc = calc
        e = float(b.get_potential_energy())
        f = np.array(b.get_forces())
        try:
            s = np.array(b.get_stress(voigt=True)) if all(b.pbc) else None
        except Exception:  # a calculator without stress
            s = None
        out.append((e, f, s))
    return out


def _err(ref: np.ndarray, pred: np.ndarray, scale: float) -> dict:
    d = (np.asarray(pred) - np.asarray(ref)) * scale
    return {"rmse": float(np.sqrt(np.mean(d ** 2))), "mae": float(np.mean(np.abs(d))), "n": int(d.size)}


def metrics(frames: list, predictions: list) -> dict:
    """RMSE and MAE of energy per atom (meV/atom), force components (meV/Å), stress components (meV/Å³)."""
    n_at = np.array([len(a) for a in frames], dtype=float)
    lab = [labels(a) for a in frames]
    e_ref = np.array([e for e, _, _ in lab]) / n_at
    e_pred = np.array([e for e, _, _ in predictions]) / n_at
    out = {"n_configurations": len(frames), "n_atoms": int(n_at.sum()),
           "energy_mev_per_atom": _err(e_ref, e_pred, 1e3),
           "forces_mev_per_a": _err(np.concatenate([np.ravel(f) for _, f, _ in lab]),
                                    np.concatenate([np.ravel(f) for _, f, _ in predictions]), 1e3)}
    if all(s is not None for _, _, s in lab) and all(s is not None for _, _, s in predictions):
        out["stress_mev_per_a3"] = _err(np.concatenate([s for _, _, s in lab]),
                                        np.concatenate([s for _, _, s in predictions]), 1e3)
    return out


def parity_plot(frames: list, predictions: list, path: Path, title: str) -> Path:
    plt = plotting.pyplot()
    lab = [labels(a) for a in frames]
    n_at = np.array([len(a) for a in frames], dtype=float)
    panels = [("energy (eV/atom)", np.array([e for e, _, _ in lab]) / n_at,
               np.array([e for e, _, _ in predictions]) / n_at),
              ("force component (eV/Å)", np.concatenate([np.ravel(f) for _, f, _ in lab]),
               np.concatenate([np.ravel(f) for _, f, _ in predictions]))]
    if all(s is not None for _, _, s in lab) and all(s is not None for _, _, s in predictions):
        panels.append(("stress component (eV/Å³)", np.concatenate([s for _, _, s in lab]),
                       np.concatenate([s for _, _, s in predictions])))
    m = metrics(frames, predictions)
    keys = ["energy_mev_per_atom", "forces_mev_per_a", "stress_mev_per_a3"]
    units = ["meV/atom", "meV/Å", "meV/Å³"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, (label, ref, pred), key, unit in zip(axes[0], panels, keys, units):
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
        ax.scatter(ref, pred, s=6, alpha=0.6)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"model {label}")
        ax.set_title(f"RMSE {m[key]['rmse']:.3g} {unit}, MAE {m[key]['mae']:.3g}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return plotting.save(fig, path, dpi=120)


def validate(family: str, model_path: str | Path, frames: list, out_dir: Path, title: str,
             head: str | None = None, stem: str = "validation") -> dict:
    """Errors of a model on ``frames``: ``<stem>.json`` and ``<stem>-parity.png`` in ``out_dir``."""
    if not frames:
        raise InputError("no held-out configurations to validate on (the test split is empty)")
    preds = predict(calculator(family, model_path, head), frames)
    m = metrics(frames, preds)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(m, indent=1) + "\n")
    parity_plot(frames, preds, out_dir / f"{stem}-parity.png", title)
    return m
