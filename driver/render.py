"""Render a study into run directories: ``<root>/<study>/<potential>/T<T>K/seed<k>/``.

Each run directory holds the deck (``in.lammps``), the structure (``data.lmp`` and ``structure.json``) and
``summary.json``. Everything is validated before anything is written, and each directory appears whole (it is
built in a staging directory and renamed), so bad input never leaves a half-written run behind. Re-rendering
an unchanged study leaves started runs alone; a changed deck over a started run is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core import rundir
from core.config import to_dict
from core.errors import InputError, ModelMissingError, PotentialError
from core.files import atomic_write_text, sha256_file
from core.rundir import RunDir, RunSummary, temperature_label
from inputs.structure import Structure, charges_for, check_cutoff, write_lammps_data, write_structure_json
from inputs.study import Study
from inputs.system import System, build_structure, structure_path, system_of
from potentials.base import Compute, PairBlock
from potentials.catalog import PotentialEntry, resolve
from templates import render

log = logging.getLogger(__name__)

DECK_TEMPLATE = "md.lammps.j2"


@dataclass(frozen=True)
class RunSpec:
    potential: str
    temperature_k: float
    seed: int
    ladder: str = ""  # "": the study's own ladder; else the folder of a ladder beside it (fixed-a<Å>)

    @property
    def relpath(self) -> Path:
        return Path(self.potential, self.ladder) / temperature_label(self.temperature_k) / f"seed{self.seed}"


def plan(study: Study, ladder: str = "") -> list[RunSpec]:
    return [RunSpec(p, t, s, ladder) for p in study.potentials for t in study.temperatures_k for s in study.seeds]


def ladders(study: Study) -> list[tuple[Study, str]]:
    """The study's ladders and their folders: its own (""), and with ``system.fixed_beside_angstrom`` the
    fixed-volume one beside it (``<potential>/fixed-a<a>/T.../seed...``), a study of its own in every record."""
    fixed = study.fixed_ladder()
    if fixed is None:
        return [(study, "")]
    return [(study, ""), (fixed, f"fixed-a{fixed.system.lattice_constant_angstrom:.4f}")]


def deck_context(study: Study, run: RunSpec, block: PairBlock, system: System | None = None) -> dict:
    """The deck's variables. Atoms are grouped by role, not element: ``mobile`` (dumped) and ``host`` (whose centre
    of mass is the lattice's frame), from the study's :class:`inputs.system.System` (built here unless given)."""
    md, sy = study.md, study.system
    system = system_of(study) if system is None else system
    stages = md.stages(sy.volume)
    dump_every = md.steps(md.dump_interval_ps, "dump_interval_ps")
    return {
        "title": f"{'NPT + ' if stages.npt_end else ''}NVT {run.potential} {run.temperature_k:g} K seed {run.seed}: "
                 f"{system.material} {'x'.join(map(str, sy.supercell))} {system.cell_label} cells with {sy.defect}",
        "study": study.name,
        "deck_name": rundir.DECK,
        "potential": run.potential,
        "atom_style": "charge" if block.charges is not None else "atomic",
        "data_file": rundir.DATA,
        "pair_lines": block.lines,
        "mobile": system.mobile,
        "host": " ".join(system.host),
        "mobile_type": system.mobile_type,
        "host_types": " ".join(map(str, system.host_types)),
        "timestep_ps": md.timestep_fs / 1000.0,
        "temperature_k": run.temperature_k,
        "damping_ps": md.thermostat_damping_ps,
        "seed": run.seed,
        "momentum_every": dump_every,
        "thermo_every": md.steps(md.thermo_interval_ps, "thermo_interval_ps"),
        "restart_every": md.steps(md.restart_interval_ps, "restart_interval_ps"),
        "restart_files": rundir.RESTART_FILES,
        "npt": stages.npt_end > 0,
        "pressure_bar": md.pressure_bar,
        "barostat_damping_ps": md.barostat_damping_ps,
        "npt_half_step": stages.npt_half,
        "npt_end_step": stages.npt_end,
        "npt_average_steps": stages.npt_end - stages.npt_half,
        "triclinic": system.triclinic,  # e.g. the rhombohedral cell: a triclinic LAMMPS box
        "cell_mark": rundir.CELL_MARK,
        "equilibration_end_step": stages.equilibration_end,
        "production_end_step": stages.production_end,
        "dump_every": dump_every,
        "dump_prefix": rundir.TRAJECTORY_PREFIX,
        "fcom_prefix": rundir.FCOM_PREFIX,
        "dump_format": md.dump_format,
        "config_every": md.steps(md.config_interval_ps, "config_interval_ps"),
        "config_prefix": rundir.CONFIG_PREFIX,
        "final_restart": rundir.FINAL_RESTART,
        "done_mark": rundir.DONE_MARK,
    }


def render_deck(study: Study, run: RunSpec, block: PairBlock, system: System | None = None) -> str:
    return render(DECK_TEMPLATE, **deck_context(study, run, block, system))


def study_config(study: Study) -> dict:
    """The resolved study as the run summary keeps it (read back with inputs.study.study_of): a structure file's
    path is kept resolved, so the record does not depend on where the study file was."""
    d = to_dict(study)
    d.pop("source")  # where it was read from: the summary's study_source
    path = structure_path(study)
    if path is not None:
        d["system"]["structure"] = str(path)
    return d


def compute_of(study: Study, accelerator: str = "cpu") -> Compute:
    """How the study's ML potentials compute on this accelerator (``cpu``, ``cuda``, ``kokkos``)."""
    return Compute(accelerator=accelerator, precision=study.mace.precision,  # type: ignore[arg-type]
                   cuequivariance=study.mace.cuequivariance)


