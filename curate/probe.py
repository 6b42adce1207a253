"""Container facts without decoding: streams, duration, keyframe times.

Everything here reads the container (ffprobe demuxes packets, it decodes nothing), so
it costs milliseconds even for long videos, in one ffprobe run: the streams, the format and
every packet's time and flags come out of one pass (starting Debian's ffprobe alone costs
~70 ms of CPU, as much as listing a minute of packets). The keyframe list is what makes
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
import subprocess
import threading
from array import array
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from curate.errors import permanent
from curate.media_guard import media_input_args, sniff_demuxer

FFPROBE = "ffprobe"
_STDERR_TAIL = 20
_ENTRIES = (
    "packet=stream_index,pts_time,flags"
    ":stream=index,codec_type,codec_name,width,height,duration,start_time,avg_frame_rate,r_frame_rate"
    ":stream_disposition=attached_pic:format=duration,start_time"
)
"""What the one ffprobe run prints (``-of compact``): packets as it reads them, then streams, then the format.
Only these fields, none of them free text (tags could hold the ``|`` that separates fields)."""


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


def _last_line(text: str) -> str:
    return (text.strip().splitlines()[-1] if text.strip() else "unreadable")[:500]


def _fraction(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


@dataclass
class _StreamPackets:
    """One stream's packets as listed: count, span and keyframe times (raw, before the stream's start)."""

    count: int = 0
    first: float = float("inf")
    last: float = float("-inf")
    keyframes: array = field(default_factory=lambda: array("d"))

    def packets(self, start_time: float, truncated: bool) -> Packets:
        keys = sorted({round(t - start_time, 6) for t in self.keyframes if t - start_time >= 0})
        if not self.count:
            return Packets((), 0.0, 0.0, 0, truncated)
        return Packets(tuple(keys), self.first - start_time, self.last - start_time, self.count, truncated)


@dataclass
class Listing:
    """What one ffprobe run says about a file: its streams, its format, and each stream's packets."""

    streams: list[dict[str, str]]
    format: dict[str, str]
    packets: dict[int, _StreamPackets]
    truncated: bool

    def packets_of(self, stream: dict[str, str], start_time: float) -> Packets:
        listed = self.packets.get(int(stream.get("index") or 0), _StreamPackets())
        return listed.packets(start_time, self.truncated)


def read_listing(path: Path, timeout_s: float = 120.0, max_packets: int = 1 << 62, demuxer: str | None = None) -> Listing:
    """Streams, format and packets of ``path`` in one ffprobe run, streamed line by line.

    Reads packets only, no decoding. The listing stops when a stream passes ``max_packets`` (every
    stream is held to it: which one is the video is only known at the end), so a file of millions of
    tiny packets costs neither the time nor the memory of listing them all.
    """
    cmd = [FFPROBE, "-v", "error", "-show_entries", _ENTRIES, "-of", "compact", *media_input_args(path, demuxer)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    expired = threading.Event()
    timer = threading.Timer(timeout_s, lambda: (expired.set(), proc.kill()))
    stderr = _StderrTail(proc)
    timer.start()
    try:
        listing, complete = _collect(proc, max_packets)
        if complete:
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()  # stopped early at max_packets, or an exception: ffprobe has nothing more to say
        proc.wait()
        timer.cancel()
        stderr.join()
    if expired.is_set():
        raise permanent("invalid_media", f"ffprobe did not list the packets within {timeout_s:.0f} s")
    if not complete:
        raise permanent("too_many_packets", f"more than {max_packets} packets in a stream (max_packets)")
    if proc.returncode != 0:
        raise permanent("invalid_media", f"not a readable media file: {stderr.last_line()}")
    listing.truncated = stderr.truncated
    return listing


def _collect(proc: subprocess.Popen, max_packets: int) -> tuple[Listing, bool]:
    """The listing ffprobe prints, and False if a stream passed ``max_packets`` (reading stopped there)."""
    listing = Listing([], {}, collections.defaultdict(_StreamPackets), False)
    for line in proc.stdout or ():
        kind, _, rest = line.rstrip("\n").partition("|")
        fields = dict(item.partition("=")[::2] for item in rest.split("|"))
        if kind == "packet":
            pts = fields.get("pts_time", "N/A")
            if pts in ("", "N/A"):
                continue
            stream = listing.packets[int(fields.get("stream_index") or 0)]
            stream.count += 1
            if stream.count > max_packets:
                return listing, False
            t = float(pts)
            stream.first, stream.last = min(stream.first, t), max(stream.last, t)
            if "K" in fields.get("flags", ""):
                stream.keyframes.append(t)
        elif kind == "stream":
            listing.streams.append(fields)
        elif kind == "format":
            listing.format = fields
    return listing, True


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


def probe(path: Path, timeout_s: float = 120.0, limits: MediaLimits | None = None) -> MediaInfo:
    """Probe a file; one without a whole, decodable video stream, or outside ``limits``, fails permanently.

    A faststart mp4 cut short still has its complete index at the front, so the stream header
    alone looks fine; the packet list (read anyway for the keyframes) shows the missing tail,
    and packets reaching past the header's duration show a header that lies.
    """
    limits = limits or MediaLimits()
    demuxer = sniff_demuxer(Path(path))
    listing = read_listing(path, timeout_s, limits.max_packets, demuxer)
    streams, container = listing.streams, listing.format
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)), None)
    if video is None:
        raise permanent("no_video_stream", "the file has no video stream")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _fraction(video.get("duration")) or _fraction(container.get("duration"))
    if duration <= 0:
        raise permanent("invalid_media", "the video stream has no duration")
    start_time = _fraction(video.get("start_time"))
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    _check_frame(width, height, limits)
    _check_duration(duration, limits)
    packets = listing.packets_of(video, start_time)
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
        seek_offset=max(0.0, start_time - _fraction(container.get("start_time"))),
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


def _is_cover_art(stream: dict[str, str]) -> bool:
    return stream.get("disposition:attached_pic") == "1"
