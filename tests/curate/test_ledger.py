"""The ledger: every input gets a row, rows survive a crash, a rerun knows what to skip."""

from __future__ import annotations

import gc
from dataclasses import asdict

import pyarrow as pa
import pyarrow.parquet as pq

import curate.ledger as ledger_module
from curate.dedupe import key_hash
from curate.ledger import ID_CONFLICT, SCHEMA, Ledger, VideoStatus
from curate.sink import funnel
from curate.source_plan import LedgerFilter
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


# --------------------------------------------------------------------------- the columnar ledger


def _row(video_id: str, **fields) -> dict:
    return asdict(VideoStatus(f"https://www.youtube.com/watch?v={video_id}", video_id, **fields))


def _write_videos(tmp_path, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp_path / "videos.parquet")


def test_a_later_row_wins_videos_then_parts_then_manifests_then_this_run(tmp_path):
    _write_videos(tmp_path, [_row("a", status="failed", error_code="timeout"), _row("b"), _row("c", status="failed"), _row("d")])
    Ledger(Storage(tmp_path)).commit([VideoStatus("u", "b", "failed", "transient", "http_429"), VideoStatus("u", "c", clips_short=1)])
    Ledger(Storage(tmp_path)).commit([VideoStatus("u", "c", clips_short=2)])  # a newer part
    ledger = Ledger(Storage(tmp_path), committed=[_row("d", clips_long=7), _row("e", clips_medium=1)])
    assert ledger.get("a").error_code == "timeout", "a row only videos.parquet holds"
    assert ledger.get("b").error_code == "http_429", "a part wins over videos.parquet"
    assert ledger.get("c").clips_short == 2, "a newer part wins over an older one"
    assert ledger.get("d").clips_long == 7, "a manifest's row wins over the parts and videos.parquet"
    ledger.put(VideoStatus("u", "d", clips_long=8))
    ledger.commit([VideoStatus("u", "e", "failed", "permanent", "http_404")])
    assert ledger.get("d").clips_long == 8 and ledger.get("e").error_code == "http_404", "this run's rows win"
    ledger.consolidate()
    rows = pq.read_table(tmp_path / "videos.parquet").to_pylist()
    assert [r["video_id"] for r in rows] == ["a", "b", "c", "d", "e"], "each key keeps the place it was first seen"
    assert [r["clips_long"] for r in rows][3] == 8 and rows[4]["error_code"] == "http_404"


def test_rows_put_after_a_fold_win_and_keep_their_first_place(tmp_path):
    ledger = Ledger(Storage(tmp_path))
    n = ledger_module.FOLD_ROWS + 2  # the first FOLD_ROWS rows are folded into Arrow data, two stay pending
    for i in range(n):
        ledger.put(VideoStatus("u", f"v{i}", clips_short=0))
    for i in (1, n - 1):
        ledger.put(VideoStatus("u", f"v{i}", clips_short=5))  # one folded row, one pending row, updated
    statuses = ledger.statuses()
    assert [s.video_id for s in statuses] == [f"v{i}" for i in range(n)], "each key keeps its first place"
    assert [s.clips_short for s in statuses[:3]] == [0, 5, 0] and statuses[-1].clips_short == 5
    assert len(ledger) == n and ledger.get("v1").clips_short == 5


def test_absent_keys_and_keys_sharing_a_hash_are_not_found(tmp_path, monkeypatch):
    ledger = Ledger(Storage(tmp_path), committed=[_row("one")])
    assert ledger.get("two") is None and not ledger.has("two") and not ledger.done("two")
    assert ledger.conflict("two", "http://x") is None and ledger.has("one")
    monkeypatch.setattr(ledger_module, "key_hash", len)  # every 3-letter key shares a hash
    ledger = Ledger(Storage(tmp_path), committed=[_row("one")])
    assert ledger.get("six") is None, "a lookup checks the key of the row its hash found"
    assert ledger.get("one").video_id == "one"


def test_duplicate_and_id_conflict_rows_are_rows_of_their_own(tmp_path):
    ledger = Ledger(Storage(tmp_path))
    ledger.commit([VideoStatus("http://a/1", "one"), VideoStatus("http://a/1", "one", "skipped", error_code="duplicate", input_row=4),
                   VideoStatus("http://b/1", "one", "failed", "permanent", ID_CONFLICT)])  # fmt: skip
    again = Ledger(Storage(tmp_path))
    assert len(again) == 3 and again.get("one").status == "ok"
    assert again.get("one\x00duplicate@4").status == "skipped"
    assert again.has(f"one\x00{ID_CONFLICT}@http://b/1")


