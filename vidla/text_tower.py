"""The text tower (CLIP's text encoder, unchanged) and the tokenizers that feed it.

VidLA embeds two texts per clip, the subtitle side and the caption side, with the same
encoder. The tokenizers share one call signature, ``tokenizer(texts) -> (ids, mask)``,
so the loader tokenises in its workers whichever is configured:

* :class:`HFTokenizer`: CLIP's BPE tokenizer from a checkpoint (the real configs).
* :class:`ByteTokenizer`: UTF-8 bytes; needs no files, for randomly initialised models
  (tests, the CPU demo) where CLIP's vocabulary cannot be downloaded.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class Tokenizer(Protocol):
    """``texts -> (input_ids (B, L) int64, attention_mask (B, L) int64)``, padded to the longest."""

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...


class ByteTokenizer:
    """Bytes 0..255 as ids 1..256, ``[BOS]`` = 257, ``[EOS]`` = 258, padding 0; truncated to ``context_length``.

    ``[EOS]`` has the highest id, so CLIP's text pooling (the first ``[EOS]`` position) works unchanged.
    """

    pad_id = 0
    bos_id = 257
    eos_id = 258
    vocab_size = 259

    def __init__(self, context_length: int = 77) -> None:
        self.context_length = context_length

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [
            [self.bos_id] + [b + 1 for b in text.encode("utf-8")[: self.context_length - 2]] + [self.eos_id]
            for text in texts
        ]
        length = max((len(r) for r in rows), default=2)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids, mask


class HFTokenizer:
    """A ``transformers`` CLIP tokenizer loaded by name or path, truncating at ``context_length``."""

    def __init__(self, name_or_path: str, context_length: int = 77) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.context_length = context_length

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        return enc["input_ids"].long(), enc["attention_mask"].long()


def build_tokenizer(name: str, context_length: int) -> Tokenizer:
    """``'bytes'`` -> :class:`ByteTokenizer`; anything else is a tokenizer name or path."""
    if name == "bytes":
        return ByteTokenizer(context_length)
    return HFTokenizer(name, context_length)


class TextTower(nn.Module):
    """CLIP's text encoder and projection: ``(B, L)`` token ids -> ``(B, P)`` embeddings (not normalised)."""

    def __init__(self, text_model: nn.Module, projection: nn.Linear) -> None:
        super().__init__()
        self.text_model = text_model  # a transformers CLIPTextModel
        self.proj = projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output  # (B, D)
        return self.proj(pooled)

    def enable_grad_checkpointing(self) -> None:
        """Recompute each text layer in the backward pass (transformers >= 5 names it activation checkpointing)."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.text_model, "activation_checkpointing_enable"):
            self.text_model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.text_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
