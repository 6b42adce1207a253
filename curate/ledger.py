"""The ledger: one status row per video (``video_id``), committed atomically, read back on resume.

Rows are committed in small parquet parts under ``OUTPUT/.ledger/`` (each written to a
temporary name and renamed), so a crash loses at most the rows not yet committed, and
``videos.parquet`` is rebuilt from the parts (atomically) at the end of a run. The row of a
video with clips is committed by the commit manifest that publishes its shards
(:mod:`vidla_format.commits`), so an ``ok`` row and all of the video's clips appear together.

The driver holds the ledger of the whole dataset (20M videos in the paper), so it holds it as
Arrow data (:class:`Ledger`): about 250 bytes a row, where a ``VideoStatus`` object costs ~2 KB.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.dedupe import key_hash
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
        return row_key(self.video_id, self.error_code, self.input_row, self.url)

    @property
    def done(self) -> bool:
        """Rows a rerun skips: ok, skipped, or failed for good. An ``expanded`` row is not done: a rerun
        lists the playlist again and picks up its new entries (the old ones are done by their own rows)."""
        return self.status in ("ok", "skipped") or self.error_class == "permanent"


def row_key(video_id: str, error_code: str | None, input_row: int | None, url: str) -> str:
    """:attr:`VideoStatus.key` from the columns it depends on (the ledger computes it from Arrow rows)."""
    if error_code == "duplicate":
        return f"{video_id}\x00duplicate@{input_row}"
    if error_code == ID_CONFLICT:
        return f"{video_id}\x00{ID_CONFLICT}@{url}"
    return video_id


SCHEMA = pa.schema(
    [
        (f.name, {"int": pa.int32(), "float": pa.float64(), "bool": pa.bool_()}.get(str(f.type).split(" ")[0], pa.string()))
        for f in fields(VideoStatus)
    ]
)


DICTIONARY_COLUMNS = ("status", "error_class", "error_code", "subtitle_language", "subtitle_kind", "cut_mode", "finished_at")
"""Columns of few distinct values, held dictionary-encoded in memory (4 bytes a row instead of the text)."""
MEMORY_SCHEMA = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in DICTIONARY_COLUMNS else f for f in SCHEMA])
FOLD_ROWS = 8192
"""Rows :meth:`Ledger.put` holds as objects before folding them into the Arrow data."""
KEY_COLUMNS = ("video_id", "error_code", "input_row", "url")
"""The columns :func:`row_key` reads."""
BATCH_ROWS = 65536
"""Rows per step when the ledger walks its Arrow data (hashing, writing): bounds the transient Python objects."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Ledger:
    """Reads the committed status of every video and commits new rows.

    ``committed`` are the rows of videos whose clips commit manifests published
    (:mod:`vidla_format.commits`); they win over any part, since an ``ok`` video is never redone.

    A row is looked up by its :attr:`VideoStatus.key`, and a later row wins over an earlier one of the
    same key, in this order: ``videos.parquet``, the parts (oldest first), ``committed``, then the rows
    given to :meth:`put` and :meth:`commit`. Rows are held as Arrow tables (only each key's winning row
    is kept at load) plus a sorted index of 64-bit key hashes (:func:`curate.dedupe.key_hash`), so
    memory is ~250 bytes a row; a :class:`VideoStatus` is built only for a row looked up. Two keys
    with one hash (odds ~N²/2⁶⁵, 1e-5 at 20M rows) keep only the later row.
    """

    def __init__(self, storage: Storage, committed: Iterable[dict] | None = None):
        self.storage = storage
        storage.mkdir(LEDGER_DIR)
        storage.remove_temporaries(LEDGER_DIR)
        self._pending: dict[str, VideoStatus] = {}
        self._load(self._readable(), list(committed or []))
        self._next = max((_part_order(p) for p in self._parts()), default=-1) + 1

    def _load(self, files: list[tuple[str, np.ndarray]], committed: list[dict]) -> None:
        """Index the rows of ``files`` (name, key hashes; oldest first) and then of ``committed``, and hold
        each key's winning row: the sources are read again batch by batch, so a superseded row (e.g. an
        ``ok`` row of ``videos.parquet``, which its manifest repeats) is never held whole."""
        committed_hashes = _hash_strings(row_key(*(r.get(c) for c in KEY_COLUMNS)) for r in committed)
        hashes = np.concatenate([h for _, h in files] + [committed_hashes])
        order = np.argsort(hashes, kind="stable")
        self._hashes, first, last = _runs(hashes[order], order)
        live, chunks, start = np.sort(last), [], 0
        for batch in itertools.chain(*(self._batches_of(name) for name, _ in files), _dict_batches(committed)):
            keep = live[np.searchsorted(live, start) : np.searchsorted(live, start + batch.num_rows)] - start
            chunks += [_to_memory(batch.take(keep))] if len(keep) else []
            start += batch.num_rows
        self._table = pa.concat_tables(chunks) if chunks else MEMORY_SCHEMA.empty_table()
        self._pos = np.searchsorted(live, last).astype(np.uint32)
        self._first = first.astype(np.uint32)
        self._seq = len(hashes)

    def put(self, status: VideoStatus) -> None:
        """Hold ``status`` (it is committed elsewhere, or by :meth:`commit`); folded into the Arrow data in batches."""
        self._pending[status.key] = status
        if len(self._pending) >= FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        """Move the rows held by :meth:`put` into the Arrow data and the index."""
        if not self._pending:
            return
        rows, self._pending = list(self._pending.values()), {}
        start = self._table.num_rows
        self._table = pa.concat_tables([self._table, _to_memory(pa.Table.from_pylist([asdict(r) for r in rows], schema=SCHEMA))])
        hashes = np.fromiter((key_hash(r.key) for r in rows), np.int64, len(rows))
        order = np.argsort(hashes, kind="stable")
        hashes, first, last = _runs(hashes[order], order)
        at = np.searchsorted(self._hashes, hashes)
        found = np.zeros(len(hashes), bool)
        inside = at < len(self._hashes)
        found[inside] = self._hashes[at[inside]] == hashes[inside]
        self._pos[at[found]] = start + last[found]  # a known key keeps its place in videos.parquet
        new = ~found
        self._hashes = np.insert(self._hashes, at[new], hashes[new])
        self._pos = np.insert(self._pos, at[new], start + last[new])
        self._first = np.insert(self._first, at[new], self._seq + first[new])
        self._seq += len(rows)

    def _parts(self) -> list[str]:
        return [f"{LEDGER_DIR}/{name}" for name in self.storage.list(LEDGER_DIR) if name.startswith("part-")]

    def _readable(self) -> list[tuple[str, np.ndarray]]:
        """The readable ledger files, oldest first, with their rows' key hashes; an unreadable one (e.g.
        emptied by a power loss) is treated as uncommitted: its failures are retried, and ``ok`` rows come
        back from the manifests."""
        names = ([VIDEOS_FILE] if self.storage.exists(VIDEOS_FILE) else []) + sorted(self._parts(), key=_part_order)
        files = []
        for name in names:
            try:
                files.append((name, np.concatenate([_hashes(b) for b in self._batches_of(name, KEY_COLUMNS)] or [_NONE])))
            except (pa.ArrowInvalid, OSError) as exc:
                log.warning("ledger file %s is unreadable (%s): treated as uncommitted", name, exc)
        return files

    def _batches_of(self, name: str, columns: tuple[str, ...] | None = None) -> Iterator[pa.Table]:
        """The ledger file ``name`` in tables of :data:`BATCH_ROWS` rows (``columns``: those of them it has)."""
        with self.storage.fs.open_input_file(self.storage.path(name)) as f:
            parquet = pq.ParquetFile(f)
            present = [c for c in columns if c in parquet.schema_arrow.names] if columns else None
            for batch in parquet.iter_batches(BATCH_ROWS, columns=present, use_threads=False):
                yield pa.Table.from_batches([batch])

    def get(self, key: str) -> VideoStatus | None:
        """The row of ``key`` (a :attr:`VideoStatus.key`; a video's is its ``video_id``), or None."""
        if key in self._pending:
            return self._pending[key]
        digest = key_hash(key)
        at = int(np.searchsorted(self._hashes, digest))
        if at == len(self._hashes) or int(self._hashes[at]) != digest:
            return None
        row = _status(self._table.slice(int(self._pos[at]), 1).to_pylist()[0])
        return row if row.key == key else None  # another key with the same hash

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def done(self, video_id: str, retry_failed: bool = False) -> bool:
        """Whether a rerun skips the video ``video_id``."""
        row = self.get(video_id)
        if row is None:
            return False
        if retry_failed:
            return row.status in ("ok", "skipped")
        return row.done

    def conflict(self, video_id: str, url: str) -> VideoStatus | None:
        """The committed ``ok`` row of ``video_id`` when it was made from another URL than ``url``."""
        row = self.get(video_id)
        return row if row is not None and row.status == "ok" and row.url != url else None

    def __len__(self) -> int:
        self._fold()
        return len(self._hashes)

    @property
    def nbytes(self) -> int:
        """Bytes of the Arrow data and the index (the at most :data:`FOLD_ROWS` rows held by :meth:`put` aside)."""
        return self._table.nbytes + self._hashes.nbytes + self._pos.nbytes + self._first.nbytes

    def table(self, columns: list[str] | None = None) -> pa.Table:
        """Every key's row (``columns`` of :data:`SCHEMA`, default all), in the order keys were first seen."""
        return pa.concat_tables(self.batches(columns), promote_options="none") if len(self) else _schema(columns).empty_table()

    def batches(self, columns: list[str] | None = None, rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
        """:meth:`table` in slices of ``rows`` rows, so a caller that streams them holds one slice at a time."""
        self._fold()
        order = self._pos[np.argsort(self._first, kind="stable")]
        data = self._table.select(columns) if columns else self._table
        for start in range(0, len(order), rows):
            yield data.take(order[start : start + rows]).cast(_schema(columns))

    def statuses(self) -> list[VideoStatus]:
        """Every key's row as an object: for small ledgers (tests, tools), not for a dataset's."""
        return [_status(row) for row in self.table().to_pylist()]

    def verdict_hashes(self, retry_failed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What :class:`~curate.source_plan.LedgerFilter` needs, as sorted ``key_hash`` arrays: the ids a rerun
        skips, the ids committed ``ok`` with (aligned) the hash of their URL, and every key recorded."""
        self._fold()
        table = self._table
        plain = ~_is_in(table["error_code"], ["duplicate", ID_CONFLICT])  # rows whose key is the video_id
        done = _is_in(table["status"], ["ok", "skipped"])
        if not retry_failed:
            done |= _is_in(table["error_class"], ["permanent"])
        ok = (_is_in(table["status"], ["ok"]) & plain)[self._pos]
        ok_rows = self._pos[ok]
        url_hashes = [_hash_strings(table["url"].take(ok_rows[i : i + BATCH_ROWS]).to_pylist()) for i in range(0, len(ok_rows), BATCH_ROWS)]
        url_hashes = np.concatenate(url_hashes or [np.empty(0, np.int64)])
        return self._hashes[(done & plain)[self._pos]], self._hashes[ok], url_hashes, self._hashes.copy()

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
        """Rewrite ``videos.parquet`` from all committed rows (one per key, streamed from the Arrow data),
        then drop the parts it now holds."""
        with self.storage.open_write(VIDEOS_FILE) as f, pq.ParquetWriter(f, SCHEMA) as writer:
            for batch in self.batches():
                writer.write_table(batch)
        for part in self._parts():
            self.storage.delete(part)
        self._next = 0


def _schema(columns: list[str] | None) -> pa.Schema:
    return pa.schema([SCHEMA.field(c) for c in columns]) if columns else SCHEMA


def _to_memory(table: pa.Table) -> pa.Table:
    """A ledger file's rows in :data:`MEMORY_SCHEMA` (a column the file lacks, e.g. an older format's, is null)."""
    columns = []
    for field in SCHEMA:
        if field.name in table.column_names:
            column = table[field.name].cast(field.type)
        else:
            column = pa.chunked_array([pa.nulls(table.num_rows, field.type)])
        columns.append(column.dictionary_encode() if field.name in DICTIONARY_COLUMNS else column)
    return pa.table(columns, schema=MEMORY_SCHEMA)


def _dict_batches(rows: list[dict]) -> Iterator[pa.Table]:
    """The manifests' rows in tables of :data:`BATCH_ROWS` rows (keys outside :data:`SCHEMA` dropped)."""
    for start in range(0, len(rows), BATCH_ROWS):
        yield pa.Table.from_pylist(rows[start : start + BATCH_ROWS], schema=SCHEMA)


def _hashes(batch: pa.Table) -> np.ndarray:
    """``key_hash`` of each row's :attr:`VideoStatus.key` (a column the file lacks is null)."""
    columns = [batch[c].to_pylist() if c in batch.column_names else [None] * batch.num_rows for c in KEY_COLUMNS]
    return _hash_strings(row_key(*values) for values in zip(*columns, strict=True))


def _hash_strings(texts: Iterable[str]) -> np.ndarray:
    return np.fromiter((key_hash(t) for t in texts), np.int64)


_NONE = np.empty(0, np.int64)


def _runs(hashes: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of sorted ``hashes`` (``order``: their positions, stable): each distinct hash, its first and last position."""
    if not len(hashes):
        return hashes, order, order
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    ends = np.r_[starts[1:], len(hashes)] - 1
    return hashes[starts], order[starts], order[ends]


def _is_in(column: pa.ChunkedArray, values: list[str]) -> np.ndarray:
    """Per row, whether a (dictionary-encoded) string column holds one of ``values`` (null: no)."""
    found = pc.is_in(column.cast(pa.string()), value_set=pa.array(values, pa.string()))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _status(row: dict) -> VideoStatus:
    return VideoStatus(**{k: row.get(k) for k in SCHEMA.names})


def _part_order(name: str) -> int:
    return int(name.rsplit("/", 1)[-1].split("-")[1])
