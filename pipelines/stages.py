"""Ray-facing callables around the plain stages, and the rows that travel between them.

Every stage is a callable class run by a Ray Data actor pool: the imports, yt-dlp's
extractor set-up and (for text) the model load happen once per actor, not per video, and
an actor-pool operator is never fused into another one, so the CPU clip stage can't end up
running inside a GPU/LLM actor (Ray fuses a *task* map into a following actor pool).

A video's bytes cross stage (and node) boundaries inside rows: stage actors may run on
different nodes, so nothing may rely on another actor's local disk. Each actor keeps its
files under a private work directory of its own (``curate.workdir``), removed per video.
Every call turns any exception into a failed row for that video: one bad input never ends
the run.

Rows carry the curation objects pickled in one binary column (``payload``): they are
produced by this code, never by users, and one opaque column keeps every block's Arrow
schema identical whatever a video's fate (no clips, failed, many clips).
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curate.config import CurateConfig
from curate.download import Downloaded, warm_start
from curate.ledger import VideoStatus
from curate.one_video import fetch_video, process_video
from curate.records import Sample
from curate.shards import data_of
from curate.sources import SourceRow
from curate.workdir import private_workdir, remove_workdir


@dataclass
class FetchedVideo:
    """Between download and clipping: the video and subtitle as bytes, the rest as metadata."""

    source: SourceRow
    status: VideoStatus
    downloaded: Downloaded | None
    files: dict[str, bytes]
    """File name in the work directory -> content (the video, the subtitle track)."""


@dataclass
class ClippedVideo:
    """After clipping: the video's status and its samples with every member as bytes."""

    status: VideoStatus
    samples: list[Sample]


def to_row(obj: Any) -> dict[str, Any]:
    video_id = obj.source.video_id if isinstance(obj, FetchedVideo) else obj.status.video_id
    return {"video_id": video_id, "payload": pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)}


def from_row(row: dict[str, Any]) -> Any:
    return pickle.loads(row["payload"])  # noqa: S301  (rows are produced by this module, not by users)


def _failed(source: SourceRow, exc: BaseException) -> VideoStatus:
    """A failed status for a video whose stage call raised (a bug or an unusable row; a rerun retries it)."""
    status = VideoStatus(url=source.url, video_id=source.video_id, input_row=source.row)
    status.status, status.error_class, status.error_code = "failed", "transient", "internal_error"
    status.error = f"{type(exc).__name__}: {exc}"[:2000]
    return status


class _Stage:
    """What the curation stages share: the config and one private work root per actor."""

    def __init__(self, config: CurateConfig, work_root: str | None = None):
        self.config = config
        self.work_root = private_workdir(work_root)

    def __del__(self) -> None:
        remove_workdir(self.work_root)


class DownloadStage(_Stage):
    """Ray ``map`` callable: a source row -> a :class:`FetchedVideo` row (I/O bound; many actors at a fraction of a CPU)."""

    def __init__(self, config: CurateConfig, work_root: str | None = None):
        super().__init__(config, work_root)
        warm_start()  # the fork server warms up while Ray starts the other actors

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        source = SourceRow(**row)
        try:
            status, got, workdir = fetch_video(source, self.config, self.work_root)
            files: dict[str, bytes] = {}
            if got is not None:
                paths = [got.video_path] + ([got.subtitle_path] if got.subtitle_path else [])
                files = {p.name: p.read_bytes() for p in paths}
                remove_workdir(workdir)
            return to_row(FetchedVideo(source, status, got, files))
        except Exception as exc:  # noqa: BLE001 (any failure costs this video only)
            return to_row(FetchedVideo(source, _failed(source, exc), None, {}))


class ClipStage(_Stage):
    """Ray ``map`` callable: a :class:`FetchedVideo` row -> a :class:`ClippedVideo` row (the one decode; CPU bound)."""

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        fetched: FetchedVideo = from_row(row)
        if fetched.downloaded is None:
            return to_row(ClippedVideo(fetched.status, []))
        workdir = self.work_root / fetched.source.video_id
        try:
            remove_workdir(workdir)
            workdir.mkdir(mode=0o700)
            for name, data in fetched.files.items():
                (workdir / Path(name).name).write_bytes(data)
            got = _relocated(fetched.downloaded, workdir)
            result = process_video(fetched.source, got, fetched.status, self.config, workdir)
            return to_row(ClippedVideo(result.status, [_in_memory(s) for s in result.samples]))
        except Exception as exc:  # noqa: BLE001 (any failure costs this video only)
            return to_row(ClippedVideo(_failed(fetched.source, exc), []))
        finally:
            remove_workdir(workdir)


