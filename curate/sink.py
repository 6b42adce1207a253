"""The dataset sink: shards per scale, the ledger, ``clips.parquet`` and ``stats.json``.

A resume costs what the last, interrupted run wrote, not the dataset's size: commits that a clean
close verified (``verified.json``) are not parsed again (their ledger rows are in ``videos.parquet``,
their clips in ``clips.parquet``, and that close deleted every shard no commit named), and a close
reads back only the shard indexes of the commits since then (:mod:`curate.clips_index`).

Both drivers (the plain loop in :mod:`curate.run` and the Ray pipeline) go through one
:class:`DatasetWriter`, so exactly-once, resume and the output layout are implemented once.
The shards themselves are written by :class:`curate.shard_batch.BatchWriter`: in the Ray
pipeline by the write stage's tasks on the workers, which hand over only a
:class:`~curate.shard_batch.WrittenBatch` (:meth:`DatasetWriter.publish`); in the plain loop
in this process (:meth:`DatasetWriter.write`). Either way a video's clips at every scale and
its ledger row are published by one commit manifest (:mod:`vidla_format.commits`), all or nothing;
a video already committed is never written again, and the output has one writer at a time
(:mod:`curate.lease`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.clips_index import add_clips_part
from curate.config import CurateConfig
from curate.lease import Lease, new_run_id
from curate.ledger import Ledger, VideoStatus
from curate.records import Sample
from curate.shard_batch import BatchWriter, WrittenBatch, this_writer
from curate.shard_batch import without_secrets as _without_secrets
from curate.shards import ShardWriter
from curate.sources import SourceRow
from vidla_format.commits import (
    Manifest,
    Verified,
    commit_number,
    commits_dir,
    next_commit_number,
    read_manifests,
    read_verified,
    remove_uncommitted,
    write_manifest,
    write_verified,
)
from vidla_format.layout import FORMAT_VERSION, SCALES, SHARDS_DIR, STATS_FILE, shard_run
from vidla_format.storage import Storage, ordered_map

log = logging.getLogger(__name__)


STAGES = ("download", "analyze", "cut", "text")
"""The stages whose seconds ``stats.json`` reports (the ledger's ``<stage>_s`` and ``<stage>_cpu_s``)."""


@dataclass
class RunTally:
    """What this run did (as opposed to the whole dataset, which the ledger holds), as running totals:
    a run of millions of videos keeps a few numbers, not a row per video."""

    videos: int = 0
    ok: int = 0
    samples_written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCALES, 0))
    cpu_s: float = 0.0
    text_cpu_s: float = 0.0
    stage_cpu_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    """Wall seconds per stage, of the videos that ended ``ok``."""
    source_s: float = 0.0
    preroll_s: float = 0.0

    def add(self, statuses: list[VideoStatus]) -> None:
        """Count finished videos (each once: the sink adds a batch's rows when it publishes them)."""
        for r in statuses:
            self.videos += 1
            self.cpu_s += r.cpu_s or 0.0
            self.text_cpu_s += r.text_cpu_s or 0.0
            for k in STAGES:
                self.stage_cpu_s[k] += getattr(r, f"{k}_cpu_s") or 0.0
            if r.status == "ok":
                self.ok += 1
                self.source_s += r.duration or 0.0
                self.preroll_s += r.preroll_s or 0.0
                for k in STAGES:
                    self.stage_s[k] += getattr(r, f"{k}_s") or 0.0


