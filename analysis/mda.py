r"""The project's diffusion estimate as an MDAnalysis analysis: D with an honest 1σ from any Universe.

:class:`DiffusionAnalysis` follows MDAnalysis's own pattern (:class:`MDAnalysis.analysis.base.AnalysisBase`):
the constructor takes the atoms and the settings, :meth:`run` chooses the frames (``start``, ``stop``, ``step``,
``frames``; ``verbose=True`` shows a progress bar), ``_single_frame`` only collects positions, and ``_conclude``
computes. Underneath it calls the very functions ``python -m analysis.diffusion`` and the study analysis call
(:func:`analysis.diffusion.msd_stats`, :func:`analysis.diffusion.estimate`, :func:`analysis.diffusion.running_d`,
:func:`analysis.hops.hop_window`, :func:`analysis.sites.track_defect`, :func:`analysis.study.choose_window`), so a
notebook, the command line and ``make report`` give the same D on the same trajectory.

Any format MDAnalysis reads will do (XTC, TRR, NetCDF, H5MD, DCD, LAMMPS dumps) as long as the coordinates are
**unwrapped**: a wrapped coordinate jumps by a box length when it crosses the boundary, which is refused where
the Universe has a box. For a LAMMPS text dump say so, and give the MD timestep (MDAnalysis dates a dump frame
``step × dt``)::

    u = mda.Universe("traj.dump", format="LAMMPSDUMP", lammps_coordinate_convention="unwrapped", dt=0.001)

Times. The time between frames comes from the Universe (``ts.time``), or from ``dt_ps`` (the time between
consecutive frames of the trajectory, before ``step``) where the file's times are wrong — a LAMMPS DCD read with
MDAnalysis's default units, say. The estimator needs evenly spaced frames; times stored in float32 (XTC) are
accepted within their rounding.

The window. ``window_ps=(start, end)`` fixes it. Otherwise, given the crystal's ``sites`` (:class:`Sites`), the
defect is followed on them and the window starts ``events_before_window`` mean times between its events into the
trajectory (as in a study); without sites it starts ``EVENTS_BEFORE_WINDOW`` mean times between hops counted
without a lattice (as on the command line). It ends at half the trajectory. Where there is no diffusive regime
``results.d_cm2_s`` is None and ``results.reason`` says why.

Results (``results.*``; D in cm²/s, every ``*_stderr_*`` a 1σ standard error):

- ``d_cm2_s``, ``d_stderr_cm2_s``, ``d_ci95_low_cm2_s``, ``d_ci95_high_cm2_s``, ``dof``: the tracer D of the
  selected atoms; ``estimates``: the :class:`analysis.diffusion.DiffusionEstimate` per observable (``atoms``,
  ``collective``, and ``defect`` with sites);
- ``window_ps``, ``status`` (``ok``, ``few-events``, ``no-diffusive-regime``) and ``reason``;
- ``timeseries`` (the MSD per atom, Å², as :class:`MDAnalysis.analysis.msd.EinsteinMSD` names it) at
  ``lag_times_ps``; ``running_time_ps`` and ``running_d_cm2_s``, the local slope of the MSD / 6, flat where the
  window should sit;
- ``collective_d_cm2_s`` and ``collective_d_stderr_cm2_s``: the collective (charge) diffusivity per atom;
- with sites: ``defect_d_cm2_s``, ``defect_d_stderr_cm2_s``, ``events``, ``defect_positions`` (the defect's
  unwrapped path, Å), ``defect_site`` (its site per frame), ``defect_running_d_cm2_s``, ``off_site_fraction``;
- ``frame_interval_ps`` and ``n_atoms``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from MDAnalysis.analysis.base import AnalysisBase

from analysis.diffusion import DiffusionEstimate, collective, estimate, msd_stats, running_d
from analysis.hops import hop_window
from analysis.runs import RunAnalysis, production_cell
from analysis.sites import track_defect
from analysis.study import MELTED_FRACTION, choose_window
from analysis.trajectory import Trajectory, check_unwrapped
from core.errors import AnalysisError
from inputs.structure import structure_of
from inputs.study import AnalysisSpec

log = logging.getLogger(__name__)

#: the observables, named as the study analysis names them (its ``li`` is this class's selected ``atoms``)
STUDY_NAMES = {"atoms": "li", "defect": "defect", "collective": "collective"}
DEFECT_KINDS = ("interstitial", "vacancy", "frenkel")


@dataclass(frozen=True)
class Sites:
    """The perfect crystal's Li sites, on which the defect is followed (:mod:`analysis.sites`): ``lattice`` and
    ``interstitial`` sites in fractional coordinates of ``cell`` (rows a, b, c in Å; None: the box of the first
    analysed frame), ``origin`` (Å) and the ``defect_kind`` (interstitial, frenkel: the excess Li; vacancy: the
    empty site). A constant shift between the Universe's coordinates and the sites (readers that move the
    origin) is found and removed from the first frame."""

    lattice: np.ndarray
    interstitial: np.ndarray
    defect_kind: str
    cell: np.ndarray | None = None
    origin: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.defect_kind not in DEFECT_KINDS:
            raise AnalysisError(f"defect_kind {self.defect_kind!r}: the defect to follow must be one of "
                                f"{', '.join(DEFECT_KINDS)}")
        for name in ("lattice", "interstitial"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.ndim != 2 or value.shape[1] != 3 or len(value) == 0:
                raise AnalysisError(f"Sites.{name} must be fractional coordinates of shape (n, 3), got "
                                    f"{value.shape}")
            object.__setattr__(self, name, value)
        if self.cell is not None:
            cell = np.asarray(self.cell, dtype=float)
            if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-9:
                raise AnalysisError(f"Sites.cell must be a 3×3 matrix of cell rows a, b, c in Å, got {cell.tolist()}")
            object.__setattr__(self, "cell", cell)

    @classmethod
    def from_structure(cls, record: dict, cell=None, origin=None) -> "Sites":
        """The sites of a ``structure.json`` record (what :meth:`inputs.structure.Structure.describe` writes)."""
        st = structure_of(record)
        if st.li_sites is None or st.defect_kind == "none":
            raise AnalysisError("the structure has no defect or no crystal sites to follow it on")
        return cls(st.li_sites, st.interstitial_sites, st.defect_kind, cell, origin)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "Sites":
        """The sites and the production cell of a finished run directory, as the study analysis uses them."""
        from core.rundir import RunDir

        summary = RunDir(run_dir).read()
        box = production_cell(summary)
        if box is None:
            raise AnalysisError(f"{run_dir}: the run has no measured production cell (summary.json 'state')")
        return cls.from_structure(summary.structure, *box)


def study_settings(run_dir: str | Path) -> AnalysisSpec:
    """The ``[analysis]`` settings of the study a run directory belongs to (residence time, window rules)."""
    from core.rundir import RunDir
    from inputs.study import study_of

    run = RunDir(run_dir)
    return study_of(run.read().config, str(run.summary_file)).analysis


class DiffusionAnalysis(AnalysisBase):
    """The diffusivity of a group of atoms with its 1σ error, its running D(t) and window; given the crystal's
    ``sites``, also the defect's own D and its events (see the module docstring).

    Parameters
    ----------
    u : Universe or AtomGroup
        The atoms (not an UpdatingAtomGroup: the same atoms in every frame), with unwrapped coordinates in Å.
    select : str
        An MDAnalysis selection within ``u`` (default ``"all"``).
    dt_ps : float, optional
        The time between consecutive frames of the trajectory in ps; default: from the Universe's frame times.
    window_ps : (float, float), optional
        The fit window in ps; default: chosen from the events or hops.
    sites : Sites, optional
        The crystal's sites, to follow the defect.
    host : AtomGroup, optional
        The host sublattice (e.g. the F atoms, unwrapped): the displacement of its centroid since the first frame
        is removed from every frame, so that a drift of the whole crystal cannot pose as diffusion.
    spec : AnalysisSpec, optional
        A study's ``[analysis]`` settings (:func:`study_settings` reads a run's); default: the study defaults.
    residence_ps, events_before_window, min_window_start_ps, min_events
        The same settings one by one, overriding ``spec``.
    verbose : bool
        Log and show progress.
    """

    def __init__(self, u, select: str = "all", dt_ps: float | None = None,
                 window_ps: tuple[float, float] | None = None, sites: Sites | None = None, host=None,
                 spec: AnalysisSpec | None = None, residence_ps: float | None = None,
                 events_before_window: float | None = None, min_window_start_ps: float | None = None,
                 min_events: int | None = None, **kwargs):
        from MDAnalysis.core.groups import UpdatingAtomGroup

        if isinstance(u, UpdatingAtomGroup) or isinstance(host, UpdatingAtomGroup):
            raise AnalysisError("an UpdatingAtomGroup changes its atoms between frames; diffusion needs the same "
                                "atoms in every frame: select with updating=False")
        super().__init__(u.universe.trajectory, **kwargs)
        self.ag = u.select_atoms(select)
        if len(self.ag) == 0:
            raise AnalysisError(f"selection {select!r} matches no atoms")
        if host is not None and host.universe is not u.universe:
            raise AnalysisError("host must be an AtomGroup of the same Universe as the atoms analysed")
        if dt_ps is not None and not dt_ps > 0:
            raise AnalysisError(f"dt_ps must be positive, got {dt_ps}")
        if sites is not None and not isinstance(sites, Sites):
            raise AnalysisError(f"sites must be analysis.mda.Sites (from_run, from_structure), got {type(sites)}")
        given = {"window_ps": None if window_ps is None else tuple(float(v) for v in window_ps),
                 "residence_ps": residence_ps, "events_before_window": events_before_window,
                 "min_window_start_ps": min_window_start_ps, "min_events": min_events}
        self.spec = dataclasses.replace(spec or AnalysisSpec(), **{k: v for k, v in given.items() if v is not None})
        if self.spec.window_ps is not None and not 0 < self.spec.window_ps[0] < self.spec.window_ps[1]:
            raise AnalysisError(f"window_ps {self.spec.window_ps} must be (start, end) with 0 < start < end")
        self.dt_ps = dt_ps
        self.sites = sites
        self.host = host
        self.n_atoms = len(self.ag)

    def _prepare(self):
        self._positions = np.zeros((self.n_frames, self.n_atoms, 3), dtype=np.float32)
        self._host_centroid = np.zeros((self.n_frames, 3)) if self.host is not None else None
        self._box = None

    def _single_frame(self):
        self._positions[self._frame_index] = self.ag.positions
        if self._host_centroid is not None:
            self._host_centroid[self._frame_index] = self.host.positions.mean(axis=0, dtype=np.float64)
        if self._frame_index == 0 and self._ts.dimensions is not None:
            self._box = np.array(self._ts.triclinic_dimensions, dtype=np.float64)

    def _conclude(self):
        positions = self._positions
        if self._host_centroid is not None:
            drift = self._host_centroid - self._host_centroid[0]
            positions = positions - drift[:, None, :].astype(np.float32)
        if self._box is not None:
            check_unwrapped(positions, self._box, getattr(self._trajectory, "filename", None) or "the Universe")
        dt = frame_interval_ps(self.times if self.dt_ps is None else self.frames * self.dt_ps)
        log.info("%d frames %g ps apart, %d atoms", self.n_frames, dt, self.n_atoms)
        stats = {"atoms": msd_stats(positions, dt), "collective": msd_stats(collective(positions), dt)}
        track = None
        if self.sites is not None:
            cell = self.sites.cell if self.sites.cell is not None else self._box
            if cell is None:
                raise AnalysisError("the Universe has no box: give the crystal's cell in Sites(cell=...)")
            origin = self.sites.origin if self.sites.origin is not None else np.zeros(3)
            track = track_defect(positions, cell, np.asarray(origin, dtype=float), self.sites.lattice,
                                 self.sites.interstitial, self.sites.defect_kind,
                                 max(1, int(round(self.spec.residence_ps / dt))))
            stats["defect"] = msd_stats(track.positions[:, None, :], dt)
        window, status, reason = self._window(positions, dt, stats, track)
        estimates: dict[str, DiffusionEstimate | None] = {
            name: (estimate([s], *window, plateau=name == "collective") if window is not None else None)
            for name, s in stats.items()}  # the collective coordinate carries the optical vibration's plateau
        self._store(dt, stats, track, window, status, reason, estimates)

    def _window(self, positions, dt, stats, track) -> tuple[tuple[float, float] | None, str, str]:
        """The fit window and the status, as the study (with sites) or the command line (without) choose them."""
        if track is not None:
            record = RunAnalysis("universe", {STUDY_NAMES[k]: v for k, v in stats.items()}, self.n_atoms, 1,
                                 track.n_events, track.off_site_fraction, track.ambiguous_fraction, {})
            if track.off_site_fraction > MELTED_FRACTION:
                return None, "no-diffusive-regime", (f"{100 * track.off_site_fraction:.0f} % of the time is spent "
                                                     "off every crystal site: the host lattice has melted")
            window, why = choose_window(self.spec, [record])
            if window is None:
                return None, "no-diffusive-regime", why
            if track.n_events < self.spec.min_events:
                return window, "few-events", (f"few events ({track.n_events} < {self.spec.min_events}): D rests "
                                              "on too few migrations")
            return window, "ok", ""
        duration = stats["atoms"].duration_ps
        if self.spec.window_ps is not None:
            if self.spec.window_ps[1] > duration + 1e-9:
                raise AnalysisError(f"window_ps ends at {self.spec.window_ps[1]:g} ps, beyond the {duration:g} ps "
                                    "analysed")
            return self.spec.window_ps, "ok", ""
        times = np.arange(len(positions)) * dt
        start = hop_window([Trajectory(positions, times, np.arange(len(positions)), self.ag.indices, "universe")],
                           min_start_ps=self.spec.min_window_start_ps)
        return (start, duration / 2), "ok", ""

    def _store(self, dt, stats, track, window, status, reason, estimates):
        r = self.results
        main = estimates["atoms"]
        r.estimates = estimates
        r.window_ps, r.status, r.reason = window, status, reason
        r.frame_interval_ps, r.n_atoms = dt, self.n_atoms
        for field in ("d_cm2_s", "d_stderr_cm2_s", "d_ci95_low_cm2_s", "d_ci95_high_cm2_s", "dof"):
            setattr(r, field, None if main is None else getattr(main, field))
        if status == "no-diffusive-regime" or main is None:
            log.warning("no D: %s", reason or "no motion to fit")
        r.timeseries = stats["atoms"].msd
        r.lag_times_ps = stats["atoms"].lags_ps
        r.running_time_ps, r.running_d_cm2_s = running_d(stats["atoms"])
        coll = estimates["collective"]
        r.collective_d_cm2_s = None if coll is None else coll.d_cm2_s / self.n_atoms
        r.collective_d_stderr_cm2_s = (None if coll is None or coll.d_stderr_cm2_s is None
                                       else coll.d_stderr_cm2_s / self.n_atoms)
        defect = estimates.get("defect")
        r.defect_d_cm2_s = None if defect is None else defect.d_cm2_s
        r.defect_d_stderr_cm2_s = None if defect is None else defect.d_stderr_cm2_s
        r.events = None if track is None else track.n_events
        r.defect_positions = None if track is None else track.positions
        r.defect_site = None if track is None else track.site
        r.off_site_fraction = None if track is None else track.off_site_fraction
        r.defect_running_d_cm2_s = None if track is None else running_d(stats["defect"])[1]


def frame_interval_ps(times) -> float:
    """The time between frames (ps) of evenly spaced frame times; times stored in float32 (XTC) are accepted
    within their rounding, anything else uneven is refused."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) < 2:
        raise AnalysisError(f"{len(t)} frame(s) analysed; a diffusion estimate needs many")
    interval = (t[-1] - t[0]) / (len(t) - 1)
    if not interval > 0:
        raise AnalysisError(f"frame times do not increase ({t[0]:g} ps to {t[-1]:g} ps): give dt_ps, the time "
                            "between frames")
    tolerance = 1e-6 * interval + 2 * float(np.spacing(np.float32(np.abs(t).max())))
    gaps = np.diff(t)
    typical = float(np.median(gaps))
    uneven = np.abs(gaps - typical) > tolerance
    if uneven.any() or abs(interval - typical) > tolerance:
        k = int(np.argmax(uneven))
        raise AnalysisError(f"frames {k} and {k + 1} are {gaps[k]:g} ps apart, not {typical:g} ps: the estimate "
                            "needs evenly spaced frames; choose them with run(start, stop, step), or give dt_ps "
                            "if the file's times are wrong")
    return float(interval)
