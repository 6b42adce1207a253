"""Trim the presentation end of a stream-copied MP4 by rewriting its edit lists in place.

A stream copy that starts between keyframes (``ffmpeg -ss T -i src -c copy``) stores the
packets from the previous keyframe on and writes an edit list whose ``media_time`` hides
the pre-roll, so readers present exactly the frames from ``T`` on. The end is not exact:
ffmpeg stops copying on decode timestamps, so with B-frames up to ``has_b_frames`` frames
after the planned end are stored *and presented* (they are needed to decode the frames
before the end, so they can't be dropped). Setting the edit's ``segment_duration`` to the
planned length hides them the same way the pre-roll is hidden.

Only fixed-size integer fields change (``elst`` segment durations, ``tkhd`` and ``mvhd``
durations), so the file is patched in place: no sample data moves, nothing is re-muxed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONTAINERS = {b"moov", b"trak", b"edts", b"mdia"}


class EditListError(ValueError):
    """The file is not an MP4 this module can patch (no moov, no edit list, malformed boxes)."""


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int
    """Offset of the box header."""
    body: int
    """Offset of the box payload."""
    end: int


def iter_boxes(data: bytearray | bytes, start: int, end: int) -> Iterator[Box]:
    """The boxes laid end to end in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise EditListError("truncated 64-bit box header")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise EditListError(f"box {kind!r} at {pos} has an impossible size {size}")
        yield Box(kind, pos, pos + header, pos + size)
        pos += size


def _child(data: bytearray, box: Box | None, kind: bytes) -> Box | None:
    if box is None:
        return None
    return next((b for b in iter_boxes(data, box.body, box.end) if b.kind == kind), None)


def _duration_field(data: bytearray, box: Box, v0_offset: int, v1_offset: int) -> tuple[int, str]:
    """(offset, struct format) of the duration field of a full box (mvhd/tkhd/mdhd layout)."""
    version = data[box.body]
    return (box.body + v1_offset, ">Q") if version == 1 else (box.body + v0_offset, ">I")


def _timescale(data: bytearray, box: Box) -> int:
    """The timescale of an ``mvhd`` or ``mdhd`` box."""
    offset = 20 if data[box.body] == 1 else 12
    return struct.unpack_from(">I", data, box.body + offset)[0]


def _handler(data: bytearray, trak: Box) -> bytes:
    mdia = _child(data, trak, b"mdia")
    hdlr = _child(data, mdia, b"hdlr") if mdia else None
    return bytes(data[hdlr.body + 8 : hdlr.body + 12]) if hdlr else b""


def _trim_elst(data: bytearray, elst: Box, limit: int) -> int:
    """Shorten the media edits so the track presents at most ``limit`` movie-timescale units; its new length."""
    version = data[elst.body]
    (count,) = struct.unpack_from(">I", data, elst.body + 4)
    entry, fmt = (20, ">QqI") if version == 1 else (12, ">IiI")
    dur_fmt = ">Q" if version == 1 else ">I"
    total = 0
    for i in range(count):
        offset = elst.body + 8 + i * entry
        if offset + entry > elst.end:
            raise EditListError("truncated edit list")
        duration, _media_time, _rate = struct.unpack_from(fmt, data, offset)
        duration = max(0, min(duration, limit - total))
        struct.pack_into(dur_fmt, data, offset, duration)
        total += duration
    return total


def _read_moov(path: Path) -> tuple[int, bytearray]:
    """(file offset, bytes) of the top-level ``moov`` box, read without loading the media data."""
    size_total = path.stat().st_size
    with path.open("rb") as f:
        pos = 0
        while pos + 8 <= size_total:
            f.seek(pos)
            header = f.read(16)
            size, kind = struct.unpack_from(">I4s", header)
            if size == 1:
                (size,) = struct.unpack_from(">Q", header, 8)
            elif size == 0:
                size = size_total - pos
            if size < 8:
                raise EditListError(f"box {kind!r} at {pos} has an impossible size {size}")
            if kind == b"moov":
                f.seek(pos)
                return pos, bytearray(f.read(size))
            pos += size
    raise EditListError("no moov box: not an MP4 written by ffmpeg's mov muxer")


def trim_presentation(path: Path, seconds: dict[bytes, float]) -> dict[bytes, float]:
    """Cut each track's presentation to ``seconds[handler]`` (``b"vide"``, ``b"soun"``) at most.

    Returns the presented length per handler after the patch. Tracks never grow: a track
    already shorter than asked keeps its length. Raises :class:`EditListError` when a track
    to trim has no edit list (write the file with ``-use_editlist 1``). Only the ``moov``
    box is read and written back.
    """
    moov_at, data = _read_moov(path)
    moov = next(iter_boxes(data, 0, len(data)))
    mvhd = _child(data, moov, b"mvhd")
    if mvhd is None:
        raise EditListError("no mvhd box")
    movie_scale = _timescale(data, mvhd)
    presented: dict[bytes, float] = {}
    longest = 0
    for trak in (b for b in iter_boxes(data, moov.body, moov.end) if b.kind == b"trak"):
        handler = _handler(data, trak)
        tkhd, edts = _child(data, trak, b"tkhd"), _child(data, trak, b"edts")
        elst = _child(data, edts, b"elst") if edts else None
        if tkhd is None:
            raise EditListError("a track has no tkhd box")
        offset, fmt = _duration_field(data, tkhd, 20, 28)
        (length,) = struct.unpack_from(fmt, data, offset)
        if handler in seconds:
            if elst is None:
                raise EditListError(f"the {handler.decode()} track has no edit list to trim")
            # Floor: the last frame presented starts strictly before the planned end.
            length = _trim_elst(data, elst, int(seconds[handler] * movie_scale))
            struct.pack_into(fmt, data, offset, length)
            presented[handler] = length / movie_scale
        longest = max(longest, length)
    offset, fmt = _duration_field(data, mvhd, 16, 24)
    struct.pack_into(fmt, data, offset, longest)
    with path.open("r+b") as f:
        f.seek(moov_at)
        f.write(data)
    return presented
