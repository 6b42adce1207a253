"""The model an evaluation embeds with: a trained checkpoint (its saved config builds the
architecture) or, for zero-shot, the initial weights of a training config.

Kept apart from :mod:`vidla_eval.eval_retrieval` so that the retrieval CLI, and any other
evaluation, load models by one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidla.checkpoint import list_checkpoints, load_checkpoint, upgrade_model_state
from vidla.config import ModelConfig, load_config
from vidla.text_tower import Tokenizer
from vidla.vidla import VidLA, build_model, load_clip, model_tokenizer


@dataclass
class LoadedModel:
    """A model ready to embed, with what produced it (recorded in ``metrics.json``)."""

    model: VidLA
    config: ModelConfig
    tokenizer: Tokenizer
    source: str
    step: int | None


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, or the newest ``step-*.pt`` of a training output directory."""
    if path.is_file():
        return path
    found = list_checkpoints(path) if path.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no checkpoint at {path} (a .pt file or a training output directory)")
    return found[-1][1]


def _eval_model_config(cfg: ModelConfig, frames: int | None) -> ModelConfig:
    """The model config evaluation runs with: ``num_frames`` = ``frames`` or the config's ``eval_frames``
    (the same for a trained checkpoint and a zero-shot initialisation; the temporal positions
    interpolate to it), no gradient checkpointing and no compilation."""
    update: dict[str, Any] = {
        "grad_checkpointing": False,
        "compile": False,
        "num_frames": cfg.eval_frames if frames is None else frames,
    }
    return ModelConfig.model_validate({**cfg.model_dump(), **update})


def load_model(
    checkpoint: Path | None,
    config: Path | None,
    overrides: list[str],
    frames: int | None,
    device: torch.device,
) -> LoadedModel:
    """The model a checkpoint holds (its saved config builds the architecture), or, without a
    checkpoint, the model a training config initialises (zero-shot: e.g. CLIP's weights)."""
    if checkpoint is not None:
        path = resolve_checkpoint(checkpoint)
        state = load_checkpoint(path, "cpu")
        saved_cfg, weights = upgrade_model_state(state["config"]["model"], state["model"])
        cfg = _eval_model_config(ModelConfig.model_validate(saved_cfg), frames)
        model = build_model(cfg, clip=load_clip(cfg, pretrained=False))
        model.load_state_dict(weights)
        source, step = str(path), int(state.get("step", 0))
    elif config is not None:
        cfg = _eval_model_config(load_config(config, overrides).model, frames)
        model = build_model(cfg)
        source, step = f"{config} (initialisation, not trained)", None
    else:
        raise ValueError("give --checkpoint, or --config to evaluate a configuration's initial weights")
    model.to(device).eval()
    return LoadedModel(model, cfg, model_tokenizer(cfg), source, step)


def image_size(model: VidLA) -> int:
    return int(getattr(model.video, "image", model.video).image_size)
