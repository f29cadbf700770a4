"""Tiny models made by the tests themselves, with the packages' own constructors (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_mace(path: Path, seed: int = 0, r_max: float = 4.0, heads: list[str] | None = None,
              atomic_numbers: tuple[int, int] = (3, 9)) -> Path:
    """A 2-layer MACE for Li and F with random weights (a few thousand parameters), saved as a .model file."""
    import torch
    from mace import modules  # before e3nn: mace lets e3nn's torch.load of its constants work on torch >= 2.6
    from e3nn import o3

    torch.manual_seed(seed)
    kwargs = dict(
        r_max=r_max, num_bessel=6, num_polynomial_cutoff=5, max_ell=2,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=2, hidden_irreps=o3.Irreps("8x0e + 8x1o"), MLP_irreps=o3.Irreps("8x0e"),
        gate=torch.nn.functional.silu, atomic_energies=np.array([-1.9, -1.1]), avg_num_neighbors=20.0,
        atomic_numbers=list(atomic_numbers), correlation=2, atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    )
    if heads:
        kwargs["heads"] = heads
        kwargs["atomic_energies"] = np.array([[-1.9, -1.1]] * len(heads))
        kwargs["atomic_inter_scale"] = [1.0 + 0.5 * k for k in range(len(heads))]  # heads differ
        kwargs["atomic_inter_shift"] = [0.1 * k for k in range(len(heads))]
    model = modules.ScaleShiftMACE(**kwargs).double()
    torch.save(model, path)
    return Path(path)
