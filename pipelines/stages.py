"""Ray-facing callables around the plain stages, and the rows that travel between them.

A video's bytes cross stage (and node) boundaries inside rows: stage tasks may run on
different nodes, so nothing may rely on another task's local disk. Each task keeps
its files in a node-local work directory that it removes before returning.

Rows carry the curation objects pickled in one binary column (``payload``): they are
produced by this code, never by users, and one opaque column keeps every block's Arrow
schema identical whatever a video's fate (no clips, failed, many clips).
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curate.config import CurateConfig
from curate.download import Downloaded
from curate.ledger import VideoStatus
from curate.records import Sample
from curate.shards import data_of
from curate.sources import SourceRow
from curate.video import fetch_video, process_video


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


def _work_root(work_root: str | None) -> Path:
    root = Path(work_root or tempfile.gettempdir()) / "vidla-work"
    root.mkdir(parents=True, exist_ok=True)
    return root


def download_row(row: dict[str, Any], config: CurateConfig, work_root: str | None = None) -> dict[str, Any]:
    """Ray ``map``: a source row -> a :class:`FetchedVideo` row (I/O bound; runs many at once)."""
    source = SourceRow(**row)
    status, got, workdir = fetch_video(source, config, _work_root(work_root))
    files: dict[str, bytes] = {}
    if got is not None:
        paths = [got.video_path] + ([got.subtitle_path] if got.subtitle_path else [])
        files = {p.name: p.read_bytes() for p in paths}
        shutil.rmtree(workdir, ignore_errors=True)
    return to_row(FetchedVideo(source, status, got, files))


def clip_row(row: dict[str, Any], config: CurateConfig, work_root: str | None = None) -> dict[str, Any]:
    """Ray ``map``: a :class:`FetchedVideo` row -> a :class:`ClippedVideo` row (the decode; CPU bound)."""
    fetched: FetchedVideo = from_row(row)
    if fetched.downloaded is None:
        return to_row(ClippedVideo(fetched.status, []))
    workdir = _work_root(work_root) / fetched.source.video_id
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        for name, data in fetched.files.items():
            (workdir / name).write_bytes(data)
        got = _relocated(fetched.downloaded, workdir)
        result = process_video(fetched.source, got, fetched.status, config, workdir)
        return to_row(ClippedVideo(result.status, [_in_memory(s) for s in result.samples]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
        from curate.enrich import TextEnricher

        self.enricher = TextEnricher(config.text, stages=(stage,))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        videos: list[ClippedVideo] = [pickle.loads(p) for p in batch["payload"]]  # noqa: S301 (our own rows)
        samples = [s for v in videos for s in v.samples]
        if samples:
            self.enricher(samples)
        rows = [to_row(v) for v in videos]
        return {"video_id": [r["video_id"] for r in rows], "payload": [r["payload"] for r in rows]}
