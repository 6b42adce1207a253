"""Feature-cache accumulation under DDP: two gloo processes, k = 2 micro-batches each, one step.

Each rank runs :func:`accumulated_step` through its ``DistributedDataParallel`` wrapper (so the
first pass runs under ``no_sync`` and the loss gathers features with gradient across ranks);
the reference is one process taking a plain step on the global batch, both ranks'
micro-batches concatenated in rank order. A comm hook counts DDP's bucket all-reduces: the
accumulated step must reduce exactly as often as one plain step (only its last pass syncs).
Dropout is off: per-rank masks have no single-process equivalent (the replay of dropout draws
is tested in one process by ``test_grad_accum.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from model_test_utils import tiny_model_config
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from vidla.config import OptimConfig
from vidla.data import Clip, collate_clips
from vidla.loss import VidLALoss
from vidla.vidla import VidLA, build_model, model_tokenizer
from vidla_train.train_step import Optimization, train_step

WORLD = 2
MICRO = 2  # micro-batches per rank
MICRO_SIZE = 2  # clips per micro-batch


def _clips() -> list[Clip]:
    """The global batch, rank-major: missing texts on both ranks and in both micro-batches."""
    g = torch.Generator().manual_seed(7)
    n = WORLD * MICRO * MICRO_SIZE
    return [
        Clip(
            torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=g),
            None if i in (1, 6) else f"subtitle of clip {i} " * (i % 3 + 1),
            None if i in (2, 3, 5) else f"a caption about clip {i}",
            str(i),
            "short",
        )
        for i in range(n)
    ]


def _collate(clips: list[Clip]) -> dict[str, Any]:
    return collate_clips(clips, model_tokenizer(tiny_model_config()))


def _local_clips(rank: int) -> list[Clip]:
    local = MICRO * MICRO_SIZE
    return _clips()[rank * local : (rank + 1) * local]


def _model_and_opt() -> tuple[VidLA, Optimization]:
    torch.manual_seed(0)
    model = build_model(tiny_model_config()).train()
    with torch.no_grad():  # a temperature the gradient can see clearly, below the clamp
        model.logit_scale.fill_(2.0)
    optim = OptimConfig(lr=1e-3, min_lr=0.0, warmup_steps=0, grad_clip=None, weight_decay=0.0)
    return model, Optimization.create(model, optim, 4)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _rank(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model, opt = _model_and_opt()
        ddp = DistributedDataParallel(model)
        reduces: list[int] = []

        def counting_hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP rejects string annotations
            reduces.append(bucket.index())
            return allreduce_hook(state, bucket)

        ddp.register_comm_hook(None, counting_hook)
        mine = _local_clips(rank)
        micro = [_collate(mine[i : i + MICRO_SIZE]) for i in range(0, len(mine), MICRO_SIZE)]
        step = train_step(model, micro, VidLALoss(), opt, forward=ddp)
        grads, accumulated_reduces = _grads(model), len(reduces)
        # A plain step on the same local batch, for the all-reduce count of one synced backward.
        train_step(model, _collate(mine), VidLALoss(), opt, forward=ddp)
        torch.save(
            {
                "grads": grads,
                "loss": step.losses.loss.detach(),
                "reduces": (accumulated_reduces, len(reduces) - accumulated_reduces),
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ddp_accumulated_step_has_the_gradient_of_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    single, opt = _model_and_opt()
    reference = train_step(single, _collate(_clips()), VidLALoss(), opt)
    expected = _grads(single)

    # Each rank's loss is its rows' share; their mean is the global-batch loss.
    assert torch.allclose(sum(r["loss"] for r in ranks) / WORLD, reference.losses.loss, rtol=1e-5)
    assert (
        "logit_scale" in expected and torch.count_nonzero(expected["video.blocks.0.temporal.out.weight"]) > 0
    )
    scale = max(float(g.abs().max()) for g in expected.values())
    for r in ranks:
        assert r["grads"].keys() == expected.keys()
        for name, grad in expected.items():
            assert torch.allclose(r["grads"][name], grad, rtol=1e-4, atol=2e-5 * scale), name
        accumulated, plain = r["reduces"]
        assert plain >= 1 and accumulated == plain  # the no_sync pass did not all-reduce
