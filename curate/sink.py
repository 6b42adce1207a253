"""The dataset sink: shards per scale, the ledger, ``clips.parquet`` and ``stats.json``.

Both drivers (the plain loop in :mod:`curate.run` and the Ray pipeline) feed finished
videos to one :class:`DatasetWriter`, so exactly-once, resume and the output layout are
implemented once. A video's clips at every scale and its ledger row are published by one
commit manifest (:mod:`curate.commits`), all or nothing; committed keys are never written
again, and the output has one writer at a time (:mod:`curate.lease`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.commits import Manifest, commits_dir, next_commit_number, read_manifests, write_manifest
from curate.config import CurateConfig
from curate.lease import Lease, new_run_id
from curate.ledger import ID_CONFLICT, Ledger, VideoStatus
from curate.plan import SCALES
from curate.records import FORMAT_VERSION, Sample
from curate.redact import redact_text, redact_url
from curate.shards import (
    INDEX_SCHEMA,
    ShardWriter,
    committed_shards,
    highest_shard,
    recover,
    shard_name,
)
from curate.sources import SourceRow
from curate.storage import Storage

SHARDS_DIR = "shards"
CLIPS_FILE = "clips.parquet"
STATS_FILE = "stats.json"


@dataclass
class RunTally:
    """What this run did (as opposed to the whole dataset, which the ledger holds)."""

    statuses: list[VideoStatus] = field(default_factory=list)
    samples_written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCALES, 0))


class DatasetWriter:
    """Writes finished videos into a dataset root, resuming what is there.

    Holds the output's lease (:mod:`curate.lease`) from construction to :meth:`close` or
    :meth:`release`. Videos with clips are gathered into a batch; once the batch holds a
    shard's worth of samples (or bytes), every open shard is closed and one commit manifest
    publishes the batch's shards at every scale together with its videos' ledger rows.
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
            self.ledger = Ledger(self.storage, [v for m in manifests for v in m.videos])
            self._commit_no = next_commit_number(self.storage, SHARDS_DIR)
        except BaseException:
            self.lease.release()
            raise
        self.batch: list[VideoStatus] = []
        self.batch_samples = 0
        self.batch_bytes = 0
        self.tally = RunTally()

    def _recover(self) -> list[Manifest]:
        """Keep the commits whose shards are all readable; remove unreadable commits and every shard
        no kept commit names (a crashed run's); open a writer per scale after the highest number."""
        manifests, bad = read_manifests(self.storage, SHARDS_DIR)
        kept = [m for m in manifests if _readable(self.storage, m)]
        for name in bad + [m.name for m in manifests if m not in kept]:
            self.storage.delete(f"{commits_dir(SHARDS_DIR)}/{name}")
        self.writers: dict[str, ShardWriter] = {}
        for scale in SCALES:
            rel_dir = f"{SHARDS_DIR}/{scale}"
            first = highest_shard(self.storage, rel_dir) + 1  # before recovery: a number is never reused
            keys = recover(self.storage, rel_dir, {stem for m in kept for stem in m.shards.get(scale, [])})
            shards = self.config.shards
            self.writers[scale] = ShardWriter(self.storage, rel_dir, shards.max_samples, shards.max_bytes, keys, first)
        return kept

    def todo(self, rows: list[SourceRow], retry_failed: bool = False) -> list[SourceRow]:
        """Record rows that cannot be processed (invalid, duplicate, opted out, an id already committed
        for another URL); return the rest not yet done."""
        refused = [_without_secrets(_unprocessable(r)) for r in rows if r.status != "pending"]
        pending = []
        for row in (r for r in rows if r.status == "pending"):
            other = self.ledger.conflict(row.video_id, redact_url(row.url))
            if other is not None:
                refused.append(_without_secrets(_id_conflict(row, other)))
            elif not self.ledger.done(row.video_id, retry_failed):
                pending.append(row)
        self.ledger.commit([s for s in refused if not self.ledger.has(s.key)])
        return pending

    def write(self, status: VideoStatus, samples: list[Sample]) -> None:
        """Append one finished video (its samples may be empty when it failed); URLs lose their secrets here,
        where every driver's rows and samples are stored."""
        status = _without_secrets(status)
        self.tally.statuses.append(status)
        written = 0
        for sample in samples:
            sample.record["url"] = redact_url(str(sample.record.get("url", "")))
            if self.writers[sample.scale].write(sample) is not None:
                self.tally.samples_written[sample.scale] += 1
                written += 1
                self.batch_bytes += sample.mp4.stat().st_size if isinstance(sample.mp4, Path) else len(sample.mp4)
        if not written:
            self.ledger.commit([status])  # nothing to publish: the row alone is the commit
            return
        self.batch.append(status)
        self.batch_samples += written
        if self.batch_samples >= self.config.shards.max_samples or self.batch_bytes >= self.config.shards.max_bytes:
            self.commit()

    def commit(self) -> None:
        """Close every open shard and publish the batch: its shards at all scales and its ledger rows."""
        shards = {scale: stems for scale, w in self.writers.items() if (stems := w.take_closed())}
        if not shards and not self.batch:
            return
        for status in self.batch:
            status.finished_at = status.finished_at or datetime.now(UTC).isoformat(timespec="seconds")
        manifest = Manifest("", shards, [asdict(s) for s in self.batch])
        write_manifest(self.storage, SHARDS_DIR, self._commit_no, self.run_id, manifest)
        self._commit_no += 1
        for status in self.batch:
            self.ledger.put(status)
        self.batch, self.batch_samples, self.batch_bytes = [], 0, 0

    def release(self) -> None:
        """Give the output's lease back (after :meth:`close`, or when a run stops early)."""
        self.lease.release()

    def close(self, wall_s: float, extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """Commit the last batch; write ``videos.parquet``, ``clips.parquet``, ``stats.json``; release the lease."""
        try:
            self.commit()
            self.ledger.consolidate()
            write_clips_index(self.storage)
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


def _id_conflict(row: SourceRow, other: VideoStatus) -> VideoStatus:
    message = (
        f"row {row.row}: video_id {row.video_id!r} is already committed with clips for another URL ({other.url}); "
        "give this video another id"
    )
    return VideoStatus(row.url, row.video_id, "failed", "permanent", ID_CONFLICT, message, input_row=row.row)


def _without_secrets(status: VideoStatus) -> VideoStatus:
    """The row as stored: no credentials or signatures in its URL or in the messages about it."""
    status.url = redact_url(status.url)
    status.error = status.error and redact_text(status.error)
    status.subtitle_warning = status.subtitle_warning and redact_text(status.subtitle_warning)
    return status


def _unprocessable(row: SourceRow) -> VideoStatus:
    error_class = "permanent" if row.status == "failed" else None
    return VideoStatus(row.url, row.video_id, row.status, error_class, row.error_code, row.error, input_row=row.row)


def write_clips_index(storage: Storage) -> None:
    """``clips.parquet``: every committed shard index, with the shard's relative path."""
    tables = []
    for scale in SCALES:
        rel_dir = f"{SHARDS_DIR}/{scale}"
        for number in committed_shards(storage, rel_dir):
            table = storage.read_parquet(f"{rel_dir}/{shard_name(number, 'parquet')}")
            rel = f"{rel_dir}/{shard_name(number, 'tar')}"
            tables.append(table.append_column("shard", pa.array([rel] * table.num_rows, pa.string())))
    schema = INDEX_SCHEMA.append(pa.field("shard", pa.string()))
    storage.write_parquet(CLIPS_FILE, pa.concat_tables(tables) if tables else schema.empty_table())


def dataset_stats(ledger: Ledger, config: CurateConfig, tally: RunTally, wall_s: float) -> dict[str, Any]:
    """The funnel over the whole ledger, and this run's timings and throughput."""
    rows = list(ledger.rows.values())
    ok = [r for r in rows if r.status == "ok"]
    done_now = [r for r in tally.statuses if r.status == "ok"]
    failures = Counter(f"{r.error_class}:{r.error_code}" for r in rows if r.status == "failed")
    cpu_s = sum(r.cpu_s or 0.0 for r in tally.statuses)
    text_cpu_s = sum(r.text_cpu_s or 0.0 for r in tally.statuses)
    source_s = sum(r.duration or 0.0 for r in done_now)
    stage_cpu = {k: round(sum(getattr(r, f"{k}_cpu_s") or 0.0 for r in tally.statuses), 3) for k in ("download", "analyze", "cut", "text")}
    return {
        "format_version": FORMAT_VERSION,
        "funnel": {
            "urls_in": len(rows),
            "skipped": sum(r.status == "skipped" for r in rows),
            "downloaded": sum(r.duration is not None for r in rows),
            "with_subtitles": sum(bool(r.has_subtitles) for r in rows),
            "ok": len(ok),
            "failed": sum(r.status == "failed" for r in rows),
            "clips": {s: sum(getattr(r, f"clips_{s}") or 0 for r in ok) for s in SCALES},
            "failures": dict(sorted(failures.items())),
        },
        "run": {
            "videos_processed": len(tally.statuses),
            "samples_written": tally.samples_written,
            "wall_s": round(wall_s, 3),
            "stage_s": {k: round(sum(getattr(r, f"{k}_s") or 0.0 for r in done_now), 3) for k in ("download", "analyze", "cut", "text")},
            # CPU seconds per stage, in whichever process ran it (ffmpeg children included; the text
            # stages' share of each batch by clip count, all the actor's threads counted).
            "stage_cpu_s": stage_cpu,
            "cpu_s": round(cpu_s + text_cpu_s, 3),
            "curation_cpu_s": round(cpu_s, 3),
            "source_seconds": round(source_s, 3),
            # Curation covers download, the decode, planning and cutting; the second figure adds captions and summaries.
            "source_seconds_per_cpu_second": round(source_s / cpu_s, 3) if cpu_s else None,
            "source_seconds_per_cpu_second_with_text": round(source_s / (cpu_s + text_cpu_s), 3) if cpu_s + text_cpu_s else None,
            "preroll_s": round(sum(r.preroll_s or 0.0 for r in done_now), 3),
            "source_seconds_per_wall_second": round(source_s / wall_s, 3) if wall_s else None,
        },
        "config": json.loads(config.model_dump_json()),
    }
