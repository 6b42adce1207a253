"""Clip records: splits by source video, frame times, caption frame times, the text to train on."""

from __future__ import annotations

from collections import Counter

import pytest

from curate.records import Sample, caption_times, segment_middles, split_for

SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_split_depends_only_on_the_video_id():
    assert split_for("abc", SPLITS) == split_for("abc", dict(SPLITS))
    counts = Counter(split_for(f"video{i}", SPLITS) for i in range(20000))
    for name, fraction in SPLITS.items():
        assert abs(counts[name] / 20000 - fraction) < 0.01


def test_a_split_with_no_share_is_never_chosen():
    assert {split_for(f"v{i}", {"train": 1.0}) for i in range(1000)} == {"train"}


def test_training_frames_sit_at_segment_middles():
    assert segment_middles(10.0, 18.0, 4) == [11.0, 13.0, 15.0, 17.0]


@pytest.mark.parametrize(("start", "end", "expected"), [(0.0, 5.0, 1), (0.0, 13.0, 1), (0.0, 30.0, 3), (5.0, 65.0, 6)])
def test_caption_frames_at_a_tenth_of_a_frame_per_second_and_at_least_one(start, end, expected):
    times = caption_times(start, end, 0.1)
    assert len(times) == expected
    assert all(start < t < end for t in times)


def test_text_prefers_summary_then_caption_then_subtitle(tmp_path):
    record = {"subtitle": "sub", "caption": None, "summary": None}
    sample = Sample("k", "short", record, tmp_path / "x.mp4", [])
    assert sample.text == "sub"
    record["caption"] = "cap"
    assert sample.text == "cap"
    record["summary"] = "sum"
    assert sample.text == "sum"
    assert Sample("k", "short", {"subtitle": None}, tmp_path / "x.mp4", []).text == ""
