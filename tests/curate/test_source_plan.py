"""Specification of planning a source list in batches: streaming reads, in-order de-duplication, the ledger's verdict.

The Ray pipeline runs these same functions on batches that arrive in any order; the plain loop runs
them on the whole list. Both must give every input row the same verdict as reading the list whole.
"""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.dedupe import Deduper, HashIndex, dedupe, sharded
from curate.ledger import Ledger, VideoStatus
from curate.source_lists import check_source_list, iter_batches, read_ranges
from curate.source_plan import LedgerFilter
from curate.sources import Rules, SourceRow, classify_batch, read_sources
from vidla_format.storage import Storage

RICK = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def planned_in_batches(path: Path, parallelism: int, shuffle: int | None, index=None, batch_rows: int = 3) -> list[SourceRow]:
    """Read and classify batch by batch (ranges of a parquet list in parallel), deliver the batches
    to the deduper in a shuffled order, as Ray's planners would."""
    batches = [classify_batch(b, Rules()) for share in read_ranges(path, parallelism) for b in iter_batches(share, batch_rows)]
    if shuffle is not None:
        random.Random(shuffle).shuffle(batches)
    deduper = Deduper(index)
    out = [row for batch in batches for row in deduper.push(batch)]
    assert deduper.held == 0
    return out


def a_list(tmp_path: Path, suffix: str) -> Path:
    urls = [f"https://example.com/v/{i % 7}.mp4" for i in range(20)] + [RICK, "https://youtu.be/dQw4w9WgXcQ", "ftp://x/y"]
    ids = [None] * len(urls)
    ids[2] = ids[4] = "same-id"  # row 4: another URL under an id given before
    path = tmp_path / f"urls{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.table({"url": urls, "id": ids}), path, row_group_size=4)
    else:
        path.write_text("url,id\n" + "".join(f"{u},{i or ''}\n" for u, i in zip(urls, ids, strict=True)))
    return path


@pytest.mark.parametrize(("suffix", "parallelism"), [(".csv", 1), (".parquet", 1), (".parquet", 3)])
@pytest.mark.parametrize("shuffle", [None, 1, 2])
def test_batches_in_any_order_give_the_verdicts_of_reading_the_list_whole(tmp_path, suffix, parallelism, shuffle):
    path = a_list(tmp_path, suffix)
    whole = read_sources(path)
    assert whole[4].error == "row 4: duplicate of row 2 (same video_id 'same-id')"
    assert whole[11].status == "pending"  # the first listing of row 4's URL that keeps a video
    assert whole[21].error == "row 21: duplicate of row 20 (same URL)"  # another spelling of a YouTube URL
    assert planned_in_batches(path, parallelism, shuffle) == whole


def test_a_sharded_index_decides_like_one_index(tmp_path):
    path = a_list(tmp_path, ".parquet")
    assert planned_in_batches(path, 3, 5, sharded([HashIndex() for _ in range(4)])) == read_sources(path)


def test_parquet_ranges_tile_the_list_by_row_group(tmp_path):
    path = a_list(tmp_path, ".parquet")
    ranges = read_ranges(path, 3)
    assert [(r.first_row, r.num_rows) for r in ranges] == [(0, 8), (8, 8), (16, 7)]
    assert [row for r in ranges for b in iter_batches(r, 100) for row in b.rows] == list(range(23))


def test_the_index_keeps_the_first_row_of_a_key_and_costs_16_bytes_a_key():
    index = HashIndex()
    keys = np.arange(100_000, dtype=np.int64) * 7919
    for start in range(0, len(keys), 1000):
        index.insert(keys[start : start + 1000], np.arange(start, start + 1000))
    assert index.lookup(np.array([0, 7919 * 99_999, 5], np.int64)).tolist() == [0, 99_999, -1]
    assert index.nbytes == 16 * len(keys) and len(index.levels) <= 17


