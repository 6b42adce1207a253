"""The single decode pass: cuts found within one frame, frames kept at a fixed rate, one ffmpeg."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest
from PIL import Image

from curate.config import AnalysisConfig, CutConfig
from curate.decode import analyze, build_command
from curate.probe import probe

BIKES_CUTS = [1.2, 3.04, 5.48, 7.48, 9.68]


def assert_cuts_found_within_one_frame(path, cuts, tmp_path):
    media = probe(path)
    result = analyze(path, media, tmp_path, AnalysisConfig())
    assert len(result.cuts) == len(cuts)
    for found, truth in zip(result.cuts, cuts, strict=True):
        assert abs(found - truth) <= 1 / media.fps + 1e-6


def test_cuts_in_generated_video_are_found_within_one_frame(scenes_video, tmp_path):
    assert_cuts_found_within_one_frame(*scenes_video, tmp_path)


def test_cuts_in_real_footage_are_found_within_one_frame(bikes, tmp_path):
    assert_cuts_found_within_one_frame(bikes, BIKES_CUTS, tmp_path)


@pytest.mark.parametrize("detector", ["content", "adaptive", "histogram", "scdet"])
def test_other_detectors_are_selectable(bikes, tmp_path, detector):
    result = analyze(bikes, probe(bikes), tmp_path, AnalysisConfig(detector=detector))
    assert any(abs(c - 5.48) <= 0.04 for c in result.cuts)
    assert result.frames_decoded == 250


def test_cuts_between_sparse_keyframes_are_found_within_one_frame(youtube_like_video, tmp_path):
    assert_cuts_found_within_one_frame(*youtube_like_video, tmp_path)


def test_a_scene_that_changes_every_frame_is_not_a_run_of_cuts(scene_maker, tmp_path):
    # A cellular automaton changes most pixels every frame; only the two real cuts count.
    path = tmp_path / "busy.mp4"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=4",
            "-f", "lavfi", "-i", "cellauto=s=320x180:r=25:rule=110:seed=7:start_full=1,trim=start=6,setpts=PTS-STARTPTS,trim=duration=6",
            "-f", "lavfi", "-i", "smptebars=s=320x180:r=25:d=4",
            "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast",
            str(path)]
    subprocess.run(args, check=True)
    assert_cuts_found_within_one_frame(path, [4.0, 10.0], tmp_path)


def test_frames_are_kept_at_the_configured_rate_and_short_side(scenes_video, tmp_path):
    path, _ = scenes_video
    media = probe(path)
    result = analyze(path, media, tmp_path, AnalysisConfig(frame_rate=2.0, frame_short_side=128))
    assert abs(len(result.frames) - media.duration * 2) <= 1
    assert [f.time for f in result.frames[:3]] == [0.0, 0.5, 1.0]
    with Image.open(result.frames[0].path) as img:
        assert min(img.size) == 128


def test_frames_are_never_upscaled(bikes, tmp_path):
    result = analyze(bikes, probe(bikes), tmp_path, AnalysisConfig(frame_short_side=1000))
    with Image.open(result.frames[0].path) as img:
        assert img.size == (640, 272)


def test_every_frame_is_decoded_exactly_once(scenes_video, tmp_path):
    """One ffmpeg process, one input, all outputs branches of one filter graph."""
    path, _ = scenes_video
    media = probe(path)
    cmd = build_command(path, media, tmp_path, AnalysisConfig(), CutConfig())
    assert cmd.count("-i") == 1
    assert cmd[cmd.index("-protocol_whitelist") + 1] == "file" and cmd[cmd.index("-i") - 2] == "-f"
    assert "split=3" in cmd[cmd.index("-filter_complex") + 1]
    result = analyze(path, media, tmp_path, AnalysisConfig())
    assert result.frames_decoded == round(media.duration * media.fps)


def test_reencode_branch_writes_a_short_gop_intermediate_with_keyframes_on_cuts(bikes, tmp_path):
    result = analyze(bikes, probe(bikes), tmp_path, AnalysisConfig(), CutConfig(gop_s=0.5, short_side=144))
    assert result.intermediate is not None
    inter = probe(result.intermediate)
    assert min(inter.width, inter.height) == 144
    gaps = [b - a for a, b in zip(inter.keyframes, inter.keyframes[1:], strict=False)]
    assert max(gaps) <= 0.5 + 1 / 25 + 1e-6
    for cut in BIKES_CUTS:
        assert any(abs(k - cut) < 1e-3 for k in inter.keyframes), cut


def test_thumbnails_one_per_shot(bikes, tmp_path):
    media = probe(bikes)
    result = analyze(bikes, media, tmp_path, AnalysisConfig())
    thumbs = result.shot_thumbnails(media.duration)
    assert len(thumbs) == len(BIKES_CUTS) + 1
    step = 1 / AnalysisConfig().frame_rate
    for (a, b), thumb in zip(result.shots(media.duration), thumbs, strict=True):
        if b - a >= step:
            assert a <= thumb.time < b and abs(thumb.time - (a + b) / 2) <= step / 2 + 1e-6
        else:  # a shot shorter than the frame spacing may hold no kept frame
            assert abs(thumb.time - (a + b) / 2) <= step


def test_a_playlist_posing_as_a_video_is_never_opened(tmp_path, bikes):
    """An HLS playlist named .mp4 would make ffmpeg open the local files it lists."""
    import pytest as _pytest

    from curate.errors import CurateError

    fake = tmp_path / "video.mp4"
    fake.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{bikes}\n#EXT-X-ENDLIST\n")
    media = probe(bikes)
    with _pytest.raises(CurateError) as err:
        analyze(fake, replace(media, demuxer=None), tmp_path / "work", AnalysisConfig())
    assert err.value.code == "invalid_media"
    assert not list((tmp_path / "work").glob("frames/*.jpg"))