class DatasetWriter:
    """Writes finished videos into a dataset root, resuming what is there.

    Holds the output's lease (:mod:`curate.lease`) from construction to :meth:`close` or
    :meth:`release`. A batch of videos written elsewhere is committed by :meth:`publish`; videos
    given to :meth:`write` are written here into a batch that is published once it holds a
    shard's worth of samples (or bytes). Either way one commit manifest publishes a batch's
    shards at every scale together with its videos' ledger rows.
    """

    def __init__(self, output: str | Storage, config: CurateConfig):
        self.storage = output if isinstance(output, Storage) else Storage(output)
        self.storage.mkdir()
        self.config = config
        self.run_id = new_run_id()
        self.lease = Lease(self.storage, self.run_id)
        self.lease.acquire()
        try:
            manifests = self._recover()
            self.ledger = Ledger(self.storage, (v for m in manifests for v in m.videos))
            self._commit_no = next_commit_number(self.storage, SHARDS_DIR)
        except BaseException:
            self.lease.release()
            raise
        self.batch_writer = BatchWriter(self.storage, config.shards, self.run_id, this_writer())
        self.tally = RunTally()

    @property
    def writers(self) -> dict[str, ShardWriter]:
        """The in-process shard writer of each scale (the plain loop's)."""
        return self.batch_writer.writers

    def _recover(self) -> list[Manifest]:
        """Keep the commits after the verified ones whose shards are all readable; remove unreadable
        commits and every shard no commit names (a crashed run's, a failed task's). Commits that an
        earlier clean close verified (``verified.json``) are neither parsed nor checked again."""
        self.verified = read_verified(self.storage, SHARDS_DIR)
        manifests, bad = read_manifests(self.storage, SHARDS_DIR, after=self.verified.through)
        readable = list(ordered_map(partial(_readable, self.storage), manifests))  # two requests a shard, 16 at once
        kept = [m for m, ok in zip(manifests, readable, strict=True) if ok]
        for name in bad + [m.name for m, ok in zip(manifests, readable, strict=True) if not ok]:
            self.storage.delete(f"{commits_dir(SHARDS_DIR)}/{name}")
        self.committed = {scale: _Committed(self.verified.runs) for scale in SCALES}
        for m in kept:
            self._name(m.shards)
        self.unverified = [(commit_number(m.name), m.shards) for m in kept]
        self._remove_uncommitted()
        return kept

    def _name(self, shards: dict[str, list[str]]) -> None:
        for scale, stems in shards.items():
            self.committed[scale].update(stems)

    def _remove_uncommitted(self) -> None:
        """Delete every shard file no commit names, with temporaries: after a crash, and at the end of a
        run (a write task that died or was retried under another batch may have left some)."""
        for scale in SCALES:
            remove_uncommitted(self.storage, f"{SHARDS_DIR}/{scale}", self.committed[scale])

    def todo(self, rows: list[SourceRow], retry_failed: bool = False) -> list[SourceRow]:
        """Record rows that are not downloaded (invalid, duplicate, opted out, an id already committed
        for another URL, a playlist expanded into entries); return the rest not yet done. The verdict is
        :class:`~curate.source_plan.LedgerFilter`'s, which the Ray pipeline's planners apply per batch."""
        from curate.source_plan import LedgerFilter

        pending, record = LedgerFilter.of(self.ledger, retry_failed).todo(rows)
        self.ledger.commit([_without_secrets(r.ledger_row()) for r in record])
        return pending

    def write(self, status: VideoStatus, samples: list[Sample]) -> None:
        """Write one finished video in this process (its samples may be empty when it failed); a video
        already committed is not written again. Publishes the batch once it holds a shard's worth."""
        if self._committed(status.video_id):
            log.warning("video %s is already committed: not written again", status.video_id)
            return
        if not self.batch_writer.add(status, samples):
            self.publish(self.batch_writer.take_unwritten())  # nothing to publish: the row alone is the commit
        elif self.batch_writer.full:
            self.commit()

    def commit(self) -> None:
        """Close every open in-process shard and publish the batch: its shards at all scales and its rows."""
        self.publish(self.batch_writer.take())

    def publish(self, batch: WrittenBatch) -> bool:
        """Commit a batch whose shards are written (here or by a write task): one manifest names its shards
        at every scale with its videos' rows; rows of videos without clips become a ledger part.

        A batch holding a video that is already committed, or shards of another run (whose files that
        run's recovery may have deleted), is refused and its shards deleted, so no clip is ever committed
        twice or named without its file (its other videos stay unrecorded, as after a crash, and a rerun
        redoes them). Returns whether the batch was committed.
        """
        foreign = [s for stems in batch.shards.values() for s in stems if not s.startswith(f"shard-{self.run_id}-")]
        if foreign or any(self._committed(vid) for vid in batch.video_ids):
            log.warning("batch of %s holds a video already committed or another run's shards: refused", batch.video_ids)
            if not foreign:
                self._delete_shards(batch.shards)
            return False
        self.tally.add(batch.statuses + batch.unwritten)
        for scale, count in batch.samples.items():
            self.tally.samples_written[scale] += count
        self.ledger.commit(batch.unwritten)
        if not batch.shards and not batch.statuses:
            return True
        for status in batch.statuses:
            status.finished_at = status.finished_at or datetime.now(UTC).isoformat(timespec="seconds")
        manifest = Manifest("", batch.shards, [asdict(s) for s in batch.statuses], batch.writer)
        write_manifest(self.storage, SHARDS_DIR, self._commit_no, self.run_id, manifest)
        self.unverified.append((self._commit_no, batch.shards))
        self._commit_no += 1
        self._name(batch.shards)
        for status in batch.statuses:
            self.ledger.put(status)
        return True

    def _committed(self, video_id: str) -> bool:
        """Whether ``video_id``'s clips are committed (its ``ok`` row came with them, all or nothing)."""
        row = self.ledger.get(video_id)
        return row is not None and row.status == "ok"

    def _delete_shards(self, shards: dict[str, list[str]]) -> None:
        """Delete a refused batch's shards (never one a commit names)."""
        for scale, stems in shards.items():
            for stem in (s for s in stems if s not in self.committed[scale]):
                for ext in ("parquet", "tar"):  # the index first: a tar without one is never read
                    self.storage.delete(f"{SHARDS_DIR}/{scale}/{stem}.{ext}")

    def release(self) -> None:
        """Give the output's lease back (after :meth:`close`, or when a run stops early)."""
        self.lease.release()

    def close(self, wall_s: float, extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """Commit the last batch; write ``videos.parquet``, ``clips.parquet``, ``stats.json``; release the lease."""
        try:
            self.commit()
            self._remove_uncommitted()
            self.ledger.consolidate()
            add_clips_part(self.storage, self.unverified, self.verified.through)  # reads only these commits' indexes
            if self.unverified:  # a rerun that committed nothing rewrites nothing
                runs = {shard_run(stem) for _, shards in self.unverified for stems in shards.values() for stem in stems}
                verified = Verified(self.unverified[-1][0], self.verified.runs | runs)
                write_verified(self.storage, SHARDS_DIR, verified, self.run_id)
            stats = dataset_stats(self.ledger, self.config, self.tally, wall_s)
            stats.update(extra_stats or {})
            self.storage.write_bytes(STATS_FILE, json.dumps(stats, indent=2).encode())
        finally:
            self.release()
        return stats


def _readable(storage: Storage, manifest: Manifest) -> bool:
    """Whether every shard ``manifest`` names has its tar and a readable index (else it is not a commit)."""
    try:
        for scale, stems in manifest.shards.items():
            for stem in stems:
                rel = f"{SHARDS_DIR}/{scale}/{stem}"
                if not storage.is_file(f"{rel}.tar"):
                    return False
                storage.read_parquet(f"{rel}.parquet", ["key"])
    except (pa.ArrowInvalid, FileNotFoundError):
        return False
    return True


class _Committed(set):
    """The committed shard stems of one scale: those named by commits after the verified ones, and
    any of a run whose commits a clean close verified (that close deleted its uncommitted shards), so
    the driver holds the stems of the runs since the last clean close, not of the whole dataset."""

    def __init__(self, verified_runs: frozenset[str]):
        super().__init__()
        self.verified_runs = verified_runs

    def __contains__(self, stem: object) -> bool:
        return super().__contains__(stem) or (isinstance(stem, str) and shard_run(stem) in self.verified_runs)


def funnel(ledger: Ledger) -> dict[str, Any]:
    """Counts over every row of the ledger, computed on its Arrow columns (20M rows in the paper's dataset)."""
    table = ledger.table(["status", "duration", "has_subtitles", "error_class", "error_code", *(f"clips_{s}" for s in SCALES)])
    status = table["status"]
    ok, failed = table.filter(pc.equal(status, "ok")), table.filter(pc.equal(status, "failed"))
    codes = pc.binary_join_element_wise(*(pc.fill_null(failed[c], "None") for c in ("error_class", "error_code")), ":")
    failures = {row["values"]: row["counts"] for row in pc.value_counts(codes).to_pylist()}
    return {
        "urls_in": table.num_rows,
        "skipped": _count(pc.equal(status, "skipped")),
        "downloaded": _count(pc.is_valid(table["duration"])),
        "with_subtitles": _count(table["has_subtitles"]),
        "ok": ok.num_rows,
        "failed": failed.num_rows,
        "clips": {s: int(pc.sum(ok[f"clips_{s}"]).as_py() or 0) for s in SCALES},
        "failures": dict(sorted(failures.items())),
    }


def _count(mask: pa.ChunkedArray) -> int:
    """Rows where ``mask`` is true (null counts as false, as ``bool(None)`` did)."""
    return int(pc.sum(pc.fill_null(mask, False)).as_py() or 0)


def dataset_stats(ledger: Ledger, config: CurateConfig, tally: RunTally, wall_s: float) -> dict[str, Any]:
    """The funnel over the whole ledger, and this run's timings and throughput."""
    cpu_s, text_cpu_s, source_s = tally.cpu_s, tally.text_cpu_s, tally.source_s
    return {
        "format_version": FORMAT_VERSION,
        "funnel": funnel(ledger),
        "run": {
            "videos_processed": tally.videos,
            "samples_written": tally.samples_written,
            "wall_s": round(wall_s, 3),
            "stage_s": {k: round(v, 3) for k, v in tally.stage_s.items()},
            # CPU seconds per stage, in whichever process ran it (ffmpeg children included; the text
            # stages' share of each batch by clip count, all the actor's threads counted).
            "stage_cpu_s": {k: round(v, 3) for k, v in tally.stage_cpu_s.items()},
            "cpu_s": round(cpu_s + text_cpu_s, 3),
            "curation_cpu_s": round(cpu_s, 3),
            "source_seconds": round(source_s, 3),
            # Curation covers download, the decode, planning and cutting; the second figure adds captions and summaries.
            "source_seconds_per_cpu_second": round(source_s / cpu_s, 3) if cpu_s else None,
            "source_seconds_per_cpu_second_with_text": round(source_s / (cpu_s + text_cpu_s), 3) if cpu_s + text_cpu_s else None,
            "preroll_s": round(tally.preroll_s, 3),
            "source_seconds_per_wall_second": round(source_s / wall_s, 3) if wall_s else None,
        },
        "config": json.loads(config.model_dump_json()),
    }
