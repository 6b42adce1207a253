"""The ledger: one status row per video (``video_id``), committed atomically, read back on resume.

Rows are committed in small parquet parts under ``OUTPUT/.ledger/`` (each written to a
temporary name and renamed), so a crash loses at most the rows not yet committed, and
``videos.parquet`` is rebuilt from the parts (atomically) at the end of a run. The row of a
video with clips is committed by the commit manifest that publishes its shards
(:mod:`vidla_format.commits`), so an ``ok`` row and all of the video's clips appear together.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import pyarrow as pa

from vidla_format.layout import LEDGER_DIR, VIDEOS_FILE
from vidla_format.storage import Storage

ID_CONFLICT = "id_conflict"
"""error_code of a row whose video_id is already committed (``ok``) for another URL: a permanent failure."""
log = logging.getLogger(__name__)


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
    """0-based position in the source list of the run that recorded the row (an entry: its playlist's)."""
    entries: int | None = None
    """``expanded`` rows: how many videos the playlist, channel or page listed (each has a row of its own)."""
    expanded_from: str | None = None
    """Rows of a playlist's entries: the ``video_id`` of the source row that listed them."""
    finished_at: str = ""

    @property
    def key(self) -> str:
        """Ledger identity: the ``video_id``, except that each duplicate listing and each refused reuse
        of a committed id for another URL (``id_conflict``) has a row of its own."""
        if self.error_code == "duplicate":
            return f"{self.video_id}\x00duplicate@{self.input_row}"
        if self.error_code == ID_CONFLICT:
            return f"{self.video_id}\x00{ID_CONFLICT}@{self.url}"
        return self.video_id

    @property
    def done(self) -> bool:
        """Rows a rerun skips: ok, skipped, or failed for good. An ``expanded`` row is not done: a rerun
        lists the playlist again and picks up its new entries (the old ones are done by their own rows)."""
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
    """Reads the committed status of every video and commits new rows.

    ``committed`` are the rows of videos whose clips commit manifests published
    (:mod:`vidla_format.commits`); they win over any part, since an ``ok`` video is never redone.
    """

    def __init__(self, storage: Storage, committed: list[dict] | None = None):
        self.storage = storage
        storage.mkdir(LEDGER_DIR)
        storage.remove_temporaries(LEDGER_DIR)
        self.rows: dict[str, VideoStatus] = {}
        for table in self._tables():
            for row in table.to_pylist():
                self.put(VideoStatus(**{k: row.get(k) for k in SCHEMA.names}))
        for row in committed or []:
            self.put(VideoStatus(**{k: row.get(k) for k in SCHEMA.names}))
        self._next = max((_part_order(p) for p in self._parts()), default=-1) + 1

    def put(self, status: VideoStatus) -> None:
        """Hold ``status`` in memory (it is committed elsewhere, or by :meth:`commit`)."""
        self.rows[status.key] = status

    def _parts(self) -> list[str]:
        return [f"{LEDGER_DIR}/{name}" for name in self.storage.list(LEDGER_DIR) if name.startswith("part-")]

    def _tables(self) -> list[pa.Table]:
        """The readable ledger files, oldest first; an unreadable one (e.g. emptied by a power loss) is
        treated as uncommitted: its failures are retried, and ``ok`` rows come back from the manifests."""
        names = ([VIDEOS_FILE] if self.storage.exists(VIDEOS_FILE) else []) + sorted(self._parts(), key=_part_order)
        tables = []
        for name in names:
            try:
                tables.append(self.storage.read_parquet(name))
            except (pa.ArrowInvalid, OSError) as exc:
                log.warning("ledger file %s is unreadable (%s): treated as uncommitted", name, exc)
        return tables

    def has(self, key: str) -> bool:
        return key in self.rows

    def done(self, video_id: str, retry_failed: bool = False) -> bool:
        """Whether a rerun skips the video ``video_id``."""
        row = self.rows.get(video_id)
        if row is None:
            return False
        if retry_failed:
            return row.status in ("ok", "skipped")
        return row.done

    def conflict(self, video_id: str, url: str) -> VideoStatus | None:
        """The committed ``ok`` row of ``video_id`` when it was made from another URL than ``url``."""
        row = self.rows.get(video_id)
        return row if row is not None and row.status == "ok" and row.url != url else None

    def commit(self, rows: list[VideoStatus]) -> None:
        """Commit ``rows`` as one atomic part."""
        if not rows:
            return
        for row in rows:
            row.finished_at = row.finished_at or _now()
            self.put(row)
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
