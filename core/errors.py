"""The project's domain exceptions. Messages say what was wrong, where, and how to fix it.

Every stage raises a subclass of :class:`LifDiffusionError`; the command-line runner (:mod:`core.cli`) catches it,
prints the one message and exits with status 2, so a user never sees a traceback for bad input.
"""


class LifDiffusionError(Exception):
    """Base class of every error this project reports to a user."""


class InputError(LifDiffusionError):
    """A study file, structure or command-line argument is invalid."""


class PotentialError(LifDiffusionError):
    """A potential is unknown, its model files are missing or inconsistent with the structure."""


class ModelMissingError(PotentialError):
    """A catalog potential whose model file is not on this machine (a study runs its other potentials)."""


class LammpsError(LifDiffusionError):
    """LAMMPS is missing, lacks a required package or style, or a run failed."""


class AnalysisError(LifDiffusionError):
    """A trajectory or table cannot be analysed as asked."""
