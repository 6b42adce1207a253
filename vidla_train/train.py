"""Train VidLA on the multi-scale shards: one process, or one per GPU under ``torchrun``.

    python -m vidla_train.train --config configs/train/demo.yaml [--shards DIR] [--output DIR] [key.sub=value ...]
    torchrun --nproc-per-node 8 -m vidla_train.train --config configs/train/vidla-b32.yaml

Each step (:func:`vidla_train.train_step.train_step`, which benchmarks reuse) embeds a batch
(video, subtitle-side and caption-side texts), computes the two-term InfoNCE with features
gathered across ranks, and takes an AdamW step under a warm-up + cosine schedule with
gradient clipping. With ``optim.accum_steps: k`` a step takes k loader batches and trains
them as one contrastive batch (feature-cache accumulation), so the global batch is
``data.batch_size x GPUs x k``. Every ``ckpt_every`` steps (and at
the end) rank 0 writes a checkpoint; a rerun with the same ``output_dir`` continues from
the newest one exactly: same step, same batches, same loss. Rank 0 logs to the console,
to TensorBoard (``OUTPUT/tb``) and to ``OUTPUT/metrics.jsonl``, with global samples/s and
frames/s.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vidla.checkpoint import (
    find_resume,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    upgrade_model_state,
)
from vidla.config import TrainConfig, load_config
from vidla.data import ClipDataset, worker_loader
from vidla.distributed import DistInfo, cleanup, init_distributed
from vidla.loss import VidLALoss
from vidla.vidla import VidLA, build_model, load_clip, model_tokenizer
from vidla_eval.benchmarks import BenchmarkTrainDataset
from vidla_train.train_metrics import MetricsLog, MetricsWindow
from vidla_train.train_step import Optimization, train_step

log = logging.getLogger("vidla_train.train")


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
    model: VidLA, opt: Optimization, step: int, cfg: TrainConfig, info: DistInfo
) -> dict[str, Any]:
    rngs: list[Any] = [rng_state()]
    if info.world_size > 1:
        rngs = [None] * info.world_size
        dist.all_gather_object(rngs, rng_state())
    return {
        "step": step,
        "model": model.state_dict(),
        "optimizer": opt.optimizer.state_dict(),
        "scheduler": opt.scheduler.state_dict(),
        "rng": rngs,
        "config": cfg.model_dump(mode="json"),
    }


def load_init_weights(model: VidLA, path: str | Path) -> None:
    """Initialise ``model`` from a VidLA checkpoint's weights only (fine-tuning starts a fresh optimiser and step).

    Accepts the trainer's checkpoints (the ``model`` entry) and bare state dicts. Loading is
    strict: a checkpoint of another architecture (sizes, ``temporal_positions``, [MST] layout) is an
    error naming the mismatched keys, not a silently half-initialised model.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"model.init_checkpoint {path} does not exist")
    state = load_checkpoint(Path(path), "cpu")
    weights = state["model"] if isinstance(state.get("model"), dict) else state
    if "config" in state:  # a checkpoint of max_frames rows keeps the rows its training T used
        weights = upgrade_model_state(state["config"]["model"], weights)[1]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise RuntimeError(f"model.init_checkpoint {path} does not fit model's config: {exc}") from exc


def _set_up_device_math(cfg: TrainConfig, info: DistInfo) -> None:
    """TF32 matmuls on GPUs; on CPUs, threads for the cores the loader workers leave (:func:`cpu_threads`)."""
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(cpu_threads(cfg.data.num_workers))


@dataclass
class TrainingState:
    """What a checkpoint restores: the model, its optimiser and schedule, and the steps taken."""

    model: VidLA
    opt: Optimization
    step: int


def build_state(cfg: TrainConfig, info: DistInfo) -> TrainingState:
    """The model and optimiser at the run's start: resumed, initialised from ``model.init_checkpoint``, or fresh."""
    resume_from = find_resume(cfg.train.output_dir, cfg.train.resume)
    # CLIP's weights are only worth reading when nothing overwrites them.
    pretrained = resume_from is None and cfg.model.init_checkpoint is None
    model = build_model(cfg.model, clip=load_clip(cfg.model, pretrained=pretrained)).to(info.device)
    opt = Optimization.create(model, cfg.optim, cfg.train.steps, fused=info.device.type == "cuda")
    state = TrainingState(model, opt, 0)
    if resume_from is not None:
        _resume(state, resume_from, info)
    elif cfg.model.init_checkpoint is not None:
        load_init_weights(model, cfg.model.init_checkpoint)
        if info.is_main:
            log.info("initialised the model from %s", cfg.model.init_checkpoint)
    return state


