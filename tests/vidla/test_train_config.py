"""Typed configs, the learning-rate schedule, weight-decay groups, checkpoint RNG round trip."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from model_test_utils import tiny_model_config
from pydantic import ValidationError

from vidla.checkpoint import rng_state, set_rng_state
from vidla.config import load_config
from vidla.vidla import build_model
from vidla_train.schedule import lr_at, warmup_cosine
from vidla_train.train import cpu_threads
from vidla_train.train_step import param_groups

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


@pytest.mark.parametrize("name", ["demo", "vidla-b32", "vidla-b16"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.model.temporal_positions == cfg.model.num_frames  # positions trained at the recipe's T


def test_paper_recipe_is_in_the_real_configs() -> None:
    for name, clip in (("vidla-b32", "patch32"), ("vidla-b16", "patch16")):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.model.clip == f"openai/clip-vit-base-{clip}"
        assert (
            cfg.model.num_frames,
            cfg.model.mst_levels,
            cfg.model.mst_per_level,
            cfg.model.mst_stride,
        ) == (12, 3, 4, 2)
        assert (cfg.optim.lr, cfg.optim.min_lr, cfg.optim.weight_decay, cfg.optim.grad_clip) == (
            2e-5,
            4e-8,
            0.02,
            10.0,
        )
        assert cfg.optim.betas == (0.9, 0.999) and cfg.data.crop_scales == [1.0, 0.8]
        assert cfg.train.precision == "bf16"


def test_overrides_are_typed_and_typos_are_rejected() -> None:
    cfg = load_config(
        CONFIGS / "demo.yaml",
        ["optim.lr=1e-3", "data.scale_weights={short: 2, long: 1}", "model.arch=meanpool"],
    )
    assert cfg.optim.lr == 1e-3 and cfg.data.scale_weights == {"short": 2.0, "long": 1.0}
    assert cfg.model.arch == "meanpool"
    with pytest.raises(ValidationError):
        load_config(CONFIGS / "demo.yaml", ["optim.learning_rate=1e-3"])
    with pytest.raises(ValidationError):
        load_config(CONFIGS / "demo.yaml", ["data.scale_weights={huge: 1}"])
    with pytest.raises(ValidationError):
        load_config(CONFIGS / "demo.yaml", ["model.num_frames=0"])  # no frames
    with pytest.raises(ValueError, match="key.sub=value"):
        load_config(None, ["optim.lr"])


def test_schedule_warms_up_linearly_then_follows_a_cosine_to_the_floor() -> None:
    kw = {"lr": 1e-3, "min_lr": 1e-5, "warmup_steps": 10, "total_steps": 111}
    assert lr_at(0, **kw) == pytest.approx(1e-4)
    assert lr_at(9, **kw) == pytest.approx(1e-3)
    assert lr_at(60, **kw) == pytest.approx((1e-3 + 1e-5) / 2)  # half-way through the cosine
    assert lr_at(110, **kw) == pytest.approx(1e-5)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = warmup_cosine(optimizer, **kw)
    seen = []
    for _ in range(111):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([lr_at(s, **kw) for s in range(111)])


def test_weight_decay_applies_to_layer_weights_only() -> None:
    model = build_model(tiny_model_config())
    decay, no_decay = param_groups(model, 0.02)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "video.blocks.0.attn.qkv.weight" in decayed and "video.patch_embedding.weight" in decayed
    assert "text.proj.weight" in decayed
    for name in (
        "logit_scale",
        "video.mst_tokens",
        "video.temporal_embedding",
        "video.class_embedding",
        "video.blocks.0.ln_1.weight",
        "video.blocks.0.attn.qkv.bias",
    ):
        assert name not in decayed
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_rng_state_round_trips() -> None:
    state = rng_state()
    first = (random.random(), float(np.random.rand()), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == first


def test_cpu_training_leaves_the_loader_workers_their_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cpu_threads(0) == cores
    assert cpu_threads(cores + 3) == 1  # never below one
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))
    assert cpu_threads(0) == 1  # torchrun on CPU: the cores are shared between processes
