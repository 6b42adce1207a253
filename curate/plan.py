"""Nested multi-scale clip planning.

Clips are planned on the keyframes of the file that will be cut (the source in
``copy`` mode, the re-encoded intermediate in ``reencode`` mode), so every clip
of every scale is a stream copy whose duration matches its plan by construction.

The plan is built bottom-up:

1. *Units*: spans of speech. With subtitles, each sentence is a unit; consecutive
   sentences share a boundary in the middle of the pause between them, and a pause
   longer than ``max_silence_s`` splits the video into separate *runs*. Without
   subtitles, shots are the units (long shots split evenly) and the whole video is
   one run.
2. *Snapping*: every unit boundary moves onto a keyframe, preferring one that sits on a
   shot cut within ``cut_snap_s``, never one that sits just off a cut (closer than
   ``min_cut_distance_s`` without being on it). Units that collapse merge.
3. *Grouping*: short clips are groups of consecutive units, medium clips groups of
   consecutive short clips, long clips groups of consecutive medium clips; each group
   is chosen greedily so its length approaches the scale's target within [min, max].
   A clip therefore nests exactly in its parent, and a clip may span several shots.
4. *Text*: a sentence belongs to the short clip that holds its midpoint (after
   snapping), so each sentence lands in exactly one clip per scale.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from curate.config import PlanConfig, ScaleConfig
from curate.subtitles import Sentence

SCALES = ("short", "medium", "long")


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


def clip_key(video_id: str, scale: str, index: int) -> str:
    """Deterministic sample key, ``{video_id}_{scale}_{index:04d}``."""
    return f"{video_id}_{scale}_{index:04d}"


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


# --- 2. snapping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapper:
    """Moves boundaries onto keyframes of the file to be cut, respecting shot cuts."""

    keyframes: tuple[float, ...]
    cuts: tuple[float, ...]
    fps: float
    config: PlanConfig
    duration: float

    def _cut_distance(self, t: float) -> float:
        """Distance from ``t`` to the nearest shot cut (inf when there is none)."""
        i = bisect.bisect_left(self.cuts, t)
        return min((abs(self.cuts[j] - t) for j in (i - 1, i) if 0 <= j < len(self.cuts)), default=float("inf"))

    def _allowed(self, k: float) -> bool:
        if k <= 1e-6 or k >= self.duration - 1e-6:
            return True  # the video's own ends are always clean boundaries
        dist = self._cut_distance(k)
        on_cut = dist <= 0.5 / self.fps
        return on_cut or dist >= self.config.min_cut_distance_s

    def _on_cut(self, k: float) -> bool:
        return self._cut_distance(k) <= 0.5 / self.fps

    def snap(self, t: float, direction: str) -> float:
        """``direction``: ``down`` (a run's start), ``up`` (a run's end) or ``near`` (inner)."""
        candidates = [k for k in self.keyframes if self._allowed(k)] or list(self.keyframes)
        window = self.config.cut_snap_s
        if direction == "near":
            on_cut = [k for k in candidates if self._on_cut(k) and abs(k - t) <= window]
            if on_cut:
                return min(on_cut, key=lambda k: abs(k - t))
        if direction == "down":
            lower = [k for k in candidates if k <= t + 1e-6]
            candidates = lower or candidates
        elif direction == "up":
            upper = [k for k in candidates if k >= t - 1e-6]
            candidates = upper or candidates
        return min(candidates, key=lambda k: abs(k - t))

    def snap_run(self, run: list[float]) -> list[float]:
        inner = [self.snap(t, "near") for t in run[1:-1]]
        snapped = [self.snap(run[0], "down"), *inner, self.snap(run[-1], "up")]
        out: list[float] = []
        for t in snapped:
            if not out or t > out[-1] + 1e-6:
                out.append(t)
        return out if len(out) > 1 else []


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
    """Plan nested short/medium/long clips whose boundaries are all keyframes of the file to cut."""
    runs = sentence_runs(sentences, config.max_silence_s) if sentences else shot_run(duration, cuts, config.short)
    snapper = Snapper(tuple(sorted({*keyframes, round(duration, 6)})), tuple(cuts), fps, config, duration)
    unit_spans: list[tuple[float, float]] = []
    previous_end = 0.0
    for run in runs:
        snapped = snapper.snap_run(run)
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
