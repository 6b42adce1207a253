"""Nested multi-scale clip planning.

Clip boundaries go where the content says (sentence boundaries and shot cuts), on the
frame grid of the file that will be cut (the source in ``copy`` mode, the re-encoded
intermediate in ``reencode`` mode). Keyframes don't constrain them: every clip is a
stream copy with an MP4 edit list (:mod:`curate.cut`) that presents exactly its frames.

The plan is built bottom-up:

1. *Units*: spans of speech. With subtitles, each sentence is a unit; consecutive
   sentences share a boundary in the middle of the pause between them, and a pause
   longer than ``max_silence_s`` splits the video into separate *runs*. Without
   subtitles, shots are the units (long shots split evenly) and the whole video is
   one run.
2. *Placing*: a unit boundary within ``cut_snap_s`` of a shot cut moves onto the cut (so
   no clip opens or closes on a sliver of another shot); otherwise onto a keyframe a frame
   or two away (``keyframe_snap_frames``: no pre-roll to store); otherwise onto the nearest
   frame. Units that collapse merge.
3. *Grouping*: short clips are groups of consecutive units, medium clips groups of
   consecutive short clips, long clips groups of consecutive medium clips; each group
   is chosen greedily so its length approaches the scale's target within [min, max].
   A clip therefore nests exactly in its parent, and a clip may span several shots.
4. *Text*: a sentence belongs to the short clip that holds its midpoint (after
   snapping), so each sentence lands in exactly one clip per scale.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from curate.config import PlanConfig, ScaleConfig
from curate.subtitles import Sentence
from vidla_format.layout import SCALES


@dataclass
class PlannedClip:
    scale: str
    index: int
    start: float
    end: float
    children: list[int] = field(default_factory=list)
    """Indices of the clips one scale down."""
    parent: int | None = None
    """Index of the clip one scale up."""
    sentences: list[Sentence] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class ClipPlan:
    clips: dict[str, list[PlannedClip]]
    dropped_sentences: int = 0

    def count(self, scale: str) -> int:
        return len(self.clips.get(scale, []))

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.clips.values())


# --- 1. units ---------------------------------------------------------------------------------


def sentence_runs(sentences: Sequence[Sentence], max_silence_s: float) -> list[list[float]]:
    """Boundary lists, one per run of speech; boundaries sit mid-pause between sentences."""
    runs: list[list[float]] = []
    ordered = sorted(sentences, key=lambda s: s.start)
    for prev, cur in zip([None, *ordered], ordered, strict=False):
        if prev is None or cur.start - prev.end > max_silence_s:
            if runs:
                runs[-1].append(prev.end)
            runs.append([cur.start])
        else:
            runs[-1].append(max(prev.end, (prev.end + cur.start) / 2) if cur.start > prev.end else cur.start)
    if runs:
        runs[-1].append(ordered[-1].end)
    return [sorted(set(run)) for run in runs if len(set(run)) > 1]


def shot_run(duration: float, cuts: Sequence[float], short: ScaleConfig) -> list[list[float]]:
    """One run over the whole video whose units are shots; shots longer than ``short.max_s`` split evenly."""
    bounds = [0.0, *[c for c in cuts if 0 < c < duration], duration]
    out = [0.0]
    for a, b in zip(bounds, bounds[1:], strict=False):
        pieces = max(1, -(-(b - a) // short.target_s)) if b - a > short.max_s else 1
        out += [a + (b - a) * (i + 1) / pieces for i in range(int(pieces))]
    return [out]


# --- 2. placing boundaries -------------------------------------------------------------------


@dataclass(frozen=True)
class Placer:
    """Puts boundaries on the frame grid, onto nearby shot cuts, and onto keyframes a frame or two away.

    Clips are stream copies with edit lists (:mod:`curate.cut`), so a boundary may sit on any
    frame: the content decides where. A shot cut within ``cut_snap_s`` wins (so no clip opens
    or closes on a sliver of another shot); otherwise a keyframe within
    ``keyframe_snap_frames`` frames is taken, which saves the clip its pre-roll bytes.
    """

    keyframes: tuple[float, ...]
    cuts: tuple[float, ...]
    fps: float
    config: PlanConfig
    duration: float

    def frame(self, t: float) -> float:
        """The start time of the frame nearest ``t``, within the video."""
        last = math.floor(self.duration * self.fps + 1e-6)
        return round(min(max(round(t * self.fps), 0), last) / self.fps, 6)

    def place(self, t: float) -> float:
        cut = _nearest(self.cuts, t)
        if cut is not None and abs(cut - t) <= self.config.cut_snap_s:
            return self.frame(cut)
        key = _nearest(self.keyframes, t)
        if key is not None and abs(key - t) <= (self.config.keyframe_snap_frames + 0.5) / self.fps:
            return self.frame(key)
        return self.frame(t)

    def place_run(self, run: list[float]) -> list[float]:
        out: list[float] = []
        for t in (self.place(t) for t in run):
            if not out or t > out[-1] + 1e-6:
                out.append(t)
        return out if len(out) > 1 else []


def _nearest(points: Sequence[float], t: float) -> float | None:
    i = bisect.bisect_left(points, t)
    return min((points[j] for j in (i - 1, i) if 0 <= j < len(points)), key=lambda p: abs(p - t), default=None)


# --- 3. grouping ------------------------------------------------------------------------------


def group_spans(spans: Sequence[tuple[float, float]], scale: ScaleConfig) -> list[list[int]]:
    """Greedy groups of consecutive, contiguous spans whose length nears ``scale.target_s``.

    A group grows while it is shorter than ``min_s``, or while adding the next span keeps it
    within ``max_s`` and brings it closer to the target. A remainder shorter than ``min_s``
    joins the previous group when that stays within ``max_s``, else it is left out.
    """
    groups: list[list[int]] = []
    i = 0
    while i < len(spans):
        group = [i]
        while group[-1] + 1 < len(spans) and _contiguous(spans, group[-1]):
            length = spans[group[-1]][1] - spans[i][0]
            longer = spans[group[-1] + 1][1] - spans[i][0]
            if longer > scale.max_s:
                break
            if length >= scale.min_s and abs(longer - scale.target_s) >= abs(length - scale.target_s):
                break
            group.append(group[-1] + 1)
        length = spans[group[-1]][1] - spans[i][0]
        if scale.min_s <= length <= scale.max_s:
            groups.append(group)
        elif length < scale.min_s and groups and _joinable(spans, groups[-1], group, scale):
            groups[-1].extend(group)
        i = group[-1] + 1
    return groups


def _contiguous(spans: Sequence[tuple[float, float]], i: int) -> bool:
    return abs(spans[i][1] - spans[i + 1][0]) < 1e-6


def _joinable(spans: Sequence[tuple[float, float]], prev: list[int], group: list[int], scale: ScaleConfig) -> bool:
    return _contiguous(spans, prev[-1]) and spans[group[-1]][1] - spans[prev[0]][0] <= scale.max_s


# --- 4. the plan ------------------------------------------------------------------------------


def plan_clips(
    duration: float,
    sentences: Sequence[Sentence],
    cuts: Sequence[float],
    keyframes: Sequence[float],
    fps: float,
    config: PlanConfig,
) -> ClipPlan:
    """Plan nested short/medium/long clips whose boundaries sit on frames of the file to cut."""
    runs = sentence_runs(sentences, config.max_silence_s) if sentences else shot_run(duration, cuts, config.short)
    placer = Placer(tuple(sorted(keyframes)), tuple(sorted(cuts)), fps, config, duration)
    unit_spans: list[tuple[float, float]] = []
    previous_end = 0.0
    for run in runs:
        snapped = placer.place_run(run)
        snapped = [t for t in snapped if t >= previous_end - 1e-6]
        unit_spans += list(zip(snapped, snapped[1:], strict=False))
        previous_end = snapped[-1] if snapped else previous_end
    clips: dict[str, list[PlannedClip]] = {}
    spans = unit_spans
    lower: list[PlannedClip] | None = None
    for scale in SCALES:
        groups = group_spans(spans, getattr(config, scale))
        clips[scale] = [
            PlannedClip(scale, index, spans[g[0]][0], spans[g[-1]][1], children=g if lower is not None else [])
            for index, g in enumerate(groups)
        ]
        for clip in clips[scale]:
            for child in clip.children:
                assert lower is not None
                lower[child].parent = clip.index
        lower = clips[scale]
        spans = [(c.start, c.end) for c in clips[scale]]
    plan = ClipPlan(clips)
    _assign_sentences(plan, sentences)
    return plan


def _assign_sentences(plan: ClipPlan, sentences: Sequence[Sentence]) -> None:
    """Each sentence goes to the short clip holding its midpoint, and up to that clip's ancestors."""
    shorts = plan.clips["short"]
    starts = [c.start for c in shorts]
    for sentence in sorted(sentences, key=lambda s: s.start):
        mid = (sentence.start + sentence.end) / 2
        i = bisect.bisect_right(starts, mid) - 1
        if i < 0 or mid >= shorts[i].end:
            plan.dropped_sentences += 1
            continue
        clip: PlannedClip | None = shorts[i]
        for scale in SCALES:
            assert clip is not None
            clip.sentences.append(sentence)
            upper = SCALES[SCALES.index(scale) + 1] if scale != SCALES[-1] else None
            if upper is None or clip.parent is None:
                break
            clip = plan.clips[upper][clip.parent]
