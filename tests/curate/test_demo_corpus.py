"""The demo corpus is what its ground truth says: durations, cuts, audio, subtitles, served pages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import webvtt
import yt_dlp

from curate.config import load_config
from curate.demo.corpus import GOP_S, SPECS, build_corpus
from curate.demo.server import source_urls, write_source_list
from curate.records import split_for
from curate.sources import read_sources

GENERATED = ("lecture", "cooking", "vlog", "silent")
REPO = Path(__file__).resolve().parents[2]


def _probe(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout)


def _keyframes(path: Path) -> list[float]:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
           "-of", "csv=p=0", str(path)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
    return [float(line.split(",")[0]) for line in out.splitlines() if "K" in line.split(",")[1]]


def _tiny_frames(path: Path, times: list[float], fps: int = 25) -> list[bytes]:
    """32x18 grey frames at the given times, decoded in one pass."""
    picks = "+".join(f"eq(n,{round(t * fps)})" for t in times)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", f"select='{picks}',scale=32:18,format=gray",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-"]  # fmt: skip
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    return [raw[i : i + 32 * 18] for i in range(0, len(raw), 32 * 18)]


def _seconds(timestamp: str) -> float:
    """webvtt-py's *_in_seconds are whole seconds; the timestamps themselves have milliseconds."""
    hours, minutes, seconds = timestamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _difference(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_every_item_matches_its_ground_truth(demo_corpus: tuple[Path, dict]) -> None:
    dest, corpus = demo_corpus
    assert set(corpus["items"]) == {*GENERATED, "bikes", "bigbuckbunny"}
    for name, item in corpus["items"].items():
        facts = _probe(dest / item["video"])
        kinds = [s["codec_type"] for s in facts["streams"]]
        video = next(s for s in facts["streams"] if s["codec_type"] == "video")
        assert float(facts["format"]["duration"]) == pytest.approx(item["duration"], abs=0.1), name
        assert ("audio" in kinds) is item["has_audio"], name
        assert (video["width"], video["height"]) == (item["width"], item["height"]), name
        assert (item["subtitle"] is not None) == (item["serve"] == "page"), name
    durations = {name: corpus["items"][name]["duration"] for name in GENERATED}
    assert durations == {"lecture": 150.0, "cooking": 95.0, "vlog": 70.0, "silent": 40.0}
    assert corpus["items"]["bikes"]["cuts"] == [1.2, 3.04, 5.48, 7.48, 9.68]


@pytest.mark.parametrize("name", GENERATED)
def test_cuts_are_hard_and_keyframes_are_as_sparse_as_real_uploads(demo_corpus: tuple[Path, dict], name: str) -> None:
    dest, corpus = demo_corpus
    item = corpus["items"][name]
    path = dest / item["video"]
    assert 3 <= len(item["cuts"]) <= 12
    keyframes = _keyframes(path)
    on_keyframes = [any(abs(k - cut) < 1e-3 for k in keyframes) for cut in item["cuts"]]
    spec = next(s for s in SPECS if s.name == name)
    if spec.keyframes_at_cuts:
        assert all(on_keyframes)
    else:  # like most YouTube encodes: a fixed GOP, and cuts that fall between keyframes
        assert sum(on_keyframes) <= len(on_keyframes) // 3
        assert min(b - a for a, b in zip(keyframes, keyframes[1:], strict=False)) >= GOP_S - 0.01
    assert max(b - a for a, b in zip(keyframes, keyframes[1:], strict=False)) <= GOP_S + 0.01
    # Across a cut the picture changes far more than between two frames inside a scene.
    times = [t for cut in item["cuts"] for t in (cut - 1.08, cut - 1.04, cut - 0.04, cut)]
    frames = _tiny_frames(path, times)
    assert len(frames) == len(times)
    for i in range(0, len(frames), 4):
        inside, across = _difference(frames[i], frames[i + 1]), _difference(frames[i + 2], frames[i + 3])
        assert across > 12 and across > 3 * inside, (name, times[i + 3], inside, across)


def test_lecture_subtitles_are_the_recorded_sentences(demo_corpus: tuple[Path, dict]) -> None:
    dest, corpus = demo_corpus
    subtitle = corpus["items"]["lecture"]["subtitle"]
    cues = webvtt.read(str(dest / subtitle["file"]))
    sentences = subtitle["sentences"]
    for sentence in sentences:
        inside = [c for c in cues if sentence["start"] - 1e-3 <= _seconds(c.start) < sentence["end"]]
        assert " ".join(" ".join(c.text.split()) for c in inside) == sentence["text"]
        assert sentence["text"][-1] in ".!?"
    lengths = [_seconds(c.end) - _seconds(c.start) for c in cues]
    assert min(lengths) >= 1.5 and max(lengths) <= 4.0
    assert len(cues) > len(sentences)  # some sentences span two cues
    gaps = [b["start"] - a["end"] for a, b in zip(sentences, sentences[1:], strict=False)]
    assert max(gaps) >= 15.0 and subtitle["silent_gaps"] == [[sentences[i]["end"], sentences[i + 1]["start"]]
                                                             for i, gap in enumerate(gaps) if gap > 10]  # fmt: skip
    assert 1.5 <= len(sentences) / ((150 - 15) / 10) <= 2.5


def test_cooking_srt_is_punctuated_and_timed(demo_corpus: tuple[Path, dict]) -> None:
    dest, corpus = demo_corpus
    subtitle = corpus["items"]["cooking"]["subtitle"]
    cues = webvtt.from_srt(str(dest / subtitle["file"]))
    assert subtitle["format"] == "srt" and len(subtitle["sentences"]) >= 15
    assert _seconds(cues[0].start) == pytest.approx(subtitle["sentences"][0]["start"])
    assert _seconds(cues[-1].end) == pytest.approx(subtitle["sentences"][-1]["end"])
    assert subtitle["sentences"][-1]["end"] > 85.0


def test_vlog_has_youtube_style_rolling_automatic_captions(demo_corpus: tuple[Path, dict]) -> None:
    dest, corpus = demo_corpus
    subtitle = corpus["items"]["vlog"]["subtitle"]
    text = (dest / subtitle["file"]).read_text(encoding="utf-8")
    assert re.search(r"^[a-z']+<\d\d:\d\d:\d\d\.\d{3}><c> [a-z']+</c>", text, re.MULTILINE)
    cues = webvtt.read(str(dest / subtitle["file"]))
    is_transition = [_seconds(c.end) - _seconds(c.start) < 0.02 for c in cues]
    assert is_transition == [i % 2 == 1 for i in range(len(cues))]  # every line ends with a 10 ms cue
    for index in range(1, len(cues)):
        finished = re.sub(r"<[^>]+>", "", cues[index - 1 - is_transition[index - 1]].raw_text.splitlines()[-1])
        assert cues[index].raw_text.splitlines()[0].strip() == finished.strip()
    spoken = " ".join(word for _, word in subtitle["words"])
    assert spoken == spoken.lower() and not re.search(r"[.,!?]", spoken)
    assert len(subtitle["sentences"]) >= 15 and subtitle["style"] == "youtube_rolling_auto"


def test_rebuild_reuses_every_file(demo_corpus: tuple[Path, dict]) -> None:
    dest, corpus = demo_corpus
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir() if p.name in corpus["files"]}
    assert build_corpus(dest) == corpus
    after = {p.name: p.stat().st_mtime_ns for p in dest.iterdir() if p.name in corpus["files"]}
    assert before == after and len(after) == len(corpus["files"]) == 12


