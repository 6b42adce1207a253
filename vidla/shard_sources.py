"""Which shards the loader reads: the committed shards of a split, per scale, with mixing weights.

The commit rule is the dataset contract's (:func:`vidla_format.commits.committed_shards`: a readable
commit manifest names the shard); a shard counts for a split when its index lists a sample of it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from vidla_format.commits import committed_shards
from vidla_format.layout import SCALES
from vidla_format.storage import Storage, redacted

log = logging.getLogger(__name__)

INDEX_READERS = 16
"""Shard indexes read concurrently (on object storage each read is a few round trips)."""


def split_shards(storage: Storage, scale: str, split: str) -> list[str]:
    """The committed tars of ``scale`` whose index lists a ``split`` sample, as paths in ``storage``'s filesystem.

    Committed means the dataset contract's rule, implemented once in :func:`vidla_format.commits.committed_shards`
    (a readable commit manifest in ``commits/`` names the shard); then the ``split`` column of each index
    is read, concurrently, since on object storage each read is a few network round trips. A shard whose
    index cannot be read is treated as uncommitted (skipped with a warning), not fatal.
    """
    tars = [f"{scale}/{stem}.tar" for stem in committed_shards(storage, scale)]

    def has_split(tar: str) -> bool:
        try:
            return split in set(storage.read_parquet(f"{tar[:-4]}.parquet", ["split"])["split"].to_pylist())
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning("shard index %s is unreadable (%s): skipped", tar[:-4], exc)
            return False

    with ThreadPoolExecutor(INDEX_READERS) as pool:
        return [storage.path(t) for t, keep in zip(tars, pool.map(has_split, tars), strict=True) if keep]


@dataclass(frozen=True)
class ScaleSource:
    """One scale's shards (of the split) and its mixing weight."""

    scale: str
    shards: tuple[str, ...]
    """Tar paths in the root's filesystem: local paths, or ``bucket/prefix/short/shard-RUN-HASH.tar``."""
    weight: float


def scale_sources(root: str | Path, split: str, weights: dict[str, float] | None) -> list[ScaleSource]:
    """The scales to read: those with shards of ``split`` and a positive weight."""
    storage = Storage(str(root))
    sources = []
    for scale in SCALES:
        shards = split_shards(storage, scale, split)
        weight = float(len(shards)) if weights is None else float(weights.get(scale, 0.0))
        if shards and weight > 0:
            sources.append(ScaleSource(scale, tuple(shards), weight))
    if not sources:
        raise FileNotFoundError(
            f"no committed shards with {split!r} samples under {redacted(str(root))}/{{{','.join(SCALES)}}}"
        )
    return sources
