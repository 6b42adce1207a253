"""Temporal order: VidLA vs. the mean-pooling baseline on event-order clips (issue 6).

    python bench/temporal_benchmark.py                 # the recorded run (docs/performance.md)
    python bench/temporal_benchmark.py --quick         # ~1 min smoke run
    python bench/temporal_benchmark.py --seeds 0 1 2 --steps 600 --json out.json

Two stages, as in the paper (and CLIP4Clip), which start from a CLIP checkpoint:

1. **CLIP stand-in** (shared): a tiny random CLIP (``configs/train/demo.yaml``-sized,
   byte tokenizer) is trained for ``pretrain_steps`` as an image-text model on single
   event frames ("a red square", :func:`temporal_events.image_batch`) with
   ``transformers``' CLIP loss. Without it both video towers must learn to see colours
   and shapes and time at once from scratch, and at this budget neither learns the order
   (``--pretrain-steps 0``; see ``docs/performance.md``).
2. **Video stage**: both models are the real ones (``vidla.vidla.build_model`` with
   ``arch: vidla`` and ``arch: meanpool``), each built from its own copy of that CLIP (so
   the baseline's weights equal VidLA's CLIP weights; checked), and trained in lockstep on
   identical batches of :mod:`temporal_events` clips with the trainer's own step
   (:func:`vidla_train.train_step.train_step`: the real loss, :class:`vidla.loss.VidLALoss`,
   caption term only since the clips have no subtitle; AdamW parameter groups, warm-up +
   cosine schedule, clipping, temperature clamp), and the same steps, batch, learning rate
   and clipping.

Batches are rendered in memory rather than read through the WebDataset loader: on this
2-core machine the loader's decode workers would take a core from training, and rendering
at the model's input size once per step for both models guarantees identical batches.
Training runs one intra-op thread by default: the machine is shared, and two OpenMP
threads on two busy cores measured over 10x slower per step than one.

Evaluation: one gallery per length (frames at segment middles), as the paper evaluates
its hierarchical test set per scale; each caption queries its length's gallery (so a short
caption is not also matched by a longer clip that contains its events); text->video ranks
from :func:`vidla_eval.metrics.retrieval_ranks` (ties count against the query), summarised on
all queries and on the order-sensitive ones (another gallery clip shows the same events in
another order), per length and over all lengths. Also printed: chance R@1 (1 / gallery
size), the order-blind ceiling on the order-sensitive queries (mean of
1/m, m = clips with the query's events), and "order pick": the fraction of order-sensitive
queries whose clip scores strictly above all its other orders (chance 1/m). A second table
knocks parts of the trained VidLA out at evaluation (temporal position embedding zeroed,
temporal attention's output zeroed, [MST] tokens removed) to show what carries the order.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling temporal_tables, also when imported by path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # temporal_events: test and bench support

from temporal_events import (  # noqa: E402
    Batch,
    eval_gallery,
    event_set,
    image_batch,
    order_sensitive,
    orders_in_gallery,
    train_batch,
)
from temporal_tables import ARCHS, KNOCKOUTS, ROWS, frames_table, knockout_table, table  # noqa: E402

from vidla.config import ModelConfig, OptimConfig  # noqa: E402
from vidla.data import Clip, collate_clips  # noqa: E402
from vidla.loss import VidLALoss  # noqa: E402
from vidla.text_tower import Tokenizer  # noqa: E402
from vidla.vidla import VidLA, build_model, load_clip, model_tokenizer, normalize_video  # noqa: E402
from vidla_eval.metrics import retrieval_ranks  # noqa: E402
from vidla_train.train import cpu_threads  # noqa: E402
from vidla_train.train_step import Optimization, optimizer_step, train_step  # noqa: E402


@dataclass(frozen=True)
class Budget:
    """What both models get, identically."""

    pretrain_steps: int = 300
    pretrain_batch: int = 64
    steps: int = 400
    batch: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 30
    weight_decay: float = 0.02
    grad_clip: float = 10.0
    frames: int = 12
    size: int = 32
    groups: int = 24  # per length: event sets in k orders, and as many shown once


def model_config(arch: str, budget: Budget) -> ModelConfig:
    """A tiny random CLIP like ``configs/train/demo.yaml`` (4x4 patches per frame), T frames, U=3 V=2 r=2."""
    width = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256}
    return ModelConfig.model_validate(
        {
            "clip": None,
            "tokenizer": "bytes",
            "context_length": 96,
            "random_clip": {
                "vision": {**width, "image_size": budget.size, "patch_size": budget.size // 4},
                "text": {**width, "max_position_embeddings": 96},
                "projection_dim": 64,
            },
            "arch": arch,
            "num_frames": budget.frames,
            "temporal_positions": budget.frames,
            "mst_levels": 3,
            "mst_per_level": 2,
            "mst_stride": 2,
        }
    )


def optim_config(budget: Budget, total_steps: int) -> OptimConfig:
    """The trainer's optimiser settings for ``total_steps`` steps of ``budget`` (AdamW's betas and eps: defaults)."""
    return OptimConfig(
        lr=budget.lr,
        min_lr=budget.min_lr,
        weight_decay=budget.weight_decay,
        warmup_steps=min(budget.warmup, total_steps),
        grad_clip=budget.grad_clip,
    )


def pretrain_clip(clip: nn.Module, budget: Budget, seed: int, tokenizer: Tokenizer) -> None:
    """Stage 1: image-text training of the ``transformers`` CLIP in place (the checkpoint stand-in)."""
    scale_max = model_config("vidla", budget).logit_scale_max
    opt = Optimization.create(clip, optim_config(budget, budget.pretrain_steps), budget.pretrain_steps)
    clip.train()
    for step in range(budget.pretrain_steps):
        images, captions = image_batch(seed, step, budget.pretrain_batch, budget.size)
        ids, mask = tokenizer(captions)
        pixels = normalize_video(torch.from_numpy(images)[:, None])[:, 0]
        loss = clip(input_ids=ids, attention_mask=mask, pixel_values=pixels, return_loss=True).loss
        optimizer_step(clip, loss, opt, lambda: clip.logit_scale.clamp_(0.0, scale_max))


def build_pair(seed: int, budget: Budget) -> dict[str, VidLA]:
    """Both models from one CLIP drawn and pre-trained under ``seed`` (each gets a copy)."""
    torch.manual_seed(seed)
    clip = load_clip(model_config("vidla", budget))
    pretrain_clip(clip, budget, seed, model_tokenizer(model_config("vidla", budget)))
    models = {arch: build_model(model_config(arch, budget), clip=copy.deepcopy(clip)) for arch in ARCHS}
    check_same_clip(models["vidla"], models["meanpool"])
    return models


def check_same_clip(vidla: VidLA, meanpool: VidLA) -> None:
    """Raise unless the baseline's every weight (text tower, image tower, temperature) equals VidLA's."""
    vidla_video = vidla.video.state_dict()
    pairs = [(vidla.text.state_dict(), meanpool.text.state_dict(), "text.")]
    pairs.append((vidla_video, meanpool.video.image.state_dict(), "video."))
    for ours, theirs, prefix in pairs:
        for name, value in theirs.items():
            if not torch.equal(ours[name], value):
                raise AssertionError(f"{prefix}{name} differs between the two models")
    if not torch.equal(vidla.logit_scale, meanpool.logit_scale):
        raise AssertionError("logit_scale differs between the two models")


def loader_batch(batch: Batch, tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
    """A batch as the trainer's loader delivers it (:func:`vidla.data.collate_clips`): uint8 frames,
    captions on the caption side, no subtitles."""
    clips = [
        Clip(torch.from_numpy(video), None, caption, str(i), length)
        for i, (video, caption, length) in enumerate(
            zip(batch.video, batch.captions, batch.lengths, strict=True)
        )
    ]
    return collate_clips(clips, tokenizer)


def train_pair(models: dict[str, VidLA], budget: Budget, seed: int, log_every: int = 100) -> dict[str, float]:
    """Train both models in lockstep on the same batches with the trainer's step; returns each one's seconds."""
    tokenizer = model_tokenizer(model_config("vidla", budget))
    opts = {
        arch: Optimization.create(m, optim_config(budget, budget.steps), budget.steps)
        for arch, m in models.items()
    }
    seconds = dict.fromkeys(models, 0.0)
    loss_fn = VidLALoss()

    def step(arch: str, batch: dict[str, torch.Tensor]) -> float:
        start = time.perf_counter()
        models[arch].train()
        loss = float(train_step(models[arch], batch, loss_fn, opts[arch]).losses.loss.detach())
        seconds[arch] += time.perf_counter() - start
        return loss

    for step_index in range(budget.steps):
        batch = loader_batch(
            train_batch(seed, step_index, budget.batch, budget.frames, budget.size), tokenizer
        )
        losses = {arch: step(arch, batch) for arch in models}
        if (step_index + 1) % log_every == 0 or step_index + 1 == budget.steps:
            print(f"  seed {seed} step {step_index + 1}: " + " ".join(f"{a} {v:.3f}" for a, v in losses.items()),
                  flush=True)  # fmt: skip
    return seconds


@torch.no_grad()
def similarities(model: VidLA, gallery: Batch, tokenizer: Tokenizer, chunk: int = 64) -> np.ndarray:
    """``(captions, clips)`` cosine similarities of the gallery, in evaluation mode."""
    model.eval()
    videos = [
        model.encode_video(normalize_video(torch.from_numpy(gallery.video[i : i + chunk])))
        for i in range(0, len(gallery.video), chunk)
    ]
    ids, mask = tokenizer(gallery.captions)
    return (model.encode_text(ids, mask) @ torch.cat(videos).t()).numpy()


def order_pick(sim: np.ndarray, gallery: Batch) -> np.ndarray:
    """Per query: whether its clip scores strictly above every other order of its events (ties against)."""
    sets = [event_set(s) for s in gallery.sequences]
    out = np.zeros(len(sets), dtype=bool)
    for q, key in enumerate(sets):
        rivals = [j for j, other in enumerate(sets) if other == key and j != q]
        out[q] = all(sim[q, q] > sim[q, j] for j in rivals)
    return out


def per_length_ranks(sim: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Text->video rank of each caption within its own length's gallery (caption ``i`` shows clip ``i``)."""
    ranks = np.zeros(len(lengths), dtype=np.int64)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        ranks[idx] = retrieval_ranks(sim[np.ix_(idx, idx)], np.arange(len(idx)))[0].t2v
    return ranks


