"""The plain-Python loop: sources -> :func:`curate_video` -> shards, ledger, stats.

This is the reference driver of the stages (the Ray pipeline scales the same
functions out). It is resumable: committed samples are never written again, and
videos already ``ok`` or failed for good are skipped.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from curate.config import CurateConfig
from curate.ledger import Ledger, VideoStatus
from curate.plan import SCALES
from curate.records import FORMAT_VERSION
from curate.shards import INDEX_SCHEMA, ShardWriter, committed_shards, shard_name, write_atomic
from curate.sources import SourceRow, load_opt_out, read_sources
from curate.video import VideoResult, curate_video

SHARDS_DIR = "shards"
CLIPS_FILE = "clips.parquet"
STATS_FILE = "stats.json"


@dataclass
class RunSummary:
    output: Path
    processed: int = 0
    statuses: list[VideoStatus] = field(default_factory=list)
    samples_written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCALES, 0))
    wall_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


class _Committer:
    """Commits a video's ledger row once every shard holding its samples is committed."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.waiting: dict[str, tuple[VideoStatus, set[str]]] = {}

    def on_commit(self, scale: str):
        def callback(_: int, video_ids: set[str]) -> None:
            ready = []
            for vid in video_ids:
                if vid in self.waiting:
                    status, scales = self.waiting[vid]
                    scales.discard(scale)
                    if not scales:
                        ready.append(self.waiting.pop(vid)[0])
            self.ledger.commit(ready)

        return callback

    def video_written(self, status: VideoStatus, open_scales: set[str]) -> None:
        if open_scales:
            self.waiting[status.video_id] = (status, open_scales)
        else:
            self.ledger.commit([status])


def _curate_one(args: tuple[SourceRow, CurateConfig, Path]) -> VideoResult:
    return curate_video(*args)


def _results(todo: list[SourceRow], config: CurateConfig, work_root: Path, workers: int) -> Iterator[VideoResult]:
    jobs = [(row, config, work_root) for row in todo]
    if workers <= 1:
        yield from map(_curate_one, jobs)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_curate_one, jobs)


def run(
    sources: Path,
    output: Path,
    config: CurateConfig,
    *,
    workers: int = 1,
    retry_failed: bool = False,
    work_root: Path | None = None,
    progress: bool = True,
) -> RunSummary:
    """Curate every source into ``output``; safe to rerun on the same output."""
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(output)
    opt_out = load_opt_out(config.sources.opt_out) if config.sources.opt_out else None
    rows = read_sources(sources, allow_file_urls=config.sources.allow_file_urls, opt_out=opt_out)
    ledger.commit([_unprocessable(r) for r in rows if r.status != "pending" and not ledger.done(r.url)])
    todo = [r for r in rows if r.status == "pending" and not ledger.done(r.url, retry_failed)]
    committer = _Committer(ledger)
    writers = {
        s: ShardWriter(output / SHARDS_DIR / s, config.shards.max_samples, config.shards.max_bytes, committer.on_commit(s))
        for s in SCALES
    }
    summary = RunSummary(output)
    own_work = work_root is None
    work_root = work_root or Path(tempfile.mkdtemp(prefix="vidla-work-"))
    try:
        bar = tqdm(_results(todo, config, work_root, workers), total=len(todo), unit="video", disable=not progress)
        for result in bar:
            _write(result, writers, committer, summary, config)
            bar.set_postfix_str(f"{result.status.video_id}: {result.status.status}")
        for writer in writers.values():
            writer.commit()
    finally:
        if own_work:
            shutil.rmtree(work_root, ignore_errors=True)
    ledger.consolidate()
    write_clips_index(output)
    summary.wall_s = time.monotonic() - started
    summary.stats = write_stats(output, ledger, config, summary)
    return summary


def _unprocessable(row: SourceRow) -> VideoStatus:
    error_class = "permanent" if row.status == "failed" else None
    return VideoStatus(row.url, row.video_id, row.status, error_class, row.error_code, row.error)


def _write(
    result: VideoResult, writers: dict[str, ShardWriter], committer: _Committer, summary: RunSummary, config: CurateConfig
) -> None:
    summary.processed += 1
    summary.statuses.append(result.status)
    try:
        for sample in result.samples:
            if writers[sample.scale].write(sample) is not None:
                summary.samples_written[sample.scale] += 1
        vid = result.status.video_id
        open_scales = {s for s, w in writers.items() if w.open_shard is not None and vid in w.open_video_ids}
        committer.video_written(result.status, open_scales)
    finally:
        if not config.keep_workdirs:
            result.cleanup()


def write_clips_index(output: Path) -> Path:
    """``clips.parquet``: every committed shard index, with the shard's relative path."""
    tables = []
    for scale in SCALES:
        directory = output / SHARDS_DIR / scale
        for number in committed_shards(directory):
            table = pq.read_table(directory / shard_name(number, "parquet"))
            rel = f"{SHARDS_DIR}/{scale}/{shard_name(number, 'tar')}"
            tables.append(table.append_column("shard", pa.array([rel] * table.num_rows, pa.string())))
    target = output / CLIPS_FILE
    if tables:
        combined = pa.concat_tables(tables)
    else:
        combined = INDEX_SCHEMA.append(pa.field("shard", pa.string())).empty_table()
    write_atomic(target, lambda p: pq.write_table(combined, p))
    return target


def write_stats(output: Path, ledger: Ledger, config: CurateConfig, summary: RunSummary) -> dict[str, Any]:
    """``stats.json``: the dataset's funnel (all runs) and this run's timings."""
    rows = list(ledger.rows.values())
    ok = [r for r in rows if r.status == "ok"]
    failures = Counter(f"{r.error_class}:{r.error_code}" for r in rows if r.status == "failed")
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu_s = sum(u.ru_utime + u.ru_stime for u in usage)
    done_now = [r for r in summary.statuses if r.status == "ok"]
    source_s = sum(r.duration or 0.0 for r in done_now)
    stats = {
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
            "videos_processed": summary.processed,
            "samples_written": summary.samples_written,
            "wall_s": round(summary.wall_s, 3),
            "stage_s": {k: round(sum(getattr(r, f"{k}_s") or 0.0 for r in done_now), 3) for k in ("download", "analyze", "cut")},
            "cpu_s": round(cpu_s, 3),
            "source_seconds": round(source_s, 3),
            "source_seconds_per_cpu_second": round(source_s / cpu_s, 3) if cpu_s else None,
        },
        "config": json.loads(config.model_dump_json()),
    }
    write_atomic(output / STATS_FILE, lambda p: p.write_text(json.dumps(stats, indent=2)))
    return stats
