r"""Tracer diffusivity from the MSD, with an honest standard error.

Einstein relation in 3D: :math:`\mathrm{MSD}(t) \to 6 D t` at long times. D is the least-squares slope of the
MSD over a fit window, divided by 6. The window skips the ballistic/vibrational start and stops well before the
longest lags, whose averages rest on few time origins.

Standard error (block averaging). Each trajectory is cut into ``n_blocks`` consecutive blocks; D is estimated in
each block with the *same* fit window, expressed in ps. For diffusive motion, blocks are independent samples,
and an estimate over the whole trajectory with that window has about the precision of their mean. With several
replicas, the blocks of all replicas are pooled (replicas are independent too), so the error reflects both the
scatter within a run and between runs. The reported error is ``s / sqrt(n) * t(0.975, n-1) / 1.96``: the
Student-t factor widens it for few samples, so that D ± 1.96σ is a 95% interval even with 5 blocks.
The window is a fraction of one block's length (default 10%–50%), and is recorded with the result.
With a single block and a single trajectory there is nothing to compare: the error is ``None``.

Units: positions Å, times ps inside; D is reported in cm²/s (1 Å²/ps = 1e-4 cm²/s).

Command line (works on any LAMMPS dump with unwrapped coordinates)::

    python -m analysis.diffusion DUMP [DUMP ...] --timestep-fs 1 [--data DATAFILE] [--select "type 1"] [--json]

Several dumps are treated as replicas of one state point.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from analysis.msd import msd
from analysis.trajectory import Trajectory, read_dcd, read_dump
from core import cli
from core.errors import AnalysisError
from core.units import A2_PER_PS_TO_CM2_PER_S

DIMENSIONS = 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiffusionEstimate:
    d_cm2_s: float
    d_stderr_cm2_s: float | None
    fit_start_ps: float
    fit_end_ps: float
    n_replicas: int
    n_blocks: int  # per replica
    n_samples: int  # independent estimates behind the error
    n_atoms: int
    simulated_ps: float  # summed over replicas
    method: str


@dataclass(frozen=True)
class Diffusivity:
    """D at one temperature, as it travels from the estimate to the Arrhenius fit: the value, its 1σ standard
    error (None: no error estimate) and the number of independent samples behind that error (0: unknown)."""

    temperature_k: float
    d_cm2_s: float
    d_stderr_cm2_s: float | None
    n_samples: int = 0


def slope(times_ps: np.ndarray, values: np.ndarray, start_ps: float, end_ps: float) -> float:
    """Least-squares slope (with intercept) of ``values`` against ``times_ps`` for start ≤ t ≤ end."""
    sel = (times_ps >= start_ps - 1e-9) & (times_ps <= end_ps + 1e-9)
    if sel.sum() < 2:
        raise AnalysisError(f"fit window {start_ps:g}-{end_ps:g} ps holds {sel.sum()} MSD point(s); need at least 2")
    t, y = times_ps[sel], values[sel]
    tc = t - t.mean()
    return float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))


def diffusivity_from_msd(times_ps: np.ndarray, msd_a2: np.ndarray, start_ps: float, end_ps: float) -> float:
    """D in cm²/s from an MSD curve (Å²) over lag times (ps) and a fit window (ps)."""
    return slope(times_ps, msd_a2, start_ps, end_ps) / (2 * DIMENSIONS) * A2_PER_PS_TO_CM2_PER_S


def default_window(block_ps: float, start_fraction: float, end_fraction: float) -> tuple[float, float]:
    return start_fraction * block_ps, end_fraction * block_ps


@dataclass(frozen=True)
class MsdCurves:
    """What one trajectory contributes to an estimate: its MSD over all lags and the MSDs of its blocks.

    ``full`` (n_frames,) and ``blocks`` (n_blocks, block_frames) in Å², lags ``k * frame_interval_ps``. These
    are what a run's analysis stores (:mod:`analysis.runs`), so estimates are made without reading the
    trajectory again."""

    frame_interval_ps: float
    n_atoms: int
    full: np.ndarray
    blocks: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.full)

    @property
    def lags_ps(self) -> np.ndarray:
        return np.arange(self.n_frames) * self.frame_interval_ps


def msd_curves(traj: Trajectory, n_blocks: int) -> MsdCurves:
    """The MSD of a whole trajectory and of each of its ``n_blocks`` consecutive blocks."""
    if n_blocks < 1:
        raise AnalysisError(f"n_blocks must be at least 1, got {n_blocks}")
    block_frames = traj.n_frames // n_blocks
    if block_frames < 3:
        raise AnalysisError(f"{traj.n_frames} frames cannot make {n_blocks} blocks of at least 3 frames; use fewer "
                            "blocks or a longer trajectory")
    blocks = np.array([msd(traj.positions[b * block_frames:(b + 1) * block_frames]) for b in range(n_blocks)]) \
        if n_blocks > 1 else np.zeros((0, block_frames))
    return MsdCurves(traj.frame_interval_ps, traj.positions.shape[1], msd(traj.positions), blocks)


def estimate_diffusion(trajectories: Sequence[Trajectory], n_blocks: int = 5, start_fraction: float = 0.1,
                       end_fraction: float = 0.5, window_ps: tuple[float, float] | None = None) -> DiffusionEstimate:
    """D ± σ from one or more replicas of the same state point (see the module docstring)."""
    if not trajectories:
        raise AnalysisError("no trajectories to analyse")
    return estimate_from_curves([msd_curves(t, n_blocks) for t in trajectories], n_blocks, start_fraction,
                                end_fraction, window_ps)


def estimate_from_curves(curves: Sequence[MsdCurves], n_blocks: int = 5, start_fraction: float = 0.1,
                         end_fraction: float = 0.5, window_ps: tuple[float, float] | None = None
                         ) -> DiffusionEstimate:
    """D ± σ from the MSD curves of one or more replicas of the same state point."""
    if not curves:
        raise AnalysisError("no trajectories to analyse")
    if n_blocks < 1:
        raise AnalysisError(f"n_blocks must be at least 1, got {n_blocks}")
    dts = {round(c.frame_interval_ps, 9) for c in curves}
    if len(dts) != 1:
        raise AnalysisError(f"replicas have different frame intervals {sorted(dts)} ps; dump them alike")
    dt = dts.pop()
    n_atoms = {c.n_atoms for c in curves}
    if len(n_atoms) != 1:
        raise AnalysisError(f"replicas select different numbers of atoms {sorted(n_atoms)}")
    block_frames = min(c.n_frames for c in curves) // n_blocks
    if block_frames < 3:
        raise AnalysisError(f"{min(c.n_frames for c in curves)} frames cannot make {n_blocks} blocks of at "
                            "least 3 frames; use fewer blocks or a longer trajectory")
    block_ps = (block_frames - 1) * dt
    start, end = window_ps if window_ps is not None else default_window(block_ps, start_fraction, end_fraction)
    if not 0 <= start < end:
        raise AnalysisError(f"fit window {start:g}-{end:g} ps is empty or negative")
    if end > block_ps + 1e-9:
        raise AnalysisError(f"fit window ends at {end:g} ps, beyond the {block_ps:g} ps of a block "
                            f"({n_blocks} blocks of {block_frames} frames); shorten the window or use fewer blocks")
    full, blocks = [], []
    for c in curves:
        full.append(diffusivity_from_msd(c.lags_ps, c.full, start, end))
        if n_blocks > 1:
            if len(c.blocks) != n_blocks:
                raise AnalysisError(f"MSD curves were made with {len(c.blocks)} blocks, not {n_blocks}")
            lags = np.arange(block_frames) * dt
            blocks += [diffusivity_from_msd(lags, b[:block_frames], start, end) for b in c.blocks]
    d = float(np.mean(full))
    samples = np.array(blocks if n_blocks > 1 else full)
    if len(samples) >= 2:
        from scipy import stats  # imported here: ~0.2 s that a run without error bars need not pay

        n = len(samples)
        stderr = float(np.std(samples, ddof=1) / np.sqrt(n) * stats.t.ppf(0.975, n - 1) / stats.norm.ppf(0.975))
        method = (f"block averaging: {n_blocks} blocks x {len(curves)} replica(s), Student-t widened"
                  if n_blocks > 1 else f"scatter of {n} replicas, Student-t widened")
    else:
        stderr, n, method = None, len(samples), "single block of a single trajectory: no error estimate"
    return DiffusionEstimate(
        d_cm2_s=d, d_stderr_cm2_s=stderr, fit_start_ps=float(start), fit_end_ps=float(end),
        n_replicas=len(curves), n_blocks=n_blocks, n_samples=n, n_atoms=n_atoms.pop(),
        simulated_ps=float(sum((c.n_frames - 1) * dt for c in curves)), method=method)


def format_d(est: DiffusionEstimate) -> str:
    err = f" ± {est.d_stderr_cm2_s:.2e}" if est.d_stderr_cm2_s is not None else " (no error estimate)"
    return f"D = {est.d_cm2_s:.3e}{err} cm²/s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.diffusion", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dumps", nargs="+", help="LAMMPS text dump(s) with id and xu yu zu columns, or DCD files with "
                                             "unwrapped coordinates (every atom in them is analysed); several = replicas")
    ap.add_argument("--timestep-fs", type=float, required=True, help="MD timestep in fs (dump steps -> time)")
    ap.add_argument("--data", help="LAMMPS data file to evaluate the selection on (atoms matched by id)")
    ap.add_argument("--select", default=None, help='MDAnalysis selection, e.g. "type 1" (default: all atoms)')
    ap.add_argument("--n-blocks", type=int, default=5, help="blocks per trajectory for the error (default 5)")
    ap.add_argument("--fit-start-ps", type=float, help="fit window start in ps (default 10%% of a block)")
    ap.add_argument("--fit-end-ps", type=float, help="fit window end in ps (default 50%% of a block)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    def command() -> int:
        trajs = []
        for p in args.dumps:
            if str(p).endswith(".dcd"):
                if args.select or args.data:
                    raise AnalysisError(f"{p}: a DCD file has no atom types or ids to select by; LAMMPS's DCD of "
                                        "a group holds that group only: drop --select/--data")
                trajs.append(read_dcd(p, args.timestep_fs))
            else:
                trajs.append(read_dump(p, args.timestep_fs, select=args.select, data=args.data))
        window = None
        if (args.fit_start_ps is None) != (args.fit_end_ps is None):
            raise AnalysisError("give both --fit-start-ps and --fit-end-ps, or neither")
        if args.fit_start_ps is not None:
            window = (args.fit_start_ps, args.fit_end_ps)
        est = estimate_diffusion(trajs, n_blocks=args.n_blocks, window_ps=window)
        if args.json:
            print(json.dumps(asdict(est)))
        else:
            print(f"{format_d(est)}  (fit {est.fit_start_ps:g}-{est.fit_end_ps:g} ps, {est.n_atoms} atoms, "
                  f"{est.simulated_ps:g} ps simulated; {est.method})")
        return 0

    return cli.run(command)


if __name__ == "__main__":
    sys.exit(main())
