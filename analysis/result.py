"""A study's result, typed and stored: what :func:`analysis.study.analyse_study` computes once and every reader
(``driver run``, ``python -m analysis.arrhenius``, ``analysis.compare``, the report, the planner) takes from it.

The types: :class:`StateResult` (one potential and temperature, replicas pooled: D ± σ per observable, the
events and window behind them, the thermodynamic :class:`Conditions`, a status), :class:`StudyAnalysis` (every
state, the runs not finished, the runs and their summaries) and :class:`Material` (what diffuses in what: "Li in
LiF (interstitial)", named in every title and table).

The store: ``<study>/study-result.json`` (strict JSON, written atomically) holds the state results and the key
they were computed under — per finished run its analysis cache key (:func:`analysis.runs.cache_key`: trajectory,
settings, code version), its summary file's size and modification time, and the study's analysis settings; the
host-stability table's signature (``stability.json``); and :data:`VERSION`. A reader whose key matches takes the
stored states as they are; a new or resumed run, a finished one, a changed setting, a damaged file (with a
warning) or a newer version of this code recomputes them (each run's own analysis is then still taken from beside
the run, see :mod:`analysis.runs`).

The observables (:data:`analysis.runs.OBSERVABLES`): ``li`` (every Li atom: the tracer D), ``defect`` (the defect
itself, followed on the crystal's sites), ``collective`` (the sum of all Li positions: the charge diffusivity).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Literal

from analysis.arrhenius import ENSEMBLES, NEVER_FITTED, Ensemble, Excluded
from analysis.diffusion import DiffusionEstimate, Diffusivity
from analysis.runs import RunAnalysis, run_analysis
from core.estimate import Estimate, ratio
from core.files import atomic_write_text, json_dumps
from core.rundir import RunDir, RunSummary
from inputs.structure import BUILTINS, structure_of

log = logging.getLogger(__name__)

#: bump when what is stored, or how the state results are computed from the runs' analyses, changes
VERSION = 1
RESULT_FILE = "study-result.json"
FORMAT = "lif-diffusion study result"

Status = Literal["ok", "few-events", "host-unstable", "no-diffusive-regime"]
#: a production pressure further than this from the study's target is flagged (1 kbar is ~0.25 % of volume in
#: LiF, ~0.1 % of the lattice constant: a few meV on a migration barrier)
PRESSURE_TOLERANCE_BAR = 1000.0
#: the observables (:data:`analysis.runs.OBSERVABLES`, in their order) in words, for titles and tables: templates
#: of the mobile species (``{mobile}``), filled by :func:`observable_label`
OBSERVABLE_LABELS = {"li": "all {mobile} (tracer)", "defect": "the defect", "collective": "collective"}


def observable_label(observable: str, mobile: str = "") -> str:
    """An observable in words for the ``mobile`` species (``all Li (tracer)``); without one (a table read back
    without its runs), ``all mobile atoms (tracer)``."""
    return OBSERVABLE_LABELS.get(observable, observable).format(mobile=mobile or "mobile atoms")


@dataclass(frozen=True)
class Material:
    """What diffuses in what: the ``mobile`` species in the host crystal of reduced ``formula`` with a ``defect``
    (``interstitial``, ``vacancy``, ``frenkel`` or ``none``)."""

    formula: str
    mobile: str
    defect: str

    @property
    def label(self) -> str:
        """``Li in LiF (interstitial)``."""
        return f"{self.mobile} in {self.formula}" + ("" if self.defect == "none" else f" ({self.defect})")

    @property
    def paper_system(self) -> bool:
        """The system of arXiv 2510.05020 (an interstitial Li in LiF): the only one its values are shown for."""
        return self == PAPER_SYSTEM


#: arXiv 2510.05020's system: an interstitial of rock-salt LiF's mobile species (Li) in LiF
PAPER_SYSTEM = Material(BUILTINS["LiF"].name, BUILTINS["LiF"].mobile, "interstitial")


def material_of(record: dict) -> Material:
    """The :class:`Material` of a run's structure record (``structure.json``): the perfect crystal's reduced
    formula (:attr:`inputs.structure.StructureRecord.material`), its mobile species and its defect."""
    st = structure_of(record)
    return Material(st.material, st.mobile, st.defect_kind)


@dataclass(frozen=True)
class Conditions:
    """The thermodynamic state of a state point's runs (their :class:`core.rundir.StatePoint`, pooled over
    replicas): the lattice constant (Å; None where the cell has none, a non-cubic host) and the production pressure
    (bar), each ± 1σ (the lattice constant's σ None where the study fixed the volume); ``target_pressure_bar`` is
    the NPT stage's pressure, None where the study fixed the volume."""

    lattice_constant_angstrom: Estimate | None
    pressure_bar: Estimate
    target_pressure_bar: float | None

    @property
    def pressure_flag(self) -> str:
        if self.target_pressure_bar is None:
            return ""
        p = self.pressure_bar
        off = abs(p.value - self.target_pressure_bar)
        if off > PRESSURE_TOLERANCE_BAR and off > 3 * (p.stderr or 0.0):
            return f"production pressure {p.value:.0f} bar is far from the target {self.target_pressure_bar:g} bar"
        return ""

    def columns(self) -> dict:
        """The table's columns (``lattice_constant_angstrom``, ``..._stderr_angstrom``, ``pressure_bar``, ...)."""
        a = self.lattice_constant_angstrom
        return {"lattice_constant_angstrom": a and a.value, "lattice_constant_stderr_angstrom": a and a.stderr,
                "pressure_bar": self.pressure_bar.value, "pressure_stderr_bar": self.pressure_bar.stderr,
                "target_pressure_bar": self.target_pressure_bar}

    def to_dict(self) -> dict:
        a = self.lattice_constant_angstrom
        return {"lattice_constant_angstrom": a and a.to_dict(), "pressure_bar": self.pressure_bar.to_dict(),
                "target_pressure_bar": self.target_pressure_bar}

    @classmethod
    def from_dict(cls, d: dict) -> Conditions:
        a, target = d["lattice_constant_angstrom"], d["target_pressure_bar"]
        return cls(None if a is None else Estimate.from_dict(a), Estimate.from_dict(d["pressure_bar"]),
                   None if target is None else float(target))


@dataclass(frozen=True)
class StateResult:
    """One state point (potential, temperature), its replicas pooled: an estimate per observable (``li``,
    ``defect``, ``collective``; None where there is none), the events and window behind them, and its status.
    ``stability``: why the host is not a stable crystal at this temperature (``stability.json``), else empty; such
    a state keeps its numbers but has the status ``host-unstable`` and stays out of Arrhenius fits."""

    potential: str
    temperature_k: float
    estimates: dict[str, DiffusionEstimate | None]
    run_dirs: tuple[str, ...]
    n_li: int
    n_defects: int
    events: int | None
    window_ps: tuple[float, float] | None
    status: Status
    reason: str
    conditions: Conditions | None = None
    off_site_fraction: float | None = None
    ensemble: Ensemble = "npt"
    series: str = ""  # the Arrhenius series the state belongs to (default: the potential)
    stability: str = ""

    def __post_init__(self) -> None:
        if not self.series:
            object.__setattr__(self, "series", self.potential)

    @property
    def flags(self) -> list[str]:
        out = [self.reason] if self.status != "ok" else []
        if self.stability and self.status != "host-unstable":  # a state without a diffusive regime says both
            out.append(self.stability)
        if self.conditions is not None and self.conditions.pressure_flag:
            out.append(self.conditions.pressure_flag)
        return out

    @property
    def simulated_ps(self) -> float | None:
        """The simulated time behind the state's estimates (ps, replicas summed; None: no estimate)."""
        return next((e.simulated_ps for e in self.estimates.values() if e is not None), None)

    def point(self, observable: str) -> Diffusivity | None:
        e = self.estimates.get(observable)
        return None if e is None else Diffusivity(self.temperature_k, e.d_cm2_s, e.d_stderr_cm2_s, e.dof)

    def value(self, observable: str) -> Estimate | None:
        e = self.estimates.get(observable)
        return None if e is None else e.estimate

    @property
    def per_defect_d(self) -> Estimate | None:
        """N_Li · D_Li per defect (cm²/s): the all-Li tracer D of one defect's motion, free of the cell size."""
        v = self.value("li")
        return None if v is None or not self.n_defects else v.scaled(self.n_li / self.n_defects)

    @property
    def collective_d(self) -> Estimate | None:
        """D_σ, the collective (charge) diffusivity per Li (cm²/s): the collective coordinate's D over N_Li."""
        v = self.value("collective")
        return None if v is None else v.scaled(1 / self.n_li)

    @property
    def haven_ratio(self) -> Estimate | None:
        """H_R = D_tracer / D_σ."""
        return ratio(self.value("li"), self.collective_d)

    @property
    def haven_ratio_defect(self) -> Estimate | None:
        """H_R = N_Li·D_tracer / D_defect per defect: the Haven ratio where the charge moves with the defect
        (D_σ = D_defect / N_Li, as for one interstitial or vacancy), from the two better-determined D."""
        return ratio(self.per_defect_d, self.value("defect"))

    @property
    def undetermined(self) -> list[str]:
        """The derived quantities whose 1σ is as large as themselves: to be shown as undetermined, not as numbers."""
        return [name for name in ("collective_d", "haven_ratio", "haven_ratio_defect")
                if (v := getattr(self, name)) is not None and v.undetermined]

    def to_dict(self, study_dir: Path) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["estimates"] = {k: None if e is None else asdict(e) for k, e in self.estimates.items()}
        d["run_dirs"] = [relative(r, study_dir) for r in self.run_dirs]
        d["conditions"] = None if self.conditions is None else self.conditions.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict, study_dir: Path) -> StateResult:
        d = dict(d)
        d["estimates"] = {k: None if e is None else DiffusionEstimate(**(e | {"d_replicas_cm2_s": tuple(
            e["d_replicas_cm2_s"])})) for k, e in d["estimates"].items()}
        d["run_dirs"] = tuple(str(RunDir(study_dir / r)) for r in d["run_dirs"])
        d["window_ps"] = None if d["window_ps"] is None else tuple(d["window_ps"])
        d["conditions"] = None if d["conditions"] is None else Conditions.from_dict(d["conditions"])
        if d["status"] not in ("ok", "few-events", "host-unstable", "no-diffusive-regime"):
            raise ValueError(f"status {d['status']!r}")
        return cls(**d)


