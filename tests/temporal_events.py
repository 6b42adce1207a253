"""Event-order clips: a temporal test set that a permutation-invariant video model cannot solve.

A clip shows ``k`` events one after another, each a coloured shape that appears at a
random place, drifts a little and disappears before the next one appears; its caption
names them in order ("a red square, then a blue disc, then a green triangle"). The
three lengths map to the dataset's scales (``vidla_format.layout.SCALES``): ``short`` clips
(4 s) have 2 events, ``medium`` (8 s) 3, ``long`` (16 s) 4, and the model samples the
same ``T`` frames from each (the paper's 12 for every length), so longer clips pack more
events per sampled frame.

Why a mean-pooling (or any permutation-invariant) model can only guess the order:
everything but the order is nuisance drawn independently of it. Event durations are
exchangeable (a fixed minimum plus a Dirichlet share of the rest), positions, sizes,
drift, background level, pixel noise and an unnamed grey distractor square are drawn
per event or per clip, never per position in the sequence. So for a caption and a
clip with the same events in another order (a *hard negative*), the multisets of
frames of the true clip and of the negative have the same distribution, and any
function of that multiset ranks the true clip first among ``m`` orders with probability
at most ``1/m`` (exactly ``1/m`` without ties; ties count against the query). Each event lasts at least two of the ``T``
frame-sampling segments, so every event is seen in at least one sampled frame whatever
the random offsets are.

The test gallery (:func:`eval_gallery`) holds, per length, ``groups`` event sets shown in
``k`` different orders each (for 2 events, both orders) and ``groups`` event sets
shown once; all sets of a length are distinct, so every caption names exactly one
clip. A query is **order-sensitive** when the gallery holds at least one other clip
with the same events (same multiset) in a different order (:func:`order_sensitive`):
exactly the clips of the multi-order groups. On those queries an order-blind model
that recognises the events perfectly scores R@1 = ``1/m`` in expectation, ``m`` being
the number of gallery clips with the query's events (:func:`orders_in_gallery`).

Training batches (:func:`train_batch`) are fresh renderings drawn from ``(seed, step)``,
made of pairs: two different orders of the same event set, so the contrastive loss
contains order-only negatives (the same for every model trained on them).

:func:`image_batch` gives single event frames with one-event captions, for the image-text
pre-training that stands in for a CLIP checkpoint (see ``bench/temporal_benchmark.py``).

Everything is numpy and seeded; frames are rendered straight at the model's input size
at the times :func:`vidla.frames.segment_times` picks (training: random offsets;
evaluation: segment middles), as the loader would sample them. Nothing is written to
disk: the benchmark feeds the real model and loss in memory (its docstring says why).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from vidla.frames import segment_times
from vidla_format.layout import SCALES

#: Saturated colours, far from each other and from the grey background and distractor.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 80, 245),
    "yellow": (235, 225, 30),
    "magenta": (215, 40, 215),
    "cyan": (30, 215, 225),
}
SHAPES: tuple[str, ...] = ("square", "disc", "triangle")
DISTRACTOR_GREY = 150


@dataclass(frozen=True)
class Length:
    """A clip length: how many events, over how many seconds."""

    events: int
    duration: float


LENGTHS: dict[str, Length] = {
    "short": Length(events=2, duration=4.0),
    "medium": Length(events=3, duration=8.0),
    "long": Length(events=4, duration=16.0),
}
assert tuple(LENGTHS) == SCALES, "the lengths are the dataset's scales"

Identity = tuple[str, str]  # (colour, shape): what a caption names


@dataclass(frozen=True)
class Event:
    """One coloured shape on screen from ``start`` to ``end`` (seconds, end exclusive).

    ``x``, ``y`` (centre) and ``radius`` are fractions of the frame side; the centre moves
    by ``(dx, dy)`` over the event (the shape "moves").
    """

    colour: str
    shape: str
    start: float
    end: float
    x: float
    y: float
    radius: float
    dx: float
    dy: float

    @property
    def identity(self) -> Identity:
        return self.colour, self.shape


@dataclass(frozen=True)
class Distractor:
    """An unnamed grey square visible from ``start`` to ``end`` under the events."""

    start: float
    end: float
    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class EventClip:
    """One clip: its events in temporal order and its nuisance (background, noise, distractor)."""

    length: str
    duration: float
    events: tuple[Event, ...]
    background: int
    noise_seed: int
    distractor: Distractor | None

    @property
    def sequence(self) -> tuple[Identity, ...]:
        """The events' identities in the order they happen."""
        return tuple(e.identity for e in self.events)

    @property
    def caption(self) -> str:
        return caption_of(self.sequence)


