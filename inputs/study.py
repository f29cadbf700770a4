"""Study files: what to simulate, as typed, validated, frozen configuration.

A study is a TOML file (read with :mod:`tomllib`): the system (LiF supercell and defect), the potentials (names
from the catalog), the temperature ladder in K, the replicas (one velocity seed each), the MD lengths in ps and
the analysis choices. ``load_study("default")`` reads ``inputs/studies/default.toml``; any other argument is a path.
Every field is required unless it has a default here; unknown keys are errors, so a typo never goes unnoticed.
Errors name the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

from core import config
from core.config import builtin_names, from_dict
from core.errors import InputError
from core.rundir import DumpFormat, Stages
from inputs.structure import CellKind, DefectKind

Selection = Literal["li", "defect", "collective"]
SELECTIONS: tuple[str, ...] = get_args(Selection)


Precision = Literal["float64", "float32"]
Volume = Literal["npt", "fixed"]
ChargeCompensation = Literal["background", "anion-sublattice"]


@dataclass(frozen=True)
class SystemSpec:
    """The simulated cell. ``volume = "npt"``: each run first finds its own cell at ``md.pressure_bar`` (the
    lattice constant is only where it starts); ``"fixed"``: every run is NVT at ``lattice_constant_angstrom``.
    ``charge_compensation`` applies to rigid-ion (classical) potentials: ``background`` leaves a charged defect
    cell to Ewald's neutralising background, ``anion-sublattice`` spreads the opposite charge over the F ions."""

    lattice_constant_angstrom: float
    supercell: tuple[int, int, int]
    cell: CellKind = "conventional"
    defect: DefectKind = "interstitial"
    volume: Volume = "npt"
    charge_compensation: ChargeCompensation = "background"


@dataclass(frozen=True)
class MDSpec:
    """MD lengths, all physical times in ps except the timestep (fs). The driver turns them into steps."""

    timestep_fs: float
    equilibration_ps: float
    production_ps: float
    dump_interval_ps: float
    thermo_interval_ps: float
    restart_interval_ps: float
    thermostat_damping_ps: float = 0.1
    npt_ps: float = 0.0  # with system.volume = "npt": the zero-pressure stage; its second half gives the cell
    barostat_damping_ps: float = 1.0
    pressure_bar: float = 0.0
    config_interval_ps: float = 0.0  # > 0: also dump all atoms this often (configs.*.dump), e.g. for selfgen
    dump_format: DumpFormat = "text"  # the Li trajectory: text (traj.dump, id type xu yu zu) | dcd (unwrapped)

    def steps(self, time_ps: float, what: str) -> int:
        """``time_ps`` as a whole number of timesteps; raises if it is not one."""
        n = time_ps * 1000.0 / self.timestep_fs
        if abs(n - round(n)) > 1e-6 * max(1.0, n):
            raise InputError(f"md.{what} = {time_ps} ps is not a whole number of {self.timestep_fs} fs timesteps")
        return int(round(n))

    def stages(self, volume: str) -> Stages:
        npt = self.steps(self.npt_ps, "npt_ps") if volume == "npt" else 0
        eq = npt + self.steps(self.equilibration_ps, "equilibration_ps")
        return Stages(npt_end=npt, equilibration_end=eq, production_end=eq + self.steps(self.production_ps,
                                                                                           "production_ps"))


@dataclass(frozen=True)
class AnalysisSpec:
    """How D is estimated (see analysis.diffusion and analysis.study). The fit window starts
    ``events_before_window`` mean times between the defect's migration events into the run, no earlier than
    ``min_window_start_ps``, and ends at half of it; ``window_ps`` fixes it instead. ``residence_ps``: how long a Li
    must stay at a new site for its move to count. States with fewer than ``min_events`` events are left out of the
    Arrhenius fit by default. ``selection``: the diffusivity the Arrhenius fit uses."""

    selection: Selection = "li"
    events_before_window: float = 3.0
    min_window_start_ps: float = 1.0
    residence_ps: float = 0.5
    min_events: int = 20
    window_ps: tuple[float, float] | None = None


