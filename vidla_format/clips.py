"""``clips.parquet``: one row per committed clip, all scales, as a Parquet dataset directory of parts.

Each clean close of a writer adds one part, ``part-FIRST-LAST.parquet``, holding the shard indexes
of the commits FIRST..LAST that it verified (``shards/commits/verified.json``), plus ``shard``, the
tar's path relative to the output. So a close reads back only the commits made since the last clean
close, instead of every shard ever written (7.5M of them in a 20M-video dataset: ~42 h of serial
reads), and the parts together always cover exactly the commits up to ``verified.json``'s number.

A directory named ``*.parquet`` of part files is what Spark and pyarrow write; ``pyarrow.parquet.
read_table``, ``pandas.read_parquet`` and ``pyarrow.dataset`` read it as one table (DuckDB:
``read_parquet('OUTPUT/clips.parquet/*.parquet')``). A dataset with no clips holds one empty
part, ``part-none.parquet``, so the directory always has a schema.

Readers may take the committed shards from it: every shard a part names is committed (its commit
was verified, and verified commits are never dropped), and only the commits after the last part's
need their manifests and indexes read (:func:`split_shards_indexed`). For a 20M-video dataset that
is a scan of a few large files instead of 2.5M manifests and 7.5M indexes.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as pads

from vidla_format.index import INDEX_SCHEMA
from vidla_format.layout import CLIPS_FILE, CLIPS_PART_RE, SHARDS_DIR
from vidla_format.storage import Storage

CLIPS_SCHEMA = INDEX_SCHEMA.append(pa.field("shard", pa.string()))
"""A shard index's columns, then the shard's tar path relative to the output root."""
EMPTY_PART = "part-none.parquet"


def part_name(first: int, last: int) -> str:
    """The part holding the clips of commits ``first`` to ``last``."""
    return f"part-{first:06d}-{last:06d}.parquet"


def parts(storage: Storage) -> list[tuple[int, int, str]]:
    """(first commit, last commit, name) of each part of ``clips.parquet``, in commit order."""
    found = [(int(m.group(1)), int(m.group(2)), n) for n in storage.list(CLIPS_FILE) if (m := CLIPS_PART_RE.match(n))]
    return sorted(found)


def clip_files(storage: Storage) -> list[str]:
    """The files of ``clips.parquet`` relative to the output, oldest first (a format-5 dataset: the one file)."""
    if storage.is_file(CLIPS_FILE):
        return [CLIPS_FILE]
    return [f"{CLIPS_FILE}/{name}" for _, _, name in parts(storage)]


def read_clips(storage: Storage, columns: list[str] | None = None) -> pa.Table:
    """Every committed clip of the output, in commit order (empty when there is no ``clips.parquet``)."""
    tables = [storage.read_parquet(rel, columns) for rel in clip_files(storage)]
    schema = pa.schema([CLIPS_SCHEMA.field(c) for c in columns]) if columns else CLIPS_SCHEMA
    return pa.concat_tables(tables) if tables else schema.empty_table()


def split_shards_indexed(output: Storage, split: str) -> tuple[dict[str, set[str]], int]:
    """(per scale, the tars, relative to the output, of the shards whose clips of ``split`` the parts list;
    the last commit number the parts cover, -1 if none). Scanned batch by batch, three columns, the
    ``split`` filter pushed down to the files."""
    found: dict[str, set[str]] = {}
    names = parts(output) if not output.is_file(CLIPS_FILE) else []
    for _, _, name in names:
        dataset = pads.dataset(output.path(f"{CLIPS_FILE}/{name}"), filesystem=output.fs, format="parquet")
        for batch in dataset.to_batches(columns=["scale", "shard"], filter=pads.field("split") == split):
            pairs = pa.Table.from_batches([batch]).group_by(["scale", "shard"]).aggregate([])
            for scale, shard in zip(pairs["scale"].to_pylist(), pairs["shard"].to_pylist(), strict=True):
                found.setdefault(scale, set()).add(shard)
    last = max((last for _, last, _ in names), default=-1)
    return found, last


def shards_relative(tars: set[str]) -> list[str]:
    """``shards/short/shard-X.tar`` -> ``short/shard-X.tar``: relative to the shards root, as readers name them."""
    prefix = f"{SHARDS_DIR}/"
    return sorted(t[len(prefix) :] if t.startswith(prefix) else t for t in tars)