@dataclass(frozen=True)
class PendingRun:
    run_dir: str
    status: str

    def __str__(self) -> str:
        return f"{self.run_dir} ({self.status})"


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything known about a study directory: the state points, runs not finished yet, and the runs'
    summaries; each finished run's own analysis (MSD statistics, for the report's curves) on demand."""

    study_dir: Path
    study_name: str
    selection: str  # the observable the Arrhenius fit uses (the study's analysis.selection)
    results: list[StateResult]
    pending: list[PendingRun]
    runs: list[tuple[RunDir, RunSummary]] = field(default_factory=list)

    @cached_property
    def analyses(self) -> dict[str, RunAnalysis]:
        """The analysis of every run behind a state, by run directory (each from its store beside the run)."""
        summaries = {str(r): s for r, s in self.runs}
        return {d: run_analysis(d, summaries.get(d)) for st in self.results for d in st.run_dirs}

    @cached_property
    def materials(self) -> list[Material]:
        """The materials of the study's runs (one, unless runs of different systems share the directory)."""
        return list(dict.fromkeys(material_of(s.structure) for _, s in self.runs))

    @cached_property
    def series_of_run(self) -> dict[str, str]:
        """Run directory -> the Arrhenius series of its state."""
        return {d: r.series for r in self.results for d in r.run_dirs}

    @property
    def mobile(self) -> str:
        """The mobile species of the study's runs, for labels: ``Li`` (``Li, Na`` where runs of different systems
        share the directory; empty without runs)."""
        return ", ".join(dict.fromkeys(m.mobile for m in self.materials))

    @property
    def material(self) -> str:
        """The material in words, for titles: ``Li in LiF (interstitial)``."""
        return ", ".join(m.label for m in self.materials)

    @property
    def paper_system(self) -> bool:
        """Whether every run is of the paper's system (its values are shown for that system only)."""
        return bool(self.materials) and all(m.paper_system for m in self.materials)

    @property
    def unstable(self) -> list[StateResult]:
        """The states whose host is not a stable crystal (``stability.json``)."""
        return [r for r in self.results if r.stability]

    def points(self, observable: str | None = None, include_few_events: bool = False
               ) -> tuple[dict[str, list[Diffusivity]], dict[str, list[Excluded]]]:
        """The points an Arrhenius fit takes, per series, and the states left out with why: states with no
        diffusive regime or an unstable host always, few-event states unless ``include_few_events``."""
        observable = observable or self.selection
        points: dict[str, list[Diffusivity]] = {}
        excluded: dict[str, list[Excluded]] = {}
        for r in self.results:
            p = r.point(observable)
            why = ""
            if r.status in NEVER_FITTED or p is None:
                why = r.reason or f"no estimate of the {observable} diffusivity"
            elif r.status == "few-events" and not include_few_events:
                why = r.reason
            elif p.d_cm2_s <= 0:
                why = f"D = {p.d_cm2_s:.3g} cm²/s ≤ 0 has no logarithm (no motion resolved)"
            if why:
                excluded.setdefault(r.series, []).append(Excluded(r.temperature_k, why))
            else:
                points.setdefault(r.series, []).append(p)
        return points, excluded

    def ensembles(self) -> dict[str, dict]:
        """Per Arrhenius series: its potential, ensemble and what its Ea means, and the lattice constant (Å) at
        each temperature (the a(T) along which an ``npt`` Ea is taken; one value for ``nvt-fixed``)."""
        out: dict[str, dict] = {}
        for r in self.results:
            e = out.setdefault(r.series, {"potential": r.potential, "ensemble": r.ensemble,
                                          "meaning": ENSEMBLES[r.ensemble], "lattice_constant_angstrom": {}})
            if r.conditions is not None and r.conditions.lattice_constant_angstrom is not None:
                e["lattice_constant_angstrom"][f"{r.temperature_k:g}"] = r.conditions.lattice_constant_angstrom.value
        return out

    def lammps_builds(self) -> dict[str, list[str]]:
        """The LAMMPS builds the runs used (version and build id -> run directories); more than one in a study is
        worth a look (a cluster's LAMMPS for some runs, another for others)."""
        out: dict[str, list[str]] = {}
        for r, s in self.runs:
            if s.lammps is not None:
                out.setdefault(f"{s.lammps.version} ({s.lammps.build or s.lammps.executable})", []).append(str(r))
        return out