def _relocated(got: Downloaded, workdir: Path) -> Downloaded:
    """The same download, with its paths pointing into this task's work directory."""
    sub = workdir / got.subtitle_path.name if got.subtitle_path else None
    return replace(got, video_path=workdir / got.video_path.name, subtitle_path=sub, info_path=workdir / got.info_path.name)


def _in_memory(sample: Sample) -> Sample:
    return replace(
        sample,
        mp4=data_of(sample.mp4),
        frames=[data_of(f) for f in sample.frames],
        caption_frames=[data_of(f) for f in sample.caption_frames],
    )


class TextStage:
    """Ray ``map_batches`` callable class: one :class:`TextEnricher` per actor, so a model loads once.

    ``stage`` is ``vlm`` (short-clip captions) or ``llm`` (summaries and parent captions); the
    two run as separate actor pools so neither starves the other. A batch holds whole videos,
    so parents are always summarised together with their children.
    """

    def __init__(self, config: CurateConfig, stage: str):
        from curate.caption import TextEnricher

        self.enricher = TextEnricher(config.text, stages=(stage,))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        videos: list[ClippedVideo] = [pickle.loads(p) for p in batch["payload"]]  # noqa: S301 (our own rows)
        samples = [s for v in videos for s in v.samples]
        if samples:
            started, cpu_started = time.monotonic(), time.process_time()
            self.enricher(samples)
            _charge(videos, time.monotonic() - started, time.process_time() - cpu_started)
        rows = [to_row(v) for v in videos]
        return {"video_id": [r["video_id"] for r in rows], "payload": [r["payload"] for r in rows]}


def _charge(videos: list[ClippedVideo], wall_s: float, cpu_s: float) -> None:
    """Give each video its share (by clip count) of a text batch's wall and CPU time (all the actor's threads)."""
    total = sum(len(v.samples) for v in videos)
    for video in videos:
        share = len(video.samples) / total
        video.status.text_s = round((video.status.text_s or 0.0) + wall_s * share, 3)
        video.status.text_cpu_s = round((video.status.text_cpu_s or 0.0) + cpu_s * share, 3)


class WriteStage:
    """Ray ``map_batches`` callable class: a batch of :class:`ClippedVideo` rows -> one row, the
    :class:`curate.shard_batch.WrittenBatch` (shard names and ledger rows, no clip bytes).

    The shards are written here, on the worker that holds the samples, straight to the output
    storage; the driver then commits each batch with one manifest. Credentials travel as
    constructor arguments (the driver's object-storage variables), not as a runtime env that
    the dashboard would display. A failed write costs its batch: its videos come back as
    transient failures (a rerun retries them) and whatever it wrote is never committed.
    """

    def __init__(self, config: CurateConfig, output: str, run_id: str, env: dict[str, str] | None = None):
        import os

        import ray

        from curate.shard_batch import this_writer
        from vidla_format.storage import Storage

        os.environ.update(env or {})
        self.config, self.run_id = config, run_id
        self.storage = Storage(output)
        self.writer = this_writer(ray.get_runtime_context().get_node_id())

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from curate.shard_batch import WrittenBatch, write_videos

        videos: list[ClippedVideo] = [pickle.loads(p) for p in batch["payload"]]  # noqa: S301 (our own rows)
        try:
            written = write_videos(self.storage, self.config.shards, self.run_id,
                                   [(v.status, v.samples) for v in videos], self.writer)
        except Exception as exc:  # noqa: BLE001 (a storage error costs this batch only; nothing of it is committed)
            written = WrittenBatch(unwritten=[_write_failed(v.status, exc) for v in videos], writer=self.writer)
        return {"payload": [pickle.dumps(written, protocol=pickle.HIGHEST_PROTOCOL)]}


def _write_failed(status: VideoStatus, exc: BaseException) -> VideoStatus:
    """The video's row when its batch could not be written: a transient failure, retried by a rerun."""
    return replace(status, status="failed", error_class="transient", error_code="write_failed",
                   error=f"{type(exc).__name__}: {exc}"[:2000], clips_short=0, clips_medium=0, clips_long=0)
