"""Video towers built from a CLIP ViT: VidLA, the plain image tower, and the mean-pooling baseline.

The modules re-implement CLIP's ViT with a fused QKV projection and token-major
attention so that VidLA's factored attention (:mod:`vidla.attention`) can run on the
same tensors, and copy every weight from a ``transformers`` CLIP (:func:`load_clip_vision`);
they do not wrap HF's modules because VidLA changes the inside of every layer.

* :class:`ClipImageTower`: CLIP's image tower, frame by frame. The baseline that
  VidLA's speed is measured against, and the trunk of :class:`MeanPoolVideoTower`.
* :class:`VidLAVideoTower`: T frames of patch tokens with CLIP's spatial and new
  temporal position embeddings (trained at one frame count, linearly interpolated to
  any other: :func:`temporal_interpolation`), one [CLS], U*V [MST] tokens; each layer runs a
  spatially-local temporal attention (zero-initialised output, so it starts as an
  identity) then the global attention with the asymmetric mask; the video embedding
  is the projected final [CLS].
* :class:`MeanPoolVideoTower`: CLIP4Clip's "meanP": frame embeddings, L2-normalised,
  averaged over time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.activations import ACT2FN

from vidla.attention import (
    TokenLayout,
    factored_global_attention,
    plain_attention,
    summary_attention_mask,
)


class SelfAttention(nn.Module):
    """Multi-head attention projections with one fused QKV matrix; the attention itself is passed in."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, S, D)`` -> q, k, v each ``(B, S, H, Dh)`` (views of one fused projection)."""
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).unbind(2)
        return q, k, v

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        """``(B, S, H, Dh)`` -> ``(B, S, D)`` through the output projection."""
        return self.out(out.flatten(2))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = ACT2FN[act]
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ClipBlock(nn.Module):
    """One pre-norm CLIP transformer layer."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, act: str, eps: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_dim, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, S, D)`` -> ``(B, S, D)`` with unmasked attention."""
        x = x + self.attn.merge(plain_attention(*self.attn.project(self.ln_1(x))))
        return x + self.mlp(self.ln_2(x))


class VidLABlock(ClipBlock):
    """A CLIP layer preceded by VidLA's spatially-local temporal attention, with the masked global attention.

    ``local_temporal=False`` is the paper's ablation without the temporal attention (Table 4):
    the block then has no temporal parameters at all (nothing unused for DDP to trip over) and
    is CLIP's layer with the global mask.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, act: str, eps: float, local_temporal: bool = True) -> None:
        super().__init__(dim, heads, mlp_dim, act, eps)
        self.local_temporal = local_temporal
        if local_temporal:
            self.ln_t = nn.LayerNorm(dim, eps=eps)
            self.temporal = SelfAttention(dim, heads)
            # Zero output projection: the temporal branch adds exactly 0 at initialisation.
            nn.init.zeros_(self.temporal.out.weight)
            nn.init.zeros_(self.temporal.out.bias)

    def temporal_sublayer(self, patches: torch.Tensor, frames: int) -> torch.Tensor:
        """``Z_SlT = MMSA(LN(Z), M_local) + Z`` on the frame-major patch tokens ``(B, T*N, D)``.

        The mask ``M_local`` (a patch sees its own spatial position in every frame) makes this
        ``B*N`` independent attentions over ``T`` tokens. The LayerNorm reads the tokens
        position-major, so its output is already laid out as those sequences and the
        regrouping costs no copy of its own; the result is added back frame-major.
        """
        b, tn, d = patches.shape
        n = tn // frames
        by_position = self.ln_t(patches.view(b, frames, n, d).transpose(1, 2))  # (B, N, T, D)
        q, k, v = self.temporal.project(by_position.reshape(b * n, frames, d))  # (B*N, T, H, Dh) each
        delta = self.temporal.merge(plain_attention(q, k, v))  # (B*N, T, D)
        return patches + delta.view(b, n, frames, d).transpose(1, 2).reshape(b, tn, d)

    def forward(self, z: torch.Tensor, layout: TokenLayout, summary_mask: torch.Tensor) -> torch.Tensor:
        """``(B, S, D)`` -> ``(B, S, D)``: temporal attention on patches, then global attention, then MLP."""
        if self.local_temporal:
            p = layout.prefix
            z = torch.cat([z[:, :p], self.temporal_sublayer(z[:, p:], layout.frames)], dim=1)
        q, k, v = self.attn.project(self.ln_1(z))
        z = z + self.attn.merge(factored_global_attention(q, k, v, layout, summary_mask))
        return z + self.mlp(self.ln_2(z))


class _ClipVisionTrunk(nn.Module):
    """The parts every tower shares with CLIP's vision model: embeddings, norms, projection, blocks."""

    block_type: type[ClipBlock] = ClipBlock

    def __init__(self, vision_config: Any, projection_dim: int, **block_options: Any) -> None:
        super().__init__()
        c = vision_config
        dim = c.hidden_size
        self.image_size: int = c.image_size
        self.patch_size: int = c.patch_size
        self.num_patches: int = (c.image_size // c.patch_size) ** 2
        self.class_embedding = nn.Parameter(torch.randn(dim) * dim**-0.5)
        self.patch_embedding = nn.Conv2d(c.num_channels, dim, c.patch_size, stride=c.patch_size, bias=False)
        self.position_embedding = nn.Parameter(torch.randn(1 + self.num_patches, dim) * 0.02)
        self.pre_ln = nn.LayerNorm(dim, eps=c.layer_norm_eps)
        self.blocks = nn.ModuleList(
            self.block_type(
                dim, c.num_attention_heads, c.intermediate_size, c.hidden_act, c.layer_norm_eps, **block_options
            )
            for _ in range(c.num_hidden_layers)
        )
        self.post_ln = nn.LayerNorm(dim, eps=c.layer_norm_eps)
        self.proj = nn.Linear(dim, projection_dim, bias=False)
        self.grad_checkpointing = False

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, N, D)`` patch embeddings with CLIP's spatial positions."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"frames must be {self.image_size}x{self.image_size}, got {tuple(images.shape[-2:])}"
            )
        x = self.patch_embedding(images.to(self.patch_embedding.weight.dtype))  # (B, D, h, w)
        return x.flatten(2).transpose(1, 2) + self.position_embedding[1:]

    def run_block(self, block: nn.Module, *args: Any) -> torch.Tensor:
        """One block, recomputed in the backward pass under gradient checkpointing (memory for compute)."""
        if self.grad_checkpointing and self.training:
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def compile_blocks(self) -> None:
        """torch.compile each block in place (the tower's glue stays eager)."""
        for block in self.blocks:
            block.compile()


