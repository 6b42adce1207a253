"""The loader reads shards from object storage exactly as it reads them from a local directory.

The session's synthetic shards (tests/vidla/conftest.py, with an index-less tar that readers
must ignore) are copied into a bucket of a real S3-compatible server (moto on loopback); the
same config pointed at ``s3://...`` must yield the same shards, the same batches (train and
eval, in the main process and in forked DataLoader workers), and train the model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import torch
from s3_server import S3Server, moto_s3

from vidla.config import DataConfig
from vidla.data import ClipDataset, build_loader
from vidla.text_tower import ByteTokenizer

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ByteTokenizer(48)
BUCKET = "train-shards"


@pytest.fixture(scope="module")
def s3(shards: Path) -> Iterator[S3Server]:
    """The server, with ``s3://train-shards/ds/shards`` holding a copy of the local ``shards``."""
    with moto_s3() as server:
        server.make_bucket(BUCKET)
        pafs.copy_files(str(shards), f"{BUCKET}/ds/shards", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=server.filesystem())
        yield server


def dataset(root: str, train: bool = True) -> ClipDataset:
    cfg = DataConfig.model_validate({"shards": root, "batch_size": 4, "num_workers": 0, "shuffle_buffer": 8})
    return ClipDataset(cfg, num_frames=4, image_size=32, tokenizer=TOKENIZER, train=train, seed=3)


def assert_same_batches(local: list[dict], remote: list[dict]) -> None:
    assert len(local) == len(remote) > 0
    for a, b in zip(local, remote, strict=True):
        assert a["keys"] == b["keys"] and a["scales"] == b["scales"]
        for name in ("video", "text_ids", "text_mask", "subtitle_valid", "caption_valid"):
            assert torch.equal(a[name], b[name]), name


def test_the_bucket_holds_the_copy_including_the_uncommitted_tar(s3):
    assert "ds/shards/short/shard-000009.tar" in s3.keys(BUCKET)


def test_the_same_committed_shards_of_the_split_are_found(shards, s3):
    def found(root: str) -> list[tuple[str, list[str], float]]:
        return [(s.scale, [Path(u).name for u in s.shards], s.weight) for s in dataset(root).sources]

    remote = found(s3.uri(BUCKET, "ds/shards"))
    assert remote == found(str(shards))
    assert ("short", ["shard-000000.tar", "shard-000001.tar"], 2.0) in remote, "not the index-less shard-000009"


def test_training_and_eval_batches_from_s3_equal_the_local_ones(shards, s3):
    uri = s3.uri(BUCKET, "ds/shards")
    assert_same_batches(list(islice(iter(dataset(str(shards))), 8)), list(islice(iter(dataset(uri)), 8)))
    assert_same_batches(list(dataset(str(shards), train=False)), list(dataset(uri, train=False)))


def test_forked_loader_workers_read_the_bucket_like_the_local_directory(shards, s3):
    def batches(root: str) -> list[dict]:
        cfg = DataConfig.model_validate(
            {"shards": root, "batch_size": 4, "num_workers": 2, "shuffle_buffer": 8, "prefetch_factor": 1}
        )
        loader = build_loader(cfg, num_frames=4, image_size=32, tokenizer=TOKENIZER, seed=3)
        return list(islice(iter(loader), 6))

    assert_same_batches(batches(str(shards)), batches(s3.uri(BUCKET, "ds/shards")))


def test_the_trainer_trains_on_shards_in_the_bucket(s3, tmp_path):
    """``--shards s3://...`` with the endpoint and credentials in the AWS variables, as a user runs it."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vidla_train.train", "--config", str(ROOT / "configs" / "train" / "demo.yaml"),
           "--shards", f"s3://{BUCKET}/ds/shards", "--output", str(out), "train.steps=2", "train.log_every=1",
           "train.ckpt_every=2", "data.num_workers=1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "step 2 loss" in done.stdout + done.stderr
    assert list(out.rglob("step-00000002.pt"))
