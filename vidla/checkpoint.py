"""Checkpoints that resume a run exactly: model, optimiser, schedule, step, and every rank's RNG.

Files are ``OUTPUT/checkpoints/step-NNNNNNNN.pt``, written under a temporary name and
renamed into place, so a run killed mid-write leaves the previous checkpoint as the
newest complete one. Everything stored is plain data (tensors, numbers, strings), so
checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

CKPT_RE = re.compile(r"^step-(\d{8})\.pt$")


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy, torch (and CUDA) generator states as plain data."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, key, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the complete checkpoints, oldest first."""
    directory = checkpoint_dir(output_dir)
    if not directory.is_dir():
        return []
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := CKPT_RE.match(p.name))]
    return sorted(found)


def save_checkpoint(output_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` atomically and prune all but the newest ``keep``."""
    directory = checkpoint_dir(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step-{step:08d}.pt"
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)
    for _, old in list_checkpoints(output_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def find_resume(output_dir: Path, resume: str) -> Path | None:
    """The checkpoint to resume from: ``auto`` = newest in ``output_dir`` (if any), ``never``, or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"resume checkpoint {path} does not exist")
    return path


TEMPORAL_KEY = "video.temporal_embedding"


def upgrade_model_state(model_config: dict[str, Any], weights: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's model config and weights in the current layout (unchanged if already current).

    Checkpoints written before ``model.temporal_positions`` stored ``max_frames`` (32) rows of
    temporal positions and used rows ``[:T]`` at T frames; a model trained at T therefore has
    exactly rows ``0..T-1`` trained. Those T rows are kept and ``temporal_positions = T``, so
    the upgraded model computes exactly what the old one did at its training T, and any other
    T now interpolates trained rows instead of reading untrained ones.
    """
    if "max_frames" not in model_config:
        return model_config, weights
    cfg = {k: v for k, v in model_config.items() if k != "max_frames"}
    trained = int(cfg.get("num_frames", 12))
    cfg["temporal_positions"] = trained
    weights = dict(weights)
    if TEMPORAL_KEY in weights:
        weights[TEMPORAL_KEY] = weights[TEMPORAL_KEY][:trained].clone()
    return cfg, weights

