"""Fine-tuned classification: a tiny random model trained on release-format K400/SSv2 fixtures.

The fixtures are those of ``test_classification.py`` (its ``roots`` fixture) with a train split
added next to the validation split: K400's ``train.csv`` and clips under ``train/``, SSv2's
``train.json``. Every fixture video is the same test pattern, so the loss can only fall towards
the class prior's entropy; that is what the training test checks, together with the written
``metrics.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_classification
import torch
from model_test_utils import tiny_model_config
from test_classification import K400_ROWS, SSV2_VALIDATION

from vidla.vidla import build_model, model_tokenizer, normalize_video
from vidla_eval.benchmarks.records import BenchmarkFormatError
from vidla_eval.classification import prompts
from vidla_eval.eval_retrieval import Encoder
from vidla_train.finetune_classification import VideoClassifier, main, training_splits

TINY_CONFIG = "model:\n  preset: vidla-tiny\n"
roots = test_classification.roots  # the fixture: the release-format validation splits


def _with_train_split(dataset: str, val_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / dataset
    shutil.copytree(val_root, root)
    if dataset == "kinetics400":
        lines = ["label,youtube_id,time_start,time_end,split"]
        (root / "train").mkdir()
        for label, yid, start, end, _ in K400_ROWS:
            lines.append(f"{label},{yid}t,{start},{end},train")
            shutil.copy(
                root / "val" / f"{yid}_{start:06d}_{end:06d}.mp4",
                root / "train" / f"{yid}t_{start:06d}_{end:06d}.mp4",
            )
        (root / "annotations" / "train.csv").write_text("\n".join(lines) + "\n")
    else:
        videos = root / "20bn-something-something-v2"
        train = [{**item, "id": item["id"] + "0"} for item in SSV2_VALIDATION]
        for item in train:
            shutil.copy(videos / f"{item['id'][:-1]}.webm", videos / f"{item['id']}.webm")
        (root / "train.json").write_text(json.dumps(train))
    return root


@pytest.mark.parametrize("dataset", ["kinetics400", "ssv2"])
def test_finetuning_lowers_the_loss_and_writes_metrics(
    dataset: str,
    roots: dict[str, Path],
    tmp_path: Path,
) -> None:
    root = _with_train_split(dataset, roots[dataset], tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    out = tmp_path / "finetune"
    args = ["--config", str(config), "--dataset", dataset, "--root", str(root), "--output", str(out)]
    n = len(K400_ROWS if dataset == "kinetics400" else SSV2_VALIDATION)
    # One batch per epoch (the whole train split): full-batch steps, not at the mercy of
    # which videos a batch drew.
    knobs = ["--frames", "2", "--workers", "0", "--batch-size", str(n), "--epochs", "6", "--lr", "3e-4"]
    main([*args, *knobs, "--min-lr", "1e-4", "--weight-decay", "0", "--device", "cpu", "--save"])

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "vidla-eval-classification/1"
    assert metrics["dataset"]["split"] == ("val" if dataset == "kinetics400" else "validation")
    assert metrics["dataset"]["classes"] == 3 and metrics["results"]["videos"] == n
    assert any(metrics["results"]["top1"] == pytest.approx(100.0 * k / n) for k in range(n + 1))
    finetune = metrics["finetune"]
    assert finetune["train_split"] == "train" and finetune["train_videos"] == n
    losses = finetune["epoch_loss"]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.05, losses
    saved = torch.load(out / "finetuned.pt")
    assert saved["head"]["weight"].shape[0] == 3


def test_the_head_starts_as_the_zero_shot_classifier() -> None:
    """Step 0 logits are the temperature times the cosine similarity to each class prompt."""
    torch.manual_seed(0)
    cfg = tiny_model_config()
    model = build_model(cfg).eval()
    encoder = Encoder(model, model_tokenizer(cfg), torch.device("cpu"), bf16=False)
    classes = ["abseiling", "playing guitar", "zumba"]
    text = encoder.texts(prompts(classes), batch_size=8)
    frames = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8)
    classifier = VideoClassifier(model, torch.from_numpy(text))
    with torch.no_grad():
        logits = classifier(frames).numpy()
        zero_shot = model.encode_video(normalize_video(frames)).numpy() @ text.T
    assert np.allclose(logits, float(model.logit_scale.exp()) * zero_shot, atol=1e-5)
    assert not np.allclose(zero_shot[:, 0], zero_shot[:, 1])  # the classes are told apart
    assert not any(p.requires_grad for p in model.text.parameters())


def test_a_validation_class_the_train_split_lacks_is_an_error(
    roots: dict[str, Path],
    tmp_path: Path,
) -> None:
    root = _with_train_split("kinetics400", roots["kinetics400"], tmp_path)
    csv = root / "annotations" / "train.csv"
    csv.write_text(
        "\n".join(line for line in csv.read_text().splitlines() if not line.startswith("zumba")) + "\n"
    )
    with pytest.raises(BenchmarkFormatError, match="zumba"):
        training_splits("kinetics400", root, "train", None, "skip")
