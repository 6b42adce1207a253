"""Cutting by stream copy: durations match the plan, audio kept, nothing re-encoded."""

from __future__ import annotations

import pytest

from curate.cut import cut_clips
from curate.errors import CurateError
from curate.probe import probe


def test_clips_on_keyframes_are_exact_stream_copies(scenes_video, tmp_path):
    path, _ = scenes_video  # keyframes every 2 s and at the cuts (4, 7, 12)
    media = probe(path)
    spans = [(0.0, 4.0), (4.0, 12.0), (14.0, media.duration)]
    outs = [tmp_path / f"c{i}.mp4" for i in range(len(spans))]
    cut = cut_clips(path, spans, outs, media.fps, media.has_audio, time_limit_s=60)
    for (start, end), clip, out in zip(spans, cut, outs, strict=True):
        written = probe(out)
        assert abs(written.duration - (end - start)) <= 0.1
        assert abs(clip.end - clip.start - (end - start)) <= 0.1
        assert written.has_audio and written.video_codec == media.video_codec
        assert written.keyframes[0] == 0.0


def test_clip_files_are_copies_not_encodes(bikes, tmp_path):
    media = probe(bikes)
    out = tmp_path / "clip.mp4"
    cut_clips(bikes, [(1.2, 5.48)], [out], media.fps, media.has_audio, time_limit_s=60)
    written = probe(out)
    # A copy keeps the source's own keyframe spacing: the next keyframe is the source's 3.04.
    assert [round(k, 2) for k in written.keyframes] == [0.0, 1.84]
    assert written.width == media.width


def test_a_span_off_the_keyframes_is_reported_not_silently_wrong(bikes, tmp_path):
    media = probe(bikes)
    with pytest.raises(CurateError) as err:
        cut_clips(bikes, [(2.0, 4.0)], [tmp_path / "x.mp4"], media.fps, media.has_audio, time_limit_s=60)
    assert err.value.code == "cut_mismatch"