def row_queries(gallery: Batch) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """For each table row (a length, or all): its queries and its order-sensitive queries, as masks."""
    sensitive = order_sensitive(gallery.sequences)
    lengths = np.array(gallery.lengths)
    for row in ROWS:
        rows = np.ones(len(lengths), bool) if row == "all" else lengths == row
        yield row, rows, rows & sensitive


def evaluate(sim: np.ndarray, gallery: Batch) -> dict[str, dict[str, float]]:
    """R@1 on all and on order-sensitive queries, and order pick, per length and over all lengths."""
    ranks = per_length_ranks(sim, np.array(gallery.lengths))
    picks = order_pick(sim, gallery)
    out = {}
    for row, rows, hard in row_queries(gallery):
        out[row] = {
            "r1": 100.0 * float(np.mean(ranks[rows] == 1)),
            "r1_order": 100.0 * float(np.mean(ranks[hard] == 1)),
            "pick": 100.0 * float(np.mean(picks[hard])),
        }
    return out


def gallery_facts(gallery: Batch) -> dict[str, dict[str, float]]:
    """Query counts and chance levels per row (model-independent)."""
    m = orders_in_gallery(gallery.sequences)
    lengths = np.array(gallery.lengths)
    out = {}
    for row, rows, hard in row_queries(gallery):
        out[row] = {
            "queries": int(rows.sum()),
            "order_queries": int(hard.sum()),
            "chance": 100.0 * float(np.mean([1.0 / np.sum(lengths == g) for g in lengths[rows]])),
            "order_blind": 100.0 * float(np.mean(1.0 / m[hard])),
        }
    return out


