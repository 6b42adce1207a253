"""Names and numbers of the dataset layout (``docs/dataset-format.md``), defined once.

The curation writer and the model's reader both follow these; a constant that lived on
one side only would let the two drift apart silently (a reader looking for ``f00.jpg``
while the writer writes ``frame00.jpg`` finds no frames and falls back to the mp4).
"""

from __future__ import annotations

import hashlib
import re

FORMAT_VERSION = 6
"""2: clips are stream copies with MP4 edit lists (pre-roll hidden); ``preroll_s`` added. 3: commit manifests.
4: shards are written by the workers and named ``shard-RUN-HASH``. 5: ``raw_caption``, ``verified.json``.
6: ``clips.parquet`` is a directory of parts, one per clean close (docs/dataset-format.md)."""

SCALES: tuple[str, ...] = ("short", "medium", "long")
"""The clip scales, shortest first: a clip nests in its parent one scale up."""

# --- files and directories under the output root -----------------------------------------------
SHARDS_DIR = "shards"
"""``OUTPUT/shards/{scale}/shard-RUN-HASH.{tar,parquet}``."""
COMMITS_DIR = "commits"
"""``OUTPUT/shards/commits/commit-NNNNNN-RUN.json``: the manifests that decide which shards exist."""
VIDEOS_FILE = "videos.parquet"
"""The ledger: one row per video."""
LEDGER_DIR = ".ledger"
"""Ledger parts of videos without clips, committed during a run, folded into ``videos.parquet`` at its end."""
CLIPS_FILE = "clips.parquet"
"""One row per committed clip: a Parquet dataset *directory* of parts (``vidla_format.clips``)."""
STATS_FILE = "stats.json"
LOCK_FILE = ".lock"
"""The writer's lease on an output."""

# --- names --------------------------------------------------------------------------------------
SHARD_RE = re.compile(r"^(shard-[A-Za-z0-9_-]+)\.(tar|parquet)$")
"""A shard file: group 1 its stem, group 2 ``tar`` or ``parquet``."""
SHARD_STEM_RE = re.compile(r"^shard-[A-Za-z0-9_-]+$")
COMMIT_RE = re.compile(r"^commit-(\d{6,})-[A-Za-z0-9_-]+\.json$")
"""A commit manifest: group 1 its number."""
CLIPS_PART_RE = re.compile(r"^part-(\d{6,})-(\d{6,})\.parquet$")
"""A part of ``clips.parquet``: the clips of commits group 1 to group 2 (both included)."""
FRAME_RE = re.compile(r"^f(\d+)\.jpg$")
"""A training frame's member extension (after ``KEY.``), as webdataset names it: group 1 the frame number."""


def clip_key(video_id: str, scale: str, index: int) -> str:
    """Deterministic sample key, ``{video_id}_{scale}_{index:04d}``."""
    return f"{video_id}_{scale}_{index:04d}"


def frame_member(k: int) -> str:
    """The member extension of training frame ``k``: ``f00.jpg`` (the tar member is ``KEY.f00.jpg``)."""
    return f"f{k:02d}.jpg"


def shard_stem(run_id: str, first_key: str, batch: str = "") -> str:
    """``shard-RUN-HASH``: the run, then a digest of the batch's identity and the shard's first sample key
    (unique in the dataset), so the name is the same on a retry and never chosen by two writers; no ``.``."""
    return f"shard-{run_id}-{hashlib.sha256(f'{batch}/{first_key}'.encode()).hexdigest()[:16]}"


def shard_run(stem: str) -> str:
    """The run id in a shard stem ``shard-RUN-HASH`` (RUN itself holds ``-``; HASH is 16 hex digits)."""
    return stem[len("shard-") : -17]


def batch_id(video_ids: list[str]) -> str:
    """A batch's identity: a digest of its sorted video ids (the same for a retried task's batch)."""
    return hashlib.sha256("\n".join(sorted(video_ids)).encode()).hexdigest()[:16]
