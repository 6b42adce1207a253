"""Container facts without decoding: streams, duration, keyframe times.

Everything here reads the container (ffprobe demuxes packets, it decodes nothing), so
it costs milliseconds even for long videos. The keyframe list is what makes
stream-copy cutting exact: a clip that starts and ends on keyframes is a plain copy
of packets and lasts exactly as planned.

Files come from the internet, so ffprobe opens them only through
:func:`curate.media_guard.media_input_args` (an allowed container, the ``file`` protocol,
an explicit demuxer), and :class:`MediaLimits` refuses what a header can hide: a frame
rate or a packet count that would make the one decode run for hours, and a duration the
packets contradict.
"""

from __future__ import annotations

import collections
import json
import subprocess
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from curate.errors import permanent
from curate.media_guard import media_input_args, sniff_demuxer

FFPROBE = "ffprobe"
_STDERR_TAIL = 20


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
    demuxer: str | None = None
    """The ffmpeg demuxer the file was recognised as (``media_input_args(path, demuxer)``)."""


@dataclass(frozen=True)
class MediaLimits:
    """What a source may be, checked on its packets (a header can say anything)."""

    max_duration_s: float = float("inf")
    max_fps: float = float("inf")
    max_frame_side: int = 1 << 30
    max_packets: int = 1 << 62


@dataclass(frozen=True)
class Packets:
    """The first video stream's packets, reduced to what probing needs."""

    keyframes: tuple[float, ...]
    first: float
    last: float
    count: int
    truncated: bool

    @property
    def rate(self) -> float:
        """Packets per second over the stream's span: the real frame rate, whatever the header says."""
        span = self.last - self.first
        return (self.count - 1) / span if span > 0 else (float("inf") if self.count > 1 else 0.0)


def _run_ffprobe(args: list[str], path: Path, timeout_s: float, demuxer: str) -> tuple[str, str]:
    """(stdout, stderr) of ffprobe on a local file, confined to that file."""
    cmd = [FFPROBE, "-v", "error", *args, *media_input_args(path, demuxer)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise permanent("invalid_media", f"ffprobe did not finish within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise permanent("invalid_media", f"not a readable media file: {_last_line(done.stderr)}")
    return done.stdout, done.stderr


def _last_line(text: str) -> str:
    return (text.strip().splitlines()[-1] if text.strip() else "unreadable")[:500]


def _fraction(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def read_packets(
    path: Path, start_time: float = 0.0, timeout_s: float = 120.0, max_packets: int = 1 << 62, demuxer: str | None = None
) -> Packets:
    """The first video stream's packets: keyframe times, span, count, and whether the file is cut short.

    Reads packets only, no decoding: milliseconds per minute of video. ffprobe's output is
    streamed and stopped at ``max_packets``, so a file of millions of tiny packets costs
    neither the time nor the memory of listing them all.
    """
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
           "-of", "csv=p=0", *media_input_args(path, demuxer)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    expired = threading.Event()
    timer = threading.Timer(timeout_s, lambda: (expired.set(), proc.kill()))
    stderr = _StderrTail(proc)
    timer.start()
    try:
        packets = _collect_packets(proc, start_time, max_packets)
        if packets.count <= max_packets:
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()  # stopped early at max_packets, or an exception: ffprobe has nothing more to say
        proc.wait()
        timer.cancel()
        stderr.join()
    if expired.is_set():
        raise permanent("invalid_media", f"ffprobe did not list the packets within {timeout_s:.0f} s")
    if packets.count > max_packets:
        raise permanent("too_many_packets", f"more than {max_packets} video packets (max_packets)")
    if proc.returncode != 0:
        raise permanent("invalid_media", f"not a readable media file: {stderr.last_line()}")
    return replace(packets, truncated=stderr.truncated)


class _StderrTail:
    """ffprobe's stderr, drained in a thread (a chatty file must not block its stdout), last lines kept."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self.truncated = False
        self._thread = threading.Thread(target=self._drain, args=(proc,), daemon=True)
        self._thread.start()

    def _drain(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr or ():
            self.lines.append(line)
            self.truncated = self.truncated or "partial file" in line or "truncat" in line.lower()

    def join(self) -> None:
        self._thread.join(timeout=5)

    def last_line(self) -> str:
        return _last_line("".join(self.lines))


def _collect_packets(proc: subprocess.Popen, start_time: float, max_packets: int) -> Packets:
    """Keyframes and span of the packet lines ffprobe prints; stops after ``max_packets`` + 1."""
    keyframes: set[float] = set()
    first, last, count = float("inf"), 0.0, 0
    for line in proc.stdout or ():
        pts, _, flags = line.strip().partition(",")
        if pts in ("", "N/A"):
            continue
        count += 1
        if count > max_packets:
            break
        t = float(pts) - start_time
        first, last = min(first, t), max(last, t)
        if "K" in flags and t >= 0:
            keyframes.add(round(t, 6))
    return Packets(tuple(sorted(keyframes)), first if count else 0.0, last, count, False)


def probe(path: Path, timeout_s: float = 120.0, limits: MediaLimits | None = None) -> MediaInfo:
    """Probe a file; one without a whole, decodable video stream, or outside ``limits``, fails permanently.

    A faststart mp4 cut short still has its complete index at the front, so the stream header
    alone looks fine; the packet list (read anyway for the keyframes) shows the missing tail,
    and packets reaching past the header's duration show a header that lies.
    """
    limits = limits or MediaLimits()
    demuxer = sniff_demuxer(Path(path))
    out, _ = _run_ffprobe(["-show_streams", "-show_format", "-of", "json"], path, timeout_s, demuxer)
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
    _check_frame(width, height, limits)
    _check_duration(duration, limits)
    packets = read_packets(path, start_time, timeout_s, limits.max_packets, demuxer)
    _check_packets(packets, duration, limits)
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        fps=_fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate")) or 25.0,
        video_codec=str(video.get("codec_name")),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        start_time=start_time,
        keyframes=packets.keyframes or (0.0,),
        seek_offset=max(0.0, start_time - _fraction(data.get("format", {}).get("start_time"))),
        demuxer=demuxer,
    )


def _check_frame(width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise permanent("invalid_media", "the video stream has no frame size")
    if max(width, height) > limits.max_frame_side:
        raise permanent("resolution_too_high", f"{width}x{height} exceeds max_frame_side={limits.max_frame_side}")


def _check_duration(duration: float, limits: MediaLimits) -> None:
    if duration > limits.max_duration_s:
        raise permanent("too_long", f"{duration:.0f} s > max_duration_s={limits.max_duration_s:g}")


def _check_packets(packets: Packets, duration: float, limits: MediaLimits) -> None:
    """The packets must agree with the header: not cut short, not running past it, not too dense."""
    if packets.truncated or packets.last < duration - 1.0:
        raise permanent("invalid_media", f"the file is truncated: video packets end before {duration:.1f} s")
    if packets.last > duration + max(2.0, 0.05 * duration):
        raise permanent(
            "duration_mismatch", f"the header says {duration:.1f} s but video packets run to {packets.last:.1f} s"
        )
    if packets.rate > limits.max_fps:
        raise permanent("fps_too_high", f"{packets.rate:.0f} video packets per second > max_fps={limits.max_fps:g}")


def _is_cover_art(stream: dict) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))
