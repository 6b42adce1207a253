"""De-duplicating source rows in list order, with 16 bytes of memory per distinct URL or id.

The rule (:mod:`curate.sources`): among pending rows, the first listing of a URL (as stored,
without secrets) or of a video id keeps the video; every later listing is a ``skipped`` row
``duplicate of row N``. "First" is by input row, so both drivers and every rerun pick the same
row, and the ledger's duplicate rows (keyed by ``input_row``) are the same on every run.

Two parts, both plain Python:

- :class:`HashIndex` maps 8-byte key hashes to the first row that had them, in sorted numpy
  arrays merged like a log-structured tree: 20 million URLs with ids cost ~640 MB, not the
  ~6 GB of a dict of strings. A 64-bit hash collision would make one video a false
  duplicate: for 40 million keys the chance is ~4e-5 per list.
- :class:`Deduper` takes rows in any order of arrival (parallel readers and planners finish
  out of order), holds them until every earlier input row has arrived whole, and decides each
  row in input order against an index. The index is anything with ``lookup``/``insert`` on numpy
  arrays: a local :class:`HashIndex`, or hash-sharded remote ones (``pipelines/sources.py``).

Exactly once under retries: Ray retries a planning task whose actor died, so rows of an input row
can arrive twice. A second copy of an input row (the same ``row`` again) is not a second listing
of its URL: the :class:`Deduper` drops it and counts it in ``replayed``, and only a URL or id on
two *different* input rows (or twice among a playlist's entries) is a ``duplicate``. The rows of
one input row are its source row and, for an ``expanded`` one, the ``entries`` rows that follow
it (same ``row``, told apart by their place after it). Ray may cut one planner's output into
several blocks, so an input row is decided only once all its entries are in; the blocks of one
planning task arrive in the order it made them, so a copy always starts with its source row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from curate.redact import redact_url
from curate.sources import SourceRow

NOT_FOUND = -1


def key_hash(text: str) -> int:
    """A signed 64-bit hash of ``text`` (stable across processes and runs, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def url_key(url: str) -> int:
    """Key of a URL as the ledger stores it (without secrets): one row per stored URL."""
    return key_hash("u\x00" + redact_url(url))


def id_key(video_id: str) -> int:
    return key_hash("i\x00" + video_id)


class Index(Protocol):
    def lookup(self, keys: np.ndarray) -> np.ndarray: ...
    def insert(self, keys: np.ndarray, rows: np.ndarray) -> None: ...


class HashIndex:
    """key -> first row, for int64 keys: sorted levels, each at most half the size of the one before."""

    def __init__(self) -> None:
        self.levels: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self.levels)

    @property
    def nbytes(self) -> int:
        return sum(keys.nbytes + rows.nbytes for keys, rows in self.levels)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The row stored for each key, or NOT_FOUND."""
        found = np.full(len(keys), NOT_FOUND, dtype=np.int64)
        for level_keys, level_rows in self.levels:
            at = np.minimum(np.searchsorted(level_keys, keys), len(level_keys) - 1)
            hit = (level_keys[at] == keys) & (found == NOT_FOUND)
            found[hit] = level_rows[at[hit]]
        return found

    def insert(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Add keys not yet present (the caller looked them up); merges keep lookups at O(log² n)."""
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        level = (np.asarray(keys, np.int64)[order], np.asarray(rows, np.int64)[order])
        while self.levels and len(self.levels[-1][0]) <= 2 * len(level[0]):
            last = self.levels.pop()
            keys_all = np.concatenate([last[0], level[0]])
            merged = np.argsort(keys_all, kind="stable")
            level = (keys_all[merged], np.concatenate([last[1], level[1]])[merged])
        self.levels.append(level)


@dataclass
class _Held:
    """The rows of one input row that have arrived: its source row (once seen) and its entries so far."""

    source: SourceRow | None = None
    entries: list[SourceRow] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether the source row and every entry it announces are in (later ones are replays)."""
        return self.source is not None and len(self.entries) >= _entry_count(self.source)

    def size(self) -> int:
        return (self.source is not None) + len(self.entries)

    def rows(self) -> list[SourceRow]:
        """The source row, then the entries it announces: the order ``decide`` needs (its entries
        come after it). Entries beyond those are another copy's that came before its source row."""
        assert self.source is not None
        return [self.source, *self.entries[: _entry_count(self.source)]]


def _entry_count(source: SourceRow) -> int:
    """How many entry rows follow a source row: its ``entries`` if it was expanded, else none."""
    return (source.entries or 0) if source.status == "expanded" else 0


