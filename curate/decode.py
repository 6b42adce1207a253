"""Shots and frames in one decode.

One ffmpeg process decodes the source exactly once and splits the decoded frames
into up to three branches of one filter graph:

* ``det``: tiny BGR frames at the source rate, piped in batches to a shot detector
  (:mod:`curate.shots`; ``analysis.detector``), or, for ``scdet``, ffmpeg's own scene
  detector inside the graph, whose verdicts come back as frame metadata;
* ``keep``: JPEG frames at a low fixed rate (``analysis.frame_rate``, short side
  ``analysis.frame_short_side``), the pool from which caption frames, the training
  frames of every clip and the shot thumbnails are all drawn;
* ``enc`` (only when the video is cut in ``reencode`` mode): a low-resolution H.264
  intermediate with a short GOP, so that the later cuts are stream copies of it.

Nothing else decodes the source for analysis: the decode is the expensive part,
scaling and filtering are cheap next to it.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.config import AnalysisConfig, CutConfig
from curate.errors import permanent, transient
from curate.media_guard import media_input_args
from curate.probe import MediaInfo
from curate.shots import BATCH_FRAMES, Detector, make_detector

FFMPEG = "ffmpeg"
FRAMES_DIR = "frames"
INTERMEDIATE_NAME = "intermediate.mp4"
SCDET_LOG = "scdet.txt"
SCDET_FRAME = (2, 2)
"""With ``scdet`` the pipe only counts frames: 2x2 grey, 4 bytes each."""


@dataclass(frozen=True)
class KeptFrame:
    """A JPEG kept by the decode pass, at ``time`` seconds from the video start."""

    time: float
    path: Path


@dataclass(frozen=True)
class Analysis:
    cuts: tuple[float, ...]
    """Shot cut times in seconds (the first frame of each new shot), ascending, excluding 0."""
    frames: tuple[KeptFrame, ...]
    intermediate: Path | None
    """The re-encoded intermediate when the decode pass wrote one."""
    frames_decoded: int
    seconds: float

    def shots(self, duration: float) -> list[tuple[float, float]]:
        """Shots as (start, end) intervals that tile [0, duration)."""
        bounds = [0.0, *[c for c in self.cuts if 0 < c < duration], duration]
        return list(zip(bounds, bounds[1:], strict=False))

    def nearest_frame(self, t: float) -> KeptFrame:
        """The kept frame closest in time to ``t`` (frames are evenly spaced, so this is O(1))."""
        if not self.frames:
            raise ValueError("the decode pass kept no frames")
        step = self.frames[1].time - self.frames[0].time if len(self.frames) > 1 else 1.0
        index = round((t - self.frames[0].time) / step) if step > 0 else 0
        return self.frames[min(max(index, 0), len(self.frames) - 1)]

    def shot_thumbnails(self, duration: float) -> list[KeptFrame]:
        """One kept frame per shot: the one nearest the shot's middle, inside the shot when one is."""
        thumbs = []
        for a, b in self.shots(duration):
            inside = [f for f in self.frames if a <= f.time < b]
            middle = (a + b) / 2
            thumbs.append(min(inside, key=lambda f: abs(f.time - middle)) if inside else self.nearest_frame(middle))
        return thumbs


def _short_side_scale(short_side: int) -> str:
    """A scale filter to ``short_side`` on the short side, never upscaling, even dimensions."""
    return (
        f"scale=w='if(lt(iw,ih),min(iw,{short_side}),-2)':h='if(lt(iw,ih),-2,min(ih,{short_side}))'"
        ":flags=bilinear"
    )


def detect_size(width: int) -> tuple[int, int]:
    """Detection frames are a fixed 16:9 box; aspect distortion does not affect cut detection."""
    height = max(2, round(width * 9 / 16 / 2) * 2)
    return width, height


