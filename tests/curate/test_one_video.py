"""One video end to end: bad input becomes a classified status row, never a crash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from media_checks import frame_digests

from curate.config import load_config
from curate.demo.server import serve_directory
from curate.one_video import choose_cut_mode, curate_video
from curate.sources import SourceRow, video_id_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory, demo_corpus, scene_maker):
    """A loopback site with one of each kind of bad (and awkward) input."""
    corpus_dir, _ = demo_corpus
    site = tmp_path_factory.mktemp("site")
    scene_maker(site / "one_second.mp4", [1.0])
    scene_maker(site / "noaudio.mp4", [6.0, 6.0], audio=False)
    shutil.copy(corpus_dir / "cooking.mp4", site / "clip.mp4")
    (site / "notvideo.mp4").write_text("this is not a video\n" * 100)
    data = (corpus_dir / "cooking.mp4").read_bytes()
    (site / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (site / "broken.vtt").write_bytes(b"\x00\x01garbage\xff\xfe not a subtitle file")
    (site / "badsubs.html").write_text(
        '<html><body><video><source src="clip.mp4" type="video/mp4">'
        '<track kind="subtitles" srclang="en" src="broken.vtt"></video></body></html>'
    )
    (site / "novideo.html").write_text("<html><body><p>No video on this page.</p></body></html>")
    with serve_directory(site) as base:
        yield base


def curate(url: str, tmp_path: Path, **overrides):
    config = load_config(ROOT / "configs" / "demo.yaml", [f"{k}={v}" for k, v in overrides.items()])
    row = SourceRow(url=url, video_id=video_id_for(url), status="pending", error_code=None, error=None, row=0)
    return curate_video(row, config, tmp_path / "work")


@pytest.mark.parametrize(
    ("path", "error_class", "codes"),
    [
        ("missing.mp4", "permanent", {"http_404"}),
        ("notvideo.mp4", "permanent", {"invalid_media"}),
        ("truncated.mp4", "permanent", {"invalid_media"}),
        ("novideo.html", "permanent", {"no_video", "unsupported_url"}),
        ("one_second.mp4", "permanent", {"too_short"}),
    ],
)
@pytest.mark.timeout(120)
def test_bad_input_gets_a_classified_status_row(bad_site, tmp_path, path, error_class, codes):
    result = curate(bad_site + path, tmp_path, **{"download.attempts": 1})
    status = result.status
    assert status.status == "failed"
    assert (status.error_class, status.error_code in codes) == (error_class, True), status.error
    assert status.error and len(status.error) < 2000
    assert result.samples == []
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir()), "work dir removed"


def test_malformed_subtitles_do_not_fail_the_video(bad_site, tmp_path):
    result = curate(bad_site + "badsubs.html", tmp_path)
    assert result.status.status == "ok"
    assert result.status.subtitle_warning and "malformed" in result.status.subtitle_warning
    assert result.samples and all(s.record["subtitle"] is None for s in result.samples)
    result.cleanup()


def test_a_video_without_audio_is_fine(bad_site, tmp_path):
    result = curate(bad_site + "noaudio.mp4", tmp_path)
    assert result.status.status == "ok", result.status.error
    assert all(not s.record["has_audio"] for s in result.samples)
    result.cleanup()


def test_shell_metacharacters_and_dot_dot_in_urls_stay_inside_the_work_dir(bad_site, tmp_path):
    outside = tmp_path / "pwned"
    url = bad_site + f"..%2F..%2Fx/$(touch {outside});rm -rf ~;`id`.mp4"
    result = curate(url, tmp_path)
    assert result.status.status == "failed" and result.status.error_class == "permanent"
    assert not outside.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def one_keyframe_video(path: Path) -> Path:
    """24 s of 25 fps H.264 with B-frames and a single keyframe, at 0."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=24",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "1000", "-sc_threshold", "0", str(path)],
        check=True,
    )
    return path


def test_sparse_keyframes_are_still_copied_and_every_clip_is_exact(tmp_path):
    video = one_keyframe_video(tmp_path / "sparse.mp4")
    with serve_directory(tmp_path) as base:
        result = curate(base + "sparse.mp4", tmp_path)
    assert result.status.status == "ok", result.status.error
    assert result.status.cut_mode == "copy"
    source = frame_digests(video)
    for sample in result.samples:
        start, end = sample.record["start"], sample.record["end"]
        assert frame_digests(sample.mp4) == source[round(start * 25) : round(end * 25)], sample.key
        assert sample.record["preroll_s"] == pytest.approx(start, abs=1e-3)  # one keyframe, at 0
    assert sum(s.record["duration"] for s in result.samples if s.scale == "short") > 20
    result.cleanup()


def test_reencode_is_an_explicit_mode_and_its_clips_are_exact_too(tmp_path):
    one_keyframe_video(tmp_path / "sparse.mp4")
    with serve_directory(tmp_path) as base:
        result = curate(base + "sparse.mp4", tmp_path, **{"cut.mode": "reencode"})
    assert result.status.status == "ok", result.status.error
    assert all(s.record["cut_mode"] == "reencode" for s in result.samples)
    for sample in result.samples:
        n = round(sample.record["duration"] * 25)
        assert len(frame_digests(sample.mp4)) in (n - 1, n, n + 1)
    result.cleanup()


def test_auto_mode_copies_whatever_the_keyframe_spacing_unless_mp4_cant_hold_the_codec():
    from curate.probe import MediaInfo

    config = load_config(None)
    dense = MediaInfo(60.0, 640, 360, 25.0, "h264", True, "aac", 0.0, tuple(float(t) for t in range(0, 60, 2)))
    sparse = MediaInfo(60.0, 640, 360, 25.0, "h264", True, "aac", 0.0, (0.0,))
    theora = MediaInfo(60.0, 640, 360, 25.0, "theora", True, "vorbis", 0.0, (0.0,))
    assert choose_cut_mode(dense, config) == choose_cut_mode(sparse, config) == "copy"
    assert choose_cut_mode(theora, config) == "reencode"
