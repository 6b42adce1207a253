"""The WebDataset loader on shards written in the documented format (see conftest.py)."""

from __future__ import annotations

import json
from collections import Counter
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from synthetic_shards import SyntheticClip, write_shards
from webdataset import TarWriter

from vidla.config import DataConfig
from vidla.data import ClipDataset, build_loader
from vidla.text_tower import ByteTokenizer
from vidla_format.commits import committed_shards
from vidla_format.storage import Storage

TOKENIZER = ByteTokenizer(48)


def dataset(shards: Path, train: bool = True, start_batch: int = 0, **data: object) -> ClipDataset:
    values = {"shards": str(shards), "batch_size": 4, "num_workers": 0, "shuffle_buffer": 8, **data}
    return ClipDataset(
        DataConfig.model_validate(values),
        num_frames=4,
        image_size=32,
        tokenizer=TOKENIZER,
        train=train,
        seed=3,
        start_batch=start_batch,
    )


def take(ds: ClipDataset, batches: int) -> list[dict]:
    return list(islice(iter(ds), batches))


def test_only_committed_shards_with_samples_of_the_split_are_read(shards: Path) -> None:
    assert committed_shards(Storage(shards), "short") == ["shard-000000", "shard-000001", "shard-000002"]  # not shard-000009
    sources = {s.scale: [Path(u).name for u in s.shards] for s in dataset(shards).sources}
    assert sources == {
        "short": ["shard-000000.tar", "shard-000001.tar"],  # shard 2 holds only a val clip
        "medium": ["shard-000000.tar"],
        "long": ["shard-000000.tar"],
    }


def test_training_batches_hold_train_clips_of_every_scale_with_their_texts(shards: Path) -> None:
    batches = take(dataset(shards), 12)
    for b in batches:
        assert b["video"].shape == (4, 4, 32, 32, 3) and b["video"].dtype == torch.uint8
        assert b["text_ids"].shape[0] == 8 and b["text_mask"].shape == b["text_ids"].shape
    keys = [k for b in batches for k in b["keys"]]
    scales = Counter(s for b in batches for s in b["scales"])
    assert set(scales) == {"short", "medium", "long"}
    assert not any(k.startswith(("synth00-short008", "synth00-long003")) for k in keys)  # val / test clips
    for b in batches:
        for i, scale in enumerate(b["scales"]):
            # medium clips have no caption; long clips no subtitle; short and medium have the subtitle side
            assert bool(b["caption_valid"][i]) == (scale != "medium")
            assert bool(b["subtitle_valid"][i]) == (scale != "long")


def test_subtitle_side_prefers_the_summary(shards: Path) -> None:
    b = next(iter(dataset(shards, scale_weights={"medium": 1.0})))
    first = bytes(int(t) - 1 for t in b["text_ids"][0] if 0 < t < 257).decode()
    assert first.startswith("medium summary")


def test_scale_weights_mix_the_scales(shards: Path) -> None:
    only_long = take(dataset(shards, scale_weights={"short": 0, "long": 1}), 3)
    assert {s for b in only_long for s in b["scales"]} == {"long"}
    mixed = Counter(
        s for b in take(dataset(shards, scale_weights={"short": 3, "medium": 1}), 40) for s in b["scales"]
    )
    assert set(mixed) == {"short", "medium"}
    assert 0.65 < mixed["short"] / 160 < 0.85


