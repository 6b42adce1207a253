"""End to end: the demo corpus over loopback HTTP, through the plain loop, into the documented format."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from curate.config import load_config
from curate.demo.server import write_source_list
from curate.probe import probe
from curate.run import run

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_FIELDS = {
    "key", "video_id", "url", "scale", "start", "end", "duration", "parent", "children", "subtitle", "caption",
    "summary", "split", "fps", "width", "height", "has_audio", "format_version",
}


@pytest.fixture(scope="module")
def demo_run(demo_corpus, demo_server, tmp_path_factory):
    _, corpus = demo_corpus
    out = tmp_path_factory.mktemp("demo-run")
    sources = out / "sources.csv"
    write_source_list(corpus, demo_server, sources)
    config = load_config(ROOT / "configs" / "demo.yaml")
    summary = run(sources, out / "dataset", config, workers=2, progress=False)
    return out / "dataset", corpus, summary, sources, config


def read_samples(dataset: Path) -> list[dict]:
    urls = sorted(str(p) for p in dataset.glob("shards/*/shard-*.tar"))
    return list(wds.WebDataset(urls, shardshuffle=False))


def test_every_input_gets_an_ok_row_and_clips(demo_run):
    dataset, corpus, summary, _, _ = demo_run
    videos = pq.read_table(dataset / "videos.parquet").to_pylist()
    assert len(videos) == len(corpus["items"])
    assert {v["status"] for v in videos} == {"ok"}
    assert all(v["clips_short"] >= 1 for v in videos)
    assert sum(v["clips_long"] for v in videos) >= 2, "the long demo videos give long clips"
    stats = json.loads((dataset / "stats.json").read_text())
    assert stats["funnel"]["ok"] == len(videos) and stats["funnel"]["with_subtitles"] == 3


def test_shards_read_back_with_webdataset_and_carry_the_documented_fields(demo_run):
    dataset, *_ = demo_run
    samples = read_samples(dataset)
    clips = pq.read_table(dataset / "clips.parquet").to_pylist()
    assert len(samples) == len(clips) > 0
    for sample in samples:
        record = json.loads(sample["json"])
        assert REQUIRED_FIELDS <= set(record)
        assert record["key"] == sample["__key__"]
        assert sample["txt"].decode() == (record["summary"] or record["caption"] or record["subtitle"] or "")
        if record["scale"] != "short" and record["subtitle"]:
            assert record["summary"], "medium and long clips with subtitles are summarised"
        frames = sorted(k for k in sample if k.startswith("f") and k.endswith(".jpg"))
        assert frames == [f"f{i:02d}.jpg" for i in range(16)]
        with Image.open(io.BytesIO(sample["f00.jpg"])) as img:
            assert min(img.size) <= 256


def test_shards_read_back_with_tarfile(demo_run):
    dataset, *_ = demo_run
    for tar_path in dataset.glob("shards/*/shard-*.tar"):
        index = pq.read_table(tar_path.with_suffix(".parquet")).to_pylist()
        with tarfile.open(tar_path) as tar:
            names = tar.getnames()
        assert {n.split(".", 1)[0] for n in names} == {row["key"] for row in index}


def test_written_clip_durations_match_the_plan(demo_run, tmp_path):
    dataset, *_ = demo_run
    for sample in read_samples(dataset):
        record = json.loads(sample["json"])
        clip = tmp_path / f"{sample['__key__']}.mp4"
        clip.write_bytes(sample["mp4"])
        assert abs(probe(clip).duration - record["duration"]) <= 0.1, record["key"]


def test_every_scale_nests_in_its_parent(demo_run):
    dataset, *_ = demo_run
    clips = {row["key"]: row for row in pq.read_table(dataset / "clips.parquet").to_pylist()}
    for clip in clips.values():
        if clip["parent"]:
            parent = clips[clip["parent"]]
            assert parent["start"] <= clip["start"] and clip["end"] <= parent["end"]
            assert clip["key"] in parent["children"]
        for child in clip["children"]:
            assert clips[child]["parent"] == clip["key"]
    assert {c["scale"] for c in clips.values()} == {"short", "medium", "long"}


def test_subtitle_sentences_land_in_the_clip_that_holds_them(demo_run):
    dataset, corpus, *_ = demo_run
    clips = pq.read_table(dataset / "clips.parquet").to_pylist()
    checked = 0
    for item in corpus["items"].values():
        if not item.get("subtitle") or item["subtitle"]["format"] != "vtt" or "rolling" in item["subtitle"].get("style", ""):
            continue
        shorts = [c for c in clips if c["scale"] == "short" and c["video_id"].startswith(item["name"])]
        for sentence in item["subtitle"]["sentences"]:
            mid = (sentence["start"] + sentence["end"]) / 2
            holder = [c for c in shorts if c["start"] <= mid < c["end"]]
            if holder:
                assert sentence["text"] in holder[0]["subtitle"], sentence
                checked += 1
    assert checked >= 20


def test_no_clip_boundary_sits_just_off_a_shot_cut(demo_run):
    dataset, corpus, *_ = demo_run
    clips = pq.read_table(dataset / "clips.parquet").to_pylist()
    for item in corpus["items"].values():
        cuts = item.get("cuts") or []
        for clip in (c for c in clips if c["video_id"].startswith(item["name"] + "-")):
            for t in (clip["start"], clip["end"]):
                if t == 0 or abs(t - item["duration"]) < 0.05:
                    continue  # the video's own ends are always clean
                near = min((abs(t - c) for c in cuts), default=1e9)
                assert near <= 1 / item.get("fps", 25) or near >= 0.5 - 1e-6, (clip["key"], t)


def test_a_source_video_never_spans_two_splits(demo_run):
    dataset, *_ = demo_run
    clips = pq.read_table(dataset / "clips.parquet").to_pylist()
    splits: dict[str, set] = {}
    for clip in clips:
        splits.setdefault(clip["video_id"], set()).add(clip["split"])
    assert all(len(s) == 1 for s in splits.values())


def test_a_rerun_adds_nothing(demo_run):
    dataset, _, _, sources, config = demo_run
    before = {p.name: p.stat().st_mtime_ns for p in dataset.glob("shards/*/*")}
    again = run(sources, dataset, config, workers=1, progress=False)
    assert again.processed == 0 and sum(again.samples_written.values()) == 0
    assert {p.name: p.stat().st_mtime_ns for p in dataset.glob("shards/*/*")} == before


@pytest.mark.timeout(300)
def test_killed_mid_run_then_rerun_gives_every_clip_exactly_once(demo_run, tmp_path, kill_then_rerun, dataset_keys):
    dataset, _, _, sources, _ = demo_run
    expected = sorted(r["key"] for r in pq.read_table(dataset / "clips.parquet").to_pylist())
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "curate", "run", "--sources", str(sources), "--output", str(out), "--workers", "1",
           "--config", str(ROOT / "configs" / "demo.yaml"), "--quiet", "shards.max_samples=3"]
    kill_then_rerun(cmd, out)
    indexed, in_tars, leftovers = dataset_keys(out)
    assert indexed == in_tars == expected
    assert leftovers == []