def test_consolidate_round_trips_every_column_with_the_file_schema(tmp_path):
    full = VideoStatus("http://a/1", "one", "ok", None, None, None, 2, 3, 1, 0, 12.5, True, "en", "manual", "late cue",
                       "copy", 1.0, 2.0, 3.0, 6.0, 5.0, 1.5, 2.5, 1.0, 0.5, 0.25, 0.1, 7, None, None, "2026-11-30T00:00:00+00:00")  # fmt: skip
    failed = VideoStatus("http://a/2", "two", "failed", "transient", "timeout", "read timed out", input_row=8, finished_at="x")
    ledger = Ledger(Storage(tmp_path), committed=[asdict(full)])
    ledger.commit([failed])
    ledger.consolidate()
    table = pq.read_table(tmp_path / "videos.parquet")
    assert table.schema.remove_metadata() == SCHEMA, "no dictionary type of the in-memory data leaks into the file"
    assert table.to_pylist() == [asdict(full), asdict(failed)]
    assert Ledger(Storage(tmp_path)).statuses() == [full, failed]


def test_an_older_videos_parquet_without_some_columns_reads_as_nulls(tmp_path):
    pq.write_table(pa.table({"url": ["http://a/1"], "video_id": ["one"], "status": ["ok"]}), tmp_path / "videos.parquet")
    row = Ledger(Storage(tmp_path)).get("one")
    assert row.status == "ok" and row.error_code is None and row.attempts is None


def test_the_ledger_holds_arrow_data_not_row_objects(tmp_path):
    rows = [_row(f"v{i:010d}", status="failed" if i % 7 == 0 else "ok", error_class="transient" if i % 7 == 0 else None,
                 error="download failed: read timed out after 60 s while fetching the media segment list" if i % 7 == 0 else None,
                 clips_short=i % 20, duration=12.5, total_s=3.0, cpu_s=2.0, finished_at="2026-11-30T12:00:00+00:00")
            for i in range(50_000)]  # fmt: skip
    _write_videos(tmp_path, rows[:40_000])
    gc.collect()
    ledger = Ledger(Storage(tmp_path), committed=rows[30_000:])
    del rows
    gc.collect()
    assert sum(type(o) is VideoStatus for o in gc.get_objects()) == 0, "no row became an object"
    assert len(ledger) == 50_000 and ledger.nbytes / len(ledger) < 300
    assert ledger.get("v0000049999").clips_short == 49_999 % 20


def test_the_filter_and_the_funnel_match_a_pass_over_the_rows(tmp_path):
    rows = [VideoStatus("http://a/1", "one", clips_short=2, duration=5.0, has_subtitles=True),
            VideoStatus("http://a/2", "two", "failed", "permanent", "http_404"),
            VideoStatus("http://a/3", "three", "failed", "transient", "timeout", duration=3.0),
            VideoStatus("http://a/1", "one", "skipped", error_code="duplicate", input_row=9),
            VideoStatus("http://b/1", "one", "failed", "permanent", ID_CONFLICT),
            VideoStatus("http://a/4", "four", "expanded", entries=2), VideoStatus("http://a/5", "five", clips_long=1)]  # fmt: skip
    ledger = Ledger(Storage(tmp_path))
    ledger.commit(rows)
    for retry in (False, True):
        flt = LedgerFilter.of(ledger, retry)
        done = sorted({key_hash(r.video_id) for r in rows if ledger.done(r.video_id, retry) and r.key == r.video_id})
        assert flt.done.tolist() == done
        assert flt.recorded.tolist() == sorted({key_hash(r.key) for r in rows})
        ok = sorted((key_hash(r.video_id), key_hash(r.url)) for r in rows if r.status == "ok")
        assert list(zip(flt.ok_ids.tolist(), flt.ok_urls.tolist(), strict=True)) == ok
    assert funnel(ledger) == {"urls_in": 7, "skipped": 1, "downloaded": 2, "with_subtitles": 1, "ok": 2, "failed": 3,
                              "clips": {"short": 2, "medium": 0, "long": 1},
                              "failures": {"permanent:http_404": 1, f"permanent:{ID_CONFLICT}": 1, "transient:timeout": 1}}  # fmt: skip
