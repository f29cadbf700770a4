"""LAMMPS text dump segments → one clean trajectory.

A frame is 9 header lines (``ITEM: TIMESTEP``, step, ``ITEM: NUMBER OF ATOMS``, n, box header and 3 box lines,
``ITEM: ATOMS ...``) plus n atom lines. Segments are written by successive attempts of one run; attempt k+1
starts from a restart file written at or before the point where attempt k was killed, so it rewrites the frames
attempt k wrote past that restart. Merging keeps, from each segment, the frames before the next segment's first
step, and drops a frame cut off by a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from analysis.trajectory import dcd_header
from core.errors import AnalysisError
from core.files import atomic_copy, atomic_write_text


@dataclass(frozen=True)
class Merged:
    frames: int
    first_step: int | None
    last_step: int | None


def iter_frames(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(step, lines) for every complete frame of a text dump; a truncated last frame is skipped."""
    with open(path) as fh:
        while True:
            head = [fh.readline() for _ in range(4)]
            if not head[0]:
                return
            if not head[0].startswith("ITEM: TIMESTEP") or not all(h.endswith("\n") for h in head):
                return
            try:
                step, n = int(head[1]), int(head[3])
            except ValueError:
                return
            rest = [fh.readline() for _ in range(5 + n)]
            if not rest[-1].endswith("\n"):
                return  # cut off mid-frame
            yield step, head + rest


def first_step(path: Path) -> int | None:
    for step, _ in iter_frames(path):
        return step
    return None


def merge_segments(segment_paths: list[Path], out: Path) -> Merged:
    """Write the segments, in order, as one monotonic trajectory to ``out`` (atomically)."""
    starts = [first_step(p) for p in segment_paths]
    merged: list[Merged] = []

    def write(tmp: str) -> None:
        frames, first, last = 0, None, None
        with open(tmp, "w") as fh:
            for i, path in enumerate(segment_paths):
                later = [s for s in starts[i + 1:] if s is not None]
                stop = min(later) if later else None
                for step, lines in iter_frames(path):
                    if stop is not None and step >= stop:
                        break
                    if last is not None and step <= last:
                        continue
                    fh.writelines(lines)
                    frames += 1
                    first = step if first is None else first
                    last = step
        if frames == 0:
            raise AnalysisError(f"no complete frames in {[str(p) for p in segment_paths]}")
        merged.append(Merged(frames, first, last))

    atomic_copy(write, out)
    return merged[0]


def dcd_steps(path: Path) -> tuple[int, int, int]:
    """(first step, steps between frames, complete frames) of a LAMMPS DCD file, from its header."""
    h = dcd_header(path)
    return h.istart, h.nsavc, h.n_frames


def merge_dcd(segment_paths: list[Path], out: Path, chunk_frames: int = 2000) -> Merged:
    """DCD segments → one monotonic DCD (atomically), keeping each step once, as :func:`merge_segments` does for
    text dumps; frames are copied in chunks, so memory does not grow with the trajectory."""
    from MDAnalysis.lib.formats.libdcd import DCDFile

    heads = []
    for p in segment_paths:
        try:
            heads.append(dcd_steps(p))
        except (OSError, ValueError, AnalysisError):  # killed before its header was complete
            heads.append(None)
    starts = [h[0] if h and h[2] > 0 else None for h in heads]
    merged: list[Merged] = []

    def write(tmp: str) -> None:
        frames, first, last, writer = 0, None, None, None
        try:
            for i, (path, head) in enumerate(zip(segment_paths, heads)):
                if head is None or head[2] == 0:
                    continue
                istart, nsavc, n = head
                later = [s for s in starts[i + 1:] if s is not None]
                stop = min(later) if later else None
                with DCDFile(str(path)) as f:
                    if writer is None:
                        writer = DCDFile(tmp, "w")
                        writer.write_header(remarks="lif-diffusion merged trajectory", natoms=int(f.header["natoms"]),
                                            istart=istart if last is None else last + nsavc, nsavc=nsavc,
                                            delta=float(f.header["delta"]), is_periodic=bool(f.header["is_periodic"]))
                    for lo in range(0, n, chunk_frames):
                        block = f.readframes(lo, min(n, lo + chunk_frames))
                        for k in range(len(block.xyz)):
                            step = istart + (lo + k) * nsavc
                            if stop is not None and step >= stop:
                                break
                            if last is not None and step <= last:
                                continue
                            if last is not None and step != last + nsavc:
                                raise AnalysisError(f"{path}: step {step} does not follow step {last} every {nsavc} "
                                                    "steps; cannot merge into one DCD")
                            writer.write(block.xyz[k], block.unitcell[k])
                            frames += 1
                            first = step if first is None else first
                            last = step
        finally:
            if writer is not None:
                writer.close()
        if frames == 0:
            raise AnalysisError(f"no complete frames in {[str(p) for p in segment_paths]}")
        merged.append(Merged(frames, first, last))

    atomic_copy(write, out)
    return merged[0]


def merge_rows(parts: list[Path], out: Path, header: str) -> int:
    """Text tables of ``step value ...`` rows (``fix ave/time`` files; '#' lines are comments) → one table with
    each step once, written atomically; as for trajectories, a later part replaces the earlier ones from its first
    step on. Returns the number of rows; writes nothing when there are no parts."""
    if not parts:
        return 0
    rows: dict[int, str] = {}
    for path in parts:
        mine = {}
        for line in path.read_text().splitlines():
            words = line.split()
            if words and not line.startswith("#") and words[0].isdigit():
                mine[int(words[0])] = " ".join(words)
        if mine:
            first = min(mine)
            rows = {k: v for k, v in rows.items() if k < first} | mine
    atomic_write_text(out, header + "".join(rows[k] + "\n" for k in sorted(rows)))
    return len(rows)
