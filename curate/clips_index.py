"""Adding a clean close's part to ``clips.parquet`` (the layout is :mod:`vidla_format.clips`).

A close reads back the shard indexes of the commits made since the last clean close, and only
those, on a pool of threads (each read is a request on object storage: latency, not CPU), and
streams them into one part in commit order, so neither the time nor the driver's memory grows
with the size of the dataset, only with what the run wrote.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from vidla_format.clips import CLIPS_SCHEMA, EMPTY_PART, part_name, parts
from vidla_format.layout import CLIPS_FILE, SCALES, SHARDS_DIR
from vidla_format.storage import READ_THREADS, Storage, ordered_map

ROW_GROUP_ROWS = 65_536
"""Clips per row group of a part (a shard holds a few hundred: one group per shard would be tiny)."""

Commit = tuple[int, dict[str, list[str]]]
"""A commit's number and the shard stems it names per scale."""


def add_clips_part(storage: Storage, commits: list[Commit], verified_through: int, threads: int = READ_THREADS) -> None:
    """Make ``clips.parquet`` cover the commits up to the last of ``commits`` (those after ``verified_through``).

    Parts that start after ``verified_through`` are dropped first: a close that crashed after writing
    its part but before ``verified.json`` left one, whose commits ``commits`` holds again. With nothing
    verified, every part (and a format-5 single file) is dropped and ``commits`` must be all of them.
    """
    _drop_unverified(storage, verified_through)
    if commits:
        name = part_name(commits[0][0], commits[-1][0])
        _write_part(storage, f"{CLIPS_FILE}/{name}", _shard_paths(commits), threads)
        storage.delete(f"{CLIPS_FILE}/{EMPTY_PART}")
    elif not parts(storage):
        storage.write_parquet(f"{CLIPS_FILE}/{EMPTY_PART}", CLIPS_SCHEMA.empty_table())


def _drop_unverified(storage: Storage, verified_through: int) -> None:
    if storage.is_file(CLIPS_FILE):  # format 5: one file, rebuilt whole (nothing is verified then)
        storage.delete(CLIPS_FILE)
    for first, _, name in parts(storage):
        if first > verified_through:
            storage.delete(f"{CLIPS_FILE}/{name}")


def _shard_paths(commits: list[Commit]) -> list[str]:
    """Each shard's path without extension: scale by scale, in commit order (as format 5 listed them)."""
    return [f"{SHARDS_DIR}/{scale}/{stem}" for scale in SCALES for _, shards in commits for stem in shards.get(scale, [])]


def _write_part(storage: Storage, rel: str, shards: list[str], threads: int) -> None:
    def read(shard: str) -> pa.Table:
        table = storage.read_parquet(f"{shard}.parquet")
        return table.append_column("shard", pa.array([f"{shard}.tar"] * table.num_rows, pa.string())).cast(CLIPS_SCHEMA)

    with storage.open_write(rel) as f, pq.ParquetWriter(f, CLIPS_SCHEMA) as writer:
        for group in _row_groups(ordered_map(read, shards, threads)):
            writer.write_table(group)


def _row_groups(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    held, rows = [], 0
    for table in tables:
        held.append(table)
        rows += table.num_rows
        if rows >= ROW_GROUP_ROWS:
            yield pa.concat_tables(held)
            held, rows = [], 0
    if held:
        yield pa.concat_tables(held)
