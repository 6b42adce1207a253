"""The ledger: one status row per input URL, committed atomically, read back on resume.

Rows are committed in small parquet parts under ``OUTPUT/.ledger/`` (each written to a
temporary name and renamed), so a crash loses at most the rows not yet committed, and
``videos.parquet`` is rebuilt from the parts (atomically) at the end of a run. A row is
committed only once every shard holding the video's samples is committed, so an ``ok``
row always means all of the video's clips are on disk.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import pyarrow as pa

from curate.storage import Storage

LEDGER_DIR = ".ledger"
VIDEOS_FILE = "videos.parquet"


@dataclass
class VideoStatus:
    url: str
    video_id: str
    status: str = "ok"
    error_class: str | None = None
    error_code: str | None = None
    error: str | None = None
    attempts: int = 0
    clips_short: int = 0
    clips_medium: int = 0
    clips_long: int = 0
    duration: float | None = None
    has_subtitles: bool = False
    subtitle_language: str | None = None
    subtitle_kind: str | None = None
    subtitle_warning: str | None = None
    cut_mode: str | None = None
    download_s: float = 0.0
    analyze_s: float = 0.0
    cut_s: float = 0.0
    total_s: float = 0.0
    cpu_s: float = 0.0
    """CPU seconds of this video's curation (download to cut), its ffmpeg children included."""
    download_cpu_s: float = 0.0
    analyze_cpu_s: float = 0.0
    cut_cpu_s: float = 0.0
    text_s: float = 0.0
    """Seconds the text stages (captions, summaries) spent on this video's clips: its share of each batch."""
    text_cpu_s: float = 0.0
    """CPU seconds of the text stages' processes for this video's clips: its share of each batch."""
    preroll_s: float = 0.0
    """Seconds stored before clip starts (from the previous keyframe) and hidden by edit lists, over all clips."""
    input_row: int | None = None
    """0-based position in the source list of the run that recorded the row."""
    finished_at: str = ""

    @property
    def key(self) -> str:
        """Ledger identity: the URL, except that each duplicate listing has a row of its own."""
        return f"{self.url}\x00duplicate@{self.input_row}" if self.error_code == "duplicate" else self.url

    @property
    def done(self) -> bool:
        """Rows a rerun skips: ok, skipped, or failed for good."""
        return self.status in ("ok", "skipped") or self.error_class == "permanent"


SCHEMA = pa.schema(
    [
        (f.name, {"int": pa.int32(), "float": pa.float64(), "bool": pa.bool_()}.get(str(f.type).split(" ")[0], pa.string()))
        for f in fields(VideoStatus)
    ]
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Ledger:
    """Reads the committed status of every video and commits new rows."""

    def __init__(self, storage: Storage):
        self.storage = storage
        storage.mkdir(LEDGER_DIR)
        storage.remove_temporaries(LEDGER_DIR)
        self.rows: dict[str, VideoStatus] = {}
        for table in self._tables():
            for row in table.to_pylist():
                status = VideoStatus(**{k: row.get(k) for k in SCHEMA.names})
                self.rows[status.key] = status
        self._next = len(self._parts())

    def _parts(self) -> list[str]:
        return [f"{LEDGER_DIR}/{name}" for name in self.storage.list(LEDGER_DIR) if name.startswith("part-")]

    def _tables(self) -> list[pa.Table]:
        names = ([VIDEOS_FILE] if self.storage.exists(VIDEOS_FILE) else []) + sorted(self._parts(), key=_part_order)
        return [self.storage.read_parquet(name) for name in names]

    def has(self, key: str) -> bool:
        return key in self.rows

    def done(self, url: str, retry_failed: bool = False) -> bool:
        """Whether a rerun skips the video at ``url``."""
        row = self.rows.get(url)
        if row is None:
            return False
        if retry_failed:
            return row.status in ("ok", "skipped")
        return row.done

    def commit(self, rows: list[VideoStatus]) -> None:
        """Commit ``rows`` as one atomic part."""
        if not rows:
            return
        for row in rows:
            row.finished_at = row.finished_at or _now()
            self.rows[row.key] = row
        table = pa.Table.from_pylist([asdict(r) for r in rows], schema=SCHEMA)
        self.storage.write_parquet(f"{LEDGER_DIR}/part-{self._next:06d}-{os.getpid()}.parquet", table)
        self._next += 1

    def consolidate(self) -> None:
        """Rewrite ``videos.parquet`` from all committed rows, then drop the parts it now holds."""
        table = pa.Table.from_pylist([asdict(r) for r in self.rows.values()], schema=SCHEMA)
        self.storage.write_parquet(VIDEOS_FILE, table)
        for part in self._parts():
            self.storage.delete(part)
        self._next = 0


def _part_order(name: str) -> int:
    return int(name.rsplit("/", 1)[-1].split("-")[1])