def caption_of(sequence: tuple[Identity, ...]) -> str:
    """The caption naming ``sequence`` in order: "a red square, then a blue disc, ..." (<= 90 bytes for 4 events)."""
    return ", then ".join(f"a {colour} {shape}" for colour, shape in sequence)


def event_set(sequence: tuple[Identity, ...]) -> tuple[Identity, ...]:
    """The order-free content of a sequence (sorted), the key that defines hard negatives."""
    return tuple(sorted(sequence))


def draw_sequence(rng: np.random.Generator, k: int) -> tuple[Identity, ...]:
    """``k`` events with distinct colours (so a clip's colour sequence spells its order) and random shapes."""
    colours = rng.choice(list(COLOURS), size=k, replace=False)
    return tuple((str(c), str(SHAPES[rng.integers(len(SHAPES))])) for c in colours)


def schedule(rng: np.random.Generator, k: int, duration: float, frames: int) -> list[tuple[float, float]]:
    """Contiguous ``(start, end)`` spans of ``k`` events covering ``[0, duration)``.

    Each span is at least two sampling segments (``2 * duration / frames``), so it contains a
    whole segment and is seen in any segment sampling; the remainder is split by a flat
    Dirichlet draw, which is exchangeable: no position in the order is longer on average.
    """
    minimum = 2.0 * duration / frames
    slack = duration - k * minimum
    if slack < 0:
        raise ValueError(f"{k} events cannot each last two of {frames} segments")
    spans = minimum + slack * rng.dirichlet(np.ones(k))
    ends = np.cumsum(spans)
    ends[-1] = duration
    starts = np.concatenate([[0.0], ends[:-1]])
    return [(float(s), float(e)) for s, e in zip(starts, ends, strict=True)]


def _placement(rng: np.random.Generator) -> tuple[float, float, float, float, float]:
    """Centre, radius and drift of one shape, kept inside the frame over its whole drift."""
    radius = float(rng.uniform(0.17, 0.26))
    dx, dy = (float(v) for v in rng.uniform(-0.15, 0.15, size=2))
    lo, hi = radius + 0.02, 1.0 - radius - 0.02
    x = float(rng.uniform(lo + max(0.0, -dx), hi - max(0.0, dx)))
    y = float(rng.uniform(lo + max(0.0, -dy), hi - max(0.0, dy)))
    return x, y, radius, dx, dy


def make_clip(
    rng: np.random.Generator, length: str, sequence: tuple[Identity, ...], frames: int
) -> EventClip:
    """A clip of ``sequence`` with fresh nuisance: timing, placement, background, noise, distractor."""
    spec = LENGTHS[length]
    if len(sequence) != spec.events:
        raise ValueError(f"{length} clips have {spec.events} events, got {len(sequence)}")
    spans = schedule(rng, spec.events, spec.duration, frames)
    events = tuple(
        Event(colour, shape, start, end, *_placement(rng))
        for (colour, shape), (start, end) in zip(sequence, spans, strict=True)
    )
    distractor = None
    if rng.random() < 0.5:
        a, b = sorted(rng.uniform(0, spec.duration, size=2))
        x, y, radius, _, _ = _placement(rng)
        distractor = Distractor(float(a), float(b), x, y, 0.6 * radius)
    return EventClip(
        length=length,
        duration=spec.duration,
        events=events,
        background=int(rng.integers(20, 90)),
        noise_seed=int(rng.integers(2**31)),
        distractor=distractor,
    )


