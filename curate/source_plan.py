"""From classified source rows to what a run downloads: expansion, the ledger's verdict, ledger rows.

Both drivers plan the same way, in this order (:mod:`curate.run` on a list in memory,
``pipelines/sources.py`` batch by batch on Ray):

1. classify (:func:`curate.sources.classify_batch`): valid, normalised, opted out or not;
2. expand (:func:`expand_batch`): a pending row the ledger has not finished, whose URL may
   hold several videos, is listed (:func:`curate.expand.expand_source`) and becomes an
   ``expanded`` row plus one row per entry (``expanded_from``, the source's ``row``); a
   listing that fails makes the source row ``failed`` with the reason;
3. de-duplicate (:mod:`curate.dedupe`), sources and entries alike, in input order;
4. the ledger's verdict (:meth:`LedgerFilter.todo`): rows to download, and rows to record
   (refused, ``id_conflict``, ``expanded``); videos the ledger has finished are dropped.

:class:`LedgerFilter` holds what step 2 and 4 need from the ledger as sorted 64-bit hashes
(8–16 bytes per finished video), so a planner on any node gets it once and the driver never
holds the list.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from curate.config import CurateConfig
from curate.dedupe import key_hash
from curate.errors import CurateError
from curate.expand import expand_source, is_single_video_url
from curate.ledger import ID_CONFLICT, Ledger, VideoStatus
from curate.redact import redact_url
from curate.sources import SourceRow


def _member(table: np.ndarray, key: int) -> bool:
    at = int(np.searchsorted(table, key))
    return at < len(table) and int(table[at]) == key


class LedgerFilter:
    """The ledger's verdict on rows, from hashes: finished ids, the URL of each ``ok`` id, the keys recorded."""

    def __init__(self, done: np.ndarray, ok_ids: np.ndarray, ok_urls: np.ndarray, recorded: np.ndarray):
        self.done, self.ok_ids, self.ok_urls, self.recorded = done, ok_ids, ok_urls, recorded

    @classmethod
    def of(cls, ledger: Ledger, retry_failed: bool = False) -> LedgerFilter:
        """The filter of ``ledger``'s rows, hashed from its Arrow data (no row becomes a Python object)."""
        return cls(*ledger.verdict_hashes(retry_failed))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.done, self.ok_ids, self.ok_urls, self.recorded))

    def is_done(self, video_id: str) -> bool:
        """Whether a rerun skips ``video_id`` (ok, skipped, failed for good; retry_failed as built)."""
        return _member(self.done, key_hash(video_id))

    def conflict(self, row: SourceRow) -> bool:
        """Whether the row's id is committed ``ok`` for another URL."""
        at = int(np.searchsorted(self.ok_ids, key_hash(row.video_id)))
        if at == len(self.ok_ids) or int(self.ok_ids[at]) != key_hash(row.video_id):
            return False
        return int(self.ok_urls[at]) != key_hash(redact_url(row.url))

    def todo(self, rows: Iterable[SourceRow]) -> tuple[list[SourceRow], list[SourceRow]]:
        """(rows to download, rows to record in the ledger); rows of finished videos are in neither.

        A refused row already in the ledger is not recorded twice; an ``expanded`` row always is
        (its entry count is this run's listing).
        """
        pending, record = [], []
        for row in rows:
            if row.status == "pending" and self.conflict(row):
                row = _id_conflict(row)
            if row.status == "pending":
                if not self.is_done(row.video_id):
                    pending.append(row)
            elif row.status == "expanded" or not _member(self.recorded, key_hash(stored(row).key)):
                record.append(row)
        return pending, record


def stored(row: SourceRow) -> VideoStatus:
    """The row's ledger row as stored: its URL without secrets (the ledger's keys use that URL)."""
    status = row.ledger_row()
    status.url = redact_url(status.url)
    return status


def _id_conflict(row: SourceRow) -> SourceRow:
    message = (
        f"row {row.row}: video_id {row.video_id!r} is already committed with clips for another URL; "
        "give this video another id"
    )
    return replace(row, status="failed", error_code=ID_CONFLICT, error=message, error_class="permanent")


# --------------------------------------------------------------------------- expansion


def expandable(row: SourceRow, ledger: LedgerFilter | None) -> bool:
    """Rows worth a listing: pending, not finished by an earlier run, and not known to be one video."""
    if row.status != "pending" or is_single_video_url(row.url):
        return False
    return ledger is None or not ledger.is_done(row.video_id)


def expand_row(row: SourceRow, config: CurateConfig) -> list[SourceRow]:
    """``[row]`` for one video; ``[expanded row, *entries]`` for a list; ``[failed row]`` when listing fails."""
    try:
        expansion = expand_source(row, config)
    except CurateError as error:
        return [replace(row, status="failed", error_code=error.code, error=f"row {row.row}: listing failed: {error.message}",
                        error_class=error.error_class)]  # fmt: skip
    if not expansion.expanded:
        return [row]
    entries = [replace(e, expanded_from=row.video_id, row=row.row) for e in expansion.entries]
    source = replace(row, status="expanded", entries=len(entries), error=expansion.summary())
    return [source, *entries]


def expand_batch(rows: list[SourceRow], config: CurateConfig, ledger: LedgerFilter | None, threads: int = 4) -> list[SourceRow]:
    """Every row, with each expandable one replaced by its expansion; listings run on ``threads`` threads
    (each is a limited child process, so threads only wait), and the order of rows is kept."""
    chosen = [i for i, row in enumerate(rows) if expandable(row, ledger)]
    if not chosen:
        return list(rows)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(chosen)))) as pool:
        expanded = dict(zip(chosen, pool.map(lambda i: expand_row(rows[i], config), chosen), strict=True))
    return [r for i, row in enumerate(rows) for r in expanded.get(i, [row])]
