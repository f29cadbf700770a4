"""Tiny models made by the tests themselves, with the packages' own constructors (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_mace(path: Path, seed: int = 0, r_max: float = 4.0, heads: list[str] | None = None,
              atomic_numbers: tuple[int, int] = (3, 9)) -> Path:
    """A 2-layer MACE for Li and F with random weights (a few thousand parameters), saved as a .model file."""
    import torch
    from mace import modules  # before e3nn: mace lets e3nn's torch.load of its constants work on torch >= 2.6

    from e3nn import o3  # noqa: I001 (after mace, see above)

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


# deepmd-kit imports e3nn when it is installed (mace-torch pins e3nn 0.4.4), and e3nn 0.4.4 loads its constants
# with a torch.load that torch >= 2.6 refuses by default; mace-torch sets the same variable when imported.
E3NN_TORCH_LOAD = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def tiny_deepmd(workdir: Path, train: list[Path], valid: list[Path], steps: int = 300, rcut: float = 4.0) -> Path:
    """A small se_e2_a DeePMD model trained by `dp --pt train` for ``steps`` steps and frozen to model.pth."""
    import json
    import os
    import subprocess
    import sys

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "model": {"type_map": ["Li", "F"],
                  "descriptor": {"type": "se_e2_a", "rcut": rcut, "rcut_smth": rcut - 1.0, "sel": [40, 40],
                                 "neuron": [8, 16], "axis_neuron": 4, "seed": 1},
                  "fitting_net": {"neuron": [16, 16], "seed": 1}},
        "learning_rate": {"type": "exp", "start_lr": 0.003, "stop_lr": 1e-4, "decay_steps": 50},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
        "training": {"training_data": {"systems": [str(p) for p in train], "batch_size": 4},
                     "validation_data": {"systems": [str(p) for p in valid], "batch_size": 4},
                     "numb_steps": steps, "seed": 1, "disp_freq": 100, "save_freq": steps},
    }
    (workdir / "input.json").write_text(json.dumps(config, indent=1))
    dp = str(Path(sys.prefix) / "bin" / "dp")
    env = dict(os.environ, OMP_NUM_THREADS="1", DP_INTRA_OP_PARALLELISM_THREADS="1",
               DP_INTER_OP_PARALLELISM_THREADS="1", **E3NN_TORCH_LOAD)
    for cmd in ([dp, "--pt", "train", "input.json"], [dp, "--pt", "freeze", "-o", "model.pth"]):
        out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return workdir / "model.pth"