def test_clips_with_too_few_stored_frames_are_decoded_from_the_mp4(shards: Path) -> None:
    """Medium clips store 2 JPEGs for 4 frames: the mp4 path gives 4 distinct moments, brightening in time."""
    evaluation = dataset(shards, train=False, split="train", scale_weights={"medium": 1.0})
    clips = [c for c in evaluation._eval_samples(0, 1) if c["__meta__"]["scale"] == "medium"]
    assert clips and all("mp4" in c and not any(k.endswith(".jpg") for k in c) for c in clips)
    b = next(iter(dataset(shards, train=False, split="train", frame_source="mp4")))
    means = b["video"].float().mean(dim=(2, 3, 4))  # (B, T)
    assert (means[:, 1:] > means[:, :-1] + 10).all()  # 4 different moments, in order
    jpeg = next(iter(dataset(shards, train=False, split="train", frame_source="jpeg")))
    assert jpeg["keys"] == b["keys"]
    # Same moments either way, to within one source frame (stored frames are middles of K segments, the
    # mp4 times middles of T): brightness rises by at most 150 / (2 s * 8 fps) = 9.4 per frame.
    jpeg_means = jpeg["video"].float().mean(dim=(2, 3, 4))
    assert (jpeg_means - means).abs().max() < 9.4 + 3.0


def test_evaluation_reads_each_clip_of_the_split_once_deterministically(shards: Path) -> None:
    first = list(dataset(shards, train=False, split="val"))
    again = list(dataset(shards, train=False, split="val"))
    assert [k for b in first for k in b["keys"]] == ["synth00-short008_short_0008"]
    assert torch.equal(first[0]["video"], again[0]["video"])


def test_stream_is_deterministic_and_resumes_at_any_batch(shards: Path) -> None:
    full = take(dataset(shards), 7)
    assert [b["keys"] for b in take(dataset(shards), 7)] == [b["keys"] for b in full]
    resumed = dataset(shards)
    resumed.start_batch = 4
    for a, b in zip(full[4:], take(resumed, 3), strict=True):
        assert a["keys"] == b["keys"]
        assert torch.equal(a["video"], b["video"])


def test_workers_and_ranks_read_different_streams_and_resume_exactly(shards: Path) -> None:
    cfg = DataConfig.model_validate(
        {"shards": str(shards), "batch_size": 4, "num_workers": 2, "shuffle_buffer": 8, "prefetch_factor": 1}
    )

    def loader(start: int = 0, rank: int = 0) -> list[dict]:
        dl = build_loader(
            cfg,
            num_frames=4,
            image_size=32,
            tokenizer=TOKENIZER,
            seed=3,
            rank=rank,
            world_size=2,
            start_batch=start,
        )
        return list(islice(iter(dl), 6))

    full = loader()
    assert full[0]["keys"] != full[1]["keys"]  # worker 0 and worker 1
    assert [b["keys"] for b in loader(rank=1)] != [b["keys"] for b in full]  # rank 1 reads its own stream
    for a, b in zip(full[3:], loader(start=3)[:3], strict=True):
        assert a["keys"] == b["keys"] and torch.equal(a["video"], b["video"])


def test_reseed_resume_starts_a_fresh_stream(shards: Path) -> None:
    full = take(dataset(shards), 6)
    reseeded = dataset(shards, start_batch=3, resume="reseed")
    assert [b["keys"] for b in take(reseeded, 3)] != [b["keys"] for b in full[3:]]


def test_broken_samples_are_skipped_and_the_stream_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "shards"
    write_shards(root, [SyntheticClip(stored_frames=4) for _ in range(3)], size=(64, 48), frame_short_side=48)
    broken = root / "short" / "shard-000001.tar"
    with TarWriter(str(broken), encoder=False) as writer:
        writer.write({"__key__": "bad-json_short_0000", "json": b"{not json", "f00.jpg": b"x"})
        record = json.dumps({"split": "train", "duration": 2.0, "scale": "short"}).encode()
        jpegs = {f"f{k:02d}.jpg": b"not a jpeg" for k in range(4)}
        writer.write({"__key__": "bad-jpeg_short_0000", "json": record, **jpegs})
    pq.write_table(
        pa.table({"key": ["bad-json_short_0000", "bad-jpeg_short_0000"], "split": ["train", "train"]}),
        broken.with_suffix(".parquet"),
    )
    keys = [k for b in take(dataset(root, shuffle_buffer=2), 6) for k in b["keys"]]
    assert len(keys) == 24 and not any(k.startswith("bad-") for k in keys)
