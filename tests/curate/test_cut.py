"""Cutting by stream copy with edit lists: exact to the frame at any GOP, never an encode."""

from __future__ import annotations

import av
import pytest
from media_checks import frame_digests

from curate.cut import MAX_OUTPUTS_PER_PROCESS, build_command, cut_clips
from curate.probe import probe

FPS = 25


def source_slice(digests: list[str], start: float, end: float) -> list[str]:
    return digests[round(start * FPS) : round(end * FPS)]


def test_a_clip_between_sparse_keyframes_presents_exactly_its_frames(youtube_like_video, tmp_path):
    path, _ = youtube_like_video  # keyframes at 0, 5, 10, 15, 20, 25 only; B-frames
    media = probe(path)
    assert media.keyframes[:3] == (0.0, 5.0, 10.0)
    spans = [(7.32, 13.36), (0.0, 4.36), (11.72, 19.08), (19.08, media.duration), (2.04, 27.0)]
    outs = [tmp_path / f"c{i}.mp4" for i in range(len(spans))]
    cut = cut_clips(path, spans, outs, media, time_limit_s=60)
    source = frame_digests(path)
    for (start, end), clip, out in zip(spans, cut, outs, strict=True):
        assert frame_digests(out) == source_slice(source, start, end), f"{start}-{end}: not the source's frames"
        assert abs(clip.end - end) < 0.002 and clip.start == start


def test_pyav_decodes_the_same_frames(youtube_like_video, tmp_path):
    path, _ = youtube_like_video
    media = probe(path)
    out = tmp_path / "clip.mp4"
    cut_clips(path, [(7.32, 13.36)], [out], media, time_limit_s=60)
    with av.open(str(out)) as container:
        frames = [f for f in container.decode(video=0)]
    assert len(frames) == round((13.36 - 7.32) * FPS)
    assert frames[0].time == pytest.approx(0.0, abs=1e-3)


def test_a_clip_is_a_copy_with_its_pre_roll_hidden_not_an_encode(youtube_like_video, tmp_path):
    path, _ = youtube_like_video
    media = probe(path)
    out = tmp_path / "clip.mp4"
    (clip,) = cut_clips(path, [(7.32, 13.36)], [out], media, time_limit_s=60)
    assert clip.preroll_s == pytest.approx(2.32)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        assert stream.codec_context.name == media.video_codec
    # The stored packets start at the source's keyframe at 5.0 s: more packets than frames shown.
    assert len(packets) >= round((13.36 - 5.0) * FPS)
    written = probe(out)
    assert written.duration == pytest.approx(13.36 - 7.32, abs=0.002) and written.has_audio


def test_a_clip_starting_on_a_keyframe_stores_no_pre_roll(youtube_like_video, tmp_path):
    path, _ = youtube_like_video
    media = probe(path)
    (clip,) = cut_clips(path, [(10.0, 16.0)], [tmp_path / "k.mp4"], media, time_limit_s=60)
    assert clip.preroll_s == 0.0


def test_many_clips_share_few_ffmpeg_runs(youtube_like_video, tmp_path):
    path, _ = youtube_like_video
    media = probe(path)
    spans = [(round(i * 0.6, 2), round(i * 0.6 + 1.2, 2)) for i in range(MAX_OUTPUTS_PER_PROCESS + 3)]
    cmd = build_command(path, spans[:MAX_OUTPUTS_PER_PROCESS], [tmp_path / "x.mp4"] * MAX_OUTPUTS_PER_PROCESS, media)
    assert cmd.count("-i") == MAX_OUTPUTS_PER_PROCESS
    assert cmd.count("-protocol_whitelist") == MAX_OUTPUTS_PER_PROCESS, "every input confined to the one local file"
    outs = [tmp_path / f"m{i}.mp4" for i in range(len(spans))]
    cut = cut_clips(path, spans, outs, media, time_limit_s=60)
    source = frame_digests(path)
    for (start, end), out in zip(spans, outs, strict=True):
        assert frame_digests(out) == source_slice(source, start, end)
    assert len(cut) == len(spans)


def test_real_footage_is_cut_exactly_too(bikes, tmp_path):
    media = probe(bikes)  # real camera footage with B-frames
    out = tmp_path / "clip.mp4"
    fps = media.fps
    start, end = round(2.0 * fps) / fps, round(4.0 * fps) / fps
    cut_clips(bikes, [(start, end)], [out], media, time_limit_s=60)
    source = frame_digests(bikes)
    assert frame_digests(out) == source[round(start * fps) : round(end * fps)]