def _resume(state: TrainingState, path: Path, info: DistInfo) -> None:
    saved = load_checkpoint(path, info.device)
    state.model.load_state_dict(saved["model"])
    state.opt.optimizer.load_state_dict(saved["optimizer"])
    state.opt.scheduler.load_state_dict(saved["scheduler"])
    state.step = int(saved["step"])
    rngs = saved["rng"]
    set_rng_state(rngs[info.rank] if len(rngs) > info.rank else rngs[0])
    if info.is_main:
        log.info("resumed from %s at step %d", path, state.step)


def build_batches(
    cfg: TrainConfig, info: DistInfo, model: VidLA, start_batch: int
) -> Iterator[dict[str, Any]]:
    """This rank's batches from ``start_batch`` on: the shards, or the benchmark being fine-tuned on."""
    trunk = getattr(model.video, "image", model.video)
    dataset_type = BenchmarkTrainDataset if cfg.data.benchmark is not None else ClipDataset
    dataset = dataset_type(
        cfg.data,
        num_frames=cfg.model.num_frames,
        image_size=trunk.image_size,
        tokenizer=model_tokenizer(cfg.model),
        seed=cfg.train.seed,
        rank=info.rank,
        world_size=info.world_size,
        start_batch=start_batch,
    )
    return iter(worker_loader(dataset, cfg.data, pin_memory=info.device.type == "cuda"))


def _data_parallel(model: VidLA, info: DistInfo) -> nn.Module | None:
    """The DDP wrapper that runs the forward pass when there are several ranks; none for one."""
    if info.world_size == 1:
        return None
    return DistributedDataParallel(
        model, device_ids=[info.device.index] if info.device.type == "cuda" else None
    )


def _autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _log_start(cfg: TrainConfig, info: DistInfo, state: TrainingState) -> None:
    if info.is_main:
        params = sum(p.numel() for p in state.model.parameters())
        log.info(
            "training %s (%s, %.1fM parameters) on %d x %s, batch %d x %d x %d accumulated, steps %d..%d",
            cfg.model.arch, cfg.model.clip or "random CLIP", params / 1e6, info.world_size, info.device,
            info.world_size, cfg.data.batch_size, cfg.optim.accum_steps, state.step + 1, cfg.train.steps,
        )  # fmt: skip


def _save(cfg: TrainConfig, info: DistInfo, state: TrainingState) -> None:
    """Every rank contributes its RNG state; rank 0 writes the checkpoint."""
    saved = _checkpoint_state(state.model, state.opt, state.step, cfg, info)
    if info.is_main:
        path = save_checkpoint(cfg.train.output_dir, state.step, saved, cfg.train.keep_checkpoints)
        log.info("checkpoint %s", path)


def _due(step: int, every: int, last: int) -> bool:
    return step % every == 0 or step == last


def train(cfg: TrainConfig) -> dict[str, float]:
    """Run (or continue) training as ``cfg`` says; returns the last logged metrics."""
    info = init_distributed(cfg.train.device)
    run = cfg.train
    _seed_everything(run.seed)  # identical initialisation on every rank
    _set_up_device_math(cfg, info)
    state = build_state(cfg, info)
    forward = _data_parallel(state.model, info)
    accum = cfg.optim.accum_steps
    batches = build_batches(cfg, info, state.model, state.step * accum)
    loss_fn = VidLALoss(cfg.loss.subtitle_weight, cfg.loss.caption_weight)
    autocast = _autocast(run.precision, info.device)
    metrics_log = MetricsLog(Path(run.output_dir), info.is_main)
    window = MetricsWindow(info.device)
    _log_start(cfg, info, state)
    last: dict[str, float] = {}
    state.model.train()
    while state.step < run.steps:
        wait_start = time.perf_counter()
        micro = [next(batches) for _ in range(accum)]
        data_wait = time.perf_counter() - wait_start
        result = train_step(state.model, micro, loss_fn, state.opt, forward=forward, autocast=autocast)
        state.step += 1
        window.add(result, data_wait)
        if _due(state.step, run.log_every, run.steps):
            clips = cfg.data.batch_size * accum
            last = window.close(result, state.opt, state.model.logit_scale, info, clips, cfg.model.num_frames)
            metrics_log.write(state.step, last)
        if _due(state.step, run.ckpt_every, run.steps):
            _save(cfg, info, state)
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
        "--shards",
        help="the shards/ directory or a URI such as s3://bucket/ds/shards (same as data.shards=DIR)",
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
