"""One VidLA training step, and the optimiser it steps: what the trainer and the benchmarks share.

:func:`train_step` is the step of ``python -m vidla_train.train`` (embed a loader batch, the
two-term InfoNCE in fp32, an AdamW step with clipping, the temperature clamp), so a
benchmark that calls it trains exactly as the trainer does instead of keeping its own copy
that can drift (``bench/temporal_benchmark.py`` trains VidLA and the mean-pooling baseline
with it). :func:`optimizer_step` is the part after the loss, for models with their own loss
(the benchmark's image-text CLIP stand-in).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vidla.config import OptimConfig
from vidla.loss import LossOutput, VidLALoss
from vidla.vidla import VidLA, VidLAOutput, normalize_video
from vidla_train.schedule import warmup_cosine

#: The text tensors of a loader batch, in ``VidLA.forward``'s order after the video.
TEXT_INPUTS = ("text_ids", "text_mask", "subtitle_valid", "caption_valid")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on the weights of linear and convolution layers; none on biases, norms, embeddings, tokens, scale."""
    decay_ids = {
        id(m.weight) for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d) and m.weight is not None
    }
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if id(p) in decay_ids else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class Optimization:
    """AdamW over :func:`param_groups`, its warm-up + cosine schedule, and the clipping norm."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    grad_clip: float | None

    @classmethod
    def create(
        cls, model: nn.Module, optim: OptimConfig, total_steps: int, fused: bool = False
    ) -> Optimization:
        """``fused`` AdamW is CUDA's fast path; CPUs take the default implementation."""
        optimizer = torch.optim.AdamW(
            param_groups(model, optim.weight_decay),
            lr=optim.lr,
            betas=optim.betas,
            eps=optim.eps,
            fused=fused,
        )
        scheduler = warmup_cosine(
            optimizer,
            lr=optim.lr,
            min_lr=optim.min_lr,
            warmup_steps=optim.warmup_steps,
            total_steps=total_steps,
        )
        return cls(optimizer, scheduler, optim.grad_clip)

    @property
    def lr(self) -> float:
        """The learning rate the next step will use."""
        return float(self.scheduler.get_last_lr()[0])


def optimizer_step(
    model: nn.Module, loss: torch.Tensor, opt: Optimization, clamp: Callable[[], Any] | None = None
) -> torch.Tensor:
    """Backward ``loss``, clip the global gradient norm, step optimiser and schedule, then ``clamp``.

    Returns the gradient norm before clipping. ``clamp`` keeps a parameter in range after the
    step (the temperature); it runs without gradient tracking.
    """
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    max_norm = opt.grad_clip if opt.grad_clip is not None else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    opt.optimizer.step()
    opt.scheduler.step()
    if clamp is not None:
        with torch.no_grad():
            clamp()
    return grad_norm


def float_output(out: VidLAOutput) -> VidLAOutput:
    """The loss runs in fp32 whatever the autocast precision of the towers."""
    return VidLAOutput(
        video=out.video.float(),
        subtitle=out.subtitle.float(),
        subtitle_valid=out.subtitle_valid,
        caption=out.caption.float(),
        caption_valid=out.caption_valid,
        logit_scale=out.logit_scale.float(),
    )


@dataclass(frozen=True)
class StepOutput:
    """What one step measured: the loss terms (not detached) and the gradient norm before clipping."""

    losses: LossOutput
    grad_norm: torch.Tensor


def train_step(
    model: VidLA,
    batch: dict[str, torch.Tensor],
    loss_fn: VidLALoss,
    opt: Optimization,
    *,
    forward: nn.Module | None = None,
    autocast: AbstractContextManager[Any] | None = None,
) -> StepOutput:
    """One optimiser step of ``model`` on a loader batch (uint8 ``video`` and the texts of :data:`TEXT_INPUTS`).

    ``forward`` is what runs the model when it is not ``model`` itself (its
    ``DistributedDataParallel`` wrapper, which averages the gradients); ``autocast`` the
    precision context of the towers (the loss is computed in fp32 regardless). Tensors move
    to the model's device here, without blocking when the batch is in pinned memory.
    """
    device = model.logit_scale.device
    video = normalize_video(batch["video"].to(device, non_blocking=True))
    texts = [batch[key].to(device, non_blocking=True) for key in TEXT_INPUTS]
    with autocast if autocast is not None else nullcontext():
        out = (forward or model)(video, *texts)
    losses = loss_fn(float_output(out))
    grad_norm = optimizer_step(model, losses.loss, opt, model.clamp_logit_scale)
    return StepOutput(losses, grad_norm)
