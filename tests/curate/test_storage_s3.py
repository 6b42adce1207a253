"""Storage, shards and the ledger on a real S3-compatible server (moto on loopback).

On an object store the commit is "an object appears whole when its upload completes", so
these check what that must give: nothing partial or temporary ever lands in the bucket,
a shard is committed exactly when a commit manifest names it, a rerun after a crash writes
every sample exactly once, and a second writer is refused.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest
from s3_server import SECRET_KEY, S3Server, moto_s3
from webdataset.tariterators import group_by_keys, tar_file_expander

from curate.config import load_config
from curate.lease import OutputLocked
from curate.ledger import Ledger, VideoStatus
from curate.records import Sample
from curate.sink import DatasetWriter
from curate.sources import SourceRow
from vidla_format.commits import committed_shards
from vidla_format.storage import Storage


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, named after it."""
    return s3.make_bucket(request.node.name.replace("_", "-")[:60].strip("-"))


def sample(i: int, size: int = 3000, video_id: str = "vid") -> Sample:
    key = f"{video_id}_short_{i:04d}"
    record = {"key": key, "video_id": video_id, "scale": "short", "index": i, "start": 0.0, "end": 5.0,
              "duration": 5.0, "subtitle": f"text {i}", "caption": None, "summary": None, "split": "train"}
    return Sample(key, "short", record, bytes([i % 256]) * size, [b"\xff\xd8jpeg", b"\xff\xd8jpeg"])


def test_a_write_lands_whole_and_a_failed_write_leaves_nothing(s3, bucket):
    storage = Storage(s3.uri(bucket, "ds"))
    with storage.open_write("big.bin") as f:
        f.write(b"x" * (17 * 1024**2))  # past the in-memory spool: spills to an anonymous file
        assert s3.keys(bucket) == [], "nothing is visible before the block completes"
    with pytest.raises(RuntimeError), storage.open_write("broken.parquet") as f:
        f.write(b"half a file")
        raise RuntimeError("the writer died")
    assert s3.keys(bucket) == ["ds/big.bin"] and storage.size("big.bin") == 17 * 1024**2
    assert s3.pending_uploads(bucket) == []


def test_mkdir_creates_no_marker_objects_and_a_missing_bucket_is_an_error(s3, bucket):
    Storage(s3.uri(bucket, "ds")).mkdir("shards/short")
    assert s3.keys(bucket) == []
    with pytest.raises(FileNotFoundError, match="no-such-bucket") as error:
        Storage(s3.uri("no-such-bucket", "ds")).mkdir()
    assert SECRET_KEY not in str(error.value), "credentials in a URI never reach a message"


def read_back(storage: Storage, rel_dir: str) -> list[str]:
    """Keys of the committed shards, read with webdataset's tar expander from S3 input streams."""
    streams = (
        {"url": f"{stem}.tar", "stream": storage.fs.open_input_stream(storage.path(f"{rel_dir}/{stem}.tar"))}
        for stem in committed_shards(storage, rel_dir)
    )
    return [s["__key__"] for s in group_by_keys(tar_file_expander(streams))]


def test_shards_commit_on_their_manifest_and_a_rerun_after_a_crash_writes_each_sample_once(s3, bucket):
    storage = Storage(s3.uri(bucket, "ds"))
    config = load_config(None, ["shards.max_samples=2"])
    first = DatasetWriter(storage, config)
    first.write(VideoStatus("http://v/0", "vid", clips_short=2), [sample(0), sample(1)])  # committed
    (committed,) = committed_shards(storage, "shards/short")
    for i in range(2, 5):  # one shard closed, one open: the run "crashes" before their commit
        first.writers["short"].write(sample(i))
    (orphan,) = first.writers["short"].closed
    s3.client().delete_object(Bucket=bucket, Key="ds/.lock")  # the dead run's lease, deleted by hand
    assert committed_shards(storage, "shards/short") == [committed]

    rerun = DatasetWriter(Storage(s3.uri(bucket, "ds")), config)
    assert rerun.todo([SourceRow("http://v/0", "vid", "pending", None, None, 0)]) == []
    rerun.write(VideoStatus("http://v/1", "vid1", clips_short=3), [sample(i, video_id="vid1") for i in range(3)])
    rerun.close(1.0)

    stems = committed_shards(storage, "shards/short")
    assert committed in stems and orphan not in stems and len(stems) == 3
    files = [k for k in s3.keys(bucket) if k.startswith("ds/shards/short/") and not k.endswith("/")]
    assert files == sorted(f"ds/shards/short/{stem}.{ext}" for stem in stems for ext in ("parquet", "tar")), "the orphan is gone"
    assert sorted(read_back(storage, "shards/short")) == sorted(
        [f"vid_short_{i:04d}" for i in range(2)] + [f"vid1_short_{i:04d}" for i in range(3)])
    (second,) = [s for s in stems if s != committed and storage.read_parquet(f"shards/short/{s}.parquet").num_rows == 2]
    index = storage.read_parquet(f"shards/short/{second}.parquet").to_pylist()
    with storage.fs.open_input_file(storage.path(f"shards/short/{second}.tar")) as f:
        f.seek(index[1]["offset"])
        member = tarfile.TarInfo.frombuf(f.read(tarfile.BLOCKSIZE), "utf-8", "surrogateescape")
    assert member.name == f"{index[1]['key']}.json", "index offsets allow random access on S3"


def test_a_second_writer_on_the_bucket_is_refused_while_the_first_holds_the_lease(s3, bucket):
    config = load_config(None, [])
    first = DatasetWriter(Storage(s3.uri(bucket, "ds")), config)
    with pytest.raises(OutputLocked, match="is being written by run"):
        DatasetWriter(Storage(s3.uri(bucket, "ds")), config)
    first.close(0.0)
    assert "ds/.lock" not in s3.keys(bucket)
    DatasetWriter(Storage(s3.uri(bucket, "ds")), config).close(0.0)


def test_the_ledger_survives_a_crash_and_consolidates_in_the_bucket(s3, bucket):
    Ledger(Storage(s3.uri(bucket, "ds"))).commit([VideoStatus("http://a/1", "one", clips_short=2)])
    ledger = Ledger(Storage(s3.uri(bucket, "ds")))  # no consolidate: as after a crash
    assert ledger.done("one")
    ledger.commit([VideoStatus("http://a/2", "two", "failed", "transient", "timeout")])
    ledger.consolidate()
    files = [k for k in s3.keys(bucket) if not k.endswith("/")]
    assert files == ["ds/videos.parquet"], "the parts are folded in and deleted"
    body = s3.client().get_object(Bucket=bucket, Key="ds/videos.parquet")["Body"].read()
    rows = pq.read_table(io.BytesIO(body)).to_pylist()
    assert [(r["url"], r["status"]) for r in rows] == [("http://a/1", "ok"), ("http://a/2", "failed")]
    assert not Ledger(Storage(s3.uri(bucket, "ds"))).done("two"), "transient failures are retried"
