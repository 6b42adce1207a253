"""vidla_eval.eval_retrieval: a checkpoint evaluated on the test split of multi-scale shards, per scale and text field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from s3_server import moto_s3
from synthetic_shards import SyntheticClip, write_shards

from vidla.checkpoint import save_checkpoint
from vidla.config import load_config
from vidla.vidla import build_model
from vidla_eval.eval_model import load_model, resolve_checkpoint
from vidla_eval.eval_retrieval import (
    EVAL_FORMAT,
    EvalSet,
    ShardEmbeddings,
    evaluate,
    main,
    shard_sets,
)
from vidla_eval.metrics import retrieval_metrics
from vidla_eval.retrieval_plot import recall_curve

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "configs" / "train" / "demo.yaml"


def _test_clips() -> list[SyntheticClip]:
    """Test-split clips at every scale, some without a caption or a subtitle, plus train clips to ignore."""
    short = [SyntheticClip("short", 2.0, 8, "test", f"short subtitle {i}", f"short caption {i}") for i in range(5)]
    short.append(SyntheticClip("short", 2.0, 8, "test", "short subtitle only", None))
    medium = [SyntheticClip("medium", 3.0, 8, "test", None, f"medium caption {i}") for i in range(3)]
    long = [SyntheticClip("long", 4.0, 8, "test", f"long subtitle {i}", f"long caption {i}") for i in range(2)]
    train = [SyntheticClip("short", 2.0, 8, "train", "a train clip", "a train caption") for _ in range(3)]
    return short + medium + long + train


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "shards"
    write_shards(root, _test_clips(), samples_per_shard=3, size=(64, 48), frame_short_side=48)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint in the trainer's layout (``checkpoints/step-*.pt`` with model and config) of the demo model."""
    cfg = load_config(DEMO_CONFIG)
    torch.manual_seed(3)
    model = build_model(cfg.model)
    out = tmp_path_factory.mktemp("train")
    state = {"step": 7, "model": model.state_dict(), "config": cfg.model_dump(mode="json")}
    save_checkpoint(out, 7, state, keep=2)
    return out


def _run(tmp_path: Path, *args: str) -> dict:
    main([*args, "--output", str(tmp_path), "--device", "cpu"])
    return json.loads((tmp_path / "metrics.json").read_text())


def test_a_training_directory_resolves_to_its_newest_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    assert resolve_checkpoint(checkpoint).name == "step-00000007.pt"
    assert resolve_checkpoint(checkpoint / "checkpoints" / "step-00000007.pt").name == "step-00000007.pt"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_checkpoint(tmp_path)