def resolve_potentials(study: Study, structure: Structure, accelerator: str = "cpu"
                       ) -> dict[str, tuple[PotentialEntry, PairBlock]]:
    """The study's potentials, checked against the structure (elements, cutoff) before any file is written.

    A potential whose model file is absent here is left out with a warning, so the study runs the rest."""
    out, missing = {}, []
    try:
        compute = compute_of(study, accelerator)
    except PotentialError as e:
        raise PotentialError(f"{study.source}: {e}") from None
    for name in study.potentials:
        try:
            entry, block = resolve(name, structure.type_order, compute)
        except ModelMissingError as e:
            missing.append(str(e))
            log.warning("%s; its runs are left out", e)
            continue
        except PotentialError as e:  # name the study file and field
            raise PotentialError(f"{study.source}: potentials: {e}") from None
        try:
            check_cutoff(structure, block.cutoff_angstrom, f"potential {name!r}")
        except InputError as e:
            raise InputError(f"{study.source}: system.supercell {list(study.system.supercell)}: {e}") from None
        out[name] = (entry, block)
    if not out:
        raise PotentialError(f"no potential of study {study.name!r} can run here: {'; '.join(missing)}")
    return out


def render_study(study: Study, root: str | Path = "runs", accelerator: str = "cpu") -> list[Path]:
    """Write every run directory of ``study`` under ``root/<study>/``; returns their paths in plan order."""
    structure = build_structure(study)
    resolved = resolve_potentials(study, structure, accelerator)
    system = system_of(study, structure)
    decks, of = {}, {}
    for ladder, folder in ladders(study):
        built = structure if ladder is study else build_structure(ladder)
        if ladder is not study:  # a smaller fixed cell must still hold each potential's cutoff
            for name, (_, block) in resolved.items():
                try:
                    check_cutoff(built, block.cutoff_angstrom, f"potential {name!r}")
                except InputError as e:
                    raise InputError(f"{study.source}: system.fixed_beside_angstrom: {e}") from None
        for run in plan(ladder, folder):
            if run.potential in resolved:
                decks[run] = render_deck(ladder, run, resolved[run.potential][1], system)
                of[run] = (ladder, built)
    # model files can be large: hash each once per potential, for the fingerprints and the summaries
    sums = {name: {f: sha256_file(Path(f)) for f in block.files} for name, (_, block) in resolved.items()}
    prints = {run: fingerprint(deck, of[run][1], resolved[run.potential][1], sums[run.potential],
                               study.system.charge_compensation) for run, deck in decks.items()}
    study_dir = Path(root) / study.name
    for run in decks:  # refuse before writing anything
        _check_existing(study_dir / run.relpath, prints[run])
    paths = []
    for run, deck in decks.items():
        entry, block = resolved[run.potential]
        ladder, built = of[run]
        paths.append(_write_run(study_dir / run.relpath, ladder, run, deck, built, entry, block, prints[run],
                                sums[run.potential]))
    return paths


def fingerprint(deck: str, structure: Structure, block: PairBlock, file_sums: dict[str, str],
                compensation: str) -> str:
    """What makes a run what it is: its deck, its structure and its interactions (model files by checksum).
    Provenance (package versions, git revision) is not part of it."""
    doc = json.dumps({"deck": deck, "structure": structure.describe(),
                      "positions": structure.positions.round(10).tolist(), "charges": block.charges,
                      "compensation": compensation if block.charges else None, "files": file_sums},
                     sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def _check_existing(run_dir: Path, print_: str) -> None:
    run = RunDir(run_dir)
    if not run.exists():
        return
    s = run.read()
    if s.fingerprint != print_ and s.status != "rendered":
        raise InputError(f"{run_dir} already holds a {s.status} run of a different deck, structure or "
                         f"model; render the changed study under a new name or remove that directory")


def _write_run(run_dir: Path, study: Study, run: RunSpec, deck: str, structure: Structure,
               entry: PotentialEntry, block: PairBlock, print_: str, file_sums: dict[str, str]) -> Path:
    if RunDir(run_dir).exists() and RunDir(run_dir).read().fingerprint == print_:
        return run_dir  # unchanged: leave a started or finished run alone
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = RunDir(Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent)))
    try:
        atomic_write_text(stage.deck, deck)
        charges = None if block.charges is None else \
            charges_for(structure, block.charges, study.system.charge_compensation)
        write_lammps_data(structure, stage.data, charges=charges)
        write_structure_json(structure, stage.structure_file)
        md = study.md
        summary = RunSummary(
            status="rendered", fingerprint=print_, created=rundir.now(), study=study.name,
            study_source=study.source, potential=run.potential, family=entry.family,
            temperature_k=run.temperature_k, seed=run.seed, timestep_fs=md.timestep_fs,
            stages=md.stages(study.system.volume),
            dump_format=md.dump_format, config=study_config(study), structure=structure.describe(),
            potential_entry=json.loads(json.dumps(entry.record(), default=str)), requirements=block.requirements,
            inputs={p.name: {"sha256": sha256_file(p)} for p in (stage.deck, stage.data)}
            | {Path(f).name: {"path": f, "sha256": digest} for f, digest in file_sums.items()},
            versions=rundir.versions(), git=rundir.git_revision(), settings=dict(block.settings))
        stage.write(summary)
        if run_dir.exists():  # a rendered-only run whose deck changed: replace it whole
            shutil.rmtree(run_dir)
        stage.path.rename(run_dir)
    finally:
        if stage.path.exists():
            shutil.rmtree(stage.path, ignore_errors=True)
    return run_dir
