"""The retrieval benchmark loaders, their evaluation videos, and fine-tuning on them through the trainer.

Annotation fixtures in each benchmark's real format live in ``tests/fixtures/benchmarks/``;
the videos (and MSVD's pickle, a binary) are written once per session. Every video's
brightness rises linearly with time (``synthetic_shards.clip_frames``: mean ``40 + 150 t / d``),
so a test can tell which moments a loader decoded.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import typing
from collections import OrderedDict
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from synthetic_shards import FFMPEG, clip_frames, encode_mp4

from vidla.checkpoint import list_checkpoints, load_checkpoint
from vidla.config import BENCHMARK_NAMES, DataConfig, load_config
from vidla.data import Clip, ClipDataset, worker_loader
from vidla.text_tower import ByteTokenizer
from vidla.vidla import build_model
from vidla_eval.benchmarks import (
    BENCHMARKS,
    DIDEMO_ANNOTATED_S,
    BenchmarkFormatError,
    BenchmarkTrainDataset,
    BenchmarkVideo,
    BenchmarkVideos,
    RetrievalSplit,
    load_benchmark,
    load_msvd_captions,
)
from vidla_train.train import train

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "benchmarks"
CONFIGS = ROOT / "configs" / "train"
DEMO = CONFIGS / "demo.yaml"
TOKENIZER = ByteTokenizer(64)
FPS = 8.0
SIZE = (40, 32)

# MSVD's raw-captions.pkl (CLIP4Clip): video -> list of token lists. Written as a pickle at test time.
MSVD_CAPTIONS: dict[str, list[list[str]]] = {
    "vid_a_0_4": [["a", "man", "plays", "a", "guitar"], ["someone", "plays", "music"]],
    "vid_b_10_14": [["a", "cat", "eats"]],
    "vid_c_5_9": [["a", "woman", "slices", "an", "onion"], ["a", "woman", "cuts", "vegetables"]],
    "vid_d_1_5": [["a", "dog", "swims"]],
    "-4wsuPCjDBc_5_15": [["a", "squirrel", "eats", "a", "nut"], ["an", "animal", "eats"], ["a", "squirrel"]],
    "vid_e_20_24": [["a", "plane", "lands"], ["an", "airplane", "touches", "down"]],
}

# (file under the benchmark root, seconds); the rest of each benchmark's videos last 2 s.
LONG_VIDEOS = {
    "didemo": {"videos/54470138@N00_2418599599_e7a3f0f5ce.mp4": 40.0},  # longer than DiDeMo's 30 s window
    "activitynet": {"videos/bXdq2zI1Ms0.mp4": 12.0},  # annotated duration 6 s
}
VIDEO_FILES = {
    "msrvtt": [f"videos/all/{v}.mp4" for v in ("video0", "video1", "video2", "video3", "video7579", "video7725", "video9258")],
    "didemo": [
        "videos/10015567@N08_3655084291_d8b58466fa.mp4",  # annotated as .mov
        "videos/10020533@N04_4137633315_0b0b8ea8e3.avi",
        "videos/54470138@N00_2418599599_e7a3f0f5ce.mp4",
        "videos/88473626@N00_5294355417_f4b9e2a1d3.mp4",  # annotated as .3gp
        "videos/93412388@N00_4528893374_1c5e78fa21.mp4",
    ],
    "activitynet": [
        "videos/v_QOlSCBRmfWY.mp4", "videos/ehGHCYKzyZ8.mp4", "videos/train/v_nwznKOuZM7w.mp4",
        "videos/val/uqiMw7tQ1Cc.mp4", "videos/bXdq2zI1Ms0.mp4", "videos/v_FsS_NCZEfaI.mp4",
    ],
    "msvd": [f"YouTubeClips/{v}.avi" for v in MSVD_CAPTIONS],
    "vatex": [
        f"videos/{v}.mp4"
        for v in (
            "Ptf_2VRj-V0_000122_000132", "wG3gbTz9mVM_000013_000023", "kI2sPN-K9UE_000040_000050",
            "G9zN5TTuGO4_000179_000189", "_2zXAtOKXm0_000004_000014", "lMwRmvsiGHU_000011_000021",
            "Ah6QNNcDnME_000300_000310",
        )
    ],
}  # fmt: skip


def encode_video(suffix: str, duration: float, fps: float) -> bytes:
    """A small video whose brightness rises with time: H.264 mp4, or MPEG-4 Part 2 in AVI for ``.avi``."""
    frames = clip_frames(duration, fps, SIZE, phase=0.0, seed=7)
    if suffix != ".avi":
        return encode_mp4(frames, fps)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.avi"
        cmd = [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{SIZE[0]}x{SIZE[1]}", "-r", str(fps), "-i", "-", "-c:v", "mpeg4", "-q:v", "2", str(out),
        ]  # fmt: skip
        subprocess.run(cmd, input=frames.tobytes(), check=True)
        return out.read_bytes()


@pytest.fixture(scope="session")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each benchmark's root: the fixture annotations, MSVD's pickle and every video of every split.

    Videos of the same length and container share one encoding (ffmpeg start-up dominates the
    fixture's time); the tests tell videos apart by name, and moments by brightness.
    """
    base = tmp_path_factory.mktemp("benchmarks")
    encoded: dict[tuple[str, float], bytes] = {}
    out = {}
    for name, files in VIDEO_FILES.items():
        root = base / name
        shutil.copytree(FIXTURES / name, root)
        for rel in files:
            duration = LONG_VIDEOS.get(name, {}).get(rel, 2.0)
            key = (Path(rel).suffix, duration)
            if key not in encoded:
                encoded[key] = encode_video(key[0], duration, fps=2.0 if duration > 20 else FPS)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(encoded[key])
        out[name] = root
    (out["msvd"] / "raw-captions.pkl").write_bytes(pickle.dumps(MSVD_CAPTIONS, protocol=4))
    return out