class ClipImageTower(_ClipVisionTrunk):
    """CLIP's image tower: ``(B, 3, H, W)`` -> ``(B, P)`` projected [CLS] embeddings (not normalised)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_tokens(images)  # (B, N, D)
        cls = (self.class_embedding + self.position_embedding[0]).expand(x.shape[0], 1, -1)
        x = self.pre_ln(torch.cat([cls.to(x.dtype), x], dim=1))  # (B, 1+N, D)
        for block in self.blocks:
            x = self.run_block(block, x)
        return self.proj(self.post_ln(x[:, 0]))


class MeanPoolVideoTower(nn.Module):
    """CLIP4Clip meanP baseline: ``(B, T, 3, H, W)`` -> mean of L2-normalised frame embeddings ``(B, P)``."""

    def __init__(self, vision_config: Any, projection_dim: int) -> None:
        super().__init__()
        self.image = ClipImageTower(vision_config, projection_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        frames = self.image(video.flatten(0, 1))  # (B*T, P)
        return F.normalize(frames, dim=-1).view(b, t, -1).mean(dim=1)


@lru_cache(maxsize=64)
def temporal_interpolation(frames: int, rows: int) -> torch.Tensor:
    """``(frames, rows)`` weights that turn ``rows`` trained temporal positions into ``frames`` positions.

    A row stands for a moment of the clip, not an index: frames are the middles of T equal
    segments (:mod:`vidla.frames`), so row ``r`` of ``R`` was trained at relative time
    ``(r + 0.5) / R`` for clips of every length. Frame ``t`` of ``T`` sits at ``(t + 0.5) / T``
    and gets the piecewise-linear value of the rows there, i.e. fractional row
    ``(t + 0.5) * R / T - 0.5``, clamped to ``[0, R - 1]`` (before the first row's moment and
    after the last one's it takes that row). This is ``F.interpolate(mode="linear",
    align_corners=False)`` along time, the half-pixel rule ViT/CLIP use to resample spatial
    positions; with ``T == R`` it is exactly the identity. Each output row is a convex
    combination of at most two trained rows, so no untrained parameter is ever read.
    Cached (float64, CPU): callers must not modify the result.
    """
    if frames < 1 or rows < 1:
        raise ValueError(f"need at least one frame and one position row, got {frames} and {rows}")
    src = ((torch.arange(frames, dtype=torch.float64) + 0.5) * rows / frames - 0.5).clamp(0, rows - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=rows - 1)
    frac = src - lo
    weights = torch.zeros(frames, rows, dtype=torch.float64)
    weights[torch.arange(frames), lo] += 1 - frac
    weights[torch.arange(frames), hi] += frac
    return weights


class VidLAVideoTower(_ClipVisionTrunk):
    """VidLA's video tower: ``(B, T, 3, H, W)`` -> ``(B, P)`` projected final [CLS] (not normalised).

    ``temporal_positions`` rows of temporal position embedding are stored: the frame count
    the model is pre-trained at. Any other T (32-frame fine-tuning, evaluation) reads them
    through :func:`temporal_interpolation`, so the same rows train at 12 frames and serve
    32, and the parameter shapes never depend on T.
    """

    block_type = VidLABlock

    def __init__(
        self,
        vision_config: Any,
        projection_dim: int,
        *,
        temporal_positions: int = 12,
        mst_levels: int = 3,
        mst_per_level: int = 4,
        mst_stride: int = 2,
        patch_attends_cls: bool = False,
        local_temporal: bool = True,
    ) -> None:
        super().__init__(vision_config, projection_dim, local_temporal=local_temporal)
        dim = vision_config.hidden_size
        self.mst_levels, self.mst_per_level, self.mst_stride = mst_levels, mst_per_level, mst_stride
        self.patch_attends_cls = patch_attends_cls
        self.local_temporal = local_temporal
        # Zero temporal positions: at initialisation every frame is embedded exactly as CLIP embeds an image.
        self.temporal_embedding = nn.Parameter(torch.zeros(temporal_positions, dim))
        self.mst_tokens = nn.Parameter(torch.randn(mst_levels * mst_per_level, dim) * dim**-0.5)

    def temporal_positions(self, frames: int) -> torch.Tensor:
        """``(T, D)`` temporal position embeddings for ``frames`` frames (the stored rows when T matches)."""
        rows = self.temporal_embedding
        if frames == rows.shape[0]:
            return rows
        weights = temporal_interpolation(frames, rows.shape[0]).to(rows.device, rows.dtype)
        return weights @ rows

    def layout(self, frames: int) -> TokenLayout:
        return TokenLayout(
            frames=frames,
            patches=self.num_patches,
            mst_levels=self.mst_levels,
            mst_per_level=self.mst_per_level,
            mst_stride=self.mst_stride,
            patch_attends_cls=self.patch_attends_cls,
        )

    def tokens(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` -> the pre-normalised sequence ``(B, 1+UV+TN, D)``."""
        b, t = video.shape[:2]
        x = self.patch_tokens(video.flatten(0, 1))  # (B*T, N, D)
        n, d = x.shape[1:]
        x = (x.view(b, t, n, d) + self.temporal_positions(t)[:, None, :]).reshape(b, t * n, d)  # (B, T*N, D)
        cls = (self.class_embedding + self.position_embedding[0]).expand(b, 1, d)
        mst = self.mst_tokens.expand(b, -1, -1)  # (B, UV, D)
        return self.pre_ln(torch.cat([cls.to(x.dtype), mst.to(x.dtype), x], dim=1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        layout = self.layout(video.shape[1])
        # Looked up here, in eager code, and passed in: compiled blocks then see a plain tensor.
        mask = summary_attention_mask(layout, video.device)  # (1+UV, S), cached
        z = self.tokens(video)
        for block in self.blocks:
            z = self.run_block(block, z, layout, mask)
        return self.proj(self.post_ln(z[:, 0]))


@torch.no_grad()
def load_clip_vision(tower: _ClipVisionTrunk, vision_model: nn.Module, visual_projection: nn.Linear) -> None:
    """Copy a ``transformers`` ``CLIPVisionTransformer``/``CLIPVisionModel`` and its projection into ``tower``."""
    vm = getattr(vision_model, "vision_model", vision_model)
    emb = vm.embeddings
    tower.class_embedding.copy_(emb.class_embedding)
    tower.patch_embedding.weight.copy_(emb.patch_embedding.weight)
    tower.position_embedding.copy_(emb.position_embedding.weight)
    tower.pre_ln.load_state_dict(vm.pre_layrnorm.state_dict())
    tower.post_ln.load_state_dict(vm.post_layernorm.state_dict())
    tower.proj.weight.copy_(visual_projection.weight)
    if len(tower.blocks) != len(vm.encoder.layers):
        raise ValueError("tower and CLIP have different depths")
    for block, layer in zip(tower.blocks, vm.encoder.layers, strict=True):
        sa = layer.self_attn
        block.attn.qkv.weight.copy_(torch.cat([sa.q_proj.weight, sa.k_proj.weight, sa.v_proj.weight]))
        block.attn.qkv.bias.copy_(torch.cat([sa.q_proj.bias, sa.k_proj.bias, sa.v_proj.bias]))
        block.attn.out.load_state_dict(sa.out_proj.state_dict())
        block.ln_1.load_state_dict(layer.layer_norm1.state_dict())
        block.ln_2.load_state_dict(layer.layer_norm2.state_dict())
        block.mlp.fc1.load_state_dict(layer.mlp.fc1.state_dict())
        block.mlp.fc2.load_state_dict(layer.mlp.fc2.state_dict())


@torch.no_grad()
def init_temporal_from_clip(tower: VidLAVideoTower) -> None:
    """Start each temporal attention's LayerNorm and Q/K/V as copies of the layer's CLIP attention.

    The output projection stays zero, so the model still computes CLIP exactly; the copy
    only decides what the temporal attention attends to once the output starts to learn.
    """
    for block in tower.blocks:
        if not block.local_temporal:
            continue
        block.ln_t.load_state_dict(block.ln_1.state_dict())
        block.temporal.qkv.load_state_dict(block.attn.qkv.state_dict())
