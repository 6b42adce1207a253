"""Cutting planned clips out of a file by stream copy.

Every boundary of the plan is a keyframe of the file being cut (see :mod:`curate.plan`),
so a clip is a plain copy of packets: no decode, no encode, exact duration. All the
clips of one scale are written by one ffmpeg run of the segment muxer (clips within a
scale never overlap), which reads the file once and avoids a process start per clip;
the segment list it writes gives each piece's real start and end, which are checked
against the plan.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from curate.errors import permanent, transient

FFMPEG = "ffmpeg"
DURATION_TOLERANCE_S = 0.1


@dataclass(frozen=True)
class CutClip:
    path: Path
    start: float
    end: float
    """Planned start and the end implied by the duration ffmpeg reported."""


def split_points(spans: Sequence[tuple[float, float]]) -> list[float]:
    """Every clip start and end after 0, ascending: piece ``i`` of the muxer spans points i-1..i."""
    return sorted({round(t, 6) for span in spans for t in span if t > 1e-6})


def segment_times(points: Sequence[float], fps: float) -> list[float]:
    """The points nudged just below their keyframes for the segment muxer.

    The muxer splits at the first keyframe at or after each time; a nudge of a fraction of a
    frame makes float rounding of the keyframe's timestamp harmless.
    """
    nudge = min(0.001, 0.25 / fps)
    return [max(0.0, t - nudge) for t in points]


def cut_clips(
    source: Path,
    spans: Sequence[tuple[float, float]],
    out_paths: Sequence[Path],
    fps: float,
    has_audio: bool,
    time_limit_s: float,
) -> list[CutClip]:
    """Write ``spans`` (non-overlapping, ascending, on keyframes) of ``source`` to ``out_paths``."""
    if not spans:
        return []
    if len(spans) != len(out_paths):
        raise ValueError("one output path per span")
    out_dir = out_paths[0].parent
    with tempfile.TemporaryDirectory(prefix=".segments-", dir=out_dir) as tmp:
        points = split_points(spans)
        pieces = _run_segment_muxer(source, segment_times(points, fps), Path(tmp), has_audio, time_limit_s)
        index = {t: i + 1 for i, t in enumerate(points)}
        return [
            _take_piece(pieces, index.get(round(span[0], 6), 0), span, path)
            for span, path in zip(spans, out_paths, strict=True)
        ]


def _run_segment_muxer(
    source: Path, times: list[float], tmp: Path, has_audio: bool, time_limit_s: float
) -> list[tuple[Path, float, float]]:
    listing = tmp / "segments.csv"
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source)]
    cmd += ["-map", "0:v:0"] + (["-map", "0:a:0"] if has_audio else [])
    cmd += ["-c", "copy", "-f", "segment", "-segment_format", "mp4"]
    cmd += ["-segment_format_options", "movflags=+faststart", "-reset_timestamps", "1"]
    if times:
        cmd += ["-segment_times", ",".join(f"{t:.6f}" for t in times)]
    else:
        cmd += ["-segment_time", "1e9"]
    cmd += ["-segment_list", str(listing), "-segment_list_type", "csv", str(tmp / "%06d.mp4")]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise transient("time_limit", f"cutting exceeded {time_limit_s:.0f} s") from exc
    if done.returncode != 0:
        raise permanent("cut_failed", f"ffmpeg could not cut the video: {done.stderr.strip()[-300:]}")
    with listing.open(newline="") as f:
        return [(tmp / row[0], float(row[1]), float(row[2])) for row in csv.reader(f) if row]


def _take_piece(pieces: list[tuple[Path, float, float]], i: int, span: tuple[float, float], dest: Path) -> CutClip:
    """Move piece ``i`` to ``dest`` after checking that it lasts as long as planned.

    The segment list's times can carry a constant offset (the container's edit list for
    B-frame delay), so the check is on the duration, not on absolute times.
    """
    start, end = span
    if i >= len(pieces):
        raise permanent("cut_mismatch", f"ffmpeg wrote {len(pieces)} pieces, clip {start:.3f}-{end:.3f} s needs #{i}")
    path, got_start, got_end = pieces[i]
    if abs((got_end - got_start) - (end - start)) > DURATION_TOLERANCE_S:
        raise permanent(
            "cut_mismatch",
            f"clip {start:.3f}-{end:.3f} s came out {got_end - got_start:.3f} s long (boundaries not on keyframes?)",
        )
    path.replace(dest)
    return CutClip(dest, start, start + (got_end - got_start))