def copy_root(roots: dict[str, Path], name: str, dest: Path) -> Path:
    """A private copy of a benchmark root that a test may damage."""
    return Path(shutil.copytree(roots[name], dest / name))


def brightness(frames: torch.Tensor) -> np.ndarray:
    """Mean level of each ``(T, S, S, 3)`` frame."""
    return frames.float().mean(dim=(1, 2, 3)).numpy()


def level(t: float, duration: float) -> float:
    """The fixture videos' mean brightness at time ``t``."""
    return 40 + 150 * t / duration


# -- the loaders ------------------------------------------------------------------------------


def test_msrvtt_1ka_test_is_the_jsfusion_csv(roots: dict[str, Path]) -> None:
    split = load_benchmark("msrvtt", roots["msrvtt"])
    assert split.name == "msrvtt/test"
    assert [v.video_id for v in split.videos] == ["video7579", "video7725", "video9258"]
    assert split.texts[0] == "a girl wearing red top and black trouser is putting a sweater on a dog"
    # The CSV's sentence, not the video's other caption in MSRVTT_data.json.
    assert split.texts[2] == "a person is using a phone"
    assert split.text_to_video == [0, 1, 2]
    assert all(v.path == roots["msrvtt"] / "videos" / "all" / f"{v.video_id}.mp4" for v in split.videos)
    assert all(v.start is None and v.end is None for v in split.videos)
    assert split.skipped_videos == ()


def test_msrvtt_train_has_every_caption_of_the_9k_videos(roots: dict[str, Path]) -> None:
    split = load_benchmark("msrvtt", roots["msrvtt"], "train")
    assert [v.video_id for v in split.videos] == ["video0", "video1", "video2", "video3"]
    assert split.captions()[0] == [
        "a car is shown",
        "a man is talking about a car",
        "a red car drives on a road",
    ]
    assert split.captions()[3] == ["someone cooks pasta in a pan"]  # whitespace normalised
    assert split.text_to_video == [0, 0, 0, 1, 1, 2, 3]