class Deduper:
    """Decides rows in input-row order, whatever order they arrive in, each input row once.

    ``push(rows)`` takes the rows of some input rows (each input row's source row and, for a
    playlist, its entries, which carry the same ``row``) and returns the rows whose turn has
    come, decided; the rest wait for the input rows before them, or for the rest of their own
    entries. ``first_row`` is where the list (or this reader's share of it) starts.

    A copy of an input row already decided or held complete (a retried planning task's output)
    is dropped and counted in ``replayed``; a new copy of one held incomplete (its first attempt
    died between two blocks, so the rest may never come) replaces it.
    """

    def __init__(self, index: Index | None = None, first_row: int = 0) -> None:
        self.index = index if index is not None else HashIndex()
        self.next_row = first_row
        self.waiting: dict[int, _Held] = {}
        self.replayed = 0

    def push(self, rows: Iterable[SourceRow]) -> list[SourceRow]:
        """Take a block of rows (in the order a planner made them); return the rows now decided."""
        replaying: int | None = None  # the input row whose replayed copy the block is in
        for row in rows:
            replaying = self._take(row, replaying)
        return self._release()

    def _take(self, row: SourceRow, replaying: int | None) -> int | None:
        """Hold ``row`` unless it is a replay; returns the input row whose replayed copy goes on."""
        if row.row < self.next_row or (row.expanded_from is not None and row.row == replaying):
            self.replayed += 1  # a copy of a decided input row, or the entries of a replayed source row
            return replaying
        held = self.waiting.setdefault(row.row, _Held())
        if row.expanded_from is not None:
            self._take_entry(held, row)
            return replaying
        return self._take_source(held, row)

    def _take_entry(self, held: _Held, row: SourceRow) -> None:
        """An entry joins its input row's copy; once that has all it announced, more are a replay's."""
        if held.complete:
            self.replayed += 1  # the rest of a replayed copy, in a later block
        else:
            held.entries.append(row)

    def _take_source(self, held: _Held, row: SourceRow) -> int | None:
        """A source row starts its input row's copy; a second one starts a replay (see the class)."""
        if held.complete:
            self.replayed += 1
            return row.row
        if held.source is not None:  # an earlier attempt's copy, cut short: this copy replaces it
            self.replayed += held.size()
            held.entries = []
        held.source = row
        return None

    def _release(self) -> list[SourceRow]:
        """Decide every input row whose earlier input rows are decided and whose rows are all in."""
        ready: list[SourceRow] = []
        while (held := self.waiting.get(self.next_row)) is not None and held.complete:
            del self.waiting[self.next_row]
            rows = held.rows()
            self.replayed += held.size() - len(rows)
            ready.extend(rows)
            self.next_row += 1
        return self.decide(ready) if ready else []

    @property
    def held(self) -> int:
        """Input rows waiting for an earlier one or for their own entries (a finished list leaves none)."""
        return len(self.waiting)

    def decide(self, rows: Sequence[SourceRow]) -> list[SourceRow]:
        """Rows in input order, duplicates marked: one batched lookup, then a pass in order, then one insert."""
        keys = [(url_key(r.url), id_key(r.video_id)) if r.status in ("pending", "expanded") else None for r in rows]
        flat = np.array([k for pair in keys if pair for k in pair], dtype=np.int64)
        earlier = dict(zip(flat.tolist(), self.index.lookup(flat).tolist(), strict=True)) if len(flat) else {}
        new: dict[int, int] = {}
        out, dropped_from = [], set()
        for row, pair in zip(rows, keys, strict=True):
            if row.expanded_from is not None and row.expanded_from in dropped_from:
                continue  # the entries of a playlist listed twice: its first listing has them
            if pair is None:
                out.append(row)
                continue
            duplicate = _duplicate_of(row, pair, earlier, new)
            if duplicate is None:
                new.update({pair[0]: row.row, pair[1]: row.row})
                out.append(row)
                continue
            if row.status == "expanded":
                dropped_from.add(row.video_id)
            out.append(_as_duplicate(row, duplicate))
        if new:
            self.index.insert(np.fromiter(new, np.int64, len(new)), np.fromiter(new.values(), np.int64, len(new)))
        return out


def _duplicate_of(row: SourceRow, pair: tuple[int, int], earlier: dict[int, int], new: dict[int, int]) -> str | None:
    for key, what in zip(pair, ("same URL", f"same video_id {row.video_id!r}"), strict=True):
        first = new.get(key, earlier.get(key, NOT_FOUND))
        if first != NOT_FOUND:
            return f"duplicate of row {first} ({what})"
    return None


def _as_duplicate(row: SourceRow, reason: str) -> SourceRow:
    where = f"row {row.row}" if row.expanded_from is None else f"row {row.row}, entry of {row.expanded_from}"
    return replace(row, status="skipped", error_code="duplicate", error=f"{where}: {reason}", entries=None)


def dedupe(rows: Iterable[SourceRow], index: Index | None = None) -> list[SourceRow]:
    """All rows of a list (in any order), decided; for lists read in one process (the plain loop)."""
    deduper = Deduper(index)
    out = deduper.push(rows)
    if deduper.held:
        raise ValueError(f"input row {deduper.next_row} is missing or lacks entries: the list was not read whole")
    return out


def sharded(indexes: Sequence[Index], call: Callable[[list], list] = lambda calls: calls) -> Index:
    """One index over several, keys split by ``key % len(indexes)``; ``call`` gathers the per-shard
    results (``ray.get`` for remote shards, identity for local ones)."""
    return _Sharded(list(indexes), call)


class _Sharded:
    def __init__(self, indexes: list, call: Callable[[list], list]) -> None:
        self.indexes, self.call = indexes, call

    def _split(self, keys: np.ndarray) -> list[np.ndarray]:
        shard = np.mod(keys, len(self.indexes))
        return [np.flatnonzero(shard == i) for i in range(len(self.indexes))]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        parts = self._split(keys)
        results = self.call([ix.lookup(keys[p]) for ix, p in zip(self.indexes, parts, strict=True)])
        found = np.full(len(keys), NOT_FOUND, dtype=np.int64)
        for part, result in zip(parts, results, strict=True):
            found[part] = result
        return found

    def insert(self, keys: np.ndarray, rows: np.ndarray) -> None:
        parts = self._split(keys)
        self.call([ix.insert(keys[p], rows[p]) for ix, p in zip(self.indexes, parts, strict=True)])