def build_command(
    video: Path,
    media: MediaInfo,
    workdir: Path,
    config: AnalysisConfig,
    reencode: CutConfig | None,
) -> list[str]:
    """The one ffmpeg invocation of the decode pass (an argument list, never a shell string)."""
    det_w, det_h = detect_size(config.detect_width)
    branches = 3 if reencode else 2
    det = f"[d]setpts=PTS-STARTPTS,fps={media.fps:.6f},scale={det_w}:{det_h}:flags=fast_bilinear"
    if config.detector == "scdet":
        threshold = config.threshold if config.threshold is not None else 10.0
        det += f",scdet=threshold={threshold:g},metadata=mode=print:key=lavfi.scd.time:file='{workdir / SCDET_LOG}'"
        det += f",scale={SCDET_FRAME[0]}:{SCDET_FRAME[1]},format=gray[det]"
        pix_fmt = "gray"
    else:
        det += ",format=bgr24[det]"
        pix_fmt = "bgr24"
    graph = [
        f"[0:v:0]split={branches}[d][k]{'[e]' if reencode else ''}",
        det,
        f"[k]setpts=PTS-STARTPTS,fps={config.frame_rate:g},{_short_side_scale(config.frame_short_side)}[keep]",
    ]
    if reencode:
        fps = f",fps={reencode.fps:g}" if reencode.fps else ""
        graph.append(f"[e]{_short_side_scale(reencode.short_side)}{fps},format=yuv420p[enc]")
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if config.threads:
        cmd += ["-threads", str(config.threads)]
    cmd += [*media_input_args(video, media.demuxer), "-filter_complex", ";".join(graph)]
    cmd += ["-map", "[det]", "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    cmd += ["-map", "[keep]", "-q:v", str(config.jpeg_quality), "-start_number", "0"]
    cmd += ["-f", "image2", str(workdir / FRAMES_DIR / "%06d.jpg")]
    if reencode:
        cmd += _encode_args(media, reencode, workdir / INTERMEDIATE_NAME)
    return cmd


def _encode_args(media: MediaInfo, cut: CutConfig, out: Path) -> list[str]:
    args = ["-map", "[enc]", "-c:v", "libx264", "-preset", cut.preset, "-crf", str(cut.crf)]
    # Keyframes on a fixed grid, plus x264's scene-cut keyframes made IDR (keyint_min 1) so
    # that boundaries can land exactly on shot cuts too.
    args += ["-force_key_frames", f"expr:gte(t,n_forced*{cut.gop_s:g})", "-keyint_min", "1"]
    if media.has_audio:
        args += ["-map", "0:a:0", "-c:a", "copy" if media.audio_codec == "aac" else "aac"]
        if media.audio_codec != "aac":
            args += ["-b:a", "96k"]
    return [*args, "-movflags", "+faststart", str(out)]


def analyze(
    video: Path,
    media: MediaInfo,
    workdir: Path,
    config: AnalysisConfig,
    reencode: CutConfig | None = None,
) -> Analysis:
    """Run the single decode pass over ``video``; frames land in ``workdir/frames``."""
    started = time.monotonic()
    (workdir / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
    cmd = build_command(video, media, workdir, config, reencode)
    min_len = max(1, round(config.min_shot_s * media.fps))
    scdet = config.detector == "scdet"
    detector = None if scdet else make_detector(config.detector, config.threshold, min_len, media.fps)
    size = SCDET_FRAME if scdet else detect_size(config.detect_width)
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
        watchdog = threading.Timer(config.time_limit_s, proc.kill)
        watchdog.start()
        try:
            cut_frames, decoded = _detect_from_pipe(proc, detector, size, 1 if scdet else 3)
            returncode = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr.seek(0)
        message = stderr.read().decode("utf-8", "replace").strip()
    elapsed = time.monotonic() - started
    if returncode != 0:
        if elapsed >= config.time_limit_s:
            raise transient("time_limit", f"decode pass exceeded {config.time_limit_s:.0f} s")
        raise permanent("invalid_media", f"decoding failed: {message.splitlines()[-1] if message else returncode}")
    if decoded == 0:
        raise permanent("invalid_media", "no frame could be decoded")
    if scdet:
        cut_frames = _min_spacing(_scdet_frames(workdir / SCDET_LOG, media.fps), min_len)
    cuts = sorted({round(f / media.fps, 6) for f in cut_frames if f > 0})
    frames = _kept_frames(workdir / FRAMES_DIR, config.frame_rate)
    intermediate = workdir / INTERMEDIATE_NAME if reencode else None
    return Analysis(tuple(cuts), frames, intermediate, decoded, elapsed)


def _detect_from_pipe(
    proc: subprocess.Popen,
    detector: Detector | None,
    size: tuple[int, int],
    channels: int,
) -> tuple[list[int], int]:
    """(cut frame numbers, frames read): the pipe is read in batches of whole frames."""
    width, height = size
    frame_bytes = width * height * channels
    assert proc.stdout is not None
    cut_frames: list[int] = []
    n = 0
    while True:
        buf = proc.stdout.read(frame_bytes * BATCH_FRAMES)
        count = len(buf) // frame_bytes
        if count:
            if detector is not None:
                frames = np.frombuffer(buf, dtype=np.uint8, count=count * frame_bytes)
                cut_frames += detector.process(frames.reshape(count, height, width, channels))
            n += count
        if len(buf) < frame_bytes * BATCH_FRAMES:
            break
    if detector is not None:
        cut_frames += detector.finish()
    return cut_frames, n


def _scdet_frames(log: Path, fps: float) -> list[int]:
    """Frame numbers ffmpeg's ``scdet`` flagged, from its metadata log."""
    if not log.exists():
        return []
    frames = []
    for line in log.read_text().splitlines():
        if line.startswith("lavfi.scd.time="):
            frames.append(round(float(line.split("=", 1)[1]) * fps))
    return frames


def _min_spacing(frames: list[int], min_len: int) -> list[int]:
    """Drop cuts closer than ``min_len`` frames to the previous kept one (and to the start)."""
    kept: list[int] = []
    for f in sorted(frames):
        if f - (kept[-1] if kept else 0) >= min_len:
            kept.append(f)
    return kept


def _kept_frames(directory: Path, rate: float) -> tuple[KeptFrame, ...]:
    paths = sorted(directory.glob("*.jpg"))
    return tuple(KeptFrame(round(int(p.stem) / rate, 6), p) for p in paths)
