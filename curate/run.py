"""The plain-Python loop: sources -> :func:`curate_video` -> the dataset sink.

The reference driver of the stages on one machine (the Ray pipeline in
``pipelines/build_dataset.py`` scales the same functions out). Resumable: committed
samples are never written again, and videos already ``ok`` or failed for good are skipped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from curate.config import CurateConfig
from curate.dedupe import dedupe
from curate.one_video import VideoResult, curate_video
from curate.sink import DatasetWriter
from curate.source_plan import LedgerFilter, expand_batch
from curate.sources import Rules, SourceRow, load_opt_out, read_classified
from curate.workdir import private_workdir, remove_workdir
from curate.workers import WorkerPool
from vidla_format.layout import CLIPS_FILE, STATS_FILE

__all__ = ["CLIPS_FILE", "STATS_FILE", "RunSummary", "run"]
LISTING_THREADS = 4
"""Playlist listings at once (each a limited child process, so the threads only wait)."""


@dataclass
class RunSummary:
    output: str
    processed: int = 0
    samples_written: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


def _results(todo: list[SourceRow], config: CurateConfig, work_root: Path, workers: int) -> Iterator[VideoResult]:
    """Results as videos finish: in this process for ``workers <= 1`` (a debugger sees everything),
    else in worker processes, where a killed worker costs only the video it held."""
    if workers <= 1:
        yield from (curate_video(row, config, work_root) for row in todo)
        return
    with WorkerPool(workers, config, work_root) as pool:
        yield from pool.imap_unordered(todo)


def _text_enricher(config: CurateConfig):
    """Captions and summaries in the driver process, one model load per run (None when none is configured)."""
    from curate.caption import TextEnricher, startup_notes

    for note in startup_notes(config.text):
        print(note, file=sys.stderr)
    if config.text.vlm.backend == "none" and config.text.llm.backend == "none":
        return None
    return TextEnricher(config.text)


def source_rules(config: CurateConfig) -> Rules:
    """Classification rules from the config (reads the opt-out list; an unreadable one raises OSError)."""
    opt_out = load_opt_out(config.sources.opt_out) if config.sources.opt_out else None
    return Rules.of(config.sources.allow_file_urls, opt_out)


def load_sources(sources: str | Path, config: CurateConfig) -> list[SourceRow]:
    """Every row of the list, classified and de-duplicated, read in this process (no playlist listed)."""
    return dedupe(read_classified(sources, source_rules(config)))


def plan_sources(sources: str | Path, config: CurateConfig, sink: DatasetWriter, retry_failed: bool) -> list[SourceRow]:
    """What this run downloads, in the order :mod:`curate.source_plan` gives both drivers: classify,
    expand playlists the ledger has not finished, de-duplicate sources and entries together, then the
    ledger's verdict (which records every row that is not downloaded)."""
    rows = read_classified(sources, source_rules(config))
    rows = expand_batch(rows, config, LedgerFilter.of(sink.ledger, retry_failed), threads=LISTING_THREADS)
    return sink.todo(dedupe(rows), retry_failed)


def run(
    sources: Path,
    output: str | Path,
    config: CurateConfig,
    *,
    workers: int = 1,
    retry_failed: bool = False,
    work_root: Path | None = None,
    progress: bool = True,
) -> RunSummary:
    """Curate every source into ``output`` (a directory or a filesystem URI); safe to rerun."""
    started = time.monotonic()
    sink = DatasetWriter(str(output), config)  # takes the output's lease, or raises OutputLocked
    own_work = work_root is None
    work_root = work_root or private_workdir()
    enricher = None
    try:
        todo = plan_sources(sources, config, sink, retry_failed)
        enricher = _text_enricher(config) if todo else None
        bar = tqdm(_results(todo, config, work_root, workers), total=len(todo), unit="video", disable=not progress)
        for result in bar:
            try:
                if enricher is not None and result.samples:
                    enricher(result.samples)
                sink.write(result.status, result.samples)
            finally:
                if not config.keep_workdirs:
                    result.cleanup()
            bar.set_postfix_str(f"{result.status.video_id}: {result.status.status}")
    except BaseException:
        sink.release()  # what was committed stays; the next run on this output resumes it
        raise
    finally:
        if own_work:
            remove_workdir(work_root)
        if enricher is not None:
            enricher.close()
    wall = time.monotonic() - started
    stats = sink.close(wall)
    return RunSummary(str(output), sink.tally.videos, sink.tally.samples_written, wall, stats)
