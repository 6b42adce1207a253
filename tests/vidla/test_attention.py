"""The factored attentions equal the dense-mask references; the temporal branch starts as an identity."""

from __future__ import annotations

import pytest
import torch

from vidla.attention import (
    TokenLayout,
    dense_global_attention,
    dense_temporal_attention,
    factored_global_attention,
)
from vidla.video_tower import VidLABlock

LAYOUTS = [
    TokenLayout(frames=12, patches=16, mst_levels=3, mst_per_level=4, mst_stride=2),  # the paper's U, V, r
    TokenLayout(frames=12, patches=16, mst_levels=3, mst_per_level=4, mst_stride=2, patch_attends_cls=True),
    TokenLayout(frames=5, patches=9, mst_levels=2, mst_per_level=3, mst_stride=3),  # T not a multiple of r**u
    TokenLayout(frames=3, patches=4, mst_levels=0, mst_per_level=4),  # no [MST]
    TokenLayout(frames=1, patches=49, mst_levels=1, mst_per_level=1, patch_attends_cls=True),
]


def _qkv(layout: TokenLayout, seed: int, batch: int = 2, heads: int = 3, dim: int = 8) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, layout.length, heads, dim, generator=g) for _ in range(3)]


@pytest.mark.parametrize(
    "layout",
    LAYOUTS,
    ids=lambda lay: (
        f"T{lay.frames}N{lay.patches}U{lay.mst_levels}"
        f"V{lay.mst_per_level}r{lay.mst_stride}cls{int(lay.patch_attends_cls)}"
    ),
)
def test_factored_global_attention_matches_dense_reference(layout: TokenLayout) -> None:
    q, k, v = _qkv(layout, seed=layout.length)
    fast = factored_global_attention(q, k, v, layout)
    reference = dense_global_attention(q, k, v, layout)
    assert fast.shape == reference.shape == q.shape
    assert (fast - reference).abs().max().item() < 1e-5


def test_factored_global_attention_gradients_match_dense_reference() -> None:
    layout = LAYOUTS[0]
    q, k, v = (x.requires_grad_() for x in _qkv(layout, seed=7))
    weights = torch.randn(q.shape)
    (factored_global_attention(q, k, v, layout) * weights).sum().backward()
    fast = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    (dense_global_attention(q, k, v, layout) * weights).sum().backward()
    for got, want in zip(fast, (q.grad, k.grad, v.grad), strict=True):
        assert (got - want).abs().max().item() < 1e-5


@pytest.mark.parametrize(("frames", "patches"), [(12, 16), (4, 49), (1, 9)])
def test_temporal_sublayer_matches_the_dense_mask_reference(frames: int, patches: int) -> None:
    """The block's regrouped temporal attention equals the paper's masked attention over all T*N patches."""
    torch.manual_seed(frames * patches)
    block = VidLABlock(dim=24, heads=3, mlp_dim=48, act="quick_gelu", eps=1e-5)
    torch.nn.init.normal_(block.temporal.out.weight, std=0.2)  # a trained, non-zero output projection
    torch.nn.init.normal_(block.temporal.qkv.weight, std=0.3)
    x = torch.randn(2, frames * patches, 24)
    q, k, v = block.temporal.project(block.ln_t(x))  # frame-major (B, T*N, H, Dh)
    reference = x + block.temporal.merge(dense_temporal_attention(q, k, v, frames))
    assert (block.temporal_sublayer(x, frames) - reference).abs().max().item() < 1e-5


def test_temporal_attention_is_an_exact_identity_at_initialisation() -> None:
    block = VidLABlock(dim=32, heads=4, mlp_dim=64, act="quick_gelu", eps=1e-5)
    # Make the other projections non-trivial so only the zero output projection can explain the identity.
    torch.nn.init.normal_(block.temporal.qkv.weight)
    patches = torch.randn(2, 6 * 16, 32) * 3
    out = block.temporal_sublayer(patches, frames=6)
    assert torch.equal(out, patches)
    # ...and it is a real attention once the output projection moves.
    torch.nn.init.normal_(block.temporal.out.weight)
    assert not torch.allclose(block.temporal_sublayer(patches, frames=6), patches)


def test_factored_attention_rejects_a_mismatched_layout() -> None:
    layout = LAYOUTS[0]
    q, k, v = _qkv(TokenLayout(frames=11, patches=16), seed=0)
    with pytest.raises(ValueError, match="sequence length"):
        factored_global_attention(q, k, v, layout)
