"""Shots and frames in one decode.

One ffmpeg process decodes the source exactly once and splits the decoded frames
into up to three branches of one filter graph:

* ``det``: tiny BGR frames at the source rate, piped to PySceneDetect's detector,
  which finds the shot cuts;
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
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode, SceneDetector

from curate.config import AnalysisConfig, CutConfig
from curate.errors import permanent, transient
from curate.probe import MediaInfo

FFMPEG = "ffmpeg"
FRAMES_DIR = "frames"
INTERMEDIATE_NAME = "intermediate.mp4"


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
    graph = [
        f"[0:v:0]split={branches}[d][k]{'[e]' if reencode else ''}",
        f"[d]setpts=PTS-STARTPTS,fps={media.fps:.6f},scale={det_w}:{det_h}:flags=fast_bilinear,format=bgr24[det]",
        f"[k]setpts=PTS-STARTPTS,fps={config.frame_rate:g},{_short_side_scale(config.frame_short_side)}[keep]",
    ]
    if reencode:
        fps = f",fps={reencode.fps:g}" if reencode.fps else ""
        graph.append(f"[e]{_short_side_scale(reencode.short_side)}{fps},format=yuv420p[enc]")
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if config.threads:
        cmd += ["-threads", str(config.threads)]
    cmd += ["-i", str(video), "-filter_complex", ";".join(graph)]
    cmd += ["-map", "[det]", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
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


def make_detector(config: AnalysisConfig, fps: float) -> SceneDetector:
    """PySceneDetect's ContentDetector (default) or AdaptiveDetector."""
    min_len = max(1, round(config.min_shot_s * fps))
    if config.detector == "adaptive":
        kwargs = {"adaptive_threshold": config.threshold} if config.threshold is not None else {}
        return AdaptiveDetector(min_scene_len=min_len, **kwargs)
    kwargs = {"threshold": config.threshold} if config.threshold is not None else {}
    return ContentDetector(min_scene_len=min_len, **kwargs)


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
    detector = make_detector(config, media.fps)
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
        watchdog = threading.Timer(config.time_limit_s, proc.kill)
        watchdog.start()
        try:
            cuts, decoded = _detect_from_pipe(proc, detector, media.fps, detect_size(config.detect_width))
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
    frames = _kept_frames(workdir / FRAMES_DIR, config.frame_rate)
    intermediate = workdir / INTERMEDIATE_NAME if reencode else None
    return Analysis(tuple(cuts), frames, intermediate, decoded, elapsed)


def _detect_from_pipe(
    proc: subprocess.Popen, detector: SceneDetector, fps: float, size: tuple[int, int]
) -> tuple[list[float], int]:
    width, height = size
    frame_bytes = width * height * 3
    assert proc.stdout is not None
    cut_frames: list[int] = []
    n = 0
    while True:
        buf = proc.stdout.read(frame_bytes)
        if len(buf) < frame_bytes:
            break
        frame = np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
        cut_frames += [tc.frame_num for tc in detector.process_frame(FrameTimecode(n, fps), frame)]
        n += 1
    if n:
        cut_frames += [tc.frame_num for tc in detector.post_process(FrameTimecode(n - 1, fps))]
    cuts = sorted({round(f / fps, 6) for f in cut_frames if f > 0})
    return cuts, n


def _kept_frames(directory: Path, rate: float) -> tuple[KeptFrame, ...]:
    paths = sorted(directory.glob("*.jpg"))
    return tuple(KeptFrame(round(int(p.stem) / rate, 6), p) for p in paths)
