"""The towers start from CLIP exactly: weights copied, temporal branch silent, baseline consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from model_test_utils import tiny_model_config

from vidla.video_tower import ClipImageTower, load_clip_vision
from vidla.vidla import build_model, load_clip


def clip_image_embedding(clip: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """transformers' own CLIP image tower: projected, post-normed [CLS]."""
    return clip.visual_projection(clip.vision_model(pixel_values=images).pooler_output)


@pytest.fixture(scope="module")
def clip() -> torch.nn.Module:
    torch.manual_seed(0)
    return load_clip(tiny_model_config()).eval()


def test_one_frame_vidla_without_mst_reproduces_the_clip_image_tower(clip: torch.nn.Module) -> None:
    cfg = tiny_model_config(num_frames=1, mst_levels=0, patch_attends_cls=True)
    tower = build_model(cfg, clip).video.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ours = tower(images[:, None])  # (B, T=1, 3, H, W)
        reference = clip_image_embedding(clip, images)
    assert (ours - reference).abs().max().item() < 1e-5


def test_patches_that_cannot_see_cls_make_a_one_frame_model_differ_from_clip(clip: torch.nn.Module) -> None:
    """The paper's text (the default) removes [CLS] from the patches' keys: CLIP attends it, so outputs move."""
    tower = build_model(tiny_model_config(num_frames=1, mst_levels=0), clip).video.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert (tower(images[:, None]) - clip_image_embedding(clip, images)).abs().max().item() > 1e-4


def test_clip_image_tower_reproduces_transformers_clip(clip: torch.nn.Module) -> None:
    tower = ClipImageTower(clip.config.vision_config, clip.config.projection_dim).eval()
    load_clip_vision(tower, clip.vision_model, clip.visual_projection)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert (tower(images) - clip_image_embedding(clip, images)).abs().max().item() < 1e-5


def test_meanpool_baseline_of_a_still_video_is_the_normalised_image_embedding(clip: torch.nn.Module) -> None:
    tower = build_model(tiny_model_config(arch="meanpool"), clip).video.eval()
    images = torch.randn(2, 3, 32, 32)
    video = images[:, None].expand(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = F.normalize(clip_image_embedding(clip, images), dim=-1)
        assert (tower(video) - expected).abs().max().item() < 1e-5
        # ...and it is a mean over time: a different frame moves it.
        video = video.clone()
        video[:, 2] = torch.randn(2, 3, 32, 32)
        assert (tower(video) - expected).abs().max().item() > 1e-3


def test_text_tower_reproduces_transformers_clip(clip: torch.nn.Module) -> None:
    cfg = tiny_model_config()
    model = build_model(cfg, clip).eval()
    from vidla.vidla import model_tokenizer

    ids, mask = model_tokenizer(cfg)(["a dog runs", "", "subtitles of a cooking show"])
    with torch.no_grad():
        reference = clip.text_projection(clip.text_model(input_ids=ids, attention_mask=mask).pooler_output)
        assert (model.text(ids, mask) - reference).abs().max().item() < 1e-5


def test_temporal_position_and_mst_are_new_parameters_and_frames_reach_the_embedding(
    clip: torch.nn.Module,
) -> None:
    tower = build_model(tiny_model_config(num_frames=4), clip).video.eval()
    assert torch.count_nonzero(tower.temporal_embedding) == 0
    assert tower.mst_tokens.shape == (4, 32)
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        base = tower(video)
        for t in range(4):  # every frame informs the video [CLS]
            changed = video.clone()
            changed[:, t] += 1.0
            assert (tower(changed) - base).abs().max().item() > 1e-4


def test_gradient_checkpointing_gives_the_same_gradients(clip: torch.nn.Module) -> None:
    video = torch.randn(2, 4, 3, 32, 32)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(1)
        model = build_model(tiny_model_config(grad_checkpointing=checkpointing), clip).train()
        model.video(video).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.video.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_clip_loads_from_a_local_checkpoint_directory(clip: torch.nn.Module, tmp_path: Path) -> None:
    """The real-config code path (from_pretrained by name or path), exercised offline with a saved tiny CLIP."""
    clip.save_pretrained(tmp_path / "tiny-clip")
    cfg = tiny_model_config(
        clip=str(tmp_path / "tiny-clip"), num_frames=1, mst_levels=0, patch_attends_cls=True
    )
    model = build_model(cfg).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (model.video(images[:, None]) - clip_image_embedding(clip, images)).abs().max().item() < 1e-5
    assert model.logit_scale.item() == pytest.approx(clip.logit_scale.item())


def test_compiled_blocks_compute_the_same_embeddings_and_keep_checkpoint_names(clip: torch.nn.Module) -> None:
    """The real configs set ``compile: true``: torch.compile each block, same numbers, same state-dict keys.

    Inductor's on-disk graph cache is off here: its cache key pickles module state, and in this
    shared test process yt-dlp's lazy compat modules (imported by the curation tests) cannot be
    pickled. The trainer's own process never imports yt-dlp.
    """
    from torch._inductor import config as inductor_config

    with inductor_config.patch(fx_graph_cache=False, autotune_local_cache=False):
        _check_compiled_blocks(clip)


def _check_compiled_blocks(clip: torch.nn.Module) -> None:
    torch.manual_seed(2)
    eager = build_model(tiny_model_config(), clip)
    torch.manual_seed(2)
    compiled = build_model(tiny_model_config(compile=True), clip)
    assert list(eager.state_dict()) == list(compiled.state_dict())
    video = torch.randn(2, 4, 3, 32, 32)
    out = compiled.video(video)
    assert (out - eager.video(video)).abs().max().item() < 1e-5
    out.sum().backward()
    assert compiled.video.blocks[0].temporal.out.weight.grad is not None
