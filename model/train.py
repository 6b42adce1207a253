"""Train VidLA on the multi-scale shards: one process, or one per GPU under ``torchrun``.

    python -m model.train --config configs/train/demo.yaml [--shards DIR] [--output DIR] [key.sub=value ...]
    torchrun --nproc-per-node 8 -m model.train --config configs/train/vidla-b32.yaml

Each step embeds a batch (video, subtitle-side and caption-side texts), computes the
two-term InfoNCE with features gathered across ranks, and takes an AdamW step under a
warm-up + cosine schedule with gradient clipping. Every ``ckpt_every`` steps (and at
the end) rank 0 writes a checkpoint; a rerun with the same ``output_dir`` continues from
the newest one exactly: same step, same batches, same loss. Rank 0 logs to the console,
to TensorBoard (``OUTPUT/tb``) and to ``OUTPUT/metrics.jsonl``, with global samples/s and
frames/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.benchmarks import BenchmarkTrainDataset
from model.checkpoint import find_resume, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from model.config import TrainConfig, load_config
from model.data import ClipDataset, worker_loader
from model.distributed import DistInfo, all_mean, cleanup, init_distributed
from model.loss import VidLALoss
from model.schedule import warmup_cosine
from model.vidla import VidLA, VidLAOutput, build_model, load_clip, model_tokenizer, normalize_video

log = logging.getLogger("model.train")


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


def _float_output(out: VidLAOutput) -> VidLAOutput:
    """The loss runs in fp32 whatever the autocast precision of the towers."""
    return VidLAOutput(
        video=out.video.float(),
        subtitle=out.subtitle.float(),
        subtitle_valid=out.subtitle_valid,
        caption=out.caption.float(),
        caption_valid=out.caption_valid,
        logit_scale=out.logit_scale.float(),
    )


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


def cpu_threads(loader_workers: int) -> int:
    """Intra-op threads for CPU training: the cores left after the loader workers, per local process.

    More threads than free cores is catastrophic, not just wasteful: OpenMP's barriers wait
    for descheduled threads at every small op, and a 2-core demo run measured 140 samples/s
    with one thread but under 3 with two (two loader workers decoding beside it).
    """
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // local_processes - loader_workers)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _checkpoint_state(
    model: VidLA,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    cfg: TrainConfig,
    info: DistInfo,
) -> dict[str, Any]:
    rngs: list[Any] = [rng_state()]
    if info.world_size > 1:
        rngs = [None] * info.world_size
        dist.all_gather_object(rngs, rng_state())
    return {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rngs,
        "config": cfg.model_dump(mode="json"),
    }


def load_init_weights(model: VidLA, path: str | Path) -> None:
    """Initialise ``model`` from a VidLA checkpoint's weights only (fine-tuning starts a fresh optimiser and step).

    Accepts the trainer's checkpoints (the ``model`` entry) and bare state dicts. Loading is
    strict: a checkpoint of another architecture (sizes, ``max_frames``, [MST] layout) is an
    error naming the mismatched keys, not a silently half-initialised model.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"model.init_checkpoint {path} does not exist")
    state = load_checkpoint(Path(path), "cpu")
    weights = state["model"] if isinstance(state.get("model"), dict) else state
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise RuntimeError(f"model.init_checkpoint {path} does not fit model's config: {exc}") from exc