def _shape_mask(shape: str, cx: float, cy: float, radius: float, grid: np.ndarray) -> np.ndarray:
    """Boolean ``(S, S)`` mask of a shape centred at ``(cx, cy)`` (pixels) with half-size ``radius``."""
    x, y = grid[1] - cx, grid[0] - cy
    if shape == "square":
        return (np.abs(x) <= radius) & (np.abs(y) <= radius)
    if shape == "disc":
        return x * x + y * y <= radius * radius
    if shape == "triangle":  # apex up, base at +radius
        return (y <= radius) & (y >= -radius) & (np.abs(x) <= (y + radius) / 2)
    raise ValueError(f"unknown shape {shape!r}")


def render(clip: EventClip, times: list[float], size: int) -> np.ndarray:
    """``(len(times), size, size, 3)`` uint8 frames of ``clip`` at clip-relative ``times``."""
    grid = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    noise = np.random.default_rng(clip.noise_seed)
    out = np.empty((len(times), size, size, 3), np.uint8)
    for i, t in enumerate(times):
        frame = np.full((size, size, 3), clip.background, np.float32)
        d = clip.distractor
        if d is not None and d.start <= t < d.end:
            frame[_shape_mask("square", d.x * size, d.y * size, d.radius * size, grid)] = DISTRACTOR_GREY
        for e in clip.events:
            if e.start <= t < e.end:
                progress = (t - e.start) / (e.end - e.start)
                cx, cy = (e.x + e.dx * progress) * size, (e.y + e.dy * progress) * size
                frame[_shape_mask(e.shape, cx, cy, e.radius * size, grid)] = COLOURS[e.colour]
        frame += noise.normal(0.0, 6.0, frame.shape)
        out[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def sample_frames(clip: EventClip, frames: int, size: int, train: bool, rng: random.Random) -> np.ndarray:
    """The ``frames`` frames the model sees, sampled as :mod:`vidla.frames` samples a clip."""
    return render(clip, segment_times(clip.duration, frames, train, rng), size)


def visible_colours(frames: np.ndarray, tolerance: float = 60.0, min_pixels: int = 4) -> list[str | None]:
    """Decode each frame's event colour: the palette colour most pixels are close to (None if none).

    Used by the tests to check that a caption's order is the order on screen.
    """
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], np.float32)  # (C, 3)
    out: list[str | None] = []
    for frame in frames.astype(np.float32):
        dist = np.linalg.norm(frame[:, :, None, :] - palette, axis=-1)  # (S, S, C)
        counts = (dist < tolerance).sum(axis=(0, 1))
        out.append(names[int(counts.argmax())] if counts.max() >= min_pixels else None)
    return out


@dataclass
class Batch:
    """Rendered clips: ``video`` ``(B, T, S, S, 3)`` uint8, their captions, lengths and sequences."""

    video: np.ndarray
    captions: list[str]
    lengths: list[str]
    sequences: list[tuple[Identity, ...]]


def _batch(clips: list[EventClip], frames: int, size: int, train: bool, rng: np.random.Generator) -> Batch:
    video = np.stack(
        [sample_frames(c, frames, size, train, random.Random(int(rng.integers(2**63)))) for c in clips]
    )
    return Batch(video, [c.caption for c in clips], [c.length for c in clips], [c.sequence for c in clips])


