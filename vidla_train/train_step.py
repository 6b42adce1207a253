"""One VidLA training step, and the optimiser it steps: what the trainer and the benchmarks share.

:func:`train_step` is the step of ``python -m vidla_train.train`` (embed a loader batch, the
two-term InfoNCE in fp32, an AdamW step with clipping, the temperature clamp), so a
benchmark that calls it trains exactly as the trainer does instead of keeping its own copy
that can drift (``bench/temporal_benchmark.py`` trains VidLA and the mean-pooling baseline
with it). :func:`optimizer_step` is the part after the loss, for models with their own loss
(the benchmark's image-text CLIP stand-in).

Given several loader batches, :func:`train_step` trains them as one contrastive batch with
open_clip's feature cache (``--accum-freq``), so the paper's global batch of 4,096 fits on 8
GPUs: see :func:`accumulated_step`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    return _apply_gradients(model, opt, clamp)


def _apply_gradients(model: nn.Module, opt: Optimization, clamp: Callable[[], Any] | None) -> torch.Tensor:
    """Clip the accumulated gradients, step optimiser and schedule, clamp; the norm before clipping."""
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


def _embed(
    run: nn.Module,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    autocast: AbstractContextManager[Any] | None,
) -> VidLAOutput:
    """Features of a loader batch (moved to ``device``, frames normalised there), in fp32."""
    video = normalize_video(batch["video"].to(device, non_blocking=True))
    texts = [batch[key].to(device, non_blocking=True) for key in TEXT_INPUTS]
    with autocast if autocast is not None else nullcontext():
        out = run(video, *texts)
    return float_output(out)


def train_step(
    model: VidLA,
    batch: dict[str, torch.Tensor] | Sequence[dict[str, torch.Tensor]],
    loss_fn: VidLALoss,
    opt: Optimization,
    *,
    forward: nn.Module | None = None,
    autocast: AbstractContextManager[Any] | None = None,
) -> StepOutput:
    """One optimiser step of ``model`` on a loader batch (uint8 ``video`` and the texts of :data:`TEXT_INPUTS`).

    ``batch`` may also be a list of loader batches (micro-batches), trained as their
    concatenation by :func:`accumulated_step`. ``forward`` is what runs the model when it is
    not ``model`` itself (its ``DistributedDataParallel`` wrapper, which averages the
    gradients); ``autocast`` the precision context of the towers (the loss is computed in
    fp32 regardless). Tensors move to the model's device here, without blocking when the
    batch is in pinned memory.
    """
    if not isinstance(batch, dict):
        if len(batch) > 1:
            return accumulated_step(model, batch, loss_fn, opt, forward=forward, autocast=autocast)
        (batch,) = batch
    out = _embed(forward or model, batch, model.logit_scale.device, autocast)
    losses = loss_fn(out)
    grad_norm = optimizer_step(model, losses.loss, opt, model.clamp_logit_scale)
    return StepOutput(losses, grad_norm)


RngState = tuple[torch.Tensor, torch.Tensor | None]


def _rng_state(device: torch.device) -> RngState:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: RngState, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def concat_outputs(parts: Sequence[VidLAOutput], logit_scale: torch.Tensor) -> VidLAOutput:
    """The micro-batches' features as one batch, in order, with the given temperature."""

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(p, name) for p in parts])

    return VidLAOutput(
        video=cat("video"),
        subtitle=cat("subtitle"),
        subtitle_valid=cat("subtitle_valid"),
        caption=cat("caption"),
        caption_valid=cat("caption_valid"),
        logit_scale=logit_scale,
    )


def accumulated_step(
    model: VidLA,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    loss_fn: VidLALoss,
    opt: Optimization,
    *,
    forward: nn.Module | None = None,
    autocast: AbstractContextManager[Any] | None = None,
) -> StepOutput:
    """One optimiser step on the concatenation of ``micro_batches``, one micro-batch in memory at a time.

    A contrastive loss does not split into per-micro-batch losses (every clip is every other
    clip's negative), so plain accumulation would train k small batches. Instead (open_clip's
    ``--accum-freq``): embed every micro-batch without grad and cache the features; then for
    each micro-batch recompute its features with grad, put them in place of its cached ones,
    compute the full-batch loss and backward. The summed gradients are those of the one large
    batch, because the loss's gradient with respect to micro-batch j's features flows only
    through pass j. Two details make it exact rather than approximate:

    * The temperature is a parameter, not a feature: every pass would add its full gradient,
      k times in all (open_clip does). Only the last pass keeps it attached; under DDP that
      is the pass that synchronises, so every parameter has a gradient when DDP reduces.
    * Dropout draws: each recomputation replays the RNG state its no-grad pass started from,
      so the features with grad equal the cached ones (the RNG then continues from where the
      caching pass left it).

    Under DDP the first k-1 backward passes run under ``no_sync``: one all-reduce per step.
    Returns the loss of the last pass (every pass has the full batch's loss value).
    """
    device = model.logit_scale.device
    starts: list[RngState] = []
    cached: list[VidLAOutput] = []
    with torch.no_grad():
        for micro in micro_batches:
            starts.append(_rng_state(device))
            cached.append(_embed(model, micro, device, autocast))
    after = _rng_state(device)
    run = forward or model
    last = len(micro_batches) - 1
    opt.optimizer.zero_grad(set_to_none=True)
    for j, micro in enumerate(micro_batches):
        _set_rng_state(starts[j], device)
        no_sync = getattr(forward, "no_sync", None)
        with no_sync() if no_sync is not None and j < last else nullcontext():
            out = _embed(run, micro, device, autocast)
            scale = out.logit_scale if j == last else out.logit_scale.detach()
            losses = loss_fn(concat_outputs([*cached[:j], out, *cached[j + 1 :]], scale))
            losses.loss.backward()
    _set_rng_state(after, device)
    grad_norm = _apply_gradients(model, opt, model.clamp_logit_scale)
    return StepOutput(losses, grad_norm)
