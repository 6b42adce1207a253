"""Feature-cache gradient accumulation: k micro-batches give the gradient of their concatenation.

The reference is one plain step on the concatenated batch. Clipping is off so the gradients
the optimiser saw stay in ``.grad`` untouched; the optimiser's learning rate is zero where the
test compares gradients only (they are read before the step changes anything).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from model_test_utils import TINY_TEXT, TINY_VISION, tiny_model_config

from vidla.config import OptimConfig
from vidla.data import Clip, collate_clips
from vidla.loss import VidLALoss
from vidla.vidla import VidLA, VidLAOutput, build_model, model_tokenizer, normalize_video
from vidla_train.train_step import TEXT_INPUTS, Optimization, concat_outputs, train_step

SIZES = (3, 3, 2)  # micro-batch sizes: uneven on purpose


def _clips(n: int, seed: int) -> list[Clip]:
    """Clips whose texts are missing in a pattern: the second micro-batch has no caption at all,
    the first lacks a subtitle, so both loss terms count different clips in different micro-batches."""
    generator = torch.Generator().manual_seed(seed)
    clips = []
    for i in range(n):
        frames = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=generator)
        subtitle = None if i in (0, 6) else f"subtitle of clip {i}"
        caption = None if i in (3, 4, 5) else f"a caption about clip {i}"
        clips.append(Clip(frames, subtitle, caption, str(i), ("short", "medium", "long")[i % 3]))
    return clips


def _batches(model_cfg: Any, seed: int = 0) -> tuple[dict, list[dict]]:
    tokenizer = model_tokenizer(model_cfg)
    clips = _clips(sum(SIZES), seed)
    micro, start = [], 0
    for size in SIZES:
        micro.append(collate_clips(clips[start : start + size], tokenizer))
        start += size
    return collate_clips(clips, tokenizer), micro


def _pair(model_cfg: Any, lr: float, eps: float = 1e-8) -> tuple[VidLA, VidLA, Optimization, Optimization]:
    torch.manual_seed(0)
    model = build_model(model_cfg)
    with torch.no_grad():  # a temperature the gradient can see clearly, below the clamp
        model.logit_scale.fill_(2.0)
    twin = copy.deepcopy(model)
    optim = OptimConfig(lr=lr, min_lr=0.0, warmup_steps=0, grad_clip=None, weight_decay=0.0, eps=eps)
    return model, twin, Optimization.create(model, optim, 4), Optimization.create(twin, optim, 4)


def _grads(model: VidLA) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Equal up to fp32 rounding: the summation order differs, so the tolerance is relative to the
    largest gradient entry (measured: 9e-7 against 0.23; plain accumulation is off by up to 1.3)."""
    assert a.keys() == b.keys() and "logit_scale" in a
    scale = max(float(g.abs().max()) for g in a.values())
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=2e-5 * scale), name


def test_accumulated_step_has_the_gradient_of_the_concatenated_batch() -> None:
    cfg = tiny_model_config()
    big, micro = _batches(cfg)
    model, twin, opt, twin_opt = _pair(cfg, lr=1e-3)
    single = train_step(model, big, VidLALoss(), opt)
    accumulated = train_step(twin, micro, VidLALoss(), twin_opt)
    _assert_same_grads(_grads(model), _grads(twin))
    assert torch.allclose(single.losses.loss, accumulated.losses.loss, rtol=1e-5)
    assert torch.allclose(single.losses.subtitle, accumulated.losses.subtitle, rtol=1e-5)
    assert torch.allclose(single.losses.caption, accumulated.losses.caption, rtol=1e-5)
    assert (accumulated.losses.subtitle_pairs, accumulated.losses.caption_pairs) == (6, 5)
    assert torch.allclose(single.grad_norm, accumulated.grad_norm, rtol=1e-4)


def test_plain_accumulation_would_differ_so_the_comparison_can_fail() -> None:
    """Summing per-micro-batch losses (ordinary accumulation) trains smaller batches: another gradient."""
    cfg = tiny_model_config()
    big, micro = _batches(cfg)
    model, twin, opt, twin_opt = _pair(cfg, lr=1e-3)
    train_step(model, big, VidLALoss(), opt)
    twin_opt.optimizer.zero_grad(set_to_none=True)
    for part in micro:
        part_loss = VidLALoss()(_forward(twin, part)).loss * len(part["keys"]) / len(big["keys"])
        part_loss.backward()
    with pytest.raises(AssertionError):
        _assert_same_grads(_grads(model), _grads(twin))


def _forward(model: VidLA, batch: dict) -> VidLAOutput:
    return model(normalize_video(batch["video"]), *[batch[k] for k in TEXT_INPUTS])


def test_accumulated_steps_move_the_model_as_the_large_batch_does() -> None:
    cfg = tiny_model_config()
    # A large AdamW eps: with the default, g / (|g| + eps) turns rounding noise in near-zero
    # gradients (the zero-initialised projections' neighbours) into whole lr-sized steps.
    model, twin, opt, twin_opt = _pair(cfg, lr=1e-3, eps=1e-3)
    for seed in (0, 1):
        big, micro = _batches(cfg, seed)
        train_step(model, big, VidLALoss(), opt)
        train_step(twin, micro, VidLALoss(), twin_opt)
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    assert opt.lr == twin_opt.lr


def test_dropout_is_replayed_so_recomputed_features_match_the_cache() -> None:
    """With dropout on, the reference is the concatenation of micro-batches embedded in order from
    the same RNG state (so the same masks): recomputing without replaying would draw other masks."""
    dropout = {"attention_dropout": 0.3}
    cfg = tiny_model_config(
        random_clip={
            "vision": {**TINY_VISION, **dropout},
            "text": {**TINY_TEXT, **dropout},
            "projection_dim": 16,
        }
    )
    _, micro = _batches(cfg)
    model, twin, _, twin_opt = _pair(cfg, lr=1e-3)
    torch.manual_seed(5)
    again = _forward(model, micro[0])
    assert not torch.allclose(again.caption, _forward(model, micro[0]).caption)  # dropout acts (text tower)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    outs = [_forward(model, part) for part in micro]
    VidLALoss()(concat_outputs(outs, outs[-1].logit_scale)).loss.backward()
    torch.manual_seed(5)
    train_step(twin, micro, VidLALoss(), twin_opt)
    _assert_same_grads(_grads(model), _grads(twin))
