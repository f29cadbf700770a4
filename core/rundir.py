"""The run directory: what a run holds, under which names, and its summary record.

A run directory (``runs/<study>/<potential>/T<T>K/seed<k>/``) is the unit every stage exchanges: the driver
renders it (deck, structure, summary), LAMMPS fills it (logs, trajectory segments, restart files), the driver
merges the segments, and the analysis reads it — possibly on another machine, after ``rsync``. This module is the
one place that spells its file names and reads or writes ``summary.json``; everybody else goes through
:class:`RunDir` and the typed, frozen :class:`RunSummary`.

=========================  =========================================================================================
``in.lammps``              the deck (``lmp -in in.lammps``; resume: ``-var resume 1 -var restart_from FILE``)
``data.lmp``               the structure as a LAMMPS data file
``structure.json``         what the structure is (cell, defect, the sites the analysis assigns atoms to)
``summary.json``           :class:`RunSummary`: status, what was asked, what ran, what came out
``traj.<k>.dump|dcd``      production trajectory segment written by attempt k; merged into ``traj.dump|dcd``
``fcom.<k>.txt``           the host sublattice's centre of mass (F in LiF) at every frame; merged into ``fcom.txt``
``configs.<k>.dump``       all atoms every ``md.config_interval_ps`` (samples for fine-tuning)
``log.<k>.lammps``         LAMMPS's log of attempt k
``restart.a.bin|b.bin``    alternating restart files; ``final.restart`` at the end
``analysis.json|npz``      the run's analysis (MSD, events ...), keyed by the trajectory it was computed from
=========================  =========================================================================================
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from core.config import from_dict, to_dict
from core.errors import InputError
from core.files import atomic_write_text

DECK = "in.lammps"
DATA = "data.lmp"
STRUCTURE = "structure.json"
SUMMARY = "summary.json"
LOCK = ".lock"
TRAJECTORY_PREFIX = "traj"
CONFIG_PREFIX = "configs"
RESTART_FILES = ("restart.a.bin", "restart.b.bin")
FINAL_RESTART = "final.restart"
ANALYSIS_JSON = "analysis.json"
ANALYSIS_NPZ = "analysis.npz"
FCOM_PREFIX = "fcom"
DONE_MARK = "LIF_DIFFUSION_DONE"  # the deck's last line prints it: LAMMPS reached the end
DEVICE_MARK = "LIF_DIFFUSION_DEVICE"  # a model prints where it computes: device precision kernels [name]
CELL_MARK = "LIF_DIFFUSION_CELL"  # the deck prints the cell of the NVT stages: xlo ylo zlo lx ly lz xy xz yz

DumpFormat = Literal["text", "dcd"]
DUMP_SUFFIX: dict[str, str] = {"text": "dump", "dcd": "dcd"}
Status = Literal["rendered", "running", "interrupted", "finished", "failed"]
SCHEMA = 2

_PACKAGES = ("lif-diffusion", "numpy", "scipy", "MDAnalysis", "jinja2", "lammps", "ase", "mace-torch", "deepmd-kit",
             "torch")


@dataclass(frozen=True)
class Stages:
    """The deck's stages as LAMMPS timesteps from 0: NPT (ends at 0 when the volume is fixed), NVT
    equilibration, production."""

    npt_end: int
    equilibration_end: int
    production_end: int

    @property
    def npt_half(self) -> int:
        return self.npt_end // 2


@dataclass(frozen=True)
class Requirements:
    """What LAMMPS must have to run the deck, and the extra command-line arguments it needs."""

    packages: tuple[str, ...] = ()
    styles: tuple[tuple[str, str], ...] = ()  # (category, style), e.g. ("pair", "born/coul/long")
    args: tuple[str, ...] = ()
    kokkos_gpu: bool = False  # the deck runs KOKKOS on a GPU: the build's KOKKOS must have a GPU backend


@dataclass(frozen=True)
class LammpsUsed:
    """The LAMMPS that ran (the last attempt): ``build`` identifies the build (executable, version, packages), so
    a study whose runs used different builds can be told apart."""

    executable: str
    version: str
    build: str = ""


@dataclass(frozen=True)
class StatePoint:
    """The thermodynamic state of the production run, measured from its LAMMPS log: the cell of the NVT stages
    (found by the NPT stage, or fixed by the study) with its lengths a, b, c, angles α, β, γ and volume per formula
    unit, the cubic lattice constant it corresponds to (built-in cubic crystals only: rock salt, antifluorite;
    None for a structure file's cell), and the mean production pressure and temperature, each with its 1σ standard
    error (block averages; the cell's over the NPT stage's second half, None where the study fixed it). Summaries
    written before other crystals existed lack the lengths, angles and volume per formula unit (None)."""

    cell_angstrom: tuple[float, float, float, float, float, float]  # lx ly lz xy xz yz
    origin_angstrom: tuple[float, float, float]  # xlo ylo zlo
    volume_a3: float
    lattice_constant_angstrom: float | None  # None: no cubic lattice constant (a structure file's cell)
    lattice_constant_stderr_angstrom: float | None  # None: fixed by the study
    pressure_bar: float
    pressure_stderr_bar: float | None
    temperature_k: float
    temperature_stderr_k: float | None
    samples: int  # thermo rows of the production run behind the means
    cell_lengths_angstrom: tuple[float, float, float] | None = None  # a b c
    cell_angles_deg: tuple[float, float, float] | None = None  # α (b, c) β (a, c) γ (a, b)
    volume_per_formula_unit_a3: float | None = None
    volume_per_formula_unit_stderr_a3: float | None = None  # None: fixed by the study


@dataclass(frozen=True)
class Outputs:
    """What a finished run left: the merged trajectory and its extent in LAMMPS steps."""

    trajectory: str
    format: DumpFormat
    frames: int
    first_step: int | None
    last_step: int | None
    final_restart: str
    logs: tuple[str, ...]


PrecisionOutcome = Literal["running", "met", "cap-reached", "rounds-exhausted"]


@dataclass(frozen=True)
class Extension:
    """One extension of a production run toward a precision target: asked in round ``round`` of the precision
    loop (driver/precision.py), from the step where the run had ended to ``to_step``; resumed from its restart
    file, so the run stays one continuous trajectory."""

    round: int
    from_step: int
    to_step: int
    requested: str


@dataclass(frozen=True)
class PrecisionRecord:
    """A run under a precision target (the study's ``[precision]``): the target in words, the production length
    (ps) the run has reached or is being extended to, whether the target was met (``met``), given up at the cap
    (``cap-reached``) or after ``max_rounds`` extension rounds (``rounds-exhausted``) or not decided yet
    (``running``), and the extensions asked."""

    target: str
    production_ps: float
    outcome: PrecisionOutcome = "running"
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """``summary.json``: everything needed to trace a number back to its inputs, and the run's state.

    Rendering fixes the first block (what the run is); running adds the second (what happened). ``config`` is
    the resolved study (re-read as a typed study by :func:`inputs.study.study_of`), ``structure`` what
    ``structure.json`` holds (re-read typed by :func:`inputs.structure.structure_of`), ``potential_entry`` the
    catalog entry; those three are provenance records."""

    status: Status
    fingerprint: str
    created: str
    study: str
    study_source: str
    potential: str
    family: str
    temperature_k: float
    seed: int
    timestep_fs: float
    stages: Stages
    dump_format: DumpFormat
    config: dict[str, Any]
    structure: dict[str, Any]
    potential_entry: dict[str, Any]
    requirements: Requirements
    inputs: dict[str, dict[str, Any]]
    versions: dict[str, str]
    git: str | None = None
    schema: int = SCHEMA
    updated: str | None = None
    started: str | None = None
    finished: str | None = None
    pid: int | None = None
    lammps: LammpsUsed | None = None
    error: str | None = None
    failure_class: str | None = None
    wall_s: float | None = None
    outputs: Outputs | None = None
    segments: int = 0
    state: StatePoint | None = None
    settings: dict[str, str] = dataclasses.field(default_factory=dict)  # how the potential computes (rendered)
    device: str | None = None  # where the model computed (as it reported), and the CUDA_VISIBLE_DEVICES it had
    precision: PrecisionRecord | None = None  # a run extended toward the study's precision target

    @property
    def done(self) -> bool:
        return self.status == "finished"

    @property
    def production_ps(self) -> float:
        """The production length (ps) the run has, or is being extended to (``stages.production_end``)."""
        return self.production_ps_to(self.stages.production_end)

    def production_ps_to(self, end_step: int) -> float:
        """The production length (ps) of this run were it to end at step ``end_step``."""
        return (end_step - self.stages.equilibration_end) * self.timestep_fs / 1000.0


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def temperature_label(t: float) -> str:
    """The directory of a temperature: ``T400K``, ``T412.5K`` (6 significant digits; a study refuses two
    temperatures that share one)."""
    return f"T{int(t)}K" if float(t).is_integer() else f"T{t:g}K"


def trajectory_name(fmt: str) -> str:
    """The merged Li trajectory of a finished run: ``traj.dump`` (text) or ``traj.dcd``."""
    return f"{TRAJECTORY_PREFIX}.{DUMP_SUFFIX[fmt]}"


@dataclass(frozen=True)
class RunDir:
    """A run directory and the names of everything in it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __str__(self) -> str:
        return str(self.path)

    # --- names ---------------------------------------------------------------------------------------------
    @property
    def deck(self) -> Path:
        return self.path / DECK

    @property
    def data(self) -> Path:
        return self.path / DATA

    @property
    def structure_file(self) -> Path:
        return self.path / STRUCTURE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK

    def trajectory(self, fmt: str) -> Path:
        return self.path / trajectory_name(fmt)

    def segment(self, k: int, fmt: str) -> Path:
        return self.path / f"{TRAJECTORY_PREFIX}.{k}.{DUMP_SUFFIX[fmt]}"

    def segments(self, fmt: str) -> list[int]:
        """Numbers of the trajectory segments present, in order."""
        return self._numbered(TRAJECTORY_PREFIX, DUMP_SUFFIX[fmt])

    def fcom_segment(self, k: int) -> Path:
        return self.path / f"{FCOM_PREFIX}.{k}.txt"

    def fcom_segments(self) -> list[int]:
        return self._numbered(FCOM_PREFIX, "txt")

    @property
    def fcom(self) -> Path:
        """The host sublattice's centre of mass (the F ions of LiF) (unwrapped, Å) at every production frame:
        ``step x y z`` rows."""
        return self.path / f"{FCOM_PREFIX}.txt"

    def config_dumps(self) -> list[Path]:
        return [self.path / f"{CONFIG_PREFIX}.{k}.dump" for k in self._numbered(CONFIG_PREFIX, "dump")]

    def log(self, k: int) -> Path:
        return self.path / f"log.{k}.lammps"

    def logs(self) -> list[Path]:
        return [self.log(k) for k in self._numbered("log", "lammps")]

    def restarts(self) -> list[Path]:
        """Non-empty restart files, newest first (the final one too: an extended run resumes from it)."""
        files = [self.path / f for f in (*RESTART_FILES, FINAL_RESTART)
                 if (self.path / f).is_file() and (self.path / f).stat().st_size]
        return sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)

    @property
    def analysis_json(self) -> Path:
        return self.path / ANALYSIS_JSON

    @property
    def analysis_npz(self) -> Path:
        return self.path / ANALYSIS_NPZ

    def _numbered(self, prefix: str, suffix: str) -> list[int]:
        out = []
        for p in self.path.glob(f"{prefix}.*.{suffix}"):
            k = p.name[len(prefix) + 1:-len(suffix) - 1]
            if k.isdigit():
                out.append(int(k))
        return sorted(out)

    # --- the summary ---------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.summary_file.is_file()

    def read(self) -> RunSummary:
        path = self.summary_file
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{self.path} is not a run directory (no {SUMMARY})") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}): a damaged summary; render "
                             "the run again") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise InputError(f"{path} has summary schema {doc.get('schema') if isinstance(doc, dict) else '?'}, "
                             f"this lif-diffusion reads schema {SCHEMA}: render the study again (a new --root)")
        return from_dict(RunSummary, doc, str(path))

    def write(self, summary: RunSummary) -> RunSummary:
        summary = dataclasses.replace(summary, schema=SCHEMA, updated=now())
        atomic_write_text(self.summary_file, json.dumps(to_dict(summary), indent=2) + "\n")
        return summary

    def update(self, **changes: Any) -> RunSummary:
        return self.write(dataclasses.replace(self.read(), **changes))

    def trajectory_of(self, summary: RunSummary) -> Path:
        return self.trajectory(summary.dump_format)

    def is_finished(self, summary: RunSummary) -> bool:
        return summary.done and self.trajectory_of(summary).is_file()


def find_runs(study_dir: str | Path) -> list[tuple[RunDir, RunSummary]]:
    """Every run directory below ``study_dir`` (found by its summary) with its summary, in path order.

    Staging directories of a render that was killed (names starting with '.') are skipped."""
    study_dir = Path(study_dir)
    runs = []
    for s in sorted(study_dir.glob(f"**/{SUMMARY}")):
        if any(part.startswith(".") for part in s.relative_to(study_dir).parts):
            continue
        run = RunDir(s.parent)
        runs.append((run, run.read()))
    if not runs:
        raise InputError(f"{study_dir} holds no run directories (no {SUMMARY} below it)")
    return runs
