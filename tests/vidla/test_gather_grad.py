"""Gather-with-grad: two CPU processes (gloo, DDP) get the gradients of one process on the global batch."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from model_test_utils import tiny_model_config
from torch.nn.parallel import DistributedDataParallel

from vidla.loss import VidLALoss
from vidla.vidla import build_model, model_tokenizer

GLOBAL_BATCH = 8
WORLD = 2


def global_batch() -> dict[str, torch.Tensor]:
    """A fixed batch with missing texts on both ranks' halves."""
    g = torch.Generator().manual_seed(123)
    cfg = tiny_model_config()
    ids, mask = model_tokenizer(cfg)(
        [f"subtitle {i} " * (i % 3 + 1) for i in range(GLOBAL_BATCH)]
        + [f"caption {i}" for i in range(GLOBAL_BATCH)]
    )
    return {
        "video": torch.randn(GLOBAL_BATCH, 4, 3, 32, 32, generator=g),
        "sub_ids": ids[:GLOBAL_BATCH], "sub_mask": mask[:GLOBAL_BATCH],
        "cap_ids": ids[GLOBAL_BATCH:], "cap_mask": mask[GLOBAL_BATCH:],
        "sub_valid": torch.tensor([True, True, False, True, True, True, True, True]),
        "cap_valid": torch.tensor([True, False, True, True, False, True, False, True]),
    }  # fmt: skip


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(tiny_model_config()).train()


def step_gradients(model: torch.nn.Module, batch: dict[str, torch.Tensor], rows: slice) -> torch.Tensor:
    """Forward and backward on ``rows`` of the batch; returns the loss value."""
    out = model(
        batch["video"][rows],
        torch.cat([batch["sub_ids"][rows], batch["cap_ids"][rows]]),
        torch.cat([batch["sub_mask"][rows], batch["cap_mask"][rows]]),
        batch["sub_valid"][rows],
        batch["cap_valid"][rows],
    )
    result = VidLALoss()(out)
    result.loss.backward()
    return result.loss.detach()


def _rank(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        ddp = DistributedDataParallel(fresh_model())
        local = GLOBAL_BATCH // WORLD
        loss = step_gradients(ddp, global_batch(), slice(rank * local, (rank + 1) * local))
        grads = {name: p.grad for name, p in ddp.module.named_parameters() if p.grad is not None}
        torch.save({"loss": loss, "grads": grads}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gathered_loss_has_the_gradients_of_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)

    single = fresh_model()
    loss = step_gradients(single, global_batch(), slice(None))
    expected = {name: p.grad for name, p in single.named_parameters() if p.grad is not None}

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    # The mean of the ranks' losses is the global-batch loss.
    assert torch.allclose(sum(r["loss"] for r in ranks) / WORLD, loss, atol=1e-5)
    for r in ranks:
        assert r["grads"].keys() == expected.keys()
        for name, grad in expected.items():
            assert torch.allclose(r["grads"][name], grad, rtol=1e-4, atol=1e-6), name
    # Non-trivial: the temporal attention and the text tower did receive gradient.
    assert torch.count_nonzero(expected["video.blocks.0.temporal.out.weight"]) > 0
    assert torch.count_nonzero(expected["text.proj.weight"]) > 0