@pytest.mark.timeout(60, func_only=True)
def test_server_serves_files_with_media_types(demo_corpus: tuple[Path, dict], demo_server: str) -> None:
    dest, corpus = demo_corpus
    expected = {"lecture.html": "text/html", "lecture.en.vtt": "text/vtt", "cooking.en.srt": "application/x-subrip",
                "bikes.mp4": "video/mp4"}  # fmt: skip
    for name, media_type in expected.items():
        with urllib.request.urlopen(demo_server + name, timeout=10) as response:  # noqa: S310
            assert response.headers["Content-Type"].split(";")[0] == media_type
            assert response.read() == (dest / name).read_bytes()


def test_source_list_points_at_pages_or_files(demo_corpus: tuple[Path, dict], tmp_path: Path) -> None:
    _, corpus = demo_corpus
    path = write_source_list(corpus, "http://127.0.0.1:8000/", tmp_path / "sources.txt")
    lines = path.read_text().splitlines()
    assert lines == [url for _, url in source_urls(corpus, "http://127.0.0.1:8000")]
    assert "http://127.0.0.1:8000/lecture.html" in lines and "http://127.0.0.1:8000/bikes.mp4" in lines
    assert len(lines) == 6 and sum(line.endswith(".html") for line in lines) == 3


def test_csv_source_list_names_each_video_by_its_corpus_name(demo_corpus, tmp_path: Path) -> None:
    """Ids that ignore the server's port keep keys and splits the same on every demo run."""
    _, corpus = demo_corpus
    rows = {}
    for port in (8000, 8001):
        path = write_source_list(corpus, f"http://127.0.0.1:{port}/", tmp_path / f"{port}" / "sources.csv")
        rows[port] = read_sources(path)
    assert [r.video_id for r in rows[8000]] == list(corpus["items"]) == [r.video_id for r in rows[8001]]
    assert all(r.status == "pending" for r in rows[8000])
    fractions = load_config(Path(__file__).parents[2] / "configs" / "demo.yaml").samples.splits
    test = [name for name, item in corpus["items"].items() if split_for(name, fractions) == "test"]
    assert any(corpus["items"][name]["subtitle"] for name in test), "the demo's test split has subtitles"


def test_a_source_list_of_another_format_is_refused(demo_corpus, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.csv.*\.txt"):
        write_source_list(demo_corpus[1], "http://127.0.0.1:8000/", tmp_path / "sources.jsonl")


@pytest.mark.timeout(60, func_only=True)
@pytest.mark.parametrize(("name", "ext"), [("lecture", "vtt"), ("cooking", "srt"), ("vlog", "vtt")])
def test_yt_dlp_finds_the_html5_video_and_its_track(demo_server: str, name: str, ext: str) -> None:
    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}) as ydl:
        info = ydl.extract_info(f"{demo_server}{name}.html", download=False, process=False)
    assert info.get("_type", "video") == "video" and info["extractor"] == "html5"
    assert [f["url"] for f in info["formats"]] == [f"{demo_server}{name}.mp4"]
    assert info["subtitles"] == {"en": [{"url": f"{demo_server}{name}.en.{ext}"}]}


def test_cli_build_prints_the_corpus(demo_corpus: tuple[Path, dict]) -> None:
    dest, _ = demo_corpus
    done = subprocess.run([sys.executable, "-m", "curate.demo", "build", str(dest)],
                          capture_output=True, text=True, timeout=60, check=True, cwd=REPO)  # fmt: skip
    assert "lecture" in done.stdout and "corpus.json" in done.stdout