def train(cfg: TrainConfig) -> dict[str, float]:
    """Run (or continue) training as ``cfg`` says; returns the last logged metrics."""
    info = init_distributed(cfg.train.device)
    run = cfg.train
    _seed_everything(run.seed)  # identical initialisation on every rank
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(cpu_threads(cfg.data.num_workers))

    resume_from = find_resume(run.output_dir, run.resume)
    # CLIP's weights are only worth reading when nothing overwrites them.
    pretrained = resume_from is None and cfg.model.init_checkpoint is None
    model = build_model(cfg.model, clip=load_clip(cfg.model, pretrained=pretrained)).to(info.device)
    tokenizer = model_tokenizer(cfg.model)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.optim.weight_decay),
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        eps=cfg.optim.eps,
        fused=info.device.type == "cuda",
    )
    scheduler = warmup_cosine(
        optimizer,
        lr=cfg.optim.lr,
        min_lr=cfg.optim.min_lr,
        warmup_steps=cfg.optim.warmup_steps,
        total_steps=run.steps,
    )

    step = 0
    if resume_from is not None:
        state = load_checkpoint(resume_from, info.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        set_rng_state(state["rng"][info.rank] if len(state["rng"]) > info.rank else state["rng"][0])
        if info.is_main:
            log.info("resumed from %s at step %d", resume_from, step)
    elif cfg.model.init_checkpoint is not None:
        load_init_weights(model, cfg.model.init_checkpoint)
        if info.is_main:
            log.info("initialised the model from %s", cfg.model.init_checkpoint)

    ddp: nn.Module = model
    if info.world_size > 1:
        ddp = DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None
        )

    trunk = getattr(model.video, "image", model.video)
    frames_per_clip = cfg.model.num_frames
    dataset_type = BenchmarkTrainDataset if cfg.data.benchmark is not None else ClipDataset
    dataset = dataset_type(
        cfg.data,
        num_frames=frames_per_clip,
        image_size=trunk.image_size,
        tokenizer=tokenizer,
        seed=run.seed,
        rank=info.rank,
        world_size=info.world_size,
        start_batch=step,
    )
    loader = worker_loader(dataset, cfg.data, pin_memory=info.device.type == "cuda")
    loss_fn = VidLALoss(cfg.loss.subtitle_weight, cfg.loss.caption_weight)
    metrics_log = MetricsLog(Path(run.output_dir), info.is_main)
    autocast = (
        torch.autocast(device_type=info.device.type, dtype=torch.bfloat16)
        if run.precision == "bf16"
        else nullcontext()
    )
    if info.is_main:
        params = sum(p.numel() for p in model.parameters())
        log.info(
            "training %s (%s, %.1fM parameters) on %d x %s, batch %d x %d, steps %d..%d",
            cfg.model.arch, cfg.model.clip or "random CLIP", params / 1e6, info.world_size, info.device,
            info.world_size, cfg.data.batch_size, step + 1, run.steps,
        )  # fmt: skip

    batches: Iterator[dict[str, Any]] = iter(loader)
    last: dict[str, float] = {}
    window_start, data_wait, window_steps = time.perf_counter(), 0.0, 0
    sums = torch.zeros(3, device=info.device)
    model.train()
    while step < run.steps:
        wait_start = time.perf_counter()
        batch = next(batches)
        data_wait += time.perf_counter() - wait_start
        video = normalize_video(batch["video"].to(info.device, non_blocking=True))
        with autocast:
            out = ddp(
                video,
                batch["text_ids"].to(info.device, non_blocking=True),
                batch["text_mask"].to(info.device, non_blocking=True),
                batch["subtitle_valid"].to(info.device, non_blocking=True),
                batch["caption_valid"].to(info.device, non_blocking=True),
            )
        losses = loss_fn(_float_output(out))
        optimizer.zero_grad(set_to_none=True)
        losses.loss.backward()
        max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        scheduler.step()
        model.clamp_logit_scale()
        step += 1
        window_steps += 1
        sums += torch.stack([losses.loss.detach(), losses.subtitle, losses.caption])

        if step % run.log_every == 0 or step == run.steps:
            elapsed = time.perf_counter() - window_start
            mean = all_mean(sums / window_steps, info).tolist()
            samples = window_steps * cfg.data.batch_size * info.world_size
            last = {
                "loss": mean[0],
                "loss_subtitle": mean[1],
                "loss_caption": mean[2],
                "lr": scheduler.get_last_lr()[0],
                "logit_scale": float(model.logit_scale.detach().exp()),
                "grad_norm": float(grad_norm),
                "samples_per_s": samples / elapsed,
                "frames_per_s": samples * frames_per_clip / elapsed,
                "data_wait_fraction": data_wait / elapsed,
            }
            metrics_log.write(step, last)
            window_start, data_wait, window_steps = time.perf_counter(), 0.0, 0
            sums.zero_()

        if step % run.ckpt_every == 0 or step == run.steps:
            state = _checkpoint_state(model, optimizer, scheduler, step, cfg, info)
            if info.is_main:
                path = save_checkpoint(run.output_dir, step, state, run.keep_checkpoints)
                log.info("checkpoint %s", path)
    metrics_log.close()
    cleanup()
    return last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Train VidLA on multi-scale WebDataset shards.",
        epilog="Overrides are key.sub=value pairs, e.g. optim.lr=1e-4 data.batch_size=16 train.steps=100.",
    )
    parser.add_argument(
        "--config", type=Path, help="YAML config (configs/train/*.yaml); defaults apply without one"
    )
    parser.add_argument(
        "--shards", help="the shards/ directory or a URI such as s3://bucket/ds/shards (same as data.shards=DIR)"
    )
    parser.add_argument("--output", type=Path, help="output directory (same as train.output_dir=DIR)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.shards is not None:
        cfg.data.shards = args.shards
    if args.output is not None:
        cfg.train.output_dir = args.output
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(cfg)


if __name__ == "__main__":
    main()
