"""Reading a written dataset back, for the tests: keys in the shard indexes and in the tars.

One implementation over :class:`vidla_format.storage.Storage`, so a local run and a run into a
bucket are checked the same way: the committed shards are those a commit manifest names,
and every ``.tar`` is read (committed or not, so an orphan tar with duplicate samples is caught), streamed through the storage's filesystem into
webdataset's tar reader.
"""

from __future__ import annotations

from typing import Any

from webdataset.tariterators import group_by_keys, tar_file_expander

from vidla_format.commits import committed_shards
from vidla_format.layout import SCALES, SHARD_RE
from vidla_format.storage import Storage

READ_AHEAD = 8 * 1024**2  # else each of tarfile's small reads is one GET on object storage


def read_tar_samples(storage: Storage, rel: str) -> list[dict[str, Any]]:
    """The samples of one tar, grouped by key as webdataset groups them."""
    with storage.fs.open_input_stream(storage.path(rel), buffer_size=READ_AHEAD) as stream:
        return list(group_by_keys(tar_file_expander([{"url": rel, "stream": stream}])))


def shard_keys(storage: Storage) -> tuple[list[str], list[str]]:
    """(keys listed by the indexes of the committed shards, keys of the samples in every tar), each sorted.

    Committed is the contract's rule (a commit manifest names the shard); every tar is read, so an
    uncommitted or orphan tar left behind shows up as a difference between the two lists.
    """
    indexed, in_tars = [], []
    for scale in SCALES:
        rel_dir = f"shards/{scale}"
        for stem in committed_shards(storage, rel_dir):
            indexed += storage.read_parquet(f"{rel_dir}/{stem}.parquet", ["key"])["key"].to_pylist()
        for name in storage.list(rel_dir):
            if (m := SHARD_RE.match(name)) and m.group(2) == "tar":
                in_tars += [s["__key__"] for s in read_tar_samples(storage, f"{rel_dir}/{name}")]
    return sorted(indexed), sorted(in_tars)


def committed_clips(storage: Storage) -> dict[str, dict[str, list[dict]]]:
    """Index rows of the committed shards, per video and scale: what the shards hold."""
    held: dict[str, dict[str, list[dict]]] = {}
    for scale in SCALES:
        rel_dir = f"shards/{scale}"
        for stem in committed_shards(storage, rel_dir):
            for row in storage.read_parquet(f"{rel_dir}/{stem}.parquet").to_pylist():
                held.setdefault(row["video_id"], {}).setdefault(scale, []).append(row)
    return held