@dataclass(frozen=True)
class MaceSpec:
    """How MACE models compute (``[mace]``): weights in float64 or float32, and whether to convert them to NVIDIA
    cuEquivariance kernels (an explicit choice: it works, or the render stops naming what is missing)."""

    precision: Precision = "float64"
    cuequivariance: bool = False


@dataclass(frozen=True)
class Study:
    name: str
    potentials: tuple[str, ...]
    temperatures_k: tuple[float, ...]
    seeds: tuple[int, ...]
    system: SystemSpec
    md: MDSpec
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    mace: MaceSpec = field(default_factory=MaceSpec)
    description: str = ""
    source: str = field(default="<memory>", metadata={"from_file": False})

    def __post_init__(self) -> None:
        _validate(self)

    def restricted(self, temperatures_k: tuple[float, ...] | None = None,
                   potentials: tuple[str, ...] | None = None) -> "Study":
        """The same study limited to some temperatures or potentials (each must be one the study has or a new T)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        if temperatures_k is not None:
            kw["temperatures_k"] = tuple(float(t) for t in temperatures_k)
        if potentials is not None:
            unknown = [p for p in potentials if p not in self.potentials]
            if unknown:
                raise InputError(f"study {self.name!r} has no potential {unknown}; it has {list(self.potentials)}")
            kw["potentials"] = tuple(potentials)
        return Study(**kw)


def _fail(study: Study | str, field_name: str, msg: str) -> InputError:
    src = study.source if isinstance(study, Study) else study
    return InputError(f"{src}: {field_name}: {msg}")


def _validate(s: Study) -> None:
    if not s.name or any(c in s.name for c in "/\\") or s.name.startswith("."):
        raise _fail(s, "name", f"{s.name!r} is not usable as a directory name")
    if not s.potentials:
        raise _fail(s, "potentials", "list at least one potential")
    if len(set(s.potentials)) != len(s.potentials):
        raise _fail(s, "potentials", f"duplicate entries in {list(s.potentials)}")
    for p in s.potentials:  # each names a directory of the study
        if not p or p in (".", "..") or p.startswith(".") or any(c in p for c in "/\\") \
                or any(ord(c) < 32 for c in p):
            raise _fail(s, "potentials", f"{p!r} cannot name a run directory (no '/', leading '.', control characters)")
    if not s.temperatures_k:
        raise _fail(s, "temperatures_k", "list at least one temperature")
    for t in s.temperatures_k:
        if not math.isfinite(t) or t <= 0:
            raise _fail(s, "temperatures_k", f"temperatures must be positive (K), got {t}")
    if len(set(s.temperatures_k)) != len(s.temperatures_k):
        raise _fail(s, "temperatures_k", f"duplicate temperatures in {list(s.temperatures_k)} (duplicate runs)")
    if not s.seeds:
        raise _fail(s, "seeds", "list at least one seed (one replica each)")
    if len(set(s.seeds)) != len(s.seeds):
        raise _fail(s, "seeds", f"duplicate seeds in {list(s.seeds)} (duplicate runs)")
    if any(not 0 < k < 2**31 for k in s.seeds):
        raise _fail(s, "seeds", "LAMMPS seeds must be integers between 1 and 2147483647")
    sy = s.system
    if not math.isfinite(sy.lattice_constant_angstrom) or sy.lattice_constant_angstrom <= 0:
        raise _fail(s, "system.lattice_constant_angstrom", "must be a positive length in Å")
    if len(sy.supercell) != 3 or any(n < 1 for n in sy.supercell):
        raise _fail(s, "system.supercell", f"three positive integers expected, got {list(sy.supercell)}")
    md = s.md
    for name in ("timestep_fs", "equilibration_ps", "production_ps", "dump_interval_ps",
                 "thermo_interval_ps", "restart_interval_ps", "thermostat_damping_ps", "barostat_damping_ps"):
        v = getattr(md, name)
        if not math.isfinite(v) or v < 0 or (v == 0 and name != "equilibration_ps"):
            raise _fail(s, f"md.{name}", f"must be {'non-negative' if name == 'equilibration_ps' else 'positive'}, got {v}")
    for name in ("dump_interval_ps", "thermo_interval_ps", "restart_interval_ps"):
        if getattr(md, name) > md.production_ps:
            raise _fail(s, f"md.{name}", f"{getattr(md, name)} ps is longer than md.production_ps = {md.production_ps} ps")
    if not math.isfinite(md.config_interval_ps) or md.config_interval_ps < 0 \
            or md.config_interval_ps > md.production_ps:
        raise _fail(s, "md.config_interval_ps", f"must be 0 (off) or in (0, production_ps], got {md.config_interval_ps}")
    for name in ("equilibration_ps", "production_ps", "dump_interval_ps", "thermo_interval_ps", "restart_interval_ps",
                 "config_interval_ps", "npt_ps"):
        try:
            md.steps(getattr(md, name), name)
        except InputError as e:
            raise _fail(s, f"md.{name}", str(e).split(": ", 1)[-1]) from None
    if not math.isfinite(md.pressure_bar):
        raise _fail(s, "md.pressure_bar", f"must be a number of bar, got {md.pressure_bar}")
    if sy.volume == "npt":
        npt = md.steps(md.npt_ps, "npt_ps") if math.isfinite(md.npt_ps) and md.npt_ps > 0 else 0
        if npt < 2 or npt % 2:
            raise _fail(s, "md.npt_ps", "with system.volume = \"npt\" give the zero-pressure stage a positive length "
                        f"of an even number of timesteps (its second half gives the cell), got {md.npt_ps}")
    elif md.npt_ps:
        raise _fail(s, "md.npt_ps", "is used with system.volume = \"npt\" only; system.volume is \"fixed\"")
    start = md.stages(sy.volume).equilibration_end
    if start % md.steps(md.dump_interval_ps, "dump_interval_ps"):
        raise _fail(s, "md.dump_interval_ps", f"production starts at step {start} (md.npt_ps + md.equilibration_ps), "
                    "which must be a whole number of dump intervals so that frames are evenly spaced")
    n_frames = md.steps(md.production_ps, "production_ps") // md.steps(md.dump_interval_ps, "dump_interval_ps")
    if n_frames < 20:
        raise _fail(s, "md.dump_interval_ps", f"{n_frames} frames in the production run; dump at least 20 (more often "
                    "or a longer run)")
    an = s.analysis
    if an.selection == "defect" and sy.defect == "none":
        raise _fail(s, "analysis.selection", "'defect' needs a defect to follow, but system.defect is 'none'")
    for name in ("events_before_window", "min_window_start_ps", "residence_ps"):
        v = getattr(an, name)
        if not math.isfinite(v) or v < 0:
            raise _fail(s, f"analysis.{name}", f"must be a non-negative number, got {v}")
    if an.residence_ps > md.production_ps / 2:
        raise _fail(s, "analysis.residence_ps", f"{an.residence_ps} ps is more than half the production run")
    if an.min_events < 0:
        raise _fail(s, "analysis.min_events", f"must be non-negative, got {an.min_events}")
    if an.window_ps is not None and not 0 < an.window_ps[0] < an.window_ps[1] <= md.production_ps:
        raise _fail(s, "analysis.window_ps", f"need 0 < start < end <= md.production_ps, got {list(an.window_ps)}")


# --- reading ------------------------------------------------------------------------------------------------

def study_from_dict(data: dict, source: str = "<memory>") -> Study:
    """A study from a parsed table (TOML file, or a run summary's ``config``), strictly (see core.config)."""
    return from_dict(Study, data, source)


def study_of(config: dict, source: str) -> Study:
    """The typed study a run summary's ``config`` records."""
    return study_from_dict(config, source)


def builtin_studies() -> list[str]:
    return builtin_names("inputs.studies")


def load_study(name_or_path: str | Path) -> Study:
    """A built-in study by name (``default``, ``paper``) or a study file by path."""
    return config.load(Study, name_or_path, "inputs.studies", "study")
