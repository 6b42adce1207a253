"""Atomic WebDataset shard writing.

A shard's tar and then its ``.parquet`` index are each written all-or-nothing and durably
(see :mod:`vidla_format.storage`), but a shard is *committed* only once a commit manifest names
it (:mod:`vidla_format.commits`), so a video's shards at every scale appear together. A reader
ignores shards no manifest names; :func:`vidla_format.commits.remove_uncommitted` deletes them with any
temporary file. The names, the index schema and the commit rule are the format's (:mod:`vidla_format`);
this module is the writer.

Shards are written by many processes at once (the write stage's tasks on every node), so a
name cannot be a counter: it is :func:`vidla_format.layout.shard_stem` of the run, the batch and
the shard's first sample key. Keys are unique in a dataset and a video is in one batch, so two tasks never pick
the same name; a retried task (same batch, same order) rewrites the same names instead of
adding a second copy; and a batch made differently can never overwrite a committed shard.
"""

from __future__ import annotations

import io
import json
import tarfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from curate.records import Sample
from vidla_format.index import INDEX_SCHEMA
from vidla_format.layout import frame_member, shard_stem
from vidla_format.storage import Storage


def data_of(item: Path | bytes) -> bytes:
    """Sample members are files in a work directory (plain loop) or bytes (rows of the Ray pipeline)."""
    return item.read_bytes() if isinstance(item, Path) else item


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


@dataclass
class _OpenShard:
    stem: str
    stack: ExitStack
    tar: tarfile.TarFile
    rows: list[dict] = field(default_factory=list)
    video_ids: set[str] = field(default_factory=set)
    bytes: int = 0


class ShardWriter:
    """Writes samples of one scale into bounded shards, each closed (tar, then index, both durable)
    when full; closed shards wait in :attr:`closed` until a commit manifest names them."""

    def __init__(
        self,
        storage: Storage,
        rel_dir: str,
        max_samples: int,
        max_bytes: int,
        committed_keys: set[str] | None = None,
        run_id: str = "run",
    ):
        self.storage = storage
        self.rel_dir = rel_dir
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.committed_keys = set(committed_keys or ())
        self.run_id = run_id
        self.batch = ""
        """The identity of the batch being written (:func:`batch_id`), part of every new shard's name."""
        self.bytes_written = 0
        """Tar bytes of every sample written (what a batch reports as its shard bytes)."""
        self._open: _OpenShard | None = None
        self.closed: list[str] = []
        """Stems of the shards closed since the last commit took them (:meth:`take_closed`)."""

    @property
    def open_shard(self) -> str | None:
        return self._open.stem if self._open else None

    def write(self, sample: Sample) -> str | None:
        """Append ``sample`` unless its key was already written; returns the shard's relative name."""
        if sample.key in self.committed_keys:
            return None
        shard = self._open or self._start(sample.key)
        offset = shard.tar.offset
        size = self._append(shard.tar, sample)
        shard.rows.append(_index_row(sample, offset, size))
        shard.video_ids.add(sample.record["video_id"])
        shard.bytes += size
        self.bytes_written += size
        self.committed_keys.add(sample.key)
        name = f"{shard.stem}.tar"
        if len(shard.rows) >= self.max_samples or shard.bytes >= self.max_bytes:
            self.close_shard()
        return name

    def close_shard(self) -> None:
        """Close the open shard, if any: the tar lands under its name first, then its index."""
        shard, self._open = self._open, None
        if shard is None:
            return
        shard.tar.close()
        shard.stack.close()
        table = pa.Table.from_pylist(shard.rows, schema=INDEX_SCHEMA)
        self.storage.write_parquet(f"{self.rel_dir}/{shard.stem}.parquet", table)
        self.closed.append(shard.stem)

    def take_closed(self) -> list[str]:
        """Close the open shard and hand over every closed stem, for a commit manifest to name."""
        self.close_shard()
        stems, self.closed = self.closed, []
        return stems

    def _start(self, first_key: str) -> _OpenShard:
        stem = shard_stem(self.run_id, first_key, self.batch)
        stack = ExitStack()
        stream = stack.enter_context(self.storage.open_write(f"{self.rel_dir}/{stem}.tar"))
        self._open = _OpenShard(stem, stack, tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT))
        return self._open

    @staticmethod
    def _append(tar: tarfile.TarFile, sample: Sample) -> int:
        before = tar.offset
        _add_bytes(tar, f"{sample.key}.json", json.dumps(sample.record, ensure_ascii=False).encode())
        _add_bytes(tar, f"{sample.key}.txt", sample.text.encode())
        _add_bytes(tar, f"{sample.key}.mp4", data_of(sample.mp4))
        for i, frame in enumerate(sample.frames):
            _add_bytes(tar, f"{sample.key}.{frame_member(i)}", data_of(frame))
        return tar.offset - before


def _index_row(sample: Sample, offset: int, size: int) -> dict:
    record = sample.record
    row = {name: record.get(name) for name in INDEX_SCHEMA.names if name in record}
    row.update(
        has_subtitle=bool(record.get("subtitle")),
        has_caption=bool(record.get("caption")),
        mp4_bytes=sample.mp4.stat().st_size if isinstance(sample.mp4, Path) else len(sample.mp4),
        sample_bytes=size,
        offset=offset,
    )
    return row
