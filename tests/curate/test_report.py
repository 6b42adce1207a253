"""``report.html`` at the end of every run: its figures are the dataset's, read in bounded memory."""

from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq
from test_commit import clips, config, status

from curate import report
from curate.ledger import VideoStatus
from curate.sink import DatasetWriter
from vidla_format.clips import clip_files, read_clips
from vidla_format.storage import Storage


def dataset(out, videos: int, runs: int = 2) -> Storage:
    for run in range(runs):
        sink = DatasetWriter(str(out), config())
        for i in range(run, videos, runs):
            vid, url = f"v{i}", f"http://x/v{i}"
            sink.write(status(vid, url, "A", i), list(clips(vid, url, "A")))
        sink.close(1.0)
    return Storage(str(out))


def test_length_counts_are_the_clips_of_every_part(tmp_path):
    storage = dataset(tmp_path / "out", 6)
    counts = report.length_counts(storage)
    clips_table = read_clips(storage, ["scale", "duration"]).to_pylist()
    for scale, expected in Counter(c["scale"] for c in clips_table).items():
        assert counts[scale].sum() == expected
        assert counts[scale][1] == expected, "every test clip lasts 1 s"


def test_the_gallery_is_balanced_across_scales_and_comes_from_the_newest_part(tmp_path):
    out = tmp_path / "out"
    storage = dataset(out, 6)
    sample = report.sampled_clips(storage)
    assert Counter(c["scale"] for c in sample) == {"short": 8, "medium": 6}, "8 a scale, or all there are"
    newest = pq.read_table(out / clip_files(storage)[-1], columns=["video_id"])["video_id"].to_pylist()
    assert {c["key"].split("_")[0] for c in sample} <= set(newest) == {"v1", "v3", "v5"}
    assert sample == report.sampled_clips(storage), "the same page for the same dataset"


def test_the_failure_table_is_capped_but_counts_every_failure(tmp_path):
    out = tmp_path / "out"
    storage = dataset(out, 2, runs=1)
    failed = [VideoStatus(f"http://x/f{i}", f"f{i}", "failed", "permanent", "http_404", "gone") for i in range(report.MAX_FAILURE_ROWS + 20)]
    sink = DatasetWriter(str(out), config())
    sink.ledger.commit(failed)
    sink.close(1.0)
    report.write_report(storage, {})
    page = (out / "report.html").read_text()
    total, shown = report.MAX_FAILURE_ROWS + 20, report.MAX_FAILURE_ROWS
    assert f"Failures ({total})" in page and f"the first {shown} of {total}" in page
    assert page.count("http_404") == shown


def test_a_report_of_an_empty_dataset_renders(tmp_path):
    out = tmp_path / "out"
    DatasetWriter(str(out), config()).close(1.0)
    report.write_report(Storage(str(out)), {})
    assert "Failures (0)" in (out / "report.html").read_text()
    assert report.sampled_clips(Storage(str(out))) == []
