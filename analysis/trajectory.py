"""Reading trajectories: any LAMMPS text dump with unwrapped coordinates (``xu yu zu``), through MDAnalysis.

The dump is its own topology (atom ids and types come from its columns); ``data`` optionally names a LAMMPS
data file whose atoms (matched by id) the selection is evaluated on, for dumps without the column you select on.
Times come from the dump's step column times the MD timestep, since MDAnalysis cannot know the timestep.
A truncated last frame (a run killed while writing) is dropped with a warning; everything before it is used.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AnalysisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trajectory:
    """Unwrapped positions (n_frames, n_atoms, 3) in Å, float64, and their times in ps."""

    positions: np.ndarray
    times_ps: np.ndarray
    steps: np.ndarray
    atom_ids: np.ndarray
    source: str

    @property
    def n_frames(self) -> int:
        return len(self.times_ps)

    @property
    def frame_interval_ps(self) -> float:
        return float(self.times_ps[1] - self.times_ps[0]) if self.n_frames > 1 else float("nan")


def _scan(path: Path) -> tuple[int, int, bool]:
    """(atoms per frame, complete frames, truncated?) from line counts, without parsing coordinates."""
    with open(path, "rb") as fh:
        head = [fh.readline() for _ in range(9)]
    if not head[0].startswith(b"ITEM: TIMESTEP") or not head[2].startswith(b"ITEM: NUMBER OF ATOMS"):
        raise AnalysisError(f"{path} is not a LAMMPS text dump (no 'ITEM: TIMESTEP' header)")
    try:
        n_atoms = int(head[3])
    except ValueError:
        raise AnalysisError(f"{path}: unreadable atom count {head[3]!r}") from None
    cols = head[8].decode(errors="replace").split()[2:]
    if not {"xu", "yu", "zu"} <= set(cols):
        raise AnalysisError(
            f"{path} has no unwrapped coordinates (columns: {' '.join(cols) or 'none'}); diffusion needs xu yu zu: "
            f"write the dump with `dump ID GROUP custom N FILE id type xu yu zu`")
    if "id" not in cols:
        raise AnalysisError(f"{path} has no 'id' column; atoms cannot be followed between frames")
    lines, last = 0, b"\n"  # complete (newline-terminated) lines, and the file's last byte
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    per_frame = n_atoms + 9
    # a cut-off last line is not counted, so a frame whose final line was cut is not complete
    complete = lines // per_frame
    truncated = lines % per_frame != 0 or last != b"\n"
    return n_atoms, complete, truncated


def read_dump(path: str | Path, timestep_fs: float, select: str | None = None,
              data: str | Path | None = None) -> Trajectory:
    """Positions of the selected atoms from a LAMMPS dump. ``select`` is an MDAnalysis selection ("type 1")."""
    import MDAnalysis as mda  # heavy: imported when a trajectory is read

    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"dump file {path} does not exist")
    if not timestep_fs > 0:
        raise AnalysisError(f"--timestep-fs must be positive, got {timestep_fs}")
    n_atoms, n_complete, truncated = _scan(path)
    if truncated:
        warnings.warn(f"{path}: the last frame is incomplete (truncated file); using the {n_complete} complete "
                      f"frames before it", stacklevel=2)
    if n_complete < 2:
        raise AnalysisError(f"{path} has {n_complete} complete frame(s); a diffusion estimate needs many")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDAnalysis guesses masses from types and says so
        u = mda.Universe(str(path), format="LAMMPSDUMP", lammps_coordinate_convention="unwrapped",
                         dt=timestep_fs / 1000.0)
    atoms = u.atoms
    if data is not None:
        ids = _ids_from_data(Path(data), select, mda)
        atoms = u.atoms[np.isin(u.atoms.ids, ids)]
    elif select:
        try:
            atoms = u.select_atoms(select)
        except Exception as e:  # MDAnalysis raises SelectionError or ValueError
            raise AnalysisError(f"invalid selection {select!r}: {e}") from None
    if len(atoms) == 0:
        raise AnalysisError(f"selection {select!r} matches no atoms in {path}"
                            + (f" (with topology {data})" if data else ""))
    idx = atoms.indices
    pos = np.empty((n_complete, len(idx), 3), dtype=np.float64)
    steps = np.empty(n_complete, dtype=np.int64)
    for i, ts in enumerate(u.trajectory[:n_complete]):
        pos[i] = ts.positions[idx]
        steps[i] = ts.data["step"]
    if np.any(np.diff(steps) <= 0):
        bad = int(np.argmax(np.diff(steps) <= 0)) + 1
        raise AnalysisError(f"{path}: timesteps are not increasing at frame {bad} (step {steps[bad - 1]} then "
                            f"{steps[bad]}); a restarted run appended frames twice?")
    if len(set(np.diff(steps))) > 1:
        raise AnalysisError(f"{path}: frames are not evenly spaced in time (step gaps {sorted(set(np.diff(steps)))})")
    times = (steps - steps[0]) * (timestep_fs / 1000.0)
    return Trajectory(pos, times.astype(np.float64), steps, np.asarray(atoms.ids), str(path))


_MDA_ATOM_STYLES = {"atomic": "id type x y z", "charge": "id type charge x y z"}


def _data_style(data: Path) -> dict:
    """MDAnalysis needs the column layout of styles other than ``full``; read it from the ``Atoms # style`` line."""
    with open(data) as fh:
        for line in fh:
            if line.startswith("Atoms"):
                style = line.partition("#")[2].strip()
                return {"atom_style": _MDA_ATOM_STYLES[style]} if style in _MDA_ATOM_STYLES else {}
    return {}