def test_reading_a_long_list_holds_one_batch_not_the_list(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("".join(f"https://example.com/v/{i}.mp4\n" for i in range(200_000)))
    tracemalloc.start()
    rows = sum(len(b) for b in iter_batches(read_ranges(path)[0], 1000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rows == 200_000 and peak < 4_000_000  # the list is ~6 MB of text, ~50 MB as Python strings


def test_a_broken_jsonl_line_after_the_first_ones_is_a_failed_row_for_the_batch_reader(tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text('{"url": "https://example.com/a.mp4"}\n\n{"url": \n')
    with pytest.raises(ValueError, match=r"urls\.jsonl:3"):
        check_source_list(path)  # the usage check reads the first lines: this one is caught there...
    rows = [r for b in iter_batches(read_ranges(path)[0]) for r in classify_batch(b, Rules())]
    # ...and a reader that meets one later records it instead of ending the run.
    assert [(r.row, r.status, r.error_code) for r in rows] == [(0, "pending", None), (1, "failed", "invalid_row")]
    assert "urls.jsonl:3" in (rows[1].error or "")
    with pytest.raises(ValueError, match=r"urls\.jsonl:3"):
        read_sources(path)


def test_the_usage_check_reads_the_header_not_the_list(tmp_path):
    bad = tmp_path / "urls.csv"
    bad.write_text("link\n" + "https://example.com/a.mp4\n" * 10)
    with pytest.raises(ValueError, match="no 'url' column"):
        check_source_list(bad)
    with pytest.raises(ValueError, match="unknown source list format"):
        check_source_list(tmp_path / "urls.xlsx")
    check_source_list(a_list(tmp_path, ".parquet"))


def ledger_with(tmp_path: Path, *rows: VideoStatus) -> Ledger:
    ledger = Ledger(Storage(str(tmp_path / "out")))
    ledger.commit(list(rows))
    return ledger


def pending(url: str, video_id: str, row: int = 0) -> SourceRow:
    return SourceRow(url, video_id, "pending", None, None, row)


def test_the_ledger_verdict_drops_finished_videos_refuses_reused_ids_and_records_each_refusal_once(tmp_path):
    ledger = ledger_with(
        tmp_path,
        VideoStatus("http://x/a", "a"),
        VideoStatus("http://x/t", "t", "failed", "transient", "timeout"),
        VideoStatus("http://x/d", "d", "skipped", None, "duplicate", "dup", input_row=4),
    )
    rows = [pending("http://x/a", "a"), pending("http://x/t", "t", 1), pending("http://x/other", "a", 2),
            SourceRow("http://x/d", "d", "skipped", "duplicate", "dup", 4), SourceRow("ftp://y", "y", "failed", "invalid_url", "no", 5)]  # fmt: skip
    todo, record = LedgerFilter.of(ledger).todo(rows)
    assert [r.video_id for r in todo] == ["t"]
    assert [(r.video_id, r.error_code, r.error_class) for r in record] == [("a", "id_conflict", "permanent"), ("y", "invalid_url", None)]
    assert record[1].ledger_row().error_class == "permanent"
    assert [r.video_id for r in LedgerFilter.of(ledger, retry_failed=True).todo(rows)[0]] == ["t"]


def test_an_expanded_row_is_recorded_on_every_run_and_is_never_done(tmp_path):
    expanded = SourceRow("http://x/feed", "feed", "expanded", None, "expanded into 2 entries", 0, entries=2)
    ledger = ledger_with(tmp_path, expanded.ledger_row())
    assert not ledger.done("feed")
    verdict = LedgerFilter.of(ledger)
    assert not verdict.is_done("feed") and verdict.todo([expanded]) == ([], [expanded])


def test_entries_of_a_playlist_listed_twice_come_from_its_first_listing():
    def listing(row: int) -> list[SourceRow]:
        feed = SourceRow("http://x/feed", "feed", "expanded", None, None, row, entries=1)
        return [feed, SourceRow("http://x/v1", "v1", "pending", None, None, row, expanded_from="feed")]

    rows = dedupe([*listing(0), pending("http://x/v1", "other-id", 1), *listing(2)])
    assert [(r.row, r.video_id, r.status) for r in rows] == [
        (0, "feed", "expanded"), (0, "v1", "pending"), (1, "other-id", "skipped"), (2, "feed", "skipped")]  # fmt: skip
    assert rows[2].error == "row 1: duplicate of row 0 (same URL)"
