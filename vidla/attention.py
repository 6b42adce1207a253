"""VidLA's two attentions: the factored fast path and the dense-mask references.

Token order in the video tower is ``[CLS | MST (U*V) | patches (T*N)]``, the patches
frame-major (all N patches of frame 0, then frame 1, ...). :class:`TokenLayout` holds
the shape and the ambiguous choices; :func:`global_attention_mask` writes the paper's
asymmetric mask out densely and is the single statement of the rules:

* ``[CLS]`` attends every token;
* an ``[MST]`` token of level ``u`` attends the ``[MST]`` tokens of levels ``<= u`` and
  the patches of frames ``t`` with ``t % r**u == 0``, never ``[CLS]``;
* a patch attends the patches of its own frame and every ``[MST]`` token, and
  ``[CLS]`` only when ``patch_attends_cls`` (the paper's text says it does not).

The dense mask is ``(1+UV+TN)^2``: 360k entries for B/32 at 12 frames, 5.5M for B/16,
and most of the work it implies is masked out. The hot path therefore never builds it.
:func:`factored_global_attention` splits the queries: patch queries become a
per-frame scaled-dot-product attention (``B*T`` independent sequences of ``N`` queries)
whose keys are the frame's patches with the few shared ``[MST]`` (and optionally
``[CLS]``) keys appended, exactly what CLIP's per-frame attention costs plus ``UV``
keys, and eligible for flash kernels; the ``1+UV`` summary queries run as one small
attention over all keys with a ``(1+UV) x S`` mask. :func:`dense_global_attention`
is the straightforward reference the tests hold the factored path to.

The spatially-local temporal attention (mask :func:`temporal_attention_mask`) is, in
position-major order, plain attention over ``T`` tokens per spatial position; the
video tower's :meth:`~vidla.video_tower.VidLABlock.temporal_sublayer` runs it that way
and the tests hold it to :func:`dense_temporal_attention`.

All functions take ``q, k, v`` token-major, ``(B, S, H, Dh)``, as a fused QKV
projection produces them, and return the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TokenLayout:
    """Shape of the video token sequence and the global-attention choices.

    Attributes:
        frames: T, frames per clip.
        patches: N, patches per frame.
        mst_levels: U, levels of [MST] tokens.
        mst_per_level: V, [MST] tokens per level.
        mst_stride: r; level ``u`` sees frames ``t`` with ``t % r**u == 0``.
        patch_attends_cls: whether patch queries see the [CLS] key.
    """

    frames: int
    patches: int
    mst_levels: int = 3
    mst_per_level: int = 4
    mst_stride: int = 2
    patch_attends_cls: bool = False

    @property
    def num_mst(self) -> int:
        """U*V, the number of [MST] tokens."""
        return self.mst_levels * self.mst_per_level

    @property
    def prefix(self) -> int:
        """1 + U*V: the [CLS] and [MST] tokens that precede the patches."""
        return 1 + self.num_mst

    @property
    def length(self) -> int:
        """S = 1 + U*V + T*N, the whole sequence."""
        return self.prefix + self.frames * self.patches

    def mst_frame_step(self, level: int) -> int:
        """r**u: level ``u`` attends every ``r**u``-th frame, counted from frame 0."""
        return self.mst_stride**level


@lru_cache(maxsize=64)
def _summary_mask_cpu(layout: TokenLayout) -> torch.Tensor:
    """Rows of the [CLS] and [MST] queries of the global mask: ``(1+UV, S)`` bool, True = may attend."""
    p, t_count, n = layout.prefix, layout.frames, layout.patches
    mask = torch.zeros(p, layout.length, dtype=torch.bool)
    mask[0, :] = True  # [CLS] aggregates everything
    frame_of_patch = torch.arange(t_count).repeat_interleave(n)  # (T*N,)
    for i in range(layout.num_mst):
        level = i // layout.mst_per_level
        row = 1 + i
        # [MST] of level u sees [MST] of levels <= u: floor(i/V) >= floor(j/V).
        mask[row, 1 : 1 + (level + 1) * layout.mst_per_level] = True
        mask[row, p:] = frame_of_patch % layout.mst_frame_step(level) == 0
    return mask


def summary_attention_mask(layout: TokenLayout, device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``(1+UV, S)`` boolean mask of the [CLS]/[MST] query rows, cached per layout and device."""
    return _summary_mask_on(layout, str(device))


@lru_cache(maxsize=64)
def _summary_mask_on(layout: TokenLayout, device: str) -> torch.Tensor:
    return _summary_mask_cpu(layout).to(device)