def test_the_loaded_model_embeds_exactly_as_the_saved_one(checkpoint: Path) -> None:
    cfg = load_config(DEMO_CONFIG)
    torch.manual_seed(3)
    saved = build_model(cfg.model).eval()
    loaded = load_model(checkpoint, None, [], None, torch.device("cpu"))
    video = torch.randn(2, cfg.model.num_frames, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(saved.encode_video(video), loaded.model.encode_video(video))
    assert loaded.step == 7 and loaded.config.num_frames == cfg.model.num_frames


def test_each_scale_and_field_is_its_own_set_of_the_test_clips_that_have_that_text(
    shards: Path, checkpoint: Path, tmp_path: Path
) -> None:
    result = _run(tmp_path, "--checkpoint", str(checkpoint), "--shards", str(shards))
    assert result["format"] == EVAL_FORMAT and result["dataset"]["split"] == "test"
    counts = {name: (r["texts"], r["videos"]) for name, r in result["results"].items()}
    assert counts == {
        "short/caption": (5, 5), "short/subtitle": (6, 6),
        "medium/caption": (3, 3), "medium/subtitle": (0, 0),
        "long/caption": (2, 2), "long/subtitle": (2, 2),
        "all/caption": (10, 10), "all/subtitle": (8, 8),
    }  # fmt: skip
    assert result["results"]["medium/subtitle"]["skipped"]
    short = result["results"]["short/caption"]
    assert set(short["plain"]) == {"t2v", "v2t"} and short["dsl"]["temperature"] == pytest.approx(0.01)
    assert short["plain"]["t2v"]["queries"] == 5 and 1 <= short["plain"]["t2v"]["MdR"] <= 5
    png = Image.open(tmp_path / "retrieval.png")
    assert png.format == "PNG" and png.size[0] > 600


def test_results_do_not_depend_on_batching_or_worker_processes(
    shards: Path, checkpoint: Path, tmp_path: Path
) -> None:
    one = _run(tmp_path / "a", "--checkpoint", str(checkpoint), "--shards", str(shards), "--batch-size", "16",
               "--workers", "0")  # fmt: skip
    two = _run(tmp_path / "b", "--checkpoint", str(checkpoint), "--shards", str(shards), "--batch-size", "2",
               "--workers", "2")  # fmt: skip
    assert one["results"] == two["results"]


def test_frames_override_and_zero_shot_initialisation(shards: Path, tmp_path: Path) -> None:
    result = _run(tmp_path, "--config", str(DEMO_CONFIG), "--shards", str(shards), "--frames", "4", "--no-dsl")
    assert result["model"]["step"] is None and "initialisation" in result["model"]["source"]
    assert result["model"]["num_frames"] == 4
    assert "dsl" not in result["results"]["short/caption"]


def test_results_go_to_an_s3_uri_as_objects(
    shards: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with moto_s3() as s3:
        s3.make_bucket("results")
        main(["--checkpoint", str(checkpoint), "--shards", str(shards), "--output", s3.uri("results", "eval/run"),
              "--device", "cpu", "--workers", "0"])  # fmt: skip
        assert s3.keys("results") == ["eval/run/metrics.json", "eval/run/retrieval.png"]
        client = s3.client()
        metrics = json.loads(client.get_object(Bucket="results", Key="eval/run/metrics.json")["Body"].read())
        png = client.get_object(Bucket="results", Key="eval/run/retrieval.png")["Body"].read()
    assert metrics["format"] == EVAL_FORMAT and metrics["results"]["short/caption"]["plain"]["t2v"]["queries"] == 5
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert list(tmp_path.iterdir()) == []  # nothing written to a local ./s3:/... path


def test_unusable_input_exits_2_with_one_line(shards: Path, checkpoint: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as missing:
        main(["--checkpoint", str(tmp_path / "nowhere"), "--shards", str(shards), "--output", str(tmp_path)])
    assert missing.value.code == 2 and "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as no_split:
        main(["--checkpoint", str(checkpoint), "--shards", str(shards), "--split", "val",
              "--output", str(tmp_path), "--device", "cpu"])  # fmt: skip
    assert no_split.value.code == 2 and "'val'" in capsys.readouterr().err


def test_sets_pool_all_scales_and_keep_only_clips_with_the_field() -> None:
    emb = ShardEmbeddings()
    rows = [("a", "short", True, False), ("b", "short", True, True), ("c", "long", False, True)]
    for key, scale, has_caption, has_subtitle in rows:
        batch = {"keys": [key], "scales": [scale], "caption_valid": [has_caption], "subtitle_valid": [has_subtitle]}
        vec = np.full((1, 2), ord(key), np.float32)
        emb.add(batch, vec, {"caption": vec, "subtitle": vec})
    emb.add({"keys": ["a"], "scales": ["short"], "caption_valid": [True], "subtitle_valid": [True]},
            np.zeros((1, 2), np.float32), {"caption": np.zeros((1, 2)), "subtitle": np.zeros((1, 2))})  # fmt: skip
    sets = {s.name: s for s in shard_sets(emb)}
    assert emb.keys == ["a", "b", "c"]  # a repeated key is ignored, not counted twice
    assert sets["short/caption"].video[:, 0].tolist() == [ord("a"), ord("b")]
    assert sets["all/subtitle"].video[:, 0].tolist() == [ord("b"), ord("c")]
    assert len(sets["long/caption"].text) == 0


def test_evaluate_matches_the_metrics_of_the_full_matrix_and_skips_tiny_sets() -> None:
    rng = np.random.default_rng(0)
    text, video = rng.normal(size=(12, 8)), rng.normal(size=(4, 8))
    labels = np.repeat(np.arange(4), 3)  # three captions per video
    results, ranks = evaluate([EvalSet("x", text, video, labels), EvalSet("one", text[:1], video[:1], labels[:1])],
                              dsl=True, temperature=0.01)  # fmt: skip
    expected = retrieval_metrics(text @ video.T, labels, dsl=True)
    assert results["x"]["plain"] == expected["plain"] and results["x"]["dsl"] == expected["dsl"]
    assert results["one"] == {"texts": 1, "videos": 1, "skipped": "fewer than 2 videos"} and "one" not in ranks
    assert recall_curve(np.array([1, 2, 5]), 5) == pytest.approx([100 / 3, 200 / 3, 200 / 3, 200 / 3, 100.0])
