"""Probing a source: one ffprobe run gives streams, format and keyframes, exactly as separate runs did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.probe import MediaLimits, probe


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    files = {
        "gop": d / "gop.mp4",  # 5 s GOPs with B-frames and audio, like a YouTube upload
        "webm": d / "opus.webm",  # opus pre-skip: the container starts before the video
        "cover_first": d / "cover_first.mp4",  # cover art is the first video stream
    }
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=12", "-f", "lavfi", "-i", "sine=duration=12",
           "-c:v", "libx264", "-g", "125", "-bf", "2", "-c:a", "aac", str(files["gop"]))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=4", "-f", "lavfi", "-i", "sine=duration=4",
           "-c:v", "libvpx-vp9", "-b:v", "100k", "-c:a", "libopus", str(files["webm"]))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=1:duration=1", "-f", "lavfi", "-i",
           "testsrc=size=320x240:rate=25:duration=6", "-map", "0", "-map", "1", "-c:v:0", "mjpeg", "-c:v:1", "libx264",
           "-g", "50", "-disposition:v:0", "attached_pic", "-disposition:v:1", "default", str(files["cover_first"]))  # fmt: skip
    return files


def ffprobe_json(path: Path, *args: str) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_keyframes_and_facts_match_separate_ffprobe_runs(media):
    info = probe(media["gop"])
    packets = ffprobe_json(media["gop"], "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags")["packets"]
    keys = sorted(round(float(p["pts_time"]), 6) for p in packets if "K" in p["flags"])
    assert info.keyframes == tuple(keys) == (0.0, 5.0, 10.0)
    streams = ffprobe_json(media["gop"], "-show_streams")["streams"]
    assert (info.video_codec, info.audio_codec, info.width, info.height) == ("h264", "aac", 320, 240)
    assert abs(info.duration - float(streams[0]["duration"])) < 1e-6 and info.fps == 25.0


def test_the_seek_offset_is_the_video_start_minus_the_containers(media):
    info = probe(media["webm"])
    container = ffprobe_json(media["webm"], "-show_format")["format"]
    assert info.seek_offset == pytest.approx(info.start_time - float(container["start_time"]))
    assert info.seek_offset > 0 and info.has_audio and info.audio_codec == "opus"


def test_keyframes_come_from_the_video_not_from_a_cover_art_stream_listed_first(media):
    info = probe(media["cover_first"])
    assert (info.width, info.video_codec) == (320, "h264")
    assert info.keyframes == (0.0, 2.0, 4.0), "the 6 s video's 2 s GOPs, not the one-picture cover"


def test_one_ffprobe_run_per_probe(media, tmp_path, monkeypatch):
    bin_dir, log = tmp_path / "bin", tmp_path / "launches"
    bin_dir.mkdir()
    wrapper = bin_dir / "ffprobe"  # the real ffprobe, behind a script that notes each start
    wrapper.write_text(f'#!/bin/sh\necho "$0" >> {log}\nexec {shutil.which("ffprobe")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    probe(media["gop"])
    assert len(log.read_text().splitlines()) == 1, "starting ffprobe costs ~70 ms of CPU: once a video"


def test_a_stream_past_max_packets_stops_the_listing(media):
    with pytest.raises(CurateError) as caught:
        probe(media["gop"], limits=MediaLimits(max_packets=100))
    assert caught.value.code == "too_many_packets"


def test_a_truncated_file_is_invalid_media(media, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = media["gop"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CurateError) as caught:
        probe(cut)
    assert caught.value.code == "invalid_media"
