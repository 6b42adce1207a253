"""The VidLA two-tower model and its construction from a CLIP checkpoint.

:func:`build_model` loads a ``transformers`` CLIP by hub name or local path (or builds a
random one from :class:`~vidla.config.RandomClipConfig`), turns its vision tower into
the configured video tower and keeps its text tower and temperature. :class:`VidLA`
embeds a batch as the loader delivers it: one video and two texts (subtitle side,
caption side) per clip, a missing text being marked invalid rather than encoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidla.config import ModelConfig
from vidla.text_tower import ByteTokenizer, TextTower, Tokenizer, build_tokenizer
from vidla.video_tower import (
    MeanPoolVideoTower,
    VidLAVideoTower,
    init_temporal_from_clip,
    load_clip_vision,
)

# CLIP's pixel normalisation (the same for every OpenAI CLIP checkpoint).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_video(video: torch.Tensor) -> torch.Tensor:
    """Loader frames ``(B, T, H, W, 3)`` uint8 -> CLIP-normalised ``(B, T, 3, H, W)`` float32.

    Done on the training device, not in loader workers: uint8 is a quarter of the bytes to
    move and the arithmetic is free on a GPU.
    """
    mean = torch.tensor(CLIP_MEAN, device=video.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=video.device).view(1, 1, 3, 1, 1)
    x = video.permute(0, 1, 4, 2, 3).float().div_(255.0)
    return (x - mean) / std


@dataclass
class VidLAOutput:
    """L2-normalised embeddings of one batch; texts whose ``*_valid`` is False are zero rows."""

    video: torch.Tensor  # (B, P)
    subtitle: torch.Tensor  # (B, P)
    subtitle_valid: torch.Tensor  # (B,) bool
    caption: torch.Tensor  # (B, P)
    caption_valid: torch.Tensor  # (B,) bool
    logit_scale: torch.Tensor  # () the exponentiated inverse temperature


class VidLA(nn.Module):
    """Video tower + CLIP text tower + learnable temperature."""

    def __init__(
        self, video: nn.Module, text: TextTower, logit_scale_init: float, logit_scale_max: float = 4.6052
    ) -> None:
        super().__init__()
        self.video = video
        self.text = text
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        self.logit_scale_max = logit_scale_max

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, T, 3, H, W)`` pixels -> L2-normalised ``(B, P)``."""
        return F.normalize(self.video(video), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` tokens -> L2-normalised ``(B, P)``."""
        return F.normalize(self.text(input_ids, attention_mask), dim=-1)

    def encode_valid_texts(self, ids: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Encode only the valid rows of ``(N, L)`` texts in one call; invalid rows become zeros.

        When no row is valid the encoder still runs on one row, multiplied by zero, so every
        parameter takes part in every step (DDP requires it without find_unused_parameters).
        """
        rows = valid.nonzero().squeeze(1)
        if rows.numel() == 0:
            dummy = self.encode_text(ids[:1], mask[:1])
            return dummy.new_zeros(ids.shape[0], dummy.shape[1]) + 0.0 * dummy.sum()
        feats = self.encode_text(ids[rows], mask[rows])  # (n_valid, P)
        out = feats.new_zeros(ids.shape[0], feats.shape[1])
        return out.index_copy(0, rows, feats)

    def forward(
        self,
        video: torch.Tensor,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        subtitle_valid: torch.Tensor,
        caption_valid: torch.Tensor,
    ) -> VidLAOutput:
        """Embed a batch.

        Args:
            video: ``(B, T, 3, H, W)`` normalised pixels.
            text_ids, text_mask: ``(2B, L)``: rows ``0..B-1`` the subtitle side, ``B..2B-1`` the caption side.
            subtitle_valid, caption_valid: ``(B,)`` bool, False where the sample has no such text.
        """
        b = video.shape[0]
        texts = self.encode_valid_texts(text_ids, text_mask, torch.cat([subtitle_valid, caption_valid]))
        return VidLAOutput(
            video=self.encode_video(video),
            subtitle=texts[:b],
            subtitle_valid=subtitle_valid,
            caption=texts[b:],
            caption_valid=caption_valid,
            logit_scale=self.logit_scale.exp(),
        )

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the temperature in CLIP's range, ``1/T`` in ``[1, 100]``."""
        self.logit_scale.clamp_(0.0, self.logit_scale_max)


def load_clip(cfg: ModelConfig, pretrained: bool = True) -> nn.Module:
    """A ``transformers`` ``CLIPModel``: from ``cfg.clip`` (hub name or path) or random from ``cfg.random_clip``.

    ``pretrained=False`` builds ``cfg.clip``'s architecture without reading its weights, for
    callers that load a VidLA checkpoint over it anyway (evaluation).
    """
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    if cfg.clip is not None:
        if not pretrained:
            return CLIPModel._from_config(CLIPConfig.from_pretrained(cfg.clip), attn_implementation="sdpa")
        return CLIPModel.from_pretrained(cfg.clip, attn_implementation="sdpa")
    text_kwargs = dict(cfg.random_clip.text)
    if cfg.tokenizer == "bytes":
        text_kwargs.update(
            vocab_size=ByteTokenizer.vocab_size,
            bos_token_id=ByteTokenizer.bos_id,
            eos_token_id=ByteTokenizer.eos_id,
            pad_token_id=ByteTokenizer.pad_id,
        )
    text_kwargs.setdefault("max_position_embeddings", cfg.context_length)
    config = CLIPConfig(
        text_config=CLIPTextConfig(**text_kwargs).to_dict(),
        vision_config=CLIPVisionConfig(**cfg.random_clip.vision).to_dict(),
        projection_dim=cfg.random_clip.projection_dim,
    )
    return CLIPModel._from_config(config, attn_implementation="sdpa")


def build_video_tower(cfg: ModelConfig, clip: nn.Module) -> nn.Module:
    """The configured video tower with CLIP's vision weights copied in."""
    vision_config = clip.config.vision_config
    projection_dim = clip.config.projection_dim
    if cfg.arch == "meanpool":
        tower = MeanPoolVideoTower(vision_config, projection_dim)
        load_clip_vision(tower.image, clip.vision_model, clip.visual_projection)
    else:
        tower = VidLAVideoTower(
            vision_config,
            projection_dim,
            temporal_positions=cfg.temporal_positions,
            mst_levels=cfg.mst_levels,
            mst_per_level=cfg.mst_per_level,
            mst_stride=cfg.mst_stride,
            patch_attends_cls=cfg.patch_attends_cls,
            local_temporal=cfg.local_temporal,
        )
        load_clip_vision(tower, clip.vision_model, clip.visual_projection)
        if cfg.temporal_init == "clip":
            init_temporal_from_clip(tower)
    trunk = tower.image if isinstance(tower, MeanPoolVideoTower) else tower
    trunk.grad_checkpointing = cfg.grad_checkpointing
    if cfg.compile:
        trunk.compile_blocks()
    return tower


def build_model(cfg: ModelConfig, clip: nn.Module | None = None) -> VidLA:
    """VidLA (or the mean-pooling baseline) initialised from CLIP; ``clip`` defaults to :func:`load_clip`."""
    clip = load_clip(cfg) if clip is None else clip
    video = build_video_tower(cfg, clip)
    text = TextTower(clip.text_model, clip.text_projection)
    if cfg.grad_checkpointing:
        text.enable_grad_checkpointing()
    scale = float(clip.logit_scale.detach()) if cfg.logit_scale_init is None else cfg.logit_scale_init
    return VidLA(video, text, scale, cfg.logit_scale_max)


def model_tokenizer(cfg: ModelConfig) -> Tokenizer:
    """The tokenizer ``cfg`` names, defaulting to the CLIP checkpoint's."""
    name = cfg.tokenizer if cfg.tokenizer is not None else cfg.clip
    assert name is not None  # guaranteed by ModelConfig validation
    return build_tokenizer(name, cfg.context_length)
