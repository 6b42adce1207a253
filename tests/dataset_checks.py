"""Reading a written dataset back, for the tests: keys in the shard indexes and in the tars.

One implementation over :class:`curate.storage.Storage`, so a local run and a run into a
bucket are checked the same way: every ``.tar`` is read (committed or not, so an orphan tar
with duplicate samples is caught), streamed through the storage's filesystem into
webdataset's tar reader.
"""

from __future__ import annotations

from typing import Any

from webdataset.tariterators import group_by_keys, tar_file_expander

from curate.plan import SCALES
from curate.storage import Storage

READ_AHEAD = 8 * 1024**2  # else each of tarfile's small reads is one GET on object storage


def read_tar_samples(storage: Storage, rel: str) -> list[dict[str, Any]]:
    """The samples of one tar, grouped by key as webdataset groups them."""
    with storage.fs.open_input_stream(storage.path(rel), buffer_size=READ_AHEAD) as stream:
        return list(group_by_keys(tar_file_expander([{"url": rel, "stream": stream}])))


def shard_keys(storage: Storage) -> tuple[list[str], list[str]]:
    """(keys listed by the shard indexes, keys of the samples in the tars), each sorted."""
    indexed, in_tars = [], []
    for scale in SCALES:
        for name in storage.list(f"shards/{scale}"):
            rel = f"shards/{scale}/{name}"
            if name.startswith("shard-") and name.endswith(".parquet"):
                indexed += storage.read_parquet(rel, ["key"])["key"].to_pylist()
            elif name.startswith("shard-") and name.endswith(".tar"):
                in_tars += [s["__key__"] for s in read_tar_samples(storage, rel)]
    return sorted(indexed), sorted(in_tars)