def global_attention_mask(layout: TokenLayout) -> torch.Tensor:
    """The full ``(S, S)`` boolean mask of the global attention (True = may attend); reference and tests only."""
    p, t_count, n, s = layout.prefix, layout.frames, layout.patches, layout.length
    mask = torch.zeros(s, s, dtype=torch.bool)
    mask[:p] = _summary_mask_cpu(layout)
    frame = torch.arange(t_count).repeat_interleave(n)  # (T*N,)
    mask[p:, p:] = frame[:, None] == frame[None, :]  # patches: own frame only
    mask[p:, 1:p] = True  # patches: every [MST]
    mask[p:, 0] = layout.patch_attends_cls
    return mask


def temporal_attention_mask(frames: int, patches: int) -> torch.Tensor:
    """The paper's ``(TN, TN)`` spatially-local temporal mask: ``M_ij`` open iff ``|j - i| mod N == 0``."""
    idx = torch.arange(frames * patches)
    return (idx[:, None] - idx[None, :]).abs() % patches == 0


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain masked softmax attention, written out: the reference for the factored paths.

    Args:
        q, k, v: ``(B, S, H, Dh)``.
        mask: ``(S, S)`` bool, True = query row may attend key column.

    Returns:
        ``(B, S, H, Dh)``.
    """
    scale = q.shape[-1] ** -0.5
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale  # (B, H, S, S)
    scores = scores.masked_fill(~mask.to(q.device), float("-inf"))
    weights = scores.softmax(dim=-1)
    return torch.einsum("bhqk,bkhd->bqhd", weights, v)


def dense_global_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: TokenLayout
) -> torch.Tensor:
    """The global spatio-temporal attention with the dense ``(S, S)`` mask (reference)."""
    return dense_attention(q, k, v, global_attention_mask(layout))


def dense_temporal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, frames: int) -> torch.Tensor:
    """The spatially-local temporal attention with the dense ``(TN, TN)`` mask (reference); inputs ``(B, TN, H, Dh)``."""
    patches = q.shape[1] // frames
    return dense_attention(q, k, v, temporal_attention_mask(frames, patches))


def factored_global_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: TokenLayout,
    summary_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The global spatio-temporal attention without a dense mask.

    Patch queries: per-frame attention over ``[shared keys | the frame's N patches]``,
    the shared keys being the ``UV`` [MST] keys (and [CLS] if ``patch_attends_cls``),
    broadcast over frames. Summary queries ([CLS], [MST]): one attention over all ``S``
    keys with the small ``(1+UV, S)`` mask. Mathematically identical to
    :func:`dense_global_attention`.

    Args:
        q, k, v: ``(B, S, H, Dh)`` with ``S = layout.length``.
        layout: the token layout.
        summary_mask: :func:`summary_attention_mask` of ``layout`` on ``q``'s device; looked up when
            omitted (callers under ``torch.compile`` pass it in to keep the cache out of the graph).

    Returns:
        ``(B, S, H, Dh)``.
    """
    b, s, h, d = q.shape
    p, t_count, n = layout.prefix, layout.frames, layout.patches
    if s != layout.length:
        raise ValueError(f"sequence length {s} does not match the layout's {layout.length}")

    # Patch tokens seen per frame, as views: (B, T, N, H, Dh).
    def frames_of(x: torch.Tensor) -> torch.Tensor:
        return x[:, p:].unflatten(1, (t_count, n))

    shared_from = 0 if layout.patch_attends_cls else 1
    shared = p - shared_from  # keys every patch sees besides its frame: ([CLS]) + [MST]

    def keys_per_frame(x: torch.Tensor) -> torch.Tensor:
        """(B*T, H, shared+N, Dh): the shared keys broadcast to every frame, then the frame's own (one copy)."""
        own = frames_of(x)  # (B, T, N, H, Dh) view
        if shared:
            common = x[:, None, shared_from:p].expand(b, t_count, shared, h, d)  # (B, T, shared, H, Dh) view
            own = torch.cat([common, own], dim=2)
        return own.reshape(b * t_count, -1, h, d).transpose(1, 2)

    queries = frames_of(q).reshape(b * t_count, n, h, d).transpose(1, 2)  # (B*T, H, N, Dh)
    patch_out = F.scaled_dot_product_attention(
        queries, keys_per_frame(k), keys_per_frame(v)
    )  # (B*T, H, N, Dh)

    # Summary queries: (B, H, 1+UV, Dh) against all keys, small mask.
    mask = summary_attention_mask(layout, q.device) if summary_mask is None else summary_mask  # (1+UV, S)
    summary_out = F.scaled_dot_product_attention(
        q[:, :p].transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
    )  # (B, H, 1+UV, Dh)

    # Written straight into one (B, S, H, Dh) result: one copy per part, no reshape-then-cat.
    out = q.new_empty(b, s, h, d)
    out[:, :p] = summary_out.transpose(1, 2)
    out[:, p:].unflatten(1, (t_count, n)).copy_(patch_out.unflatten(0, (b, t_count)).transpose(2, 3))
    return out


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked attention (CLIP's image tower); ``(B, S, H, Dh)`` in and out."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)