# --- the store ----------------------------------------------------------------------------------------------

def relative(run_dir: str, study_dir: Path) -> str:
    """A run directory relative to its study's (stored so, a study can be moved or reached by another path)."""
    try:
        return Path(run_dir).relative_to(study_dir).as_posix()
    except ValueError:
        return Path(run_dir).resolve().relative_to(study_dir.resolve()).as_posix()


def normalised(key: dict) -> dict:
    """A key as it reads back from JSON (tuples as lists, non-finite numbers as null), so keys compare equal."""
    return json.loads(json_dumps(key))


def load(study_dir: Path, key: dict) -> list[StateResult] | None:
    """The stored state results if they were computed under ``key``; None otherwise (a damaged file: with a
    warning)."""
    path = study_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a study result")
        if doc.get("key") != normalised(key):
            log.info("%s: the runs or settings changed since it was written: the study is analysed again", path)
            return None
        return [StateResult.from_dict(d, study_dir) for d in doc["results"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("%s is damaged (%s): the study is analysed again", path, str(e)[:200])
        return None


def save(study_dir: Path, key: dict, results: list[StateResult]) -> None:
    """Keep the state results beside the runs (a read-only study is analysed again next time, with a warning)."""
    doc = {"format": FORMAT, "key": normalised(key), "units": {"diffusivity": "cm^2/s", "time": "ps",
                                                               "length": "Å", "pressure": "bar", "temperature": "K"},
           "results": [r.to_dict(study_dir) for r in results]}
    try:
        atomic_write_text(study_dir / RESULT_FILE, json_dumps(doc, indent=1) + "\n")
    except OSError as e:
        log.warning("cannot keep the study result in %s (%s); it will be recomputed next time", study_dir, e)

