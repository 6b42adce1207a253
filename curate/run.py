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
from curate.sink import CLIPS_FILE, STATS_FILE, DatasetWriter
from curate.sources import SourceRow, load_opt_out, read_sources
from curate.video import VideoResult, curate_video
from curate.workdir import private_workdir, remove_workdir
from curate.workers import WorkerPool

__all__ = ["CLIPS_FILE", "STATS_FILE", "RunSummary", "run"]


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
    from curate.enrich import TextEnricher, startup_notes

    for note in startup_notes(config.text):
        print(note, file=sys.stderr)
    if config.text.vlm.backend == "none" and config.text.llm.backend == "none":
        return None
    return TextEnricher(config.text)


def load_sources(sources: str | Path, config: CurateConfig) -> list[SourceRow]:
    opt_out = load_opt_out(config.sources.opt_out) if config.sources.opt_out else None
    return read_sources(sources, allow_file_urls=config.sources.allow_file_urls, opt_out=opt_out)


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
        todo = sink.todo(load_sources(sources, config), retry_failed)
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
    return RunSummary(str(output), len(sink.tally.statuses), sink.tally.samples_written, wall, stats)