def train_batch(seed: int, step: int, batch: int, frames: int, size: int) -> Batch:
    """Training batch ``step`` of stream ``seed``: ``batch / 2`` event sets, each in two different orders.

    Lengths are drawn uniformly per pair (the loader's scale mixing, equal weights); frames
    are sampled with random segment offsets. A function of ``(seed, step)`` only, so two
    models trained on the same seed see identical batches.
    """
    if batch % 2:
        raise ValueError("batches are pairs of orders; use an even batch size")
    rng = np.random.default_rng([seed, step])
    clips: list[EventClip] = []
    for _ in range(batch // 2):
        length = SCALES[int(rng.integers(len(SCALES)))]
        sequence = draw_sequence(rng, LENGTHS[length].events)
        other = sequence
        while other == sequence:
            other = tuple(sequence[i] for i in rng.permutation(len(sequence)))
        clips += [make_clip(rng, length, sequence, frames), make_clip(rng, length, other, frames)]
    return _batch(clips, frames, size, train=True, rng=rng)


def _distinct_sets(rng: np.random.Generator, k: int, count: int) -> list[tuple[Identity, ...]]:
    """``count`` random sequences of ``k`` events whose event sets are pairwise distinct."""
    seen: set[tuple[Identity, ...]] = set()
    out = []
    while len(out) < count:
        sequence = draw_sequence(rng, k)
        if event_set(sequence) not in seen:
            seen.add(event_set(sequence))
            out.append(sequence)
    return out


def _orders(rng: np.random.Generator, sequence: tuple[Identity, ...], m: int) -> list[tuple[Identity, ...]]:
    """``sequence`` and ``m - 1`` other distinct orders of its events."""
    others = [tuple(sequence[i] for i in p) for p in permutations(range(len(sequence)))][1:]
    picks = rng.choice(len(others), size=m - 1, replace=False)
    return [sequence] + [others[int(i)] for i in picks]


def eval_gallery(seed: int, groups: int, frames: int, size: int) -> Batch:
    """The evaluation gallery (one clip per caption), lengths in ``SCALES`` order.

    Per length with ``k`` events: ``groups`` event sets in ``k`` orders each (hard negatives of
    one another), then ``groups`` event sets shown once; frames at segment middles.
    """
    rng = np.random.default_rng([seed, 1_000_003])
    clips: list[EventClip] = []
    for length in SCALES:
        k = LENGTHS[length].events
        sets = _distinct_sets(rng, k, 2 * groups)
        sequences = [s for base in sets[:groups] for s in _orders(rng, base, k)] + sets[groups:]
        clips += [make_clip(rng, length, s, frames) for s in sequences]
    return _batch(clips, frames, size, train=False, rng=rng)


def orders_in_gallery(sequences: list[tuple[Identity, ...]]) -> np.ndarray:
    """Per gallery clip, how many gallery clips show its events (itself included): ``m`` of the docstring."""
    counts = Counter(map(event_set, sequences))
    return np.array([counts[event_set(s)] for s in sequences])


def order_sensitive(sequences: list[tuple[Identity, ...]]) -> np.ndarray:
    """Boolean mask of the order-sensitive queries: another gallery clip has the same events in another order.

    ``sequences[i]`` is the sequence of gallery clip ``i``, which is also the ground truth of
    caption ``i``. Two clips with the same sequence would make the caption ambiguous, not
    order-sensitive; the generator never makes them, and this refuses them.
    """
    if len(set(sequences)) != len(sequences):
        raise ValueError("two gallery clips share a sequence: their captions are ambiguous")
    return orders_in_gallery(sequences) > 1


def image_batch(seed: int, step: int, batch: int, size: int) -> tuple[np.ndarray, list[str]]:
    """``(B, S, S, 3)`` single-event frames and their captions ("a red square"), for image-text pre-training.

    The stand-in for the CLIP checkpoint the paper starts from: a tiny CLIP that already
    knows colours and shapes, so the video stage is about time, not about learning to see.
    The frames carry the same nuisance as the clips (placement, background, noise, distractor).
    """
    rng = np.random.default_rng([seed, step, 7])
    images, captions = [], []
    for _ in range(batch):
        (identity,) = draw_sequence(rng, 1)
        event = Event(*identity, 0.0, 1.0, *_placement(rng))
        distractor = None
        if rng.random() < 0.5:
            x, y, radius, _, _ = _placement(rng)
            distractor = Distractor(0.0, 1.0, x, y, 0.6 * radius)
        clip = EventClip(
            "image", 1.0, (event,), int(rng.integers(20, 90)), int(rng.integers(2**31)), distractor
        )
        images.append(render(clip, [float(rng.random())], size)[0])
        captions.append(caption_of((identity,)))
    return np.stack(images), captions
