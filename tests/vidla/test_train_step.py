"""The one training step that ``python -m vidla_train.train`` and the temporal benchmark share."""

from __future__ import annotations

import copy
import math

import torch
from model_test_utils import tiny_model_config

from vidla.config import OptimConfig
from vidla.data import Clip, collate_clips
from vidla.loss import VidLALoss
from vidla.vidla import build_model, model_tokenizer, normalize_video
from vidla_train.train_step import Optimization, train_step


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    cfg = tiny_model_config()
    generator = torch.Generator().manual_seed(seed)
    clips = [
        Clip(
            torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=generator),
            None if i == 1 else f"subtitle {i}",
            f"a caption about clip {i}",
            str(i),
            "short",
        )
        for i in range(4)
    ]
    return collate_clips(clips, model_tokenizer(cfg))


def test_a_step_is_loss_backward_clip_adamw_schedule_and_temperature_clamp() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    reference = copy.deepcopy(model)
    optim = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=2, grad_clip=0.5)
    opt = Optimization.create(model, optim, total_steps=10)
    batch = _batch()
    with torch.no_grad():
        model.logit_scale.fill_(9.0)  # beyond logit_scale_max: the step must bring it back
        reference.logit_scale.fill_(9.0)

    result = train_step(model, batch, VidLALoss(), opt)

    # The same step by hand: loss on the normalised uint8 frames, backward, clip, AdamW.
    texts = [batch[k] for k in ("text_ids", "text_mask", "subtitle_valid", "caption_valid")]
    loss = VidLALoss()(reference(normalize_video(batch["video"]), *texts)).loss
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
    assert torch.allclose(result.losses.loss, loss) and torch.allclose(result.grad_norm, norm)
    assert float(norm) > 0.5  # so clipping acted, and the norm reported is the one before it
    assert torch.equal(model.logit_scale.detach(), torch.tensor(model.logit_scale_max))
    assert opt.lr == optim.lr  # warm-up: step 1 of 2 reaches the peak at the second step
    moved = [not torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)]
    assert any(moved)


def test_repeated_steps_on_one_batch_lower_its_loss() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    opt = Optimization.create(model, OptimConfig(lr=1e-3, warmup_steps=0), total_steps=20)
    batch = _batch(1)
    losses = [float(train_step(model, batch, VidLALoss(), opt).losses.loss.detach()) for _ in range(8)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
