"""Shard writing: bounded, atomic, readable by webdataset and tarfile, exactly once across reruns."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from curate.records import Sample
from curate.shards import ShardWriter
from vidla_format.commits import Manifest, committed_shards, read_manifests, recover, write_manifest
from vidla_format.layout import shard_stem
from vidla_format.storage import Storage


@pytest.fixture
def make_sample(tmp_path, bikes):
    frame = tmp_path / "frame.jpg"
    Image.new("RGB", (64, 48), "red").save(frame)

    def make(i: int, video_id: str = "vid") -> Sample:
        key = f"{video_id}_short_{i:04d}"
        record = {"key": key, "video_id": video_id, "scale": "short", "index": i, "start": 0.0, "end": 5.0,
                  "duration": 5.0, "subtitle": f"text {i}", "caption": None, "summary": None, "split": "train"}
        return Sample(key, "short", record, bikes, [frame, frame])

    return make


def stem(i: int, video_id: str = "vid") -> str:
    """The name of the shard whose first sample is ``make_sample(i)``."""
    return shard_stem("run", f"{video_id}_short_{i:04d}")


def publish(root: Storage, writer: ShardWriter, number: int = 0) -> list[str]:
    """Commit every shard ``writer`` closed, as the sink does: one manifest names them."""
    stems = writer.take_closed()
    write_manifest(root, "", number, "test", Manifest("", {"short": stems}, []))
    return stems


def test_samples_read_back_with_webdataset_and_tarfile(tmp_path, make_sample):
    out = tmp_path / "short"
    writer = ShardWriter(Storage(tmp_path), "short", max_samples=3, max_bytes=10**9)
    for i in range(7):
        writer.write(make_sample(i))
    assert publish(Storage(tmp_path), writer) == [stem(0), stem(3), stem(6)]
    assert committed_shards(Storage(tmp_path), "short") == sorted([stem(0), stem(3), stem(6)])
    with tarfile.open(out / f"{stem(0)}.tar") as tar:
        names = tar.getnames()
    assert names[:5] == ["vid_short_0000.json", "vid_short_0000.txt", "vid_short_0000.mp4",
                         "vid_short_0000.f00.jpg", "vid_short_0000.f01.jpg"]
    urls = [str(out / f"{stem(i)}.tar") for i in (0, 3, 6)]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert [s["__key__"] for s in samples] == [f"vid_short_{i:04d}" for i in range(7)]
    assert samples[0]["txt"] == "text 0" and samples[0]["json"]["index"] == 0
    assert samples[0]["f00.jpg"].size == (64, 48)


def test_index_offsets_point_at_each_sample(tmp_path, make_sample):
    out = tmp_path / "short"
    writer = ShardWriter(Storage(tmp_path), "short", max_samples=10, max_bytes=10**9)
    for i in range(4):
        writer.write(make_sample(i))
    writer.close_shard()
    index = pq.read_table(out / f"{stem(0)}.parquet").to_pylist()
    with open(out / f"{stem(0)}.tar", "rb") as f:
        for row in index:
            f.seek(row["offset"])
            member = tarfile.TarInfo.frombuf(f.read(512), "utf-8", "surrogateescape")
            assert member.name == f"{row['key']}.json"
            assert json.loads(f.read(member.size))["key"] == row["key"]


def test_shards_are_bounded_by_bytes(tmp_path, make_sample):
    writer = ShardWriter(Storage(tmp_path), "short", max_samples=1000, max_bytes=1)
    for i in range(3):
        writer.write(make_sample(i))
    assert writer.take_closed() == [stem(0), stem(1), stem(2)]


def test_a_closed_shard_is_invisible_until_a_manifest_names_it_and_removed_on_resume(tmp_path, make_sample):
    out, root = tmp_path / "short", Storage(tmp_path)
    writer = ShardWriter(root, "short", max_samples=2, max_bytes=10**9)
    for i in range(2):
        writer.write(make_sample(i))
    publish(root, writer)  # shard 0 committed
    for i in range(2, 5):  # shard 1 closed but never named, shard 2 open
        writer.write(make_sample(i))
    assert (out / f"{stem(2)}.parquet").exists() and committed_shards(root, "short") == [stem(0)]
    assert not (out / f"{stem(4)}.tar").exists(), "open shards live under a temporary name"
    keys = recover(root, "short", {stem(0)})  # what a rerun sees after a crash
    assert keys == {"vid_short_0000", "vid_short_0001"}
    assert sorted(p.name for p in out.iterdir()) == [f"{stem(0)}.parquet", f"{stem(0)}.tar"]


def test_an_unreadable_manifest_is_not_a_commit(tmp_path, make_sample):
    root = Storage(tmp_path)
    writer = ShardWriter(root, "short", max_samples=2, max_bytes=10**9)
    for i in range(2):
        writer.write(make_sample(i))
    publish(root, writer)
    (tmp_path / "commits" / "commit-000001-test.json").write_bytes(b"")  # emptied by a power loss
    manifests, bad = read_manifests(root, "")
    assert [m.shards for m in manifests] == [{"short": [stem(0)]}] and bad == ["commit-000001-test.json"]
    assert committed_shards(root, "short") == [stem(0)]


def test_a_rerun_never_writes_a_committed_sample_again(tmp_path, make_sample):
    root = Storage(tmp_path)
    first = ShardWriter(root, "short", max_samples=2, max_bytes=10**9)
    for i in range(4):
        first.write(make_sample(i))
    publish(root, first)
    keys = recover(root, "short", {stem(0), stem(2)})
    second = ShardWriter(root, "short", max_samples=2, max_bytes=10**9, committed_keys=keys, run_id="rerun")
    written = [second.write(make_sample(i)) for i in range(6)]
    publish(root, second, 1)
    assert written[:4] == [None] * 4
    keys = [k for n in committed_shards(root, "short") for k in pq.read_table(tmp_path / "short" / f"{n}.parquet")["key"].to_pylist()]
    assert sorted(keys) == [f"vid_short_{i:04d}" for i in range(6)]
    assert committed_shards(root, "short") == sorted([stem(0), stem(2), shard_stem("rerun", "vid_short_0004")])
