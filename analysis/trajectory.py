"""Reading trajectories: LAMMPS text dumps and DCD files, into unwrapped Cartesian positions (Å).

Text dumps (read here with numpy; plain, gzip or bzip2): any of ``xu yu zu``, ``xsu ysu zsu``, or wrapped ``x y z``
/ ``xs ys zs`` with image flags ``ix iy iz`` (unwrapped with the box's tilt, which MDAnalysis's reader does not
do); optional ``ITEM: TIME`` and ``ITEM: UNITS`` header items; orthogonal or triclinic boxes. The dump is its own
topology (atom ids and types come from its columns); a selection is ``type N``/``id N`` or any MDAnalysis selection
on those, and ``data`` optionally names a LAMMPS data file whose atoms (matched by id) the selection is evaluated
on. Times come from the dump's step column times the MD timestep. A truncated last frame (a run killed while
writing) is dropped with a warning; everything before it is used. DCD files (``dump ... dcd`` with ``dump_modify
unwrap yes``) are memory-mapped; one written without ``unwrap yes`` is recognised by atoms that jump by more than
half a box between frames, and refused.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import re
import warnings
import zlib
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import numpy as np

from core.errors import AnalysisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trajectory:
    """Unwrapped positions (n_frames, n_atoms, 3) in Å (float64 from text, float32 as stored in DCD), their times
    in ps and LAMMPS steps, the atom ids, and the box of the first frame where the file has one: ``cell`` rows a, b,
    c in LAMMPS's frame, ``origin`` (xlo, ylo, zlo)."""

    positions: np.ndarray
    times_ps: np.ndarray
    steps: np.ndarray
    atom_ids: np.ndarray
    source: str
    cell: np.ndarray | None = None
    origin: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return len(self.times_ps)

    @property
    def frame_interval_ps(self) -> float:
        return float(self.times_ps[1] - self.times_ps[0]) if self.n_frames > 1 else float("nan")

    def subset(self, atom_ids) -> "Trajectory":
        """The same trajectory for some of its atoms (by id)."""
        want = np.asarray(atom_ids)
        idx = np.searchsorted(self.atom_ids, want)
        ok = (idx < len(self.atom_ids)) & (self.atom_ids[np.minimum(idx, len(self.atom_ids) - 1)] == want)
        if not ok.all():
            raise AnalysisError(f"{self.source}: atoms {want[~ok].tolist()} are not in the trajectory")
        return replace(self, positions=self.positions[:, idx], atom_ids=want)


class _Lines:
    """A binary file read line by line whose compressed stream may end early: a gzip or bzip2 file cut off by a
    crash raises EOFError in the middle of a line; here that is the end of the file (``cut`` is set), so the frames
    read before it are kept and the incomplete one is dropped, as for a truncated plain file. Corrupt compressed
    data is an :class:`AnalysisError`."""

    def __init__(self, fh, path: Path):
        self._fh = fh
        self._path = path
        self.cut = False

    def readline(self) -> bytes:
        if self.cut:
            return b""
        try:
            return self._fh.readline()
        except EOFError:  # the compressed stream ends before its end marker: a truncated file
            self.cut = True
            return b""
        except (zlib.error, ValueError) as e:
            raise AnalysisError(f"{self._path}: the compressed data is corrupt ({e})") from None
        except OSError as e:
            if e.errno is None:  # gzip.BadGzipFile, bz2's 'Invalid data stream': not the file system's
                raise AnalysisError(f"{self._path}: the compressed data is corrupt ({e})") from None
            raise

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def open_text(path: Path) -> _Lines:
    """A text file for reading as bytes line by line, decompressed when it is gzip or bzip2 (recognised by
    content); a compressed stream cut off early ends the file (see :class:`_Lines`)."""
    with open(path, "rb") as fh:
        magic = fh.read(3)
    if magic[:2] == b"\x1f\x8b":
        return _Lines(gzip.open(path, "rb"), path)
    if magic == b"BZh":
        return _Lines(bz2.open(path, "rb"), path)
    return _Lines(open(path, "rb"), path)


