"""Writing a batch of finished videos into shards, where the samples are: the write stage's logic.

At cluster scale no single process can write every clip (issue 12: one driver sink tops out at
about 100 samples/s), so shards are written by many processes, each handing the driver only a
:class:`WrittenBatch`: the names of the shards it wrote, per scale, and its videos' ledger rows,
never clip bytes. The driver then commits the batch with one manifest (:mod:`vidla_format.commits`),
so every video of the batch becomes visible at every scale together with its row, or not at all.

The same :class:`BatchWriter` serves the Ray pipeline's write stage (one batch per call, see
:func:`write_videos`) and the plain loop's in-process sink (videos streamed in, a batch taken
when a shard's worth is written). Plain Python: the Ray wiring is in ``pipelines/stages.py``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from curate.config import ShardsConfig
from curate.ledger import VideoStatus
from curate.records import Sample
from curate.redact import redact_text, redact_url
from curate.shards import ShardWriter
from vidla_format.layout import SCALES, SHARDS_DIR, batch_id
from vidla_format.storage import Storage

STORAGE_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_CA_BUNDLE",
)
"""The variables that say how to reach object storage; the driver hands its own to the writers,
so a cluster whose nodes have no credentials of their own still writes (docs/deploy.md)."""


def storage_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The object-storage variables set in ``environ`` (default: this process's)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in STORAGE_ENV if k in environ}


def this_writer(node: str | None = None) -> dict[str, str | int]:
    """Who writes: recorded in each commit manifest, so an audit can tell which machine wrote a shard."""
    who: dict[str, str | int] = {"host": socket.gethostname(), "pid": os.getpid()}
    if node:
        who["node"] = node
    return who


def without_secrets(status: VideoStatus) -> VideoStatus:
    """The row as stored: no credentials or signatures in its URL or in the messages about it."""
    status.url = redact_url(status.url)
    status.error = status.error and redact_text(status.error)
    status.subtitle_warning = status.subtitle_warning and redact_text(status.subtitle_warning)
    return status


@dataclass
class WrittenBatch:
    """What a writer hands the driver for one commit: names and rows, no bytes."""

    statuses: list[VideoStatus] = field(default_factory=list)
    """Rows of the videos with clips in :attr:`shards`: committed by the batch's manifest."""
    unwritten: list[VideoStatus] = field(default_factory=list)
    """Rows of videos without clips (failed, or no clip planned): committed as a ledger part."""
    shards: dict[str, list[str]] = field(default_factory=dict)
    """Per scale, the stems of the shards written (tar and index both durable)."""
    samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCALES, 0))
    mp4_bytes: int = 0
    shard_bytes: int = 0
    writer: dict = field(default_factory=dict)

    @property
    def video_ids(self) -> list[str]:
        return [s.video_id for s in self.statuses]


class BatchWriter:
    """Writes whole videos into bounded shards per scale (one :class:`ShardWriter` each) until
    :meth:`take` closes them and hands the batch over for one commit."""

    def __init__(self, storage: Storage, limits: ShardsConfig, run_id: str, writer: dict | None = None,
                 shards_root: str = SHARDS_DIR, batch: str | None = None):
        self.storage = storage
        self.run_id = run_id
        self._taken = 0
        self.limits = limits
        self.writer = writer or this_writer()
        self.writers = {
            scale: ShardWriter(storage, f"{shards_root}/{scale}", limits.max_samples, limits.max_bytes, run_id=run_id)
            for scale in SCALES
        }
        self._batch = WrittenBatch(writer=self.writer)
        self._name_batch(batch)

    def _name_batch(self, batch: str | None) -> None:
        """Give the shards of the next batch their batch identity: the given one (the write stage's, from its
        video ids), else this writer's batch count (the in-process sink's, whose videos arrive one by one)."""
        for writer in self.writers.values():
            writer.batch = batch if batch is not None else f"local-{self._taken}"

    @property
    def full(self) -> bool:
        """A shard's worth (samples or clip bytes) written since the last :meth:`take`."""
        batch = self._batch
        return sum(batch.samples.values()) >= self.limits.max_samples or batch.mp4_bytes >= self.limits.max_bytes

    def add(self, status: VideoStatus, samples: Iterable[Sample]) -> int:
        """Write one video's samples (secrets stripped from URLs here, where they are stored); returns how many."""
        status = without_secrets(status)
        written = 0
        for sample in samples:
            sample.record["url"] = redact_url(str(sample.record.get("url", "")))
            shard = self.writers[sample.scale]
            before = shard.bytes_written
            if shard.write(sample) is None:
                continue
            written += 1
            self._batch.samples[sample.scale] += 1
            self._batch.mp4_bytes += sample.mp4.stat().st_size if isinstance(sample.mp4, Path) else len(sample.mp4)
            self._batch.shard_bytes += shard.bytes_written - before
        (self._batch.statuses if written else self._batch.unwritten).append(status)
        return written

    def take_unwritten(self) -> WrittenBatch:
        """Only the rows of videos without clips, leaving the open shards open (their rows need no shard)."""
        rows, self._batch.unwritten = self._batch.unwritten, []
        return WrittenBatch(unwritten=rows, writer=self.writer)

    def take(self) -> WrittenBatch:
        """Close every open shard and hand over the batch: its shards at all scales and its videos' rows."""
        batch, self._batch = self._batch, WrittenBatch(writer=self.writer)
        batch.shards = {scale: stems for scale, w in self.writers.items() if (stems := w.take_closed())}
        self._taken += 1
        self._name_batch(None)
        return batch


def write_videos(storage: Storage, limits: ShardsConfig, run_id: str, videos: Iterable[tuple[VideoStatus, list[Sample]]],
                 writer: dict | None = None) -> WrittenBatch:
    """Write one batch of videos (the write stage's call) and return it for one commit.

    Videos are written in ``video_id`` order and shards are named after the batch's video ids, so a
    retried task with the same videos writes the same shards under the same names
    (:func:`vidla_format.layout.shard_stem`), replacing rather than adding; shards stay bounded by
    ``limits``, so a large batch makes several shards per scale.
    """
    videos = sorted(videos, key=lambda v: v[0].video_id)
    batch = BatchWriter(storage, limits, run_id, writer, batch=batch_id([status.video_id for status, _ in videos]))
    for status, samples in videos:
        batch.add(status, samples)
    return batch.take()
