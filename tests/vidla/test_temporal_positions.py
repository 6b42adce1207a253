"""Temporal positions trained at one frame count serve any other: the interpolation rule, the
tower that uses it, checkpoints loaded at another T, and old ``max_frames`` checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_test_utils import tiny_model_config
from pydantic import ValidationError

from vidla.checkpoint import save_checkpoint, upgrade_model_state
from vidla.config import EVAL_FRAMES, ModelConfig, load_config
from vidla.video_tower import temporal_interpolation
from vidla.vidla import build_model
from vidla_eval.eval_model import load_model

ROOT = Path(__file__).resolve().parents[2]


def test_interpolation_at_the_trained_frame_count_is_the_identity() -> None:
    assert torch.equal(temporal_interpolation(12, 12), torch.eye(12, dtype=torch.float64))
    tower = build_model(tiny_model_config(temporal_positions=4)).video
    assert tower.temporal_positions(4) is tower.temporal_embedding  # the stored rows themselves


def test_a_model_trained_at_12_frames_evaluates_at_32_with_every_position_trained() -> None:
    w = temporal_interpolation(32, 12)
    assert w.shape == (32, 12)  # only the 12 trained rows exist to be read
    assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(32, dtype=torch.float64))
    assert ((w > 0).sum(1) <= 2).all()  # each frame blends at most two neighbouring trained rows
    assert (w.sum(0) > 0).all()  # and every trained row serves some frame
    tower = build_model(tiny_model_config(temporal_positions=12)).video
    tower.temporal_positions(32).sum().backward()
    assert (tower.temporal_embedding.grad != 0).all()  # fine-tuning at 32 trains the 12 rows


def test_positions_follow_the_clips_relative_time() -> None:
    # Row r of R stands for time (r + 0.5) / R; an embedding linear in time is reproduced
    # exactly at every frame whose time lies between the first and last rows' times.
    rows, frames = 12, 32
    time_of_row = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows
    time_of_frame = (torch.arange(frames, dtype=torch.float64) + 0.5) / frames
    got = temporal_interpolation(frames, rows) @ (3.0 * time_of_row - 1.0)
    inside = (time_of_frame >= time_of_row[0]) & (time_of_frame <= time_of_row[-1])
    assert inside.sum() == frames - 2
    assert torch.allclose(got[inside], 3.0 * time_of_frame[inside] - 1.0)
    line = 3.0 * time_of_row - 1.0
    assert got[0] == line[0] and got[-1] == line[-1]  # beyond the end rows' times: the end rows
    # Fewer frames than rows: frame t of 4 sits at row 3t + 1 of 12 (its segment's middle).
    assert torch.equal(temporal_interpolation(4, 12).argmax(1), torch.tensor([1, 4, 7, 10]))


def _save(out: Path, cfg: dict, weights: dict) -> Path:
    return save_checkpoint(out, 1, {"step": 1, "model": weights, "config": {"model": cfg}}, keep=1)


def test_a_checkpoint_trained_at_4_frames_embeds_8_frames_through_the_interpolated_rows(tmp_path: Path) -> None:
    cfg = tiny_model_config(num_frames=4, temporal_positions=4)
    torch.manual_seed(0)
    trained = build_model(cfg).eval()
    with torch.no_grad():
        trained.video.temporal_embedding.normal_()
    path = _save(tmp_path, cfg.model_dump(mode="json"), trained.state_dict())
    loaded = load_model(path, None, [], 8, torch.device("cpu"))
    assert loaded.config.num_frames == 8
    video = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_video(video), trained.encode_video(video))
        rows = trained.video.temporal_embedding
        expected = temporal_interpolation(8, 4).float() @ rows
        assert torch.equal(loaded.model.video.temporal_positions(8), expected)


def test_an_old_max_frames_checkpoint_keeps_the_rows_its_training_used(tmp_path: Path) -> None:
    new_cfg = tiny_model_config(num_frames=4, temporal_positions=4)
    torch.manual_seed(1)
    reference = build_model(new_cfg).eval()
    old_rows = torch.cat([reference.video.temporal_embedding.detach(), torch.full((4, 32), 9.0)])  # 4 untrained
    old_weights = {**reference.state_dict(), "video.temporal_embedding": old_rows}
    old_cfg = {k: v for k, v in new_cfg.model_dump(mode="json").items() if k != "temporal_positions"}
    old_cfg["max_frames"] = 8
    cfg, weights = upgrade_model_state(old_cfg, old_weights)
    assert cfg["temporal_positions"] == 4 and "max_frames" not in cfg
    assert torch.equal(weights["video.temporal_embedding"], old_rows[:4])
    loaded = load_model(_save(tmp_path, old_cfg, old_weights), None, [], 4, torch.device("cpu"))
    video = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():  # what the old model computed at its training T, exactly
        assert torch.equal(loaded.model.encode_video(video), reference.encode_video(video))


def test_max_frames_in_a_config_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="temporal_positions"):
        ModelConfig.model_validate({**tiny_model_config().model_dump(), "max_frames": 32})


def test_zero_shot_and_fine_tuned_evaluation_default_to_the_same_32_frames(tmp_path: Path) -> None:
    pretrain = load_config(ROOT / "configs" / "train" / "vidla-b32.yaml").model
    finetune = load_config(ROOT / "configs" / "train" / "finetune-msrvtt-b32.yaml").model
    assert pretrain.num_frames == 12 and finetune.num_frames == 32
    assert pretrain.temporal_positions == finetune.temporal_positions == 12  # fine-tuning loads the 12 rows
    assert pretrain.eval_frames == finetune.eval_frames == EVAL_FRAMES == 32
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    assert f"eval_frames` ({EVAL_FRAMES})" in docs  # the protocol states the same count
