"""VidLA's objective: two symmetric InfoNCE terms (video-subtitle, video-caption), missing texts masked.

``L = w_s * L(video, subtitle) + w_c * L(video, caption)``, each term CLIP's symmetric
InfoNCE with the shared learnable temperature, averaged over the clips that have that
text. A clip without a subtitle (or caption) contributes no row to that term, and its
missing text is no column; its video still serves as a negative for the other clips'
texts (it is a real video, and the mask only says its own text is unknown).

Across ranks the features are gathered *with* gradient (``torch.distributed.nn``):
gathering without it leaves each rank's features learning only from its local rows and
stalls training at scale. Each rank computes the rows of its own clips against the
global batch ("local loss"), so the logits are ``B x (W*B)`` per rank rather than
``(W*B)^2``. Each rank's loss is scaled so that DDP's gradient averaging yields exactly
the gradient of the single-process loss over the global batch; the mean over ranks of
the returned values is that loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F

from vidla.vidla import VidLAOutput


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` on each rank -> ``(W*B, ...)`` in rank order; gradients flow back to every rank's part."""
    if not _distributed():
        return x
    return torch.cat(dist_fn.all_gather(x), dim=0)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` on each rank -> ``(W*B, ...)`` in rank order, for masks and other constants."""
    if not _distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def masked_infonce_sum(
    video: torch.Tensor,
    text: torch.Tensor,
    valid: torch.Tensor,
    all_video: torch.Tensor,
    all_text: torch.Tensor,
    all_valid: torch.Tensor,
    logit_scale: torch.Tensor,
    offset: int,
) -> torch.Tensor:
    """Sum of the cross-entropies of this rank's rows of one symmetric InfoNCE term.

    Args:
        video, text: ``(B, P)`` this rank's normalised features.
        valid: ``(B,)`` bool, this rank's clips that have the text.
        all_video, all_text, all_valid: the same for the global batch, ``(W*B, ...)``.
        logit_scale: the exponentiated inverse temperature.
        offset: index of this rank's first clip in the global batch.

    Returns:
        Scalar: sum over this rank's valid clips of the video->text and text->video losses.
    """
    rows = valid.nonzero().squeeze(1)  # local clips with a text
    columns = all_valid.nonzero().squeeze(1)  # global clips with a text
    # Position of each global clip among the valid text columns (meaningful only where valid).
    column_of = torch.cumsum(all_valid.long(), 0) - 1  # (W*B,)
    v2t = logit_scale * video[rows] @ all_text[columns].t()  # (n_local, n_global)
    t2v = logit_scale * text[rows] @ all_video.t()  # (n_local, W*B)
    v2t_target = column_of[rows + offset]
    t2v_target = rows + offset
    return F.cross_entropy(v2t, v2t_target, reduction="sum") + F.cross_entropy(
        t2v, t2v_target, reduction="sum"
    )


@dataclass
class LossOutput:
    """``loss`` is what to back-propagate; its mean over ranks is the global-batch loss (likewise the terms)."""

    loss: torch.Tensor
    subtitle: torch.Tensor  # detached term value
    caption: torch.Tensor  # detached term value
    subtitle_pairs: int  # clips with a subtitle-side text in the global batch
    caption_pairs: int


class VidLALoss(torch.nn.Module):
    """``w_s * InfoNCE(video, subtitle) + w_c * InfoNCE(video, caption)`` with gather-with-grad."""

    def __init__(self, subtitle_weight: float = 1.0, caption_weight: float = 1.0) -> None:
        super().__init__()
        self.subtitle_weight = subtitle_weight
        self.caption_weight = caption_weight

    def forward(self, out: VidLAOutput) -> LossOutput:
        world = dist.get_world_size() if _distributed() else 1
        offset = (dist.get_rank() if _distributed() else 0) * out.video.shape[0]
        all_video = gather_with_grad(out.video)
        terms: list[torch.Tensor] = []
        pairs: list[int] = []
        for text, valid in ((out.subtitle, out.subtitle_valid), (out.caption, out.caption_valid)):
            all_valid = gather_no_grad(valid)
            n_global = int(all_valid.sum())
            pairs.append(n_global)
            if n_global == 0:
                # Keeps the graph connected (DDP) while contributing nothing.
                terms.append(0.0 * (out.video.sum() + text.sum() + out.logit_scale))
                continue
            summed = masked_infonce_sum(
                out.video, text, valid, all_video, gather_with_grad(text), all_valid, out.logit_scale, offset
            )
            # Mean over the 2 * n_global rows of the global term, times W to undo DDP's averaging.
            terms.append(summed * (world / (2.0 * n_global)))
        loss = self.subtitle_weight * terms[0] + self.caption_weight * terms[1]
        return LossOutput(loss, terms[0].detach(), terms[1].detach(), pairs[0], pairs[1])
