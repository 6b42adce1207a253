"""The ledger: every input gets a row, rows survive a crash, a rerun knows what to skip."""

from __future__ import annotations

import pyarrow.parquet as pq

from curate.ledger import Ledger, VideoStatus
from vidla_format.storage import Storage


def test_committed_rows_are_read_back_by_a_new_run(tmp_path):
    Ledger(Storage(tmp_path)).commit([VideoStatus("http://a/1", "one"), VideoStatus("http://a/2", "two", "failed", "transient", "timeout")])
    again = Ledger(Storage(tmp_path))  # no consolidate: as after a crash
    assert again.done("one")
    assert not again.done("two"), "transient failures are retried"
    assert not again.done("three")


def test_permanent_failures_are_skipped_unless_retry_is_forced(tmp_path):
    Ledger(Storage(tmp_path)).commit([VideoStatus("http://a/1", "one", "failed", "permanent", "http_404")])
    ledger = Ledger(Storage(tmp_path))
    assert ledger.done("one")
    assert not ledger.done("one", retry_failed=True)


def test_consolidate_writes_one_videos_parquet_with_the_latest_row_per_video(tmp_path):
    ledger = Ledger(Storage(tmp_path))
    ledger.commit([VideoStatus("http://a/1", "one", "failed", "transient", "timeout")])
    ledger.commit([VideoStatus("http://a/1", "one", clips_short=3)])
    ledger.consolidate()
    rows = pq.read_table(tmp_path / "videos.parquet").to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["clips_short"] == 3
    assert not list((tmp_path / ".ledger").glob("part-*"))
    assert Ledger(Storage(tmp_path)).done("one")


def test_identity_is_the_video_id_and_an_unreadable_part_is_uncommitted(tmp_path):
    Ledger(Storage(tmp_path)).commit([VideoStatus("http://a/1", "one", "failed", "permanent", "http_404")])
    (tmp_path / ".ledger" / "part-000001-9.parquet").write_bytes(b"")  # emptied by a power loss
    ledger = Ledger(Storage(tmp_path), committed=[{"url": "http://b/1", "video_id": "two", "status": "ok"}])
    assert ledger.done("one") and ledger.done("two") and not ledger.done("http://a/1")
    assert ledger.conflict("two", "http://c/9").url == "http://b/1"
    assert ledger.conflict("two", "http://b/1") is None
