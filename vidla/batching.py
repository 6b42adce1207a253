"""Batches whose negatives are negatives: at most one clip per source video in a training batch.

Shards are written one video at a time, and a shuffle buffer of a few hundred samples mixes
only a few dozen videos, so a plain batch holds several clips of one video: clips whose texts
describe the same scene, which the contrastive loss nevertheless pushes apart as negatives.
With the paper's clips per video (24.8 short, 10.6 medium, 5.0 long) a 32-clip batch built
from such a stream has 13.8 same-video pairs on average (``tests/vidla/test_batch_negatives.py``
simulates it; the paper's estimate is ~11). :class:`DistinctVideos` reorders the stream instead of dropping anything: a clip
whose video is already in the forming batch is deferred and goes first into a later batch.

The order depends only on the items' video ids, never on decoding, so a resumed stream that
skips items without decoding them replays the same deferrals and continues exactly.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")

#: Deferred items per batch slot before a duplicate is let through (a stream of one video only).
#: The simulated paper corpus (batch 32, shuffle buffer 256) peaks at 442 deferred samples
#: over 1,000 batches and leaks duplicates at a limit of 256: 1,024 leaves a margin. Deferred
#: samples are undecoded (one frame source, ~0.3 MB of JPEGs each), beside the shuffle buffers.
DEFER_LIMIT_PER_CLIP = 32


class DistinctVideos(Generic[Item]):
    """Orders an item stream so that no batch gets two items of one video.

    The consumer (:func:`vidla.data.clip_batches`) reads :meth:`candidates`, reports each item
    it puts into the forming batch with :meth:`place` (an item that fails to decode is not
    placed) and each finished batch with :meth:`new_batch`. Deferred items are offered before
    new ones, oldest first, so none waits longer than it must. If more than
    ``max_deferred`` items wait, the next one is let through although its video is in the batch
    (counted in ``duplicates``): a stream that is mostly one video must still make batches.
    """

    def __init__(self, video_of: Callable[[Item], str], max_deferred: int) -> None:
        self.video_of = video_of
        self.max_deferred = max_deferred
        self.in_batch: set[str] = set()
        self.deferred: deque[tuple[int, Item]] = deque()
        self.duplicates = 0

    def place(self, item: Item) -> None:
        self.in_batch.add(self.video_of(item))

    def new_batch(self) -> None:
        self.in_batch.clear()

    def _ready(self) -> tuple[int, Item] | None:
        """The oldest deferred item whose video the forming batch does not hold yet."""
        for k, (_, item) in enumerate(self.deferred):
            if self.video_of(item) not in self.in_batch:
                entry = self.deferred[k]
                del self.deferred[k]
                return entry
        return None

    def candidates(self, numbered: Iterator[tuple[int, Item]]) -> Iterator[tuple[int, Item]]:
        """``(position, item)`` pairs of ``numbered`` in batch order; positions stay the stream's own."""
        while True:
            ready = self._ready()
            if ready is not None:
                yield ready
                continue
            entry = next(numbered, None)
            if entry is None:
                break
            if self.video_of(entry[1]) in self.in_batch:
                if len(self.deferred) < self.max_deferred:
                    self.deferred.append(entry)
                    continue
                self.duplicates += 1
                if self.duplicates == 1:
                    log.warning(
                        "%d clips wait for a batch without their video: letting one through",
                        self.max_deferred,
                    )
            yield entry
        yield from self.deferred  # the end of a finite stream (never in training): what still waits


def video_of_key(key: str) -> str:
    """The video id of a sample key ``{video_id}_{scale}_{index:04d}`` (docs/dataset-format.md)."""
    return key.rsplit("_", 2)[0]


def same_video_pairs(videos: list[str]) -> int:
    """Pairs of items of one video among ``videos`` (one batch): what this module keeps at 0."""
    counts: dict[str, int] = {}
    for video in videos:
        counts[video] = counts.get(video, 0) + 1
    return sum(n * (n - 1) // 2 for n in counts.values())
