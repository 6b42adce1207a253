"""Container facts without decoding: streams, duration, keyframe times.

Everything here reads the container (ffprobe demuxes packets, it decodes nothing), so
it costs milliseconds even for long videos. The keyframe list is what makes
stream-copy cutting exact: a clip that starts and ends on keyframes is a plain copy
of packets and lasts exactly as planned.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from curate.errors import permanent

FFPROBE = "ffprobe"


@dataclass(frozen=True)
class MediaInfo:
    """What the later stages need to know about a source video."""

    duration: float
    width: int
    height: int
    fps: float
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    start_time: float
    keyframes: tuple[float, ...]
    """Keyframe times in seconds from the video stream's start (first is 0.0)."""
    seek_offset: float = 0.0
    """The video stream's start minus the container's: ffmpeg's ``-ss`` counts from the container's start."""

    @property
    def median_keyframe_interval(self) -> float:
        """Median gap between keyframes; the duration when there is only one."""
        points = [*self.keyframes, self.duration]
        gaps = sorted(b - a for a, b in zip(points, points[1:], strict=False) if b > a)
        return gaps[len(gaps) // 2] if gaps else self.duration


def _run_ffprobe(args: list[str], path: Path, timeout_s: float) -> tuple[str, str]:
    """(stdout, stderr) of ffprobe on a local file; the ``file:`` prefix stops a name being read as a protocol."""
    cmd = [FFPROBE, "-v", "error", *args, "-i", f"file:{path}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise permanent("invalid_media", f"ffprobe did not finish within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "unreadable"
        raise permanent("invalid_media", f"not a readable media file: {detail[:500]}")
    return done.stdout, done.stderr


def _fraction(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def read_packets(path: Path, start_time: float = 0.0, timeout_s: float = 120.0) -> tuple[tuple[float, ...], float, bool]:
    """(keyframe times, last packet time, whether ffprobe hit a truncated file) of the first video stream.

    Reads packets only, no decoding: milliseconds per minute of video.
    """
    out, err = _run_ffprobe(
        ["-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"], path, timeout_s
    )
    keyframes, last = set(), 0.0
    for line in out.splitlines():
        pts, _, flags = line.partition(",")
        if pts in ("", "N/A"):
            continue
        t = float(pts) - start_time
        last = max(last, t)
        if "K" in flags and t >= 0:
            keyframes.add(round(t, 6))
    return tuple(sorted(keyframes)), last, "partial file" in err or "truncat" in err.lower()


def probe(path: Path, timeout_s: float = 120.0) -> MediaInfo:
    """Probe a file; one without a whole, decodable video stream fails permanently.

    A faststart mp4 cut short still has its complete index at the front, so the stream header
    alone looks fine; the packet list (read anyway for the keyframes) shows the missing tail.
    """
    out, _ = _run_ffprobe(["-show_streams", "-show_format", "-of", "json"], path, timeout_s)
    data = json.loads(out or "{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)), None)
    if video is None:
        raise permanent("no_video_stream", "the file has no video stream")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _fraction(video.get("duration")) or _fraction(data.get("format", {}).get("duration"))
    if duration <= 0:
        raise permanent("invalid_media", "the video stream has no duration")
    start_time = _fraction(video.get("start_time"))
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise permanent("invalid_media", "the video stream has no frame size")
    keyframes, last_packet, truncated = read_packets(path, start_time, timeout_s)
    if truncated or last_packet < duration - 1.0:
        raise permanent("invalid_media", f"the file is truncated: video packets end before {duration:.1f} s")
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        fps=_fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate")) or 25.0,
        video_codec=str(video.get("codec_name")),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        start_time=start_time,
        keyframes=keyframes or (0.0,),
        seek_offset=max(0.0, start_time - _fraction(data.get("format", {}).get("start_time"))),
    )


def _is_cover_art(stream: dict) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))
