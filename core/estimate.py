"""An estimate: a value with its 1σ standard error and the degrees of freedom behind that error, travelling together
from the MSD fit to the Arrhenius table (never as parallel bare numbers that can be separated on the way).

``stderr`` None means no error is known; ``dof`` None means the degrees of freedom are not known (take the normal
distribution for intervals). A value whose 1σ is as large as itself — or that has none — is *undetermined*: it is
only bounded, and tables show it so, never as a plain number.

Derived quantities keep the error with them: :meth:`Estimate.scaled` (an exact factor such as N_Li) and
:func:`ratio` (two estimates taken as independent: conservative where they are positively correlated, as a tracer
and a collective D from the same trajectories are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """``value`` ± ``stderr`` (1σ; None: unknown), ``dof`` degrees of freedom behind the error (None: unknown)."""

    value: float
    stderr: float | None = None
    dof: float | None = None

    @property
    def relative_error(self) -> float | None:
        """σ / |value| (None without an error or for a value of zero)."""
        if self.stderr is None or self.value == 0:
            return None
        return self.stderr / abs(self.value)

    @property
    def undetermined(self) -> bool:
        """The 1σ is as large as the value itself (or there is none): the value is bounded, not determined."""
        return self.stderr is None or self.stderr >= abs(self.value)

    def scaled(self, factor: float) -> Estimate:
        """The estimate times an exact factor."""
        return Estimate(self.value * factor, None if self.stderr is None else self.stderr * abs(factor), self.dof)

    def to_dict(self) -> dict:
        return {"value": self.value, "stderr": self.stderr, "dof": self.dof}

    @classmethod
    def from_dict(cls, d: dict) -> Estimate:
        """The inverse of :meth:`to_dict` (a stored record; ``dof`` may be absent)."""
        value, stderr, dof = d["value"], d.get("stderr"), d.get("dof")
        return cls(float(value), None if stderr is None else float(stderr), None if dof is None else float(dof))


def ratio(a: Estimate | None, b: Estimate | None) -> Estimate | None:
    """a / b with its 1σ, a and b taken as independent (relative errors in quadrature); None where either is
    missing, has no error, or b ≤ 0. The degrees of freedom are the smaller of the two where both are known."""
    if a is None or b is None or b.value <= 0 or a.stderr is None or b.stderr is None:
        return None
    r = a.value / b.value
    rel_a = a.stderr / a.value if a.value else 0.0
    dofs = [d for d in (a.dof, b.dof) if d is not None]
    return Estimate(r, abs(r) * math.hypot(rel_a, b.stderr / b.value), min(dofs) if len(dofs) == 2 else None)
