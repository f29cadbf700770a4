"""Study files: what to simulate, as typed, validated, frozen configuration.

A study is a TOML file (read with :mod:`tomllib`): the system (the crystal: built-in LiF or Li2O, or a structure
file; supercell, mobile species, defect), the potentials (names from the catalog), the temperature ladder in K,
the replicas (one velocity seed each), the MD lengths in ps and the analysis choices. ``load_study("default")``
reads ``inputs/studies/default.toml``; any other argument is a path. Every field is required unless it has a
default here; unknown keys are errors, so a typo never goes unnoticed. Errors name the file and the field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

from core import config
from core.config import Name, builtin_names, from_dict
from core.errors import InputError
from core.rundir import DumpFormat, Stages, temperature_label
from inputs.structure import BUILTINS, DEFAULT_STRUCTURE, LIF_MOBILE, MAX_ATOMS, CellKind, DefectKind, atoms_in

Selection = Literal["li", "defect", "collective"]
SELECTIONS: tuple[str, ...] = get_args(Selection)


Precision = Literal["float64", "float32"]
Volume = Literal["npt", "fixed"]
ChargeCompensation = Literal["background", "anion-sublattice"]


@dataclass(frozen=True)
class SystemSpec:
    """The simulated cell. ``structure``: a built-in crystal (``LiF``, rock salt, the default; ``Li2O``,
    antifluorite), built at ``lattice_constant_angstrom`` (required for them) in ``cell`` (conventional |
    primitive) repeated ``supercell`` times; or the path (relative to the study file) of a structure file ASE reads
    (CIF, POSCAR, extxyz, LAMMPS data), whose own cell is repeated: no lattice constant then (the file's cell is the
    cell; with ``volume = "npt"`` the NPT stage finds the potential's own), and no ``cell`` but the default.
    ``mobile``: the species whose D is measured, whose sites are tracked and which the defect is made of; every
    other species is the host, whose centre-of-mass drift is removed. ``interstitial_site``: where an interstitial
    (defect interstitial or frenkel) is put, fractional coordinates of the repeated cell (placed in the copy nearest
    the supercell's centre); without it, at the largest void nearest the centre (:mod:`inputs.voids`).
    ``vacancy_index`` / ``defect_seed`` (defect vacancy or frenkel; one or neither): which lattice site of the mobile
    species is left vacant, by its 0-based index among the mobile species' sites of the supercell (the order of the
    run's structure record, ``sites.li``) or drawn with this seed; without either, the site nearest the cell's
    centre (:func:`inputs.defects.add_defect`).
    ``volume = "npt"``: each run first finds its own cell at ``md.pressure_bar`` (the
    lattice constant is only where it starts); ``"fixed"``: every run is NVT at ``lattice_constant_angstrom``.
    ``charge_compensation`` applies to rigid-ion (classical) potentials: ``background`` leaves a charged defect
    cell to Ewald's neutralising background, ``anion-sublattice`` spreads the opposite charge over the anions (the F ions of LiF).
    ``fixed_beside_angstrom`` (with ``volume = "npt"``): also run every potential's ladder in NVT at this lattice
    constant (e.g. the NPT cell of the middle temperature), beside the NPT one, so that the report can give both
    Ea and their difference (the part of the zero-pressure Ea that comes from the lattice's expansion)."""

    supercell: tuple[int, int, int]
    lattice_constant_angstrom: float | None = None
    structure: str = DEFAULT_STRUCTURE
    mobile: str = LIF_MOBILE
    cell: CellKind = "conventional"
    defect: DefectKind = "interstitial"
    interstitial_site: tuple[float, float, float] | None = None
    vacancy_index: int | None = None
    defect_seed: int | None = None
    volume: Volume = "npt"
    charge_compensation: ChargeCompensation = "background"
    fixed_beside_angstrom: float | None = None


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
class PrecisionSpec:
    """``[precision]``: ask for the precision, not the run length (driver/precision.py runs the loop).

    With a target, ``driver run`` first runs every state at ``md.production_ps`` (the pilot), analyses the study,
    and, while a target is missed, extends the runs — each as one continuous trajectory, resumed from its last
    restart file — to the lengths the planner proposes (analysis/plan.py), rounded up to whole ``chunk_ps``
    (default: the pilot's length) and never beyond ``max_production_ps`` (the cap; required with a target).
    Targets: ``ea_stderr_ev``, the 1σ of Ea of every Arrhenius series (potential and ladder) of the study;
    ``d_rel_stderr``, the 1σ of each state's D relative to D. At most ``max_rounds`` extension rounds."""

    ea_stderr_ev: float | None = None
    d_rel_stderr: float | None = None
    max_production_ps: float | None = None
    chunk_ps: float | None = None
    max_rounds: int = 6

    @property
    def enabled(self) -> bool:
        return self.ea_stderr_ev is not None or self.d_rel_stderr is not None

    def describe(self) -> str:
        """The targets in words: ``σ(Ea) <= 0.02 eV, σ(D)/D <= 0.1, up to 400 ps``."""
        parts = ([f"σ(Ea) <= {self.ea_stderr_ev:g} eV"] if self.ea_stderr_ev is not None else []) + \
            ([f"σ(D)/D <= {self.d_rel_stderr:g}"] if self.d_rel_stderr is not None else [])
        return ", ".join(parts) + f", up to {self.max_production_ps:g} ps"


#: physical bounds of a study's numbers (checked at load; the message names the bound)
MAX_TEMPERATURE_K = 1.0e6  # no crystal nor bound state of atoms survives this (a test heats to 2e5 K to lose atoms)
MAX_TIMESTEP_FS = 20.0  # metal units: Li vibrates with a ~100 fs period; even 5 fs is coarse
MAX_LATTICE_CONSTANT_ANGSTROM = 100.0
MAX_PRESSURE_BAR = 1.0e7  # 1 TPa
MAX_DAMPING_PS = 1.0e4
#: LAMMPS counts steps in a signed 64-bit integer, but "run N upto" and restart intervals are read as int
MAX_STEPS = 2**31 - 1


@dataclass(frozen=True)
class Study:
    name: Name
    potentials: tuple[Name, ...]
    temperatures_k: tuple[float, ...]
    seeds: tuple[int, ...]
    system: SystemSpec
    md: MDSpec
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    mace: MaceSpec = field(default_factory=MaceSpec)
    precision: PrecisionSpec = field(default_factory=PrecisionSpec)
    description: str = ""
    source: str = field(default="<memory>", metadata={"from_file": False})

    def __post_init__(self) -> None:
        _validate(self)

    def fixed_ladder(self) -> "Study | None":
        """The fixed-volume ladder run beside this NPT one (``system.fixed_beside_angstrom``): the same study in
        NVT at that lattice constant, without the NPT stage; None where the study asks for none."""
        a = self.system.fixed_beside_angstrom
        if a is None:
            return None
        system = dataclasses.replace(self.system, volume="fixed", lattice_constant_angstrom=a,
                                     fixed_beside_angstrom=None)
        return dataclasses.replace(self, system=system, md=dataclasses.replace(self.md, npt_ps=0.0))

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
        return Study(**kw)  # validated again, e.g. a σ(Ea) target on one temperature (driver run --temperature)


def _fail(study: Study | str, field_name: str, msg: str) -> InputError:
    src = study.source if isinstance(study, Study) else study
    return InputError(f"{src}: {field_name}: {msg}")


def _validate(s: Study) -> None:
    from core.names import check_name

    check_name(s.name, f"{s.source}: name")
    if not s.potentials:
        raise _fail(s, "potentials", "list at least one potential")
    if len(set(s.potentials)) != len(s.potentials):
        raise _fail(s, "potentials", f"duplicate entries in {list(s.potentials)}")
    for p in s.potentials:  # each names a directory of the study
        check_name(p, f"{s.source}: potentials")
    if not s.temperatures_k:
        raise _fail(s, "temperatures_k", "list at least one temperature")
    for t in s.temperatures_k:
        if not math.isfinite(t) or t <= 0:
            raise _fail(s, "temperatures_k", f"temperatures must be positive (K), got {t}")
        if t > MAX_TEMPERATURE_K:
            raise _fail(s, "temperatures_k", f"{t:g} K is above {MAX_TEMPERATURE_K:g} K (no crystal exists there)")
    if len(set(s.temperatures_k)) != len(s.temperatures_k):
        raise _fail(s, "temperatures_k", f"duplicate temperatures in {list(s.temperatures_k)} (duplicate runs)")
    labels: dict[str, float] = {}
    for t in s.temperatures_k:  # each names a directory: two that share one would be one run
        other = labels.setdefault(temperature_label(t), t)
        if other != t:
            raise _fail(s, "temperatures_k", f"{other!r} K and {t!r} K both name the run directory "
                        f"{temperature_label(t)}: give temperatures that differ in their first 6 digits")
    if not s.seeds:
        raise _fail(s, "seeds", "list at least one seed (one replica each)")
    if len(set(s.seeds)) != len(s.seeds):
        raise _fail(s, "seeds", f"duplicate seeds in {list(s.seeds)} (duplicate runs)")
    if any(not 0 < k < 2**31 for k in s.seeds):
        raise _fail(s, "seeds", "LAMMPS seeds must be integers between 1 and 2147483647")
    sy = s.system
    _validate_system(s, sy)
    md = s.md
    for name in ("timestep_fs", "equilibration_ps", "production_ps", "dump_interval_ps",
                 "thermo_interval_ps", "restart_interval_ps", "thermostat_damping_ps", "barostat_damping_ps"):
        v = getattr(md, name)
        if not math.isfinite(v) or v < 0 or (v == 0 and name != "equilibration_ps"):
            raise _fail(s, f"md.{name}", f"must be {'non-negative' if name == 'equilibration_ps' else 'positive'}, got {v}")
    if md.timestep_fs > MAX_TIMESTEP_FS:
        raise _fail(s, "md.timestep_fs", f"{md.timestep_fs:g} fs is above {MAX_TIMESTEP_FS:g} fs (an MD timestep "
                    "resolves atomic vibrations: ~0.5-2 fs)")
    for name in ("thermostat_damping_ps", "barostat_damping_ps"):
        if getattr(md, name) > MAX_DAMPING_PS:
            raise _fail(s, f"md.{name}", f"{getattr(md, name):g} ps is above {MAX_DAMPING_PS:g} ps")
    for name in ("dump_interval_ps", "thermo_interval_ps", "restart_interval_ps"):
        if getattr(md, name) > md.production_ps:
            raise _fail(s, f"md.{name}", f"{getattr(md, name)} ps is longer than md.production_ps = {md.production_ps} ps")
    if not math.isfinite(md.config_interval_ps) or md.config_interval_ps < 0 \
            or md.config_interval_ps > md.production_ps:
        raise _fail(s, "md.config_interval_ps", f"must be 0 (off) or in (0, production_ps], got {md.config_interval_ps}")
    if not math.isfinite(md.npt_ps) or md.npt_ps < 0:
        raise _fail(s, "md.npt_ps", f"must be a non-negative length in ps, got {md.npt_ps}")
    for name in ("equilibration_ps", "production_ps", "dump_interval_ps", "thermo_interval_ps", "restart_interval_ps",
                 "config_interval_ps", "npt_ps"):
        value = getattr(md, name)
        if value * 1000.0 / md.timestep_fs > MAX_STEPS:
            raise _fail(s, f"md.{name}", f"{value:g} ps is more than {MAX_STEPS} timesteps of {md.timestep_fs:g} fs")
        try:
            n = md.steps(value, name)
        except InputError as e:
            raise _fail(s, f"md.{name}", str(e).split(": ", 1)[-1]) from None
        if value > 0 and n < 1:
            raise _fail(s, f"md.{name}", f"{value:g} ps is less than one {md.timestep_fs:g} fs timestep")
    if md.stages(sy.volume).production_end > MAX_STEPS:
        raise _fail(s, "md.production_ps", f"the run would have {md.stages(sy.volume).production_end} steps, more "
                    f"than {MAX_STEPS}")
    if not math.isfinite(md.pressure_bar) or abs(md.pressure_bar) > MAX_PRESSURE_BAR:
        raise _fail(s, "md.pressure_bar", f"must be a number of bar within ±{MAX_PRESSURE_BAR:g}, got "
                    f"{md.pressure_bar}")
    if sy.volume == "npt":
        npt = md.steps(md.npt_ps, "npt_ps") if math.isfinite(md.npt_ps) and md.npt_ps > 0 else 0
        if npt < 2 or npt % 2:
            raise _fail(s, "md.npt_ps", "with system.volume = \"npt\" give the zero-pressure stage a positive length "
                        f"of an even number of timesteps (its second half gives the cell), got {md.npt_ps}")
    elif md.npt_ps:
        raise _fail(s, "md.npt_ps", "is used with system.volume = \"npt\" only; system.volume is \"fixed\"")
    if sy.fixed_beside_angstrom is not None:
        a = sy.fixed_beside_angstrom
        if sy.volume != "npt":
            raise _fail(s, "system.fixed_beside_angstrom", "runs a fixed-volume ladder beside the NPT one; "
                        "system.volume is already \"fixed\" (set lattice_constant_angstrom instead)")
        if not math.isfinite(a) or not 0 < a <= MAX_LATTICE_CONSTANT_ANGSTROM:
            raise _fail(s, "system.fixed_beside_angstrom", f"must be a lattice constant in Å (0 < a <= "
                        f"{MAX_LATTICE_CONSTANT_ANGSTROM:g}), got {a}")
        if md.steps(md.equilibration_ps, "equilibration_ps") % md.steps(md.dump_interval_ps, "dump_interval_ps"):
            raise _fail(s, "md.equilibration_ps", "with system.fixed_beside_angstrom the fixed-volume runs start "
                        "production after md.equilibration_ps alone: make it a whole number of dump intervals")
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
    _validate_precision(s)


def _validate_precision(s: Study) -> None:
    pr, md = s.precision, s.md
    for name in ("ea_stderr_ev", "d_rel_stderr"):
        v = getattr(pr, name)
        if v is not None and not v > 0:
            raise _fail(s, f"precision.{name}", f"must be a positive 1σ target, got {v}")
    if not pr.enabled:
        if pr.max_production_ps is not None or pr.chunk_ps is not None:
            raise _fail(s, "precision", "give a target (ea_stderr_ev and/or d_rel_stderr) for the runs to be "
                        "extended to, or leave out the section")
        return
    if pr.max_production_ps is None:
        raise _fail(s, "precision.max_production_ps", "a precision target needs a cap on the production length "
                    "(ps per run): states with too few events would otherwise be extended forever")
    if pr.max_production_ps < md.production_ps:
        raise _fail(s, "precision.max_production_ps", f"{pr.max_production_ps:g} ps is shorter than the pilot, "
                    f"md.production_ps = {md.production_ps:g} ps")
    if pr.max_rounds < 1:
        raise _fail(s, "precision.max_rounds", f"must be at least 1, got {pr.max_rounds}")
    if pr.ea_stderr_ev is not None and len(s.temperatures_k) < 2:
        raise _fail(s, "precision.ea_stderr_ev", f"an Arrhenius fit needs at least two temperatures, the study has "
                    f"{list(s.temperatures_k)} (run the ladder, or give d_rel_stderr alone)")
    dump = md.steps(md.dump_interval_ps, "dump_interval_ps")
    for name in ("max_production_ps", "chunk_ps"):
        v = getattr(pr, name)
        if v is None:
            continue
        if not v > 0 or v * 1000.0 / md.timestep_fs > MAX_STEPS:
            raise _fail(s, f"precision.{name}", f"must be a positive length of at most {MAX_STEPS} timesteps, got {v}")
        n = v * 1000.0 / md.timestep_fs
        if abs(n - round(n)) > 1e-6 * max(1.0, n):
            raise _fail(s, f"precision.{name}", f"{v:g} ps is not a whole number of {md.timestep_fs:g} fs timesteps")
        if round(n) % dump:
            raise _fail(s, f"precision.{name}", f"{v:g} ps is not a whole number of dump intervals "
                        f"(md.dump_interval_ps = {md.dump_interval_ps:g})")
    if md.stages(s.system.volume).equilibration_end + md.steps(pr.max_production_ps, "max_production_ps") > MAX_STEPS:
        raise _fail(s, "precision.max_production_ps", f"the runs would have more than {MAX_STEPS} steps")


def _validate_system(s: Study, sy: SystemSpec) -> None:
    builtin = BUILTINS.get(sy.structure)
    if not sy.structure.strip():
        raise _fail(s, "system.structure", f"name a built-in crystal ({', '.join(BUILTINS)}) or a structure file")
    if builtin is not None and sy.lattice_constant_angstrom is None:
        raise _fail(s, "system.lattice_constant_angstrom", f"give the built-in {sy.structure}'s (starting) lattice "
                    "constant in Å")
    if builtin is None:  # a structure file: read (and checked) when the structure is built
        for name, value, default in (("lattice_constant_angstrom", sy.lattice_constant_angstrom, None),
                                     ("cell", sy.cell, "conventional"),
                                     ("fixed_beside_angstrom", sy.fixed_beside_angstrom, None)):
            if value != default:
                raise _fail(s, f"system.{name}", f"is for the built-in crystals ({', '.join(BUILTINS)}); "
                            f"system.structure {sy.structure!r} is a file, whose own cell is repeated: remove it")
    elif sy.mobile != builtin.mobile:
        raise _fail(s, "system.mobile", f"the built-in {sy.structure}'s mobile species is {builtin.mobile} (its "
                    f"sites are the ones built), not {sy.mobile!r}; for another give a structure file")
    a = sy.lattice_constant_angstrom
    if a is not None and (not math.isfinite(a) or a <= 0):
        raise _fail(s, "system.lattice_constant_angstrom", "must be a positive length in Å")
    if a is not None and a > MAX_LATTICE_CONSTANT_ANGSTROM:
        raise _fail(s, "system.lattice_constant_angstrom", f"{a:g} Å is above {MAX_LATTICE_CONSTANT_ANGSTROM:g} Å")
    if len(sy.supercell) != 3 or any(n < 1 for n in sy.supercell):
        raise _fail(s, "system.supercell", f"three positive integers expected, got {list(sy.supercell)}")
    if builtin is None:  # a file's atoms are counted when it is read (inputs.structure refuses more than MAX_ATOMS)
        if any(n > MAX_ATOMS for n in sy.supercell):
            raise _fail(s, "system.supercell", f"{list(sy.supercell)} repeats the file's cell more than {MAX_ATOMS} "
                        "times along an axis (the most atoms this driver builds)")
    elif any(n > MAX_ATOMS for n in sy.supercell) or atoms_in(sy.cell, sy.supercell, sy.structure) > MAX_ATOMS:
        raise _fail(s, "system.supercell", f"{list(sy.supercell)} of the {sy.cell} cell would hold "
                    f"{atoms_in(sy.cell, tuple(min(n, MAX_ATOMS) for n in sy.supercell), sy.structure):.3g} atoms, "
                    f"more than {MAX_ATOMS} (the most this driver builds)")
    if sy.interstitial_site is not None and sy.defect not in ("interstitial", "frenkel"):
        raise _fail(s, "system.interstitial_site", f"places an added atom (defect interstitial or frenkel); "
                    f"system.defect is {sy.defect!r}")
    for name, value in (("vacancy_index", sy.vacancy_index), ("defect_seed", sy.defect_seed)):
        if value is not None and sy.defect not in ("vacancy", "frenkel"):
            raise _fail(s, f"system.{name}", f"chooses the vacant site (defect vacancy or frenkel); system.defect is "
                        f"{sy.defect!r}")
    if sy.vacancy_index is not None and sy.defect_seed is not None:
        raise _fail(s, "system.vacancy_index", "choose the vacant site by vacancy_index or by defect_seed, not both")
    if sy.vacancy_index is not None and sy.vacancy_index < 0:
        raise _fail(s, "system.vacancy_index", f"a 0-based site index is 0 or more, got {sy.vacancy_index}")
    if sy.defect_seed is not None and sy.defect_seed < 0:
        raise _fail(s, "system.defect_seed", f"a seed is 0 or more, got {sy.defect_seed}")


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
