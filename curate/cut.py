"""Cutting planned clips out of a file by stream copy, exact to the frame at any GOP.

A clip that starts between keyframes is a stream copy from the keyframe before its start,
with an MP4 edit list that hides the pre-roll (``ffmpeg -ss START -t LEN -i src -c copy``):
edit-list-aware readers (ffmpeg, PyAV, browsers; see docs/dataset-format.md) present exactly
the frames from START on, bit-identical to the source's own decode. ffmpeg stops copying on
decode timestamps, so with B-frames a few frames past the end are stored too; the edit's
duration is then set to the planned length (:mod:`curate.editlist`), which hides them the
same way. Nothing is decoded or encoded.

Clips of every scale are written by as few ffmpeg processes as possible: one process takes
up to ``MAX_OUTPUTS_PER_PROCESS`` seeked inputs of the same file, each mapped to its own
output, so a video's 40 clips cost one process start, not 40.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from curate.editlist import EditListError, trim_presentation
from curate.errors import permanent, transient
from curate.media_guard import media_input_args
from curate.probe import MediaInfo

FFMPEG = "ffmpeg"
MP4_VIDEO_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg"})
"""Video codecs ffmpeg's MP4 muxer stores by stream copy, edit lists included."""
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"})
"""Audio a clip keeps by stream copy; other audio (e.g. Vorbis from old WebM) is left out of the clips."""
MAX_OUTPUTS_PER_PROCESS = 24
"""Seeked inputs per ffmpeg run: each is a demuxer with its own index in memory."""


@dataclass(frozen=True)
class CutClip:
    path: Path
    start: float
    end: float
    """Planned start, and the end the edit list presents (the planned end, to the millisecond)."""
    preroll_s: float
    """Seconds stored before ``start`` (from the keyframe the copy starts on) and hidden by the edit list."""


def seek_time(t: float, media: MediaInfo) -> str:
    """``-ss`` for a clip starting at video time ``t``: floored to the microsecond, so the frame at ``t`` is kept."""
    return f"{math.floor((t + media.seek_offset) * 1e6) / 1e6:.6f}"


def preroll(start: float, keyframes: Sequence[float], fps: float) -> float:
    """Seconds from the last keyframe at or before ``start`` (within half a frame) to ``start``."""
    eps = 0.5 / fps
    before = [k for k in keyframes if k <= start + eps]
    return max(0.0, start - before[-1]) if before else start


def keeps_audio(media: MediaInfo) -> bool:
    """Whether clips carry the source's audio (MP4 must be able to hold its codec)."""
    return media.has_audio and media.audio_codec in MP4_AUDIO_CODECS


def build_command(source: Path, spans: Sequence[tuple[float, float]], outs: Sequence[Path], media: MediaInfo) -> list[str]:
    """One ffmpeg run: input i is the source seeked to span i, mapped to output i (argument list, no shell).

    Each input names its demuxer and allows only the ``file`` protocol (:mod:`curate.media_guard`),
    so a downloaded file can't make ffmpeg open anything else."""
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for start, end in spans:
        # -t counts decode timestamps: every frame shown before `end` is copied, plus the few
        # frames after it they may reference; the edit list trims those afterwards.
        cmd += ["-ss", seek_time(start, media), "-t", f"{end - start:.6f}", *media_input_args(source, media.demuxer)]
    for i, out in enumerate(outs):
        cmd += ["-map", f"{i}:v:0"] + (["-map", f"{i}:a:0?"] if keeps_audio(media) else [])
        cmd += ["-c", "copy", "-use_editlist", "1", "-movflags", "+faststart", "-f", "mp4", str(out)]
    return cmd


def cut_clips(
    source: Path,
    spans: Sequence[tuple[float, float]],
    out_paths: Sequence[Path],
    media: MediaInfo,
    time_limit_s: float,
) -> list[CutClip]:
    """Write each (start, end) span of ``source`` to its path; spans may overlap (scales nest)."""
    if len(spans) != len(out_paths):
        raise ValueError("one output path per span")
    clips: list[CutClip] = []
    for lo in range(0, len(spans), MAX_OUTPUTS_PER_PROCESS):
        batch, outs = spans[lo : lo + MAX_OUTPUTS_PER_PROCESS], out_paths[lo : lo + MAX_OUTPUTS_PER_PROCESS]
        _run(build_command(source, batch, outs, media), time_limit_s)
        clips += [_trim(out, span, media) for span, out in zip(batch, outs, strict=True)]
    return clips


def _run(cmd: list[str], time_limit_s: float) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise transient("time_limit", f"cutting exceeded {time_limit_s:.0f} s") from exc
    if done.returncode != 0:
        raise permanent("cut_failed", f"ffmpeg could not cut the video: {done.stderr.strip()[-300:]}")


def _trim(out: Path, span: tuple[float, float], media: MediaInfo) -> CutClip:
    """Set the clip's edit lists to its planned length and check what the file now presents."""
    start, end = span
    try:
        presented = trim_presentation(out, {b"vide": end - start, b"soun": end - start})
    except (EditListError, OSError) as exc:
        raise permanent("cut_failed", f"clip {start:.3f}-{end:.3f} s: {exc}") from exc
    shown = presented.get(b"vide", 0.0)
    if shown < end - start - 1.0 / media.fps:
        raise permanent("cut_mismatch", f"clip {start:.3f}-{end:.3f} s presents only {shown:.3f} s of video")
    return CutClip(out, start, start + shown, preroll(start, media.keyframes, media.fps))
