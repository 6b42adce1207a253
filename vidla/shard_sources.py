"""Which shards the loader reads: the committed shards of a split, per scale, with mixing weights.

The commit rule is the dataset contract's (:mod:`vidla_format.commits`: a readable commit manifest
names the shard); a shard counts for a split when its index lists a sample of it. ``clips.parquet``
says both for every commit a clean close verified, so a 20M-video dataset's trainer starts from a
scan of its parts, not from 2.5M manifests and 7.5M indexes read one by one.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from vidla_format.clips import shards_relative, split_shards_indexed
from vidla_format.commits import read_manifests
from vidla_format.layout import SCALES, SHARDS_DIR
from vidla_format.storage import Storage, ordered_map, redacted

log = logging.getLogger(__name__)

INDEX_READERS = 16
"""Shard indexes read concurrently (on object storage each read is a few round trips)."""


def split_shards(storage: Storage, split: str) -> dict[str, list[str]]:
    """Per scale, the committed tars whose index lists a ``split`` sample, as paths in ``storage``'s filesystem.

    Committed means the dataset contract's rule (a readable commit manifest names the shard). The shards
    that ``clips.parquet``'s parts list are committed by that rule and their split is in the part, so
    only the commits after the last part (an interrupted run's) are read one by one: their manifests,
    then the ``split`` column of each index, 16 at a time, since on object storage each read is a few
    network round trips. A shard whose index cannot be read is treated as uncommitted (skipped with a
    warning), not fatal. Without ``clips.parquet`` parts (format 5, or a root that is not ``OUTPUT/shards``)
    every commit is read.
    """
    indexed, after = _from_clips_index(storage, split)
    manifests, _ = read_manifests(storage, "", after=after)

    def has_split(tar: str) -> bool:
        try:
            return split in set(storage.read_parquet(f"{tar[:-4]}.parquet", ["split"])["split"].to_pylist())
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning("shard index %s is unreadable (%s): skipped", tar[:-4], exc)
            return False

    found = {}
    for scale in SCALES:
        later = [f"{scale}/{stem}.tar" for stem in sorted({s for m in manifests for s in m.shards.get(scale, [])})]
        with_split = {tar for tar, keep in zip(later, ordered_map(has_split, later, INDEX_READERS), strict=True) if keep}
        found[scale] = [storage.path(t) for t in sorted(with_split | set(indexed.get(scale, [])))]
    return found


def _from_clips_index(storage: Storage, split: str) -> tuple[dict[str, list[str]], int]:
    """(per scale, the tars of ``split`` that ``clips.parquet`` lists, relative to the shards root; the last
    commit its parts cover, -1 if none)."""
    if posixpath.basename(storage.base.rstrip("/")) != SHARDS_DIR:
        return {}, -1
    tars, last = split_shards_indexed(storage.parent(), split)
    return {scale: shards_relative(names) for scale, names in tars.items()}, last


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
    by_scale = split_shards(storage, split)
    for scale in SCALES:
        shards = by_scale[scale]
        weight = float(len(shards)) if weights is None else float(weights.get(scale, 0.0))
        if shards and weight > 0:
            sources.append(ScaleSource(scale, tuple(shards), weight))
    if not sources:
        raise FileNotFoundError(
            f"no committed shards with {split!r} samples under {redacted(str(root))}/{{{','.join(SCALES)}}}"
        )
    return sources