def _ids_from_data(data: Path, select: str | None, mda) -> np.ndarray:
    if not data.is_file():
        raise AnalysisError(f"data file {data} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top = mda.Universe(str(data), format="DATA", **_data_style(data))
        atoms = top.select_atoms(select) if select else top.atoms
    except Exception as e:
        raise AnalysisError(f"cannot use {data} as topology with selection {select!r}: {e}") from None
    return np.asarray(atoms.ids)


@dataclass(frozen=True)
class DCDHeader:
    natoms: int
    istart: int
    nsavc: int
    n_frames: int
    header_bytes: int
    frame_bytes: int
    has_cell: bool
    endian: str


def dcd_header(path: str | Path) -> DCDHeader:
    """The header of a CHARMM/LAMMPS DCD file (Fortran records), read with numpy: no MDAnalysis import."""
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read(4096)
    for endian in ("<", ">"):
        if len(raw) >= 4 and np.frombuffer(raw[:4], dtype=f"{endian}i4")[0] == 84 and raw[4:8] == b"CORD":
            break
    else:
        raise AnalysisError(f"{path}: not a DCD file (no CORD header)")
    icntrl = np.frombuffer(raw[8:88], dtype=f"{endian}i4")
    charmm = icntrl[19] != 0
    has_cell = bool(charmm and icntrl[10] == 1)
    pos = 92  # 4 + 4 + 80 + 4: first record with its markers
    title_len = int(np.frombuffer(raw[pos:pos + 4], dtype=f"{endian}i4")[0])
    pos += 4 + title_len + 4
    natoms = int(np.frombuffer(raw[pos + 4:pos + 8], dtype=f"{endian}i4")[0])
    pos += 12
    if charmm and icntrl[8] != 0:
        raise AnalysisError(f"{path}: DCD with fixed atoms is not supported")
    frame_bytes = (56 if has_cell else 0) + 3 * (8 + 4 * natoms)
    size = path.stat().st_size
    return DCDHeader(natoms, int(icntrl[1]), int(icntrl[2]), max(0, (size - pos) // frame_bytes), pos, frame_bytes,
                     has_cell, endian)


def read_dcd(path: str | Path, timestep_fs: float, indices: np.ndarray | None = None,
             atom_ids: np.ndarray | None = None) -> Trajectory:
    """Unwrapped positions from a LAMMPS DCD (``dump ... dcd`` with ``dump_modify unwrap yes``), memory-mapped
    and sliced with numpy. Positions stay float32 as stored (half the memory); the MSD accumulates in float64.
    Steps come from the header (first step, steps between frames); a frame cut off by a crash is left out.
    ``indices``: atoms to keep (0-based, in the file's order, which for LAMMPS is atom-ID order in the group)."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"trajectory {path} does not exist")
    if not timestep_fs > 0:
        raise AnalysisError(f"--timestep-fs must be positive, got {timestep_fs}")
    h = dcd_header(path)
    if h.n_frames < 2:
        raise AnalysisError(f"{path} has {h.n_frames} complete frame(s); a diffusion estimate needs many")
    if h.nsavc <= 0:
        raise AnalysisError(f"{path}: DCD header says {h.nsavc} steps between frames")
    idx = np.arange(h.natoms) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        raise AnalysisError(f"no atoms selected from {path}")
    if idx.min() < 0 or idx.max() >= h.natoms:
        raise AnalysisError(f"{path} holds {h.natoms} atoms; cannot select index {int(idx.max())}")
    words = h.frame_bytes // 4
    mm = np.memmap(path, dtype=f"{h.endian}f4", mode="r", offset=h.header_bytes, shape=(h.n_frames, words))
    first = 14 if h.has_cell else 0  # 56 bytes of unit cell record, then X, Y, Z records (marker, data, marker)
    pos = np.empty((h.n_frames, len(idx), 3), dtype=np.float32)
    contiguous = indices is None or bool(np.all(np.diff(idx) == 1))
    for k in range(3):
        start = first + k * (h.natoms + 2) + 1
        block = mm[:, start:start + h.natoms]
        pos[:, :, k] = block[:, idx[0]:idx[-1] + 1] if contiguous else block[:, idx]
    del mm
    steps = h.istart + h.nsavc * np.arange(h.n_frames, dtype=np.int64)
    times = (steps - steps[0]) * (timestep_fs / 1000.0)
    ids = np.asarray(atom_ids) if atom_ids is not None else idx + 1
    return Trajectory(pos, times.astype(np.float64), steps, ids, str(path))


def ids_of_type(data: str | Path, atom_type: int) -> np.ndarray:
    """Sorted atom IDs of one type from a LAMMPS data file (atomic or charge style)."""
    ids, in_atoms = [], False
    with open(data) as fh:
        for line in fh:
            words = line.split("#")[0].split()
            if not words:
                continue
            if words[0] == "Atoms":
                in_atoms = True
                continue
            if in_atoms:
                if not words[0].lstrip("-").isdigit():
                    break
                if int(words[1]) == atom_type:
                    ids.append(int(words[0]))
    if not ids:
        raise AnalysisError(f"{data}: no atoms of type {atom_type}")
    return np.array(sorted(ids))
