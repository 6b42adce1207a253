"""The write stage's logic alone: a batch of videos -> bounded shards on the output, names only back.

What the Ray write stage relies on: names are a function of the run and the samples (a retried
batch rewrites the same files, two batches never share one), shards stay within their bounds,
nothing written reaches readers before the driver's manifest names it, and the driver never
commits a video twice.
"""

from __future__ import annotations

import pickle

import pyarrow.parquet as pq
from dataset_checks import committed_clips, shard_keys

from curate.config import ShardsConfig, load_config
from curate.ledger import VideoStatus
from curate.records import Sample
from curate.shard_batch import storage_env, write_videos
from curate.sink import DatasetWriter
from curate.sources import SourceRow
from vidla_format.commits import committed_shards, read_manifests
from vidla_format.storage import Storage

CLIPS = {"short": 5, "medium": 2, "long": 1}


def video(video_id: str, clip_bytes: int = 1000) -> tuple[VideoStatus, list[Sample]]:
    """A finished video as the clip stage hands it on: its status and its samples with bytes."""
    samples = []
    for scale, count in CLIPS.items():
        for i in range(count):
            key = f"{video_id}_{scale}_{i:04d}"
            record = {"key": key, "video_id": video_id, "url": f"http://x/{video_id}", "scale": scale, "index": i,
                      "start": float(i), "end": i + 1.0, "duration": 1.0, "split": "train"}
            samples.append(Sample(key, scale, record, bytes([i]) * clip_bytes, [b"\xff\xd8jpeg"]))
    status = VideoStatus(f"http://x/{video_id}", video_id, **{f"clips_{s}": n for s, n in CLIPS.items()})
    return status, samples


def files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_retried_batch_rewrites_the_same_shards_and_another_batch_never_shares_a_name(tmp_path):
    storage, limits = Storage(str(tmp_path)), ShardsConfig(max_samples=3)
    first = write_videos(storage, limits, "run1", [video("b"), video("a")])
    written = files(tmp_path)
    retry = write_videos(storage, limits, "run1", [video("a"), video("b")])  # same videos, any order
    assert retry.shards == first.shards and files(tmp_path) == written, "a retry adds no file and changes none"
    other = write_videos(storage, limits, "run1", [video("c")])
    assert not {s for v in other.shards.values() for s in v} & {s for v in first.shards.values() for s in v}
    again = write_videos(storage, limits, "run2", [video("a"), video("b")])
    assert again.shards["short"] != first.shards["short"], "another run never overwrites this run's shards"


def test_shards_are_bounded_by_samples_and_bytes_and_hold_every_sample_once(tmp_path):
    storage = Storage(str(tmp_path))
    batch = write_videos(storage, ShardsConfig(max_samples=3), "run", [video("a"), video("b")])
    assert batch.samples == {"short": 10, "medium": 4, "long": 2}
    for scale, stems in batch.shards.items():
        sizes = [pq.read_metadata(tmp_path / "shards" / scale / f"{s}.parquet").num_rows for s in stems]
        assert max(sizes) <= 3 and sum(sizes) == batch.samples[scale]
    by_bytes = write_videos(storage, ShardsConfig(max_samples=1000, max_bytes=5000), "run", [video("c", 2000)])
    for scale, stems in by_bytes.shards.items():
        for s in stems:
            rows = pq.read_table(tmp_path / "shards" / scale / f"{s}.parquet").to_pylist()
            assert sum(r["sample_bytes"] for r in rows[:-1]) < 5000, "a shard closes once it holds max_bytes"


def test_the_batch_handed_to_the_driver_holds_names_and_rows_not_bytes(tmp_path):
    videos = [video("a", 200_000), video("b", 200_000)]
    batch = write_videos(Storage(str(tmp_path)), ShardsConfig(), "run", videos + [(VideoStatus("http://x/f", "f", "failed"), [])],
                         writer={"node": "n1", "host": "h", "pid": 1})
    assert batch.mp4_bytes == 2 * 8 * 200_000 and batch.shard_bytes > batch.mp4_bytes
    assert len(pickle.dumps(batch)) < 5000, "no clip bytes travel back"
    assert batch.video_ids == ["a", "b"] and [s.video_id for s in batch.unwritten] == ["f"]


def test_only_shards_a_manifest_names_are_visible_and_a_rerun_removes_the_rest(tmp_path):
    out = tmp_path / "out"
    sink = DatasetWriter(str(out), load_config(None, ["shards.max_samples=3"]))
    committed = write_videos(sink.storage, sink.config.shards, sink.run_id, [video("a")], {"node": "n1"})
    lost = write_videos(sink.storage, sink.config.shards, sink.run_id, [video("b")])  # a task whose row never arrived
    assert sink.publish(committed)
    assert committed_shards(sink.storage, "shards/short") == sorted(committed.shards["short"])
    assert set(committed_clips(sink.storage)) == {"a"}
    indexed, in_tars = shard_keys(sink.storage)
    assert set(in_tars) - set(indexed) == {f"b_{s}_{i:04d}" for s, n in CLIPS.items() for i in range(n)}
    sink.release()  # the driver dies here
    rerun = DatasetWriter(str(out), load_config(None, ["shards.max_samples=3"]))
    assert [r.video_id for r in rerun.todo([SourceRow("http://x/a", "a", "pending", None, None, 0),
                                            SourceRow("http://x/b", "b", "pending", None, None, 1)])] == ["b"]
    indexed, in_tars = shard_keys(rerun.storage)
    assert indexed == in_tars, "b's uncommitted shards are gone"
    assert not rerun.publish(lost), "shards of a dead task are never committed late"
    rerun.close(1.0)
    (manifest,) = read_manifests(rerun.storage, "shards")[0]
    assert manifest.writer == {"node": "n1"} and [v["video_id"] for v in manifest.videos] == ["a"]


def test_a_batch_holding_a_committed_video_is_refused_and_its_shards_deleted(tmp_path):
    out = tmp_path / "out"
    sink = DatasetWriter(str(out), load_config(None, []))
    assert sink.publish(write_videos(sink.storage, sink.config.shards, sink.run_id, [video("a")]))
    twice = write_videos(sink.storage, sink.config.shards, sink.run_id, [video("a"), video("b")])
    assert not sink.publish(twice)
    sink.close(1.0)
    indexed, in_tars = shard_keys(Storage(str(out)))
    assert indexed == in_tars and len(indexed) == len(set(indexed)) == sum(CLIPS.values())
    ledger = pq.read_table(out / "videos.parquet").to_pylist()
    assert [r["video_id"] for r in ledger] == ["a"], "b stays unrecorded, so a rerun does it"


def test_the_writers_get_the_drivers_object_storage_variables_only():
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "HOME": "/root", "RAY_ADDRESS": "x"}
    assert storage_env(env) == {"AWS_ACCESS_KEY_ID": "k", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