def box_of(header: str, lines: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(origin, cell rows) from a dump frame's ``ITEM: BOX BOUNDS`` header and its three lines (orthogonal or
    triclinic: the bounds of a tilted box are those of its bounding box, see LAMMPS's Howto_triclinic)."""
    v = [[float(x) for x in line.split()] for line in lines]
    if "xy" in header:
        (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = v
        xlo, xhi = xlo_b - min(0.0, xy, xz, xy + xz), xhi_b - max(0.0, xy, xz, xy + xz)
        ylo, yhi = ylo_b - min(0.0, yz), yhi_b - max(0.0, yz)
    else:
        (xlo, xhi), (ylo, yhi), (zlo, zhi) = (row[:2] for row in v)
        xy = xz = yz = 0.0
    return np.array([xlo, ylo, zlo]), np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])


#: the coordinate columns this reader turns into unwrapped Cartesian positions, in order of preference
COORDINATES = (("xu", "yu", "zu"), ("xsu", "ysu", "zsu"), ("x", "y", "z", "ix", "iy", "iz"),
               ("xs", "ys", "zs", "ix", "iy", "iz"))


def unwrapped(cols: dict[str, int], data: np.ndarray, origin: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Unwrapped Cartesian positions from whichever coordinate columns a frame has (see :data:`COORDINATES`)."""
    def take(names):
        return data[:, [cols[n] for n in names]]

    if {"xu", "yu", "zu"} <= set(cols):
        return take(("xu", "yu", "zu"))
    if {"xsu", "ysu", "zsu"} <= set(cols):
        return origin + take(("xsu", "ysu", "zsu")) @ cell
    if {"ix", "iy", "iz"} <= set(cols):
        images = take(("ix", "iy", "iz"))
        if {"x", "y", "z"} <= set(cols):
            return take(("x", "y", "z")) + images @ cell  # tilt included: the image shift is along a, b, c
        if {"xs", "ys", "zs"} <= set(cols):
            return origin + (take(("xs", "ys", "zs")) + images) @ cell
    raise KeyError("no unwrapped coordinates")


@dataclass
class _Frames:
    steps: list[int]
    positions: list[np.ndarray]
    ids: np.ndarray
    types: np.ndarray
    origin: np.ndarray
    cell: np.ndarray
    columns: list[str]
    truncated: bool


class _Truncated(Exception):
    """The file ends inside a frame (a run killed while writing): the frames before it are kept."""


def _complete(line: bytes) -> bytes:
    """``line`` if it is a whole line; the file ending inside it (or before it) is a truncation."""
    if not line.endswith(b"\n"):
        raise _Truncated()
    return line


def _header(fh, path: Path, k: int, line: bytes) -> tuple[int, int, tuple[str, list[bytes]], bytes]:
    """A frame's header items up to its ``ITEM: ATOMS`` line: (step, number of atoms, box, the ATOMS line). A
    malformed value is an error naming the frame; the file ending inside the header is a truncation."""
    step = n = box = None
    while not line.startswith(b"ITEM: ATOMS"):
        item = _complete(line).decode(errors="replace").strip()
        if item.startswith("ITEM: TIMESTEP"):
            step = _complete(fh.readline())
        elif item.startswith("ITEM: NUMBER OF ATOMS"):
            n = _complete(fh.readline())
        elif item.startswith("ITEM: BOX BOUNDS"):
            box = (item, [_complete(fh.readline()) for _ in range(3)])
        elif item.startswith("ITEM:"):  # TIME, UNITS or another item of one line
            _complete(fh.readline())
        else:
            raise AnalysisError(f"{path}: frame {k}: unexpected line {item[:60]!r} in its header (a corrupt or "
                                "concatenated file?)")
        line = fh.readline()
    _complete(line)
    where = f"{path}: frame {k}"
    if step is None or n is None or box is None:
        missing = [name for name, v in (("TIMESTEP", step), ("NUMBER OF ATOMS", n), ("BOX BOUNDS", box)) if v is None]
        raise AnalysisError(f"{where}: the header has no ITEM: {', '.join(missing)}")
    try:
        step_i = int(step)
    except ValueError:
        raise AnalysisError(f"{where}: TIMESTEP {step.decode(errors='replace').strip()[:40]!r} is not an "
                            "integer") from None
    try:
        n_i = int(n)
    except ValueError:
        raise AnalysisError(f"{where}: NUMBER OF ATOMS {n.decode(errors='replace').strip()[:40]!r} is not an "
                            "integer") from None
    if n_i <= 0:
        raise AnalysisError(f"{where}: NUMBER OF ATOMS is {n_i}; a frame needs at least one atom")
    return step_i, n_i, box, line


def _rows(body: list[bytes], n_columns: int, where: str) -> np.ndarray:
    """A frame's atom rows as an (n, n_columns) array; a row with another number of values than the header names,
    or a value that is not a number, is an error naming the row."""
    try:
        data = np.array(b" ".join(body).split(), dtype=float)
    except ValueError:
        data = None
    if data is None or data.size != len(body) * n_columns:
        for r, row in enumerate(body):
            values = row.split()
            if len(values) != n_columns:
                raise AnalysisError(f"{where}: atom row {r + 1} has {len(values)} values, the ITEM: ATOMS line names "
                                    f"{n_columns} columns")
            try:
                [float(v) for v in values]
            except ValueError:
                raise AnalysisError(f"{where}: atom row {r + 1} holds a value that is not a number: "
                                    f"{row.decode(errors='replace').strip()[:80]!r}") from None
        raise AnalysisError(f"{where}: the atom rows do not parse")  # unreachable: a row above is at fault
    return data.reshape(len(body), n_columns)


def _parse(path: Path) -> _Frames:
    """Every complete frame of a LAMMPS text dump (see :func:`read_dump`), atoms sorted by id.

    The contract: every frame has the same set of unique atom ids, each row as many values as its ``ITEM: ATOMS``
    line names, finite coordinates; a malformed header or row anywhere is an error naming the frame; only the file
    ending inside a frame (a crash while writing; for gzip/bzip2 the compressed stream ending early) is a
    truncation, and the whole frames before it are kept."""
    steps: list[int] = []
    frames: list[np.ndarray] = []
    first: tuple | None = None
    with open_text(path) as fh:
        line = fh.readline()
        if not line.startswith(b"ITEM:"):
            raise AnalysisError(f"{path} is not a LAMMPS text dump (it does not start with 'ITEM:')")
        try:
            while line:
                k = len(steps)
                step_i, n_i, box, atoms_line = _header(fh, path, k, line)
                where = f"{path}: frame {k} (step {step_i})"
                try:
                    origin, cell = box_of(*box)
                except ValueError:
                    raise AnalysisError(f"{where}: BOX BOUNDS are not three lines of numbers") from None
                if not (np.isfinite(origin).all() and np.isfinite(cell).all()):
                    raise AnalysisError(f"{where}: the box is not finite")
                columns = atoms_line.decode(errors="replace").split()[2:]
                body = list(islice(fh, n_i))
                for r, row in enumerate(body):
                    if row.startswith(b"ITEM:"):
                        raise AnalysisError(f"{where}: NUMBER OF ATOMS is {n_i}, but a new ITEM line follows after "
                                            f"{r} atom rows (a corrupt header or a file cut and appended)")
                if len(body) < n_i or not body[-1].endswith(b"\n"):
                    raise _Truncated()
                if len(set(columns)) != len(columns) or not columns:
                    raise AnalysisError(f"{where}: the ITEM: ATOMS line names no columns or a column twice: "
                                        f"{' '.join(columns)!r}")
                data = _rows(body, len(columns), where)
                cols = {c: j for j, c in enumerate(columns)}
                if "id" not in cols:
                    raise AnalysisError(f"{path} has no 'id' column; atoms cannot be followed between frames")
                raw_ids = data[:, cols["id"]]
                if not np.all(np.isfinite(raw_ids)) or np.any(raw_ids != np.round(raw_ids)):
                    raise AnalysisError(f"{where}: atom ids must be integers")
                order = np.argsort(raw_ids, kind="stable")
                ids = raw_ids[order].astype(np.int64)
                if np.any(np.diff(ids) == 0):
                    dup = int(ids[np.argmax(np.diff(ids) == 0)])
                    raise AnalysisError(f"{where}: atom id {dup} appears more than once; each atom must have one row")
                if first is None:
                    types = data[order, cols["type"]].astype(np.int64) if "type" in cols else np.zeros(n_i, np.int64)
                    first = (n_i, columns, origin, cell, ids, types)
                elif n_i != first[0]:
                    raise AnalysisError(f"{where} has {n_i} atoms, the first frame {first[0]}; diffusion needs the "
                                        "same atoms in every frame (dump a fixed group, not a region or a "
                                        "variable-size group)")
                elif not np.array_equal(ids, first[4]):
                    other = np.setdiff1d(ids, first[4])
                    raise AnalysisError(f"{where} has other atoms than the first frame (ids {other[:5].tolist()} are "
                                        "new); diffusion needs the same atoms in every frame (dump a fixed group)")
                try:
                    pos = unwrapped(cols, data[order], origin, cell)
                except KeyError:
                    raise AnalysisError(
                        f"{path} has no unwrapped coordinates (columns: {' '.join(columns) or 'none'}); diffusion "
                        "needs xu yu zu (or xsu ysu zsu, or x y z with ix iy iz): write the dump with 'dump ID "
                        "GROUP custom N FILE id type xu yu zu'") from None
                if not np.isfinite(pos).all():
                    bad = int(ids[np.argmax(~np.isfinite(pos).all(axis=1))])
                    raise AnalysisError(f"{where}: atom {bad} has a coordinate that is not finite (nan or inf): the "
                                        "run blew up; analyse the frames before it, or rerun with a smaller timestep")
                frames.append(pos)
                steps.append(step_i)
                line = fh.readline()
            truncated = False
        except _Truncated:
            truncated = True
        truncated = truncated or fh.cut
    if first is None:
        raise AnalysisError(f"{path} is not a LAMMPS text dump (no complete frame)")
    n_atoms, columns, origin, cell, ids, types = first
    return _Frames(steps, frames, ids, types, origin, cell, columns, truncated)


def read_dump(path: str | Path, timestep_fs: float, select: str | None = None,
              data: str | Path | None = None) -> Trajectory:
    """Unwrapped positions of the selected atoms from a LAMMPS text dump (gzip or bzip2 compressed too).

    ``select``: ``type N ...``, ``id N ...`` or any MDAnalysis selection on the dump's ids and types; ``data``:
    a LAMMPS data file whose atoms (matched by id) the selection is evaluated on instead."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"dump file {path} does not exist")
    if not timestep_fs > 0:
        raise AnalysisError(f"--timestep-fs must be positive, got {timestep_fs}")
    f = _parse(path)
    if f.truncated:
        warnings.warn(f"{path}: the last frame is incomplete (truncated file); using the {len(f.steps)} complete "
                      f"frames before it", stacklevel=2)
    if len(f.steps) < 2:
        raise AnalysisError(f"{path} has {len(f.steps)} complete frame(s); a diffusion estimate needs many")
    want = select_ids(f.ids, f.types, select, data)
    if len(want) == 0:
        raise AnalysisError(f"selection {select!r} matches no atoms in {path}"
                            + (f" (with topology {data})" if data else ""))
    idx = np.searchsorted(f.ids, want)
    steps = np.array(f.steps, dtype=np.int64)
    if np.any(np.diff(steps) <= 0):
        bad = int(np.argmax(np.diff(steps) <= 0)) + 1
        raise AnalysisError(f"{path}: timesteps are not increasing at frame {bad} (step {steps[bad - 1]} then "
                            f"{steps[bad]}); a restarted run appended frames twice?")
    if len(set(np.diff(steps))) > 1:
        raise AnalysisError(f"{path}: frames are not evenly spaced in time (step gaps {sorted(set(np.diff(steps)))})")
    positions = np.stack([frame[idx] for frame in f.positions])
    times = (steps - steps[0]) * (timestep_fs / 1000.0)
    return Trajectory(positions, times.astype(np.float64), steps, f.ids[idx], str(path), f.cell, f.origin)


_SIMPLE = re.compile(r"^\s*(type|id)((\s+\d+)+)\s*$")


def select_ids(ids: np.ndarray, types: np.ndarray, select: str | None, data: str | Path | None) -> np.ndarray:
    """The ids (sorted) a selection picks: ``type``/``id`` lists directly, anything else through MDAnalysis."""
    if data is not None:
        import MDAnalysis as mda

        return np.intersect1d(ids, _ids_from_data(Path(data), select, mda))
    if not select:
        return ids
    m = _SIMPLE.match(select)
    if m:
        values = [int(v) for v in m.group(2).split()]
        return ids[np.isin(types if m.group(1) == "type" else ids, values)]
    import MDAnalysis as mda

    u = mda.Universe.empty(len(ids), trajectory=False)
    u.add_TopologyAttr("ids", ids)
    u.add_TopologyAttr("types", types.astype(str))
    try:
        return np.sort(np.asarray(u.select_atoms(select).ids))
    except Exception as e:  # MDAnalysis raises SelectionError or ValueError
        raise AnalysisError(f"invalid selection {select!r}: {e}") from None


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
    """The header of a CHARMM/LAMMPS DCD file (Fortran records), read with numpy: no MDAnalysis import. Every
    record's length markers are checked, so a file cut inside its header or with a corrupt record length is an
    error, never an array read from the wrong place."""
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read(4096)

    def word(at: int, kind: str = "i4") -> int:
        if at + 4 > len(raw):
            raise AnalysisError(f"{path}: the DCD header is cut off ({len(raw)} bytes)")
        return int(np.frombuffer(raw[at:at + 4], dtype=f"{endian}{kind}")[0])

    for endian in ("<", ">"):
        if len(raw) >= 8 and np.frombuffer(raw[:4], dtype=f"{endian}i4")[0] == 84 and raw[4:8] == b"CORD":
            break
    else:
        raise AnalysisError(f"{path}: not a DCD file (no CORD header)")
    if len(raw) < 104:
        raise AnalysisError(f"{path}: the DCD header is cut off ({len(raw)} bytes)")
    if word(88) != 84:
        raise AnalysisError(f"{path}: corrupt DCD header (first record's end marker {word(88)}, expected 84)")
    icntrl = np.frombuffer(raw[8:88], dtype=f"{endian}i4")
    charmm = icntrl[19] != 0
    has_cell = bool(charmm and icntrl[10] == 1)
    pos = 92  # 4 + 4 + 80 + 4: first record with its markers
    title_len = word(pos)
    if title_len < 4 or (title_len - 4) % 80 or pos + 4 + title_len + 4 + 12 > len(raw):
        raise AnalysisError(f"{path}: corrupt DCD header (title record of {title_len} bytes)")
    if word(pos + 4 + title_len) != title_len:
        raise AnalysisError(f"{path}: corrupt DCD header (title record's markers differ)")
    pos += 4 + title_len + 4
    if word(pos) != 4 or word(pos + 8) != 4:
        raise AnalysisError(f"{path}: corrupt DCD header (atom-count record of {word(pos)} bytes, expected 4)")
    natoms = word(pos + 4)
    pos += 12
    if natoms <= 0:
        raise AnalysisError(f"{path}: DCD header says {natoms} atoms")
    if charmm and icntrl[8] != 0:
        raise AnalysisError(f"{path}: DCD with fixed atoms is not supported")
    frame_bytes = (56 if has_cell else 0) + 3 * (8 + 4 * natoms)
    size = path.stat().st_size
    n_frames = max(0, (size - pos) // frame_bytes)
    if n_frames:  # the first frame's record markers: the cell (48 bytes) and X (4 natoms bytes)
        with open(path, "rb") as fh:
            fh.seek(pos)
            head = fh.read(64)
        first = np.frombuffer(head[:4], dtype=f"{endian}i4")[0]
        want = 48 if has_cell else 4 * natoms
        if first != want:
            raise AnalysisError(f"{path}: corrupt DCD (first frame's record of {int(first)} bytes, expected {want})")
    return DCDHeader(natoms, int(icntrl[1]), int(icntrl[2]), n_frames, pos, frame_bytes, has_cell, endian)


def _check_records(path: Path, h: DCDHeader) -> None:
    """Every frame's record markers (cell, X, Y, Z) as the header implies: a corrupt record length anywhere is an
    error naming the frame, not coordinates read from the wrong bytes."""
    mm = np.memmap(path, dtype=f"{h.endian}i4", mode="r", offset=h.header_bytes, shape=(h.n_frames, h.frame_bytes // 4))
    try:
        columns, want = [], []
        at = 0
        if h.has_cell:
            columns += [0, 13]
            want += [48, 48]
            at = 14
        for _ in range(3):
            columns += [at, at + h.natoms + 1]
            want += [4 * h.natoms] * 2
            at += h.natoms + 2
        for lo in range(0, h.n_frames, 100_000):  # bounded memory
            block = np.asarray(mm[lo:lo + 100_000][:, columns])
            bad = np.any(block != np.asarray(want), axis=1)
            if bad.any():
                k = lo + int(np.argmax(bad))
                raise AnalysisError(f"{path}: corrupt DCD: frame {k}'s record lengths are not those of {h.natoms} "
                                    "atoms (a damaged or concatenated file)")
    finally:
        del mm


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
    _check_records(path, h)
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
    if not np.isfinite(pos).all():
        k = int(np.argmax(~np.isfinite(pos).all(axis=(1, 2))))
        raise AnalysisError(f"{path}: frame {k} has a coordinate that is not finite (nan or inf): the run blew up; "
                            "analyse the frames before it, or rerun with a smaller timestep")
    cell = dcd_cell(path, h) if h.has_cell else None
    if cell is not None:
        check_unwrapped(pos, cell, path)
    steps = h.istart + h.nsavc * np.arange(h.n_frames, dtype=np.int64)
    times = (steps - steps[0]) * (timestep_fs / 1000.0)
    ids = np.asarray(atom_ids) if atom_ids is not None else idx + 1
    return Trajectory(pos, times.astype(np.float64), steps, ids, str(path), cell)


def dcd_cell(path: Path, h: DCDHeader, frame: int = 0) -> np.ndarray:
    """The cell (rows a, b, c in LAMMPS's frame) of a DCD frame's unit-cell record: A, cos γ, B, cos β, cos α, C as
    LAMMPS writes it (angles in degrees, as other programs write them, are recognised too)."""
    raw = np.memmap(path, dtype=f"{h.endian}f8", mode="r", offset=h.header_bytes + frame * h.frame_bytes + 4,
                    shape=(6,))
    a, g, b, be, al, c = (float(v) for v in raw)
    del raw
    cg, cb, ca = (v if abs(v) <= 1 else np.cos(np.radians(v)) for v in (g, be, al))
    sg = np.sqrt(max(1e-12, 1 - cg * cg))
    cy = (ca - cb * cg) / sg
    return np.array([[a, 0, 0], [b * cg, b * sg, 0], [c * cb, c * cy, c * np.sqrt(max(0.0, 1 - cb * cb - cy * cy))]])


def widths(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of a cell (rows a, b, c)."""
    a, b, c = cell
    return abs(np.linalg.det(cell)) / np.linalg.norm([np.cross(b, c), np.cross(c, a), np.cross(a, b)], axis=1)


def check_unwrapped(positions: np.ndarray, cell: np.ndarray, source) -> None:
    """Refuse wrapped coordinates: an atom that moves by more than half the box between two frames has been
    wrapped back into the box (no atom crosses half a box in one dump interval of an MD run)."""
    if len(positions) < 2:
        return
    half = 0.5 * float(widths(cell).min())
    jump = np.concatenate([np.abs(np.diff(positions[lo:lo + 2001], axis=0)).max(axis=(1, 2))
                           for lo in range(0, len(positions) - 1, 2000)])  # chunks: bounded memory
    if jump.max() > half:
        k = int(np.argmax(jump > half))
        raise AnalysisError(f"{source}: atoms jump by {jump[k]:.1f} Å between frames {k} and {k + 1}, more than half "
                            f"the box ({half:.1f} Å): the coordinates are wrapped; write the DCD with "
                            "'dump_modify ID unwrap yes'")


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


def read_trajectory(path: str | Path, timestep_fs: float, select: str | None = None,
                    data: str | Path | None = None) -> Trajectory:
    """A DCD file (``.dcd``, any case) or a text dump, by its name."""
    if Path(path).suffix.lower() == ".dcd":
        if select or data:
            raise AnalysisError(f"{path}: a DCD file has no atom types or ids to select by; LAMMPS's DCD of a group "
                                "holds that group only: drop --select/--data")
        return read_dcd(path, timestep_fs)
    return read_dump(path, timestep_fs, select=select, data=data)