def test_didemo_paragraph_joins_descriptions_in_time_order(roots: dict[str, Path]) -> None:
    train = load_benchmark("didemo", roots["didemo"], "train")
    assert [v.video_id for v in train.videos] == [
        "10015567@N08_3655084291_d8b58466fa.mov",
        "10020533@N04_4137633315_0b0b8ea8e3.avi",
    ]
    assert train.texts == [
        "a dog runs into view the dog stops the camera pans to the right",
        "people wave at the camera",
    ]
    assert train.text_to_video == [0, 1]
    assert train.videos[0].path.name == "10015567@N08_3655084291_d8b58466fa.mp4"  # any extension of the stem
    assert (train.videos[0].start, train.videos[0].end) == (0.0, DIDEMO_ANNOTATED_S)
    test = load_benchmark("didemo", roots["didemo"])
    assert test.texts[0] == "Waves hit the shore. The camera zooms in on the boat. A boat sails past."
    assert len(test.videos) == len(test.texts) == 3 and test.text_to_video == [0, 1, 2]
    assert [len(s.videos) for s in (load_benchmark("didemo", roots["didemo"], "val"),)] == [1]


def test_activitynet_paragraphs_follow_the_timestamps_and_test_is_val_1(roots: dict[str, Path]) -> None:
    test = load_benchmark("activitynet", roots["activitynet"])
    assert test.name == "activitynet/test"
    assert [v.video_id for v in test.videos] == ["v_uqiMw7tQ1Cc", "v_bXdq2zI1Ms0", "v_FsS_NCZEfaI"]
    assert test.texts[:2] == [
        "A man walks out onto a wooden dock. Then he jumps into the lake.",
        "A woman paints a fence. A dog watches her. She steps back to look at it.",
    ]
    assert test.videos[0].path.name == "uqiMw7tQ1Cc.mp4"  # the bare id, found under videos/val/
    assert [(v.start, v.end) for v in test.videos] == [(0.0, 8.0), (0.0, 6.0), (0.0, 4.0)]
    assert load_benchmark("activitynet", roots["activitynet"], "val_1").texts == test.texts
    train = load_benchmark("activitynet", roots["activitynet"], "train")
    assert len(train.videos) == 3 and train.texts[0].startswith("A young woman is seen standing")
    assert "  " not in train.texts[0]


def test_msvd_groups_its_many_captions_per_video(roots: dict[str, Path]) -> None:
    test = load_benchmark("msvd", roots["msvd"])
    assert [v.video_id for v in test.videos] == ["-4wsuPCjDBc_5_15", "vid_e_20_24"]
    assert test.texts == [
        "a squirrel eats a nut",
        "an animal eats",
        "a squirrel",
        "a plane lands",
        "an airplane touches down",
    ]
    assert test.text_to_video == [0, 0, 0, 1, 1]
    assert test.videos[0].path == roots["msvd"] / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi"
    assert [len(load_benchmark("msvd", roots["msvd"], s).videos) for s in ("train", "val")] == [3, 1]


def test_vatex_test_is_the_listed_half_of_validation(roots: dict[str, Path], tmp_path: Path) -> None:
    test = load_benchmark("vatex", roots["vatex"])
    assert [v.video_id for v in test.videos] == ["lMwRmvsiGHU_000011_000021", "_2zXAtOKXm0_000004_000014"]
    assert len(test.texts) == 20 and test.text_to_video == [0] * 10 + [1] * 10
    assert test.texts[0] == "A cat jumps onto a table, caption number 0."
    assert len(load_benchmark("vatex", roots["vatex"], "val-full").videos) == 4
    assert len(load_benchmark("vatex", roots["vatex"], "train").texts) == 30
    root = copy_root(roots, "vatex", tmp_path)
    (root / "test_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_list.txt"):
        load_benchmark("vatex", root)


