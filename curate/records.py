"""Clip records: what each WebDataset sample carries (see docs/dataset-format.md).

A :class:`Sample` is built from the plan, the cut clip and the kept frames of the
decode pass; nothing here reads video. ``caption`` and ``summary`` stay null until
the captioning stage fills them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.cut import CutClip, keeps_audio
from curate.decode import Analysis
from curate.plan import ClipPlan, PlannedClip
from curate.probe import MediaInfo
from vidla_format.layout import FORMAT_VERSION, SCALES, clip_key


@dataclass
class Sample:
    """One clip, ready for the shard writer."""

    key: str
    scale: str
    record: dict[str, Any]
    mp4: Path | bytes
    """The clip: a file in the video's work directory, or its bytes once it travels between processes."""
    frames: list[Path] | list[bytes]
    caption_frames: list[Path] | list[bytes] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text to train on: summary, else caption, else subtitle."""
        for name in ("summary", "caption", "subtitle"):
            value = self.record.get(name)
            if value:
                return str(value)
        return ""


def split_for(video_id: str, fractions: dict[str, float]) -> str:
    """train/val/test from a hash of the video id, so a source never spans two splits."""
    digest = hashlib.sha256(video_id.encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name in ("test", "val", "train"):
        edge += fractions.get(name, 0.0)
        if u < edge:
            return name
    return "train"


def segment_middles(start: float, end: float, k: int) -> list[float]:
    """Times at the middles of ``k`` equal segments of [start, end)."""
    step = (end - start) / k
    return [start + (i + 0.5) * step for i in range(k)]


def caption_times(start: float, end: float, rate: float) -> list[float]:
    """Caption frame times at about ``rate`` per second, centred, at least one."""
    n = max(1, math.floor((end - start) * rate + 1e-9))
    return segment_middles(start, end, n)


@dataclass(frozen=True)
class VideoContext:
    """What every sample of one video shares."""

    video_id: str
    url: str
    split: str
    source: dict[str, Any]
    subtitle_language: str | None
    subtitle_kind: str | None
    has_subtitles: bool
    cut_mode: str


def build_samples(
    ctx: VideoContext,
    plan: ClipPlan,
    clip_files: dict[tuple[str, int], CutClip],
    clip_media: MediaInfo,
    analysis: Analysis,
    frames_per_clip: int,
    caption_frame_rate: float,
) -> list[Sample]:
    """One :class:`Sample` per planned clip, in scale then time order."""
    samples = []
    for scale in SCALES:
        for clip in plan.clips[scale]:
            samples.append(
                _sample(ctx, clip, clip_files[(scale, clip.index)], clip_media, analysis, frames_per_clip, caption_frame_rate)
            )
    return samples


def _sample(
    ctx: VideoContext,
    clip: PlannedClip,
    cut: CutClip,
    media: MediaInfo,
    analysis: Analysis,
    frames_per_clip: int,
    caption_frame_rate: float,
) -> Sample:
    frames = [analysis.nearest_frame(t) for t in segment_middles(clip.start, clip.end, frames_per_clip)]
    captions = [analysis.nearest_frame(t) for t in caption_times(clip.start, clip.end, caption_frame_rate)]
    key = clip_key(ctx.video_id, clip.scale, clip.index)
    record = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "video_id": ctx.video_id,
        "url": ctx.url,
        "scale": clip.scale,
        "index": clip.index,
        "start": round(clip.start, 6),
        "end": round(clip.end, 6),
        "duration": round(clip.duration, 6),
        "parent": _parent_key(ctx.video_id, clip),
        "children": _children_keys(ctx.video_id, clip),
        "shots": _shots_in(analysis, clip),
        "subtitle": " ".join(s.text for s in clip.sentences) if ctx.has_subtitles else None,
        "subtitle_sentences": [{"start": s.start, "end": s.end, "text": s.text} for s in clip.sentences],
        "subtitle_language": ctx.subtitle_language,
        "subtitle_kind": ctx.subtitle_kind,
        "caption": None,
        "raw_caption": None,
        "summary": None,
        "caption_frames": [f.time for f in captions],
        "frame_times": [f.time for f in frames],
        "split": ctx.split,
        "fps": round(media.fps, 6),
        "width": media.width,
        "height": media.height,
        "has_audio": keeps_audio(media),
        "cut_mode": ctx.cut_mode,
        "preroll_s": round(cut.preroll_s, 6),
        "source": ctx.source,
    }
    return Sample(key, clip.scale, record, cut.path, [f.path for f in frames], [f.path for f in captions])


def _parent_key(video_id: str, clip: PlannedClip) -> str | None:
    position = SCALES.index(clip.scale)
    if clip.parent is None or position + 1 >= len(SCALES):
        return None
    return clip_key(video_id, SCALES[position + 1], clip.parent)


def _children_keys(video_id: str, clip: PlannedClip) -> list[str]:
    position = SCALES.index(clip.scale)
    if position == 0:
        return []
    return [clip_key(video_id, SCALES[position - 1], i) for i in clip.children]


def _shots_in(analysis: Analysis, clip: PlannedClip) -> list[list[float]]:
    """Shots overlapping the clip, clipped to it, in clip time (seconds from the clip's start)."""
    out = []
    for a, b in analysis.shots(clip.end):
        lo, hi = max(a, clip.start), min(b, clip.end)
        if hi > lo + 1e-6:
            out.append([round(lo - clip.start, 6), round(hi - clip.start, 6)])
    return out
