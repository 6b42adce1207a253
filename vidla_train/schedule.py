"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate for optimiser step ``step`` (0-based).

    Warm-up rises linearly from ``lr / warmup_steps`` to ``lr`` over ``warmup_steps``
    steps; the cosine then falls from ``lr`` to ``min_lr`` at the last step (paper:
    2e-5 -> 4e-8 in pre-training).
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, lr: float, min_lr: float, warmup_steps: int, total_steps: int
) -> LambdaLR:
    """A LambdaLR (so its state saves and restores with the checkpoint) following :func:`lr_at`.

    The optimiser's base learning rate must be ``lr``; the lambda returns the factor.
    """

    def factor(step: int) -> float:
        return lr_at(step, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps, total_steps=total_steps) / lr

    return LambdaLR(optimizer, factor)
