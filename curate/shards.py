"""Atomic WebDataset shard writing.

A shard's tar and then its ``.parquet`` index are each written all-or-nothing and durably
(see :mod:`curate.storage`), but a shard is *committed* only once a commit manifest names
it (:mod:`curate.commits`), so a video's shards at every scale appear together. A reader
ignores shards no manifest names; :func:`remove_uncommitted` deletes them with any temporary file.

Shards are written by many processes at once (the write stage's tasks on every node), so a
name cannot be a counter: it is :func:`shard_stem` of the run, the batch and the shard's first
sample key. Keys are unique in a dataset and a video is in one batch, so two tasks never pick
the same name; a retried task (same batch, same order) rewrites the same names instead of
adding a second copy; and a batch made differently can never overwrite a committed shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from curate.commits import committed_stems
from curate.records import Sample
from curate.storage import Storage

SHARD_RE = re.compile(r"^(shard-[A-Za-z0-9_-]+)\.(tar|parquet)$")

INDEX_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("video_id", pa.string()),
        ("url", pa.string()),
        ("scale", pa.string()),
        ("index", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("duration", pa.float64()),
        ("parent", pa.string()),
        ("children", pa.list_(pa.string())),
        ("split", pa.string()),
        ("subtitle", pa.string()),
        ("caption", pa.string()),
        ("summary", pa.string()),
        ("fps", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("has_audio", pa.bool_()),
        ("cut_mode", pa.string()),
        ("has_subtitle", pa.bool_()),
        ("has_caption", pa.bool_()),
        ("mp4_bytes", pa.int64()),
        ("sample_bytes", pa.int64()),
        ("offset", pa.int64()),
    ]
)


def shard_stem(run_id: str, first_key: str, batch: str = "") -> str:
    """``shard-RUN-HASH``: the run, then a digest of the batch's identity and the shard's first sample key
    (unique in the dataset), so the name is the same on a retry and never chosen by two writers; no ``.``."""
    return f"shard-{run_id}-{hashlib.sha256(f'{batch}/{first_key}'.encode()).hexdigest()[:16]}"


def batch_id(video_ids: list[str]) -> str:
    """A batch's identity: a digest of its sorted video ids (the same for a retried task's batch)."""
    return hashlib.sha256("\n".join(sorted(video_ids)).encode()).hexdigest()[:16]


def split_rel(rel_dir: str) -> tuple[str, str]:
    """(the shards root, the scale) of a scale directory: ``shards/short`` -> (``shards``, ``short``)."""
    root, _, scale = rel_dir.rstrip("/").rpartition("/")
    return root, scale


def committed_shards(storage: Storage, rel_dir: str) -> list[str]:
    """Stems of the shards in ``rel_dir`` that a readable commit manifest names, sorted."""
    root, scale = split_rel(rel_dir)
    return sorted(committed_stems(storage, root, scale))


def remove_uncommitted(storage: Storage, rel_dir: str, committed: set[str]) -> None:
    """Delete temporaries and every shard file of ``rel_dir`` whose stem is not in ``committed``
    (written by a task or run that died, or whose batch was never committed)."""
    storage.mkdir(rel_dir)
    storage.remove_temporaries(rel_dir)
    for name in storage.list(rel_dir):
        if (m := SHARD_RE.match(name)) and m.group(1) not in committed:
            storage.delete(f"{rel_dir}/{name}")


def recover(storage: Storage, rel_dir: str, committed: set[str]) -> set[str]:
    """:func:`remove_uncommitted`, then return the keys of the committed samples (reads every index:
    for tools and tests; the sink itself relies on whole videos being committed, see :mod:`curate.sink`)."""
    remove_uncommitted(storage, rel_dir, committed)
    keys: set[str] = set()
    for stem in committed:
        keys.update(storage.read_parquet(f"{rel_dir}/{stem}.parquet", ["key"])["key"].to_pylist())
    return keys


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
            _add_bytes(tar, f"{sample.key}.f{i:02d}.jpg", data_of(frame))
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
