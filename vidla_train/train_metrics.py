"""What the trainer logs: loss means, learning rate, temperature, throughput, time waiting for data.

:class:`MetricsWindow` sums a window of steps (the loss terms stay on the device until the
window closes, so logging costs no synchronisation per step) and turns it into the logged
numbers, averaged over ranks; :class:`MetricsLog` writes them on rank 0 to the console,
TensorBoard (``OUTPUT/tb``) and ``OUTPUT/metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from vidla.distributed import DistInfo, all_mean
from vidla_train.train_step import Optimization, StepOutput

log = logging.getLogger("vidla_train.train")


class MetricsWindow:
    """The steps since the last log: loss sums, data-wait time, wall time."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(3, device=device)
        self.reset()

    def reset(self) -> None:
        self.start = time.perf_counter()
        self.data_wait = 0.0
        self.steps = 0
        self.sums.zero_()

    def add(self, result: StepOutput, data_wait_s: float) -> None:
        losses = result.losses
        self.sums += torch.stack([losses.loss.detach(), losses.subtitle, losses.caption])
        self.data_wait += data_wait_s
        self.steps += 1

    def close(
        self,
        result: StepOutput,
        opt: Optimization,
        logit_scale: torch.Tensor,
        info: DistInfo,
        clips_per_rank: int,
        frames_per_clip: int,
    ) -> dict[str, float]:
        """The window's metrics (loss means over steps and ranks; the last step's lr, scale, norm); then reset."""
        elapsed = time.perf_counter() - self.start
        mean = all_mean(self.sums / self.steps, info).tolist()
        samples = self.steps * clips_per_rank * info.world_size
        metrics = {
            "loss": mean[0],
            "loss_subtitle": mean[1],
            "loss_caption": mean[2],
            "lr": opt.lr,
            "logit_scale": float(logit_scale.detach().exp()),
            "grad_norm": float(result.grad_norm),
            "samples_per_s": samples / elapsed,
            "frames_per_s": samples * frames_per_clip / elapsed,
            "data_wait_fraction": self.data_wait / elapsed,
        }
        self.reset()
        return metrics


class MetricsLog:
    """Console, TensorBoard and ``metrics.jsonl`` on rank 0; nothing elsewhere."""

    def __init__(self, output_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        self.jsonl = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            output_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(output_dir / "tb"))
            self.jsonl = (output_dir / "metrics.jsonl").open("a")

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        assert self.writer is not None and self.jsonl is not None
        for name, value in metrics.items():
            self.writer.add_scalar(f"train/{name}", value, step)
        self.jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self.jsonl.flush()
        log.info(
            "step %d loss %.4f (subtitle %.4f caption %.4f) lr %.2e scale %.2f gnorm %.3f | "
            "%.1f samples/s %.0f frames/s data %.0f%%",
            step, metrics["loss"], metrics["loss_subtitle"], metrics["loss_caption"], metrics["lr"],
            metrics["logit_scale"], metrics["grad_norm"], metrics["samples_per_s"], metrics["frames_per_s"],
            100 * metrics["data_wait_fraction"],
        )  # fmt: skip

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.jsonl is not None:
            self.jsonl.close()
