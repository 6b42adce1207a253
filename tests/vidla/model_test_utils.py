"""Tiny random CLIP configurations shared by the model tests (no weights are downloaded)."""

from __future__ import annotations

from typing import Any

from vidla.config import ModelConfig

TINY_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
}
TINY_TEXT: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 48,
}


def tiny_model_config(**overrides: Any) -> ModelConfig:
    """A random two-layer CLIP with 32x32 frames (N = 16 patches) and the byte tokenizer."""
    values: dict[str, Any] = {
        "clip": None,
        "tokenizer": "bytes",
        "context_length": 48,
        "random_clip": {"vision": TINY_VISION, "text": TINY_TEXT, "projection_dim": 16},
        "num_frames": 4,
        "temporal_positions": 4,
        "mst_levels": 2,
        "mst_per_level": 2,
        "mst_stride": 2,
    }
    values.update(overrides)
    return ModelConfig.model_validate(values)
