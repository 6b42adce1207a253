"""The two-term InfoNCE: its formula, the masking of missing texts, and that it trains."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from model_test_utils import tiny_model_config

from vidla.loss import VidLALoss
from vidla.vidla import VidLAOutput, build_model, model_tokenizer


def features(b: int = 6, p: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(b, p, generator=g), dim=-1) for _ in range(3)]


def output(video, subtitle, caption, sub_valid=None, cap_valid=None, scale=10.0) -> VidLAOutput:
    b = video.shape[0]
    sub_valid = torch.ones(b, dtype=torch.bool) if sub_valid is None else sub_valid
    cap_valid = torch.ones(b, dtype=torch.bool) if cap_valid is None else cap_valid
    return VidLAOutput(
        video,
        subtitle * sub_valid[:, None],
        sub_valid,
        caption * cap_valid[:, None],
        cap_valid,
        torch.tensor(scale),
    )


def symmetric_infonce(video: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
    logits = scale * video @ text.t()
    labels = torch.arange(len(video))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def test_loss_is_the_sum_of_two_symmetric_infonce_terms() -> None:
    video, subtitle, caption = features()
    out = VidLALoss()(output(video, subtitle, caption))
    expected_s = symmetric_infonce(video, subtitle, 10.0)
    expected_c = symmetric_infonce(video, caption, 10.0)
    assert torch.allclose(out.subtitle, expected_s, atol=1e-6)
    assert torch.allclose(out.caption, expected_c, atol=1e-6)
    assert torch.allclose(out.loss, expected_s + expected_c, atol=1e-6)
    weighted = VidLALoss(subtitle_weight=0.5, caption_weight=2.0)(output(video, subtitle, caption))
    assert torch.allclose(weighted.loss, 0.5 * expected_s + 2.0 * expected_c, atol=1e-6)


def test_missing_texts_are_masked_out_of_their_term() -> None:
    video, subtitle, caption = features()
    sub_valid = torch.tensor([True, False, True, True, False, True])
    out = VidLALoss()(output(video, subtitle, caption, sub_valid=sub_valid))
    keep = sub_valid.nonzero().squeeze(1)
    # Video->text over the clips that have a subtitle; text->video against every video (all are real negatives).
    v2t = F.cross_entropy(10.0 * video[keep] @ subtitle[keep].t(), torch.arange(len(keep)))
    t2v = F.cross_entropy(10.0 * subtitle[keep] @ video.t(), keep)
    assert torch.allclose(out.subtitle, (v2t + t2v) / 2, atol=1e-6)
    assert out.subtitle_pairs == 4 and out.caption_pairs == 6
    assert torch.allclose(out.caption, symmetric_infonce(video, caption, 10.0), atol=1e-6)


def test_a_missing_texts_features_neither_change_the_loss_nor_get_gradient() -> None:
    video, subtitle, caption = features()
    cap_valid = torch.tensor([True, True, False, True, True, True])
    garbage = caption.clone()
    garbage[2] = F.normalize(torch.randn(8), dim=0)
    losses = []
    for cap in (caption, garbage):
        cap = cap.clone().requires_grad_()
        out = VidLAOutput(
            video, subtitle, torch.ones(6, dtype=torch.bool), cap, cap_valid, torch.tensor(10.0)
        )
        result = VidLALoss()(out)
        result.loss.backward()
        assert torch.count_nonzero(cap.grad[2]) == 0
        assert torch.count_nonzero(cap.grad[0]) > 0
        losses.append(result.loss.detach())
    assert torch.equal(losses[0], losses[1])


def test_a_term_without_any_text_contributes_zero_but_keeps_the_graph() -> None:
    video, subtitle, caption = features()
    video.requires_grad_()
    none = torch.zeros(6, dtype=torch.bool)
    out = VidLALoss()(output(video, subtitle, caption, cap_valid=none))
    assert out.caption.item() == 0.0 and out.caption_pairs == 0
    assert torch.allclose(out.loss, symmetric_infonce(video, subtitle, 10.0), atol=1e-6)
    out.loss.backward()
    assert video.grad is not None


def test_loss_decreases_when_overfitting_a_tiny_set() -> None:
    torch.manual_seed(0)
    cfg = tiny_model_config()
    model = build_model(cfg).train()
    tokenizer = model_tokenizer(cfg)
    clips = 8
    video = torch.randn(clips, 4, 3, 32, 32)
    ids, mask = tokenizer(
        [f"subtitle number {i}" for i in range(clips)] + [f"caption {i}" for i in range(clips)]
    )
    sub_valid = torch.ones(clips, dtype=torch.bool)
    cap_valid = torch.tensor([True] * 6 + [False] * 2)
    loss_fn = VidLALoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        result = loss_fn(model(video, ids, mask, sub_valid, cap_valid))
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
        model.clamp_logit_scale()
        losses.append(result.loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
