"""One test per rule of the global attention mask (paper, Sec. 3), checked twice: on the dense
mask and on the factored attention, by perturbing the keys/values a query must (not) see."""

from __future__ import annotations

import torch

from vidla.attention import TokenLayout, factored_global_attention, global_attention_mask

# The paper's configuration: T = 12, U = 3 levels of V = 4 [MST], r = 2 (levels see 12 / 6 / 3 frames).
LAYOUT = TokenLayout(frames=12, patches=6, mst_levels=3, mst_per_level=4, mst_stride=2)
CLS = [0]


def mst(level: int) -> list[int]:
    v = LAYOUT.mst_per_level
    return list(range(1 + level * v, 1 + (level + 1) * v))


def patches(frame: int) -> list[int]:
    start = LAYOUT.prefix + frame * LAYOUT.patches
    return list(range(start, start + LAYOUT.patches))


ALL_MST = [i for u in range(LAYOUT.mst_levels) for i in mst(u)]
ALL_PATCHES = [i for t in range(LAYOUT.frames) for i in patches(t)]


def sees(queries: list[int], keys: list[int], layout: TokenLayout = LAYOUT) -> bool:
    """Whether perturbing ``keys``' keys and values changes the factored attention's output at ``queries``."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, layout.length, 2, 4, generator=g) for _ in range(3))
    before = factored_global_attention(q, k, v, layout)[0, queries]
    k2, v2 = k.clone(), v.clone()
    k2[0, keys] += 3.0
    v2[0, keys] += 5.0
    after = factored_global_attention(q, k2, v2, layout)[0, queries]
    return not torch.allclose(before, after, atol=1e-6)


def allowed(queries: list[int], keys: list[int], layout: TokenLayout = LAYOUT) -> torch.Tensor:
    return global_attention_mask(layout)[queries][:, keys]


def test_cls_attends_every_token() -> None:
    assert allowed(CLS, list(range(LAYOUT.length))).all()
    assert sees(CLS, ALL_MST) and sees(CLS, ALL_PATCHES)


def test_mst_never_attends_cls() -> None:
    assert not allowed(ALL_MST, CLS).any()
    assert not sees(ALL_MST, CLS)


def test_mst_level_attends_mst_of_its_own_and_lower_levels_only() -> None:
    for u in range(LAYOUT.mst_levels):
        lower_or_same = [i for w in range(u + 1) for i in mst(w)]
        higher = [i for w in range(u + 1, LAYOUT.mst_levels) for i in mst(w)]
        assert allowed(mst(u), lower_or_same).all()
        assert sees(mst(u), lower_or_same)
        if higher:
            assert not allowed(mst(u), higher).any()
            assert not sees(mst(u), higher)


def test_mst_level_attends_every_r_pow_u_th_frame_only() -> None:
    seen_frames = []
    for u in range(LAYOUT.mst_levels):
        visible = [t for t in range(LAYOUT.frames) if allowed(mst(u), patches(t)).all()]
        hidden = [t for t in range(LAYOUT.frames) if not allowed(mst(u), patches(t)).any()]
        assert sorted(visible + hidden) == list(range(LAYOUT.frames))
        assert visible == list(range(0, LAYOUT.frames, 2**u))
        for t in range(LAYOUT.frames):
            assert sees(mst(u), patches(t)) == (t in visible)
        seen_frames.append(len(visible))
    assert seen_frames == [12, 6, 3]  # the paper's example


def test_patches_attend_patches_of_their_own_frame_only() -> None:
    for t in (0, 5, 11):
        others = [i for f in range(LAYOUT.frames) if f != t for i in patches(f)]
        assert allowed(patches(t), patches(t)).all()
        assert not allowed(patches(t), others).any()
        assert sees(patches(t), patches(t))
        assert not sees(patches(t), others)


def test_patches_attend_every_mst_token() -> None:
    assert allowed(ALL_PATCHES, ALL_MST).all()
    for u in range(LAYOUT.mst_levels):
        assert sees(patches(7), mst(u))  # frame 7 is seen by level 0 only, yet every level informs it


def test_patches_do_not_attend_cls_unless_switched_on() -> None:
    assert not allowed(ALL_PATCHES, CLS).any()
    assert not sees(ALL_PATCHES, CLS)
    switched = TokenLayout(**{**LAYOUT.__dict__, "patch_attends_cls": True})
    assert allowed(ALL_PATCHES, CLS, switched).all()
    assert sees(ALL_PATCHES, CLS, switched)