class _Evil:
    """Unpickles into a call of ``os.mkdir``: what a malicious captions file could do."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self) -> tuple:
        return os.mkdir, (self.target,)


def test_a_malicious_msvd_pickle_is_refused_unexecuted(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "raw-captions.pkl"
    path.write_bytes(pickle.dumps({"vid": [["a", "cat"]], "x": _Evil(target)}))
    with pytest.raises(BenchmarkFormatError, match=r"raw-captions\.pkl.*mkdir"):
        load_msvd_captions(path)
    assert not target.exists()
    path.write_bytes(pickle.dumps(OrderedDict(vid=[["a", "cat"]])))
    with pytest.raises(BenchmarkFormatError, match="OrderedDict"):
        load_msvd_captions(path)
    path.write_bytes(pickle.dumps({"vid": "a cat"}))  # allowed types, wrong shape
    with pytest.raises(BenchmarkFormatError, match="non-empty list"):
        load_msvd_captions(path)


def test_missing_videos_are_an_error_naming_them_unless_skipped(
    roots: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_root(roots, "msrvtt", tmp_path)
    (root / "videos" / "all" / "video7579.mp4").unlink()
    (root / "videos" / "all" / "video9258.mp4").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"msrvtt/test: 2 of 3 videos not found.*video7579.*video9258"
    ):
        load_benchmark("msrvtt", root)
    split = load_benchmark("msrvtt", root, missing="skip")
    assert [v.video_id for v in split.videos] == ["video7725"] and split.text_to_video == [0]
    assert split.skipped_videos == ("video7579", "video9258")


def _drop_csv_column(root: Path) -> Path:
    path = root / "MSRVTT_JSFUSION_test.csv"
    path.write_text(",key,vid_key,video_id\n0,ret0,msr7579,video7579\n")
    return path


def _truncate_json(root: Path) -> Path:
    path = root / "test_data.json"
    path.write_text(path.read_text()[:100])
    return path


def _untimed_moment(root: Path) -> Path:
    path = root / "test_data.json"
    path.write_text(json.dumps([{"video": "x.mp4", "description": "a moment"}]))
    return path


def _unpaired_timestamps(root: Path) -> Path:
    path = root / "val_1.json"
    path.write_text(json.dumps({"v_x": {"duration": 3.0, "timestamps": [[0, 1]], "sentences": ["a", "b"]}}))
    return path


def _no_captions(root: Path) -> Path:
    path = root / "vatex_validation_v1.0.json"
    path.write_text(json.dumps([{"videoID": "lMwRmvsiGHU_000011_000021"}]))
    return path


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("msrvtt", _drop_csv_column, "missing columns"),
        ("didemo", _truncate_json, "not valid JSON"),
        ("didemo", _untimed_moment, "'times'"),
        ("activitynet", _unpaired_timestamps, "one \\[start, end\\] per sentence"),
        ("vatex", _no_captions, "'enCap'"),
    ],
)
def test_malformed_annotations_are_errors_naming_the_file(
    roots: dict[str, Path], tmp_path: Path, name: str, damage: typing.Callable[[Path], Path], message: str
) -> None:
    path = damage(copy_root(roots, name, tmp_path))
    with pytest.raises(BenchmarkFormatError, match=message) as info:
        load_benchmark(name, path.parent)
    assert str(path) in str(info.value)


def test_unknown_names_splits_and_missing_files_are_clear_errors(
    roots: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("kinetics", roots["msrvtt"])
    with pytest.raises(ValueError, match="no split 'val'.*'train', 'train-7k', 'test'"):
        load_benchmark("msrvtt", roots["msrvtt"], "val")
    with pytest.raises(FileNotFoundError, match="MSRVTT_JSFUSION_test.csv"):
        load_benchmark("msrvtt", tmp_path)
    assert set(BENCHMARKS) == set(BENCHMARK_NAMES)
    benchmark_field = DataConfig.model_fields["benchmark"].annotation
    assert set(typing.get_args(typing.get_args(benchmark_field)[0])) == set(BENCHMARK_NAMES)


# -- evaluation frames ------------------------------------------------------------------------


def test_evaluation_frames_are_deterministic_middles_of_the_whole_video(roots: dict[str, Path]) -> None:
    videos = BenchmarkVideos(load_benchmark("msrvtt", roots["msrvtt"]), num_frames=4, image_size=24)
    assert len(videos) == 3
    first = videos[0]
    assert first.shape == (4, 24, 24, 3) and first.dtype == torch.uint8
    assert torch.equal(first, videos[0])
    expected = [level((i + 0.5) * 0.5, 2.0) for i in range(4)]  # 4 segments of 0.5 s
    assert np.abs(brightness(first) - expected).max() < 12


def test_avi_videos_decode(roots: dict[str, Path]) -> None:
    frames = BenchmarkVideos(load_benchmark("msvd", roots["msvd"]), num_frames=3, image_size=16)[1]
    assert frames.shape == (3, 16, 16, 3)
    assert (np.diff(brightness(frames)) > 20).all()


def test_didemo_frames_come_from_the_annotated_30_seconds(roots: dict[str, Path]) -> None:
    split = load_benchmark("didemo", roots["didemo"])
    assert split.videos[0].path.name == "54470138@N00_2418599599_e7a3f0f5ce.mp4"  # 40 s long
    frames = brightness(BenchmarkVideos(split, num_frames=4, image_size=16)[0])
    expected = [level((i + 0.5) * 7.5, 40.0) for i in range(4)]  # middles of 4 x 7.5 s
    assert np.abs(frames - expected).max() < 8
    assert frames.max() < level(DIDEMO_ANNOTATED_S, 40.0)


def test_activitynet_and_explicit_windows_bound_the_frames(roots: dict[str, Path]) -> None:
    split = load_benchmark("activitynet", roots["activitynet"])
    assert split.videos[1].video_id == "v_bXdq2zI1Ms0"  # a 12 s file annotated as 6 s
    frames = brightness(BenchmarkVideos(split, num_frames=4, image_size=16)[1])
    assert np.abs(frames - [level((i + 0.5) * 1.5, 12.0) for i in range(4)]).max() < 8
    window = BenchmarkVideo("v_bXdq2zI1Ms0", split.videos[1].path, start=6.0, end=9.0)
    inside = brightness(BenchmarkVideos(RetrievalSplit("w", [window], ["t"], [0]), 3, 16)[0])
    assert (inside > level(6.0, 12.0) - 4).all() and (inside < level(9.0, 12.0) + 4).all()
    past_end = BenchmarkVideo("x", split.videos[1].path, start=20.0, end=30.0)
    with pytest.raises(RuntimeError, match="outside the video"):
        BenchmarkVideos(RetrievalSplit("w", [past_end], ["t"], [0]), 3, 16)[0]


# -- fine-tuning ------------------------------------------------------------------------------


def finetune_cfg(root: Path, **data: object) -> DataConfig:
    values = {"benchmark": "msrvtt", "benchmark_root": str(root), "batch_size": 2, "num_workers": 0, **data}
    return DataConfig.model_validate(values)


def finetune_set(
    root: Path, start_batch: int = 0, rank: int = 0, world_size: int = 1
) -> BenchmarkTrainDataset:
    return BenchmarkTrainDataset(
        finetune_cfg(root),
        num_frames=3,
        image_size=16,
        tokenizer=TOKENIZER,
        seed=5,
        rank=rank,
        world_size=world_size,
        start_batch=start_batch,
    )


def decode_texts(ids: torch.Tensor) -> list[str]:
    return [bytes(int(t) - 1 for t in row if 0 < t < 257).decode() for row in ids]


def test_finetune_batches_have_the_clip_dataset_format(roots: dict[str, Path]) -> None:
    dataset = finetune_set(roots["msrvtt"])
    batches = list(islice(iter(dataset), 2))
    captions = dict(zip([v.video_id for v in dataset.split.videos], dataset.split.captions(), strict=True))
    for b in batches:
        clips = [
            Clip(frames=b["video"][i], subtitle=None, caption=text, key=key, scale=b["scales"][i])
            for i, (key, text) in enumerate(zip(b["keys"], decode_texts(b["text_ids"][2:]), strict=True))
        ]
        reference = ClipDataset.collate(SimpleNamespace(tokenizer=TOKENIZER), clips)
        assert set(b) == set(reference)
        for key, value in reference.items():
            if isinstance(value, torch.Tensor):
                assert b[key].dtype == value.dtype and torch.equal(b[key], value), key
            else:
                assert b[key] == value, key
        assert b["video"].shape == (2, 3, 16, 16, 3) and not b["subtitle_valid"].any()
        assert all(
            text in captions[key]
            for key, text in zip(b["keys"], decode_texts(b["text_ids"][2:]), strict=True)
        )
    # One epoch (4 videos = 2 batches) shows every video once.
    assert sorted(k for b in batches for k in b["keys"]) == ["video0", "video1", "video2", "video3"]


def test_finetune_ranks_differ_and_a_resume_continues_exactly(roots: dict[str, Path]) -> None:
    full = list(islice(iter(finetune_set(roots["msrvtt"])), 5))
    resumed = list(islice(iter(finetune_set(roots["msrvtt"], start_batch=3)), 2))
    for a, b in zip(full[3:], resumed, strict=True):
        assert (
            a["keys"] == b["keys"]
            and torch.equal(a["video"], b["video"])
            and torch.equal(a["text_ids"], b["text_ids"])
        )
    rank0 = [
        k for b in islice(iter(finetune_set(roots["msrvtt"], rank=0, world_size=2)), 4) for k in b["keys"]
    ]
    rank1 = [
        k for b in islice(iter(finetune_set(roots["msrvtt"], rank=1, world_size=2)), 4) for k in b["keys"]
    ]
    assert rank0 != rank1
    assert sorted(rank0[:2] + rank1[:2]) == ["video0", "video1", "video2", "video3"]  # an epoch, split in two


def test_finetune_workers_resume_exactly(roots: dict[str, Path]) -> None:
    cfg = finetune_cfg(roots["msrvtt"], num_workers=2, prefetch_factor=1)

    def loader(start: int) -> list[dict]:
        dataset = BenchmarkTrainDataset(
            cfg, num_frames=2, image_size=16, tokenizer=TOKENIZER, seed=1, start_batch=start
        )
        dl = worker_loader(dataset, cfg, pin_memory=False)
        return list(islice(iter(dl), 5 - start))

    full, resumed = loader(0), loader(3)
    assert full[0]["keys"] != full[1]["keys"]
    for a, b in zip(full[3:], resumed, strict=True):
        assert a["keys"] == b["keys"] and torch.equal(a["video"], b["video"])


def test_finetune_configs_carry_the_papers_recipe() -> None:
    steps = {"msvd": 440, "msrvtt": 1100, "didemo": 1100, "activitynet": 880, "vatex": 2640}
    for name, count in steps.items():
        cfg = load_config(CONFIGS / f"finetune-{name}-b32.yaml")
        assert cfg.data.benchmark == name and cfg.train.steps == count
        assert (cfg.model.num_frames, cfg.optim.lr, cfg.optim.min_lr, cfg.optim.weight_decay) == (
            32,
            1e-5,
            1e-6,
            0.2,
        )
        assert cfg.data.batch_size * 8 == 128  # per GPU, 8 GPUs
        assert cfg.model.clip == "openai/clip-vit-base-patch32" and cfg.model.init_checkpoint


def test_train_cli_finetunes_on_a_benchmark_from_given_weights(
    roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = [
        f"data.benchmark_root={roots['msrvtt']}", "data.benchmark=msrvtt", "data.batch_size=2",
        "data.num_workers=0", "model.num_frames=2", "train.log_every=1", "optim.warmup_steps=1",
    ]  # fmt: skip
    first = tmp_path / "first"
    command = [sys.executable, "-m", "vidla_train.train", "--config", str(DEMO), "--output", str(first)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [*command, *settings, "train.steps=2"], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    logged = [json.loads(line) for line in (first / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [1, 2] and all(m["loss_caption"] > 0 for m in logged)
    assert all(m["loss_subtitle"] == 0 for m in logged)  # benchmarks have no subtitle side
    init = list_checkpoints(first)[-1][1]
    trained = load_checkpoint(init)["model"]

    # In-process (the CLI is covered above): a nearly zero learning rate keeps the init checkpoint's weights.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # train() leaves the test process's threads alone
    second = tmp_path / "second"
    overrides = [f"train.output_dir={second}", "train.steps=1", "optim.lr=1e-12", "optim.min_lr=0"]
    cfg = load_config(DEMO, [*settings, *overrides, f"model.init_checkpoint={init}"])
    train(cfg)
    weights = load_checkpoint(list_checkpoints(second)[-1][1])["model"]
    assert weights.keys() == trained.keys()
    assert all(torch.allclose(weights[k], trained[k], atol=1e-6) for k in trained)
    torch.manual_seed(cfg.train.seed)  # train() seeds so before building the model
    fresh = build_model(cfg.model).state_dict()  # what the run would have started from without it
    assert not all(torch.allclose(fresh[k], trained[k], atol=1e-6) for k in trained)


def test_eval_retrieval_scores_a_checkpoint_on_the_1ka_test_and_msvd_multi_captions(
    roots: dict[str, Path], tmp_path: Path
) -> None:
    """`vidla_eval.eval_retrieval --benchmark`: one set per benchmark split, every text a query,
    multi-caption videos answered by their best caption, missing videos an error unless skipped."""
    from vidla_eval.eval_retrieval import main as eval_main

    cfg = load_config(DEMO, ["model.num_frames=2"])
    torch.manual_seed(0)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"step": 3, "model": build_model(cfg.model).state_dict(), "config": cfg.model_dump(mode="json")}, ckpt)

    def evaluate(name: str, root: Path, *extra: str) -> dict:
        out = tmp_path / f"eval-{name}-{len(extra)}"
        eval_main(["--checkpoint", str(ckpt), "--benchmark", name, "--benchmark-root", str(root),
                   "--device", "cpu", "--workers", "0", "--output", str(out), *extra])  # fmt: skip
        return json.loads((out / "metrics.json").read_text())

    test = load_benchmark("msrvtt", roots["msrvtt"], "test")
    result = evaluate("msrvtt", roots["msrvtt"])
    scores = result["results"]["msrvtt/test"]
    assert (scores["texts"], scores["videos"]) == (len(test.videos), len(test.videos))  # 1k-A: one text each
    assert scores["plain"]["t2v"]["queries"] == len(test.texts) and "dsl" in scores
    assert result["model"]["step"] == 3 and result["dataset"]["skipped_videos"] == []

    split = load_benchmark("msvd", roots["msvd"], "test")
    result = evaluate("msvd", roots["msvd"], "--frames", "3")
    scores = result["results"]["msvd/test"]
    assert scores["texts"] == len(split.texts) > scores["videos"] == len(split.videos)
    assert scores["plain"]["v2t"]["queries"] == len(split.videos) and result["model"]["num_frames"] == 3

    partial = copy_root(roots, "msrvtt", tmp_path / "partial")
    gone = test.videos[0]
    (partial / gone.path.relative_to(roots["msrvtt"])).unlink()
    with pytest.raises(SystemExit) as stopped:
        evaluate("msrvtt", partial)
    assert stopped.value.code == 2
    result = evaluate("msrvtt", partial, "--missing-videos", "skip")
    assert result["dataset"]["skipped_videos"] == [gone.video_id]
    assert result["results"]["msrvtt/test"]["videos"] == len(test.videos) - 1
