"""The dataset sink: shards per scale, the ledger, ``clips.parquet`` and ``stats.json``.

Both drivers (the plain loop in :mod:`curate.run` and the Ray pipeline) feed finished
videos to one :class:`DatasetWriter`, so exactly-once, resume and the output layout are
implemented once. A video's ledger row is committed only when every shard holding its
samples is committed; committed keys are never written again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from curate.config import CurateConfig
from curate.ledger import Ledger, VideoStatus
from curate.plan import SCALES
from curate.records import FORMAT_VERSION, Sample
from curate.redact import redact_text, redact_url
from curate.shards import INDEX_SCHEMA, ShardWriter, committed_shards, shard_name
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


class _Committer:
    """Holds ledger rows until every shard with the video's samples is committed."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.waiting: dict[str, tuple[VideoStatus, set[str]]] = {}

    def on_commit(self, scale: str):
        def callback(_: int, video_ids: set[str]) -> None:
            ready = []
            for vid in video_ids & self.waiting.keys():
                status, scales = self.waiting[vid]
                scales.discard(scale)
                if not scales:
                    ready.append(self.waiting.pop(vid)[0])
            self.ledger.commit(ready)

        return callback

    def video_written(self, status: VideoStatus, open_scales: set[str]) -> None:
        if open_scales:
            self.waiting[status.video_id] = (status, set(open_scales))
        else:
            self.ledger.commit([status])


class DatasetWriter:
    """Writes finished videos into a dataset root, resuming what is there."""

    def __init__(self, output: str | Storage, config: CurateConfig):
        self.storage = output if isinstance(output, Storage) else Storage(output)
        self.storage.mkdir()
        self.config = config
        self.ledger = Ledger(self.storage)
        self.committer = _Committer(self.ledger)
        self.writers = {
            scale: ShardWriter(
                self.storage,
                f"{SHARDS_DIR}/{scale}",
                config.shards.max_samples,
                config.shards.max_bytes,
                self.committer.on_commit(scale),
            )
            for scale in SCALES
        }
        self.tally = RunTally()

    def todo(self, rows: list[SourceRow], retry_failed: bool = False) -> list[SourceRow]:
        """Record rows that cannot be processed (invalid, duplicate, opted out); return the rest not yet done."""
        unprocessable = [_without_secrets(_unprocessable(r)) for r in rows if r.status != "pending"]
        self.ledger.commit([s for s in unprocessable if not self.ledger.has(s.key)])
        return [r for r in rows if r.status == "pending" and not self.ledger.done(redact_url(r.url), retry_failed)]

    def write(self, status: VideoStatus, samples: list[Sample]) -> None:
        """Append one finished video (its samples may be empty when it failed); URLs lose their secrets here,
        where every driver's rows and samples are stored."""
        status = _without_secrets(status)
        self.tally.statuses.append(status)
        for sample in samples:
            sample.record["url"] = redact_url(str(sample.record.get("url", "")))
            if self.writers[sample.scale].write(sample) is not None:
                self.tally.samples_written[sample.scale] += 1
        vid = status.video_id
        open_scales = {s for s, w in self.writers.items() if vid in w.open_video_ids}
        self.committer.video_written(status, open_scales)

    def close(self, wall_s: float, extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """Commit open shards and waiting rows; write ``videos.parquet``, ``clips.parquet``, ``stats.json``."""
        for writer in self.writers.values():
            writer.commit()
        self.ledger.commit([status for status, _ in self.committer.waiting.values()])
        self.committer.waiting.clear()
        self.ledger.consolidate()
        write_clips_index(self.storage)
        stats = dataset_stats(self.ledger, self.config, self.tally, wall_s)
        stats.update(extra_stats or {})
        self.storage.write_bytes(STATS_FILE, json.dumps(stats, indent=2).encode())
        return stats


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
