"""Synthetic Arrhenius ladders of rare-jump walks, analysed by the project's own estimator: the ground truth of the
planner's tests (tests/test_plan.py, tests/test_sequential.py).

Each state point is one defect per replica hopping by ``jump_angstrom`` along ±x, ±y, ±z at Poisson times, at the rate
λ(T) = λ_ref · exp(-Ea/k_B · (1/T - 1/T_ref)): the defect's D is λℓ²/6 and its Arrhenius energy is exactly Ea. A
walk is drawn once up to the longest length a test may ask for; a run of length t is its first t ps (extending a
run continues the same walk, as a restarted MD run does). Each state is analysed as :mod:`analysis.study` does:
events counted, the window from :func:`analysis.study.choose_window` (the study's own rule), D ± σ pooled over the
replicas by :func:`analysis.diffusion.estimate`, few-event states left out of the Arrhenius fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.arrhenius import ArrheniusFit, fit_arrhenius
from analysis.diffusion import Diffusivity, msd_stats, estimate
from analysis.plan import StateKnowledge
from analysis.runs import RunAnalysis
from analysis.study import choose_window
from core.units import A2_PER_PS_TO_CM2_PER_S, K_B_EV_PER_K
from inputs.study import AnalysisSpec

DIRECTIONS = np.vstack([np.eye(3), -np.eye(3)])


def defect_walk(rng: np.random.Generator, n_frames: int, dt_ps: float, rate_ps: float, jump_angstrom: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(positions (n_frames, 1, 3) in Å, events up to each frame (n_frames,)) of one defect jumping at Poisson
    times, vectorised."""
    counts = rng.poisson(rate_ps * dt_ps, size=n_frames - 1)
    steps = DIRECTIONS[rng.integers(6, size=int(counts.sum()))] * jump_angstrom
    disp = np.zeros((n_frames - 1, 3))
    np.add.at(disp, np.repeat(np.arange(n_frames - 1), counts), steps)
    positions = np.concatenate([np.zeros((1, 3)), np.cumsum(disp, axis=0)])[:, None, :]
    return positions, np.concatenate([[0], np.cumsum(counts)])


@dataclass(frozen=True)
class Ladder:
    """The true law of a synthetic ladder."""

    temperatures_k: tuple[float, ...] = (500.0, 600.0, 700.0, 800.0)
    ea_ev: float = 0.3
    rate_ref_ps: float = 0.5  # events per ps at t_ref_k
    t_ref_k: float = 800.0
    jump_angstrom: float = 3.5
    frames_per_event: float = 4.0  # the dump interval at each temperature: this many frames per mean event time
    replicas: int = 2

    def dt_ps(self, t: float) -> float:
        return 1.0 / (self.rate(t) * self.frames_per_event)

    def rate(self, t: float) -> float:
        return self.rate_ref_ps * math.exp(-self.ea_ev / K_B_EV_PER_K * (1 / t - 1 / self.t_ref_k))

    def d_cm2_s(self, t: float) -> float:
        return self.rate(t) * self.jump_angstrom**2 / 6 * A2_PER_PS_TO_CM2_PER_S


class SyntheticStudy:
    """One repeat of a study: walks drawn up to ``max_ps`` per replica; :meth:`analyse` at any lengths."""

    def __init__(self, ladder: Ladder, seed: int, max_ps: float, spec: AnalysisSpec = AnalysisSpec()):
        rng = np.random.default_rng(seed)
        self.ladder, self.spec = ladder, spec
        self.walks = {t: [defect_walk(rng, self._frames(t, max_ps), ladder.dt_ps(t), ladder.rate(t),
                                      ladder.jump_angstrom) for _ in range(ladder.replicas)]
                      for t in ladder.temperatures_k}
        self._states: dict[tuple[float, int], StateKnowledge] = {}

    def _frames(self, t: float, length_ps: float) -> int:
        return max(4, int(round(length_ps / self.ladder.dt_ps(t)))) + 1

    def state(self, t: float, length_ps: float) -> StateKnowledge:
        """The state at temperature t with every replica run for ``length_ps``, analysed as a study is."""
        n = self._frames(t, length_ps)
        if (t, n) not in self._states:
            dt = self.ladder.dt_ps(t)
            analyses, events = [], 0
            for positions, counts in self.walks[t]:
                st = msd_stats(positions[:n], dt)
                analyses.append(RunAnalysis("", {"li": st, "defect": st}, 1, 1, int(counts[n - 1]), 0.0, 0.0, {}))
                events += int(counts[n - 1])
            window, _ = choose_window(self.spec, analyses)
            est = estimate([a.stats["defect"] for a in analyses], *window, sensitivity=False) if window else None
            self._states[t, n] = StateKnowledge(
                t, len(analyses), (n - 1) * dt, events, None if est is None else est.d_cm2_s,
                None if est is None else est.d_stderr_cm2_s, window_start_events=self.spec.events_before_window,
                min_events=self.spec.min_events)
        return self._states[t, n]

    def analyse(self, lengths_ps: dict[float, float]) -> tuple[list[StateKnowledge], ArrheniusFit | None]:
        """Every state at its length, and the Arrhenius fit of those with enough events (None: fewer than two)."""
        states = [self.state(t, lengths_ps[t]) for t in self.ladder.temperatures_k]
        points = [Diffusivity(s.temperature_k, s.d_cm2_s, s.d_stderr_cm2_s) for s in states
                  if s.events >= s.min_events and s.d_cm2_s is not None and s.d_cm2_s > 0 and s.d_stderr_cm2_s]
        return states, fit_arrhenius(points) if len(points) >= 2 else None