def knockouts(vidla: VidLA) -> dict[str, VidLA]:
    """Copies of the trained VidLA with one temporal part disabled, to see which one carries the order.

    Zeroing the temporal position embedding leaves time visible only through the [MST]
    levels' frame strides; zeroing the temporal attention's output projection removes that
    branch exactly (its initial state); removing the [MST] tokens leaves [CLS] and patches.
    """
    out = {name: copy.deepcopy(vidla) for name in KNOCKOUTS}
    out["no temporal position"].video.temporal_embedding.data.zero_()
    for block in out["no temporal attention"].video.blocks:
        block.temporal.out.weight.data.zero_()
        block.temporal.out.bias.data.zero_()
    tower = out["no [MST]"].video
    tower.mst_levels = 0
    tower.mst_tokens = nn.Parameter(tower.mst_tokens.data[:0])
    return out


def run_seed(seed: int, budget: Budget, gallery: Batch, wider: Batch) -> dict[str, Any]:
    """Build, train and evaluate both models (and VidLA's knock-outs) for one seed; ``wider`` is the same
    gallery sampled at another frame count than training's (VidLA interpolates its temporal positions)."""
    start = time.perf_counter()
    models = build_pair(seed, budget)
    pretrain_seconds = time.perf_counter() - start
    seconds = train_pair(models, budget, seed)
    tokenizer = model_tokenizer(model_config("vidla", budget))
    scores = {arch: evaluate(similarities(m, gallery, tokenizer), gallery) for arch, m in models.items()}
    knocked = {
        name: evaluate(similarities(m, gallery, tokenizer), gallery)
        for name, m in knockouts(models["vidla"]).items()
    }
    other_frames = {arch: evaluate(similarities(m, wider, tokenizer), wider) for arch, m in models.items()}
    return {
        "seed": seed,
        "pretrain_seconds": pretrain_seconds,
        "train_seconds": seconds,
        "scores": scores,
        "knockouts": knocked,
        "other_frames": other_frames,
    }


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Budget]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: few steps, small batches and gallery, one seed"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--pretrain-steps", type=int, help="image-text steps of the shared CLIP stand-in (0: random CLIP)"
    )
    parser.add_argument("--steps", type=int, help="video-stage steps, each model")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument(
        "--groups", type=int, help="per length: event sets in several orders (and as many once)"
    )
    parser.add_argument("--gallery-seed", type=int, default=12345)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (OMP_NUM_THREADS wins)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    quick = Budget(pretrain_steps=20, pretrain_batch=32, steps=30, batch=16, warmup=5, groups=3)
    budget = quick if args.quick else Budget()
    if args.quick:
        args.seeds = args.seeds[:1]
    names = ("pretrain_steps", "steps", "batch", "lr", "groups")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    return args, Budget(**{**asdict(budget), **overrides})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, budget = parse_args(argv)
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(args.threads, cpu_threads(0)))
    start = time.perf_counter()
    gallery = eval_gallery(args.gallery_seed, budget.groups, budget.frames, budget.size)
    wider = eval_gallery(args.gallery_seed, budget.groups, 2 * budget.frames, budget.size)
    facts = gallery_facts(gallery)
    print(f"budget (both models): {asdict(budget)}; seeds {args.seeds}; {torch.get_num_threads()} threads",
          flush=True)  # fmt: skip
    runs = [run_seed(seed, budget, gallery, wider) for seed in args.seeds]
    result = {"budget": asdict(budget), "facts": facts, "runs": runs, "seconds": time.perf_counter() - start}
    print()
    print(table(runs, facts))
    print()
    print(knockout_table(runs))
    print()
    print(frames_table(runs, budget.frames, 2 * budget.frames))
    print()
    for r in runs:
        trained = ", ".join(f"{a} {s:.0f} s" for a, s in r["train_seconds"].items())
        print(f"seed {r['seed']}: CLIP stand-in {r['pretrain_seconds']:.0f} s; video stage {trained}")
    print(f"total {result['seconds']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
