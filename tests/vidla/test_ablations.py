"""The paper's ablation switches change what the model computes as documented, and every
ablation config under configs/train/ablations/ loads as the row of the table it names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_test_utils import tiny_model_config

from vidla.attention import summary_attention_mask
from vidla.config import load_config
from vidla.vidla import build_model

ABLATIONS = Path(__file__).resolve().parents[2] / "configs" / "train" / "ablations"
T, N = 4, 16  # tiny_model_config: 4 frames of 32x32 in 8-pixel patches


def _tower(**switches):
    torch.manual_seed(0)
    tower = build_model(tiny_model_config(**switches)).video.eval()
    with torch.no_grad():
        for block in tower.blocks:
            if block.local_temporal:  # as after training: the temporal branch contributes
                block.temporal.out.weight.normal_(0, 0.5)
    return tower


@torch.no_grad()
def _first_block(tower, video: torch.Tensor) -> torch.Tensor:
    layout = tower.layout(video.shape[1])
    return tower.blocks[0](tower.tokens(video), layout, summary_attention_mask(layout))


@pytest.mark.parametrize("local", [True, False])
def test_without_local_temporal_attention_or_mst_a_patch_sees_only_its_own_frame(local: bool) -> None:
    tower = _tower(local_temporal=local, mst_levels=0)
    video = torch.randn(1, T, 3, 32, 32)
    changed = video.clone()
    changed[:, 1] += 1.0  # another frame
    before, after = _first_block(tower, video), _first_block(tower, changed)
    frame0 = slice(1, 1 + N)  # [CLS], then frame 0's patches
    assert torch.equal(before[:, frame0], after[:, frame0]) is not local
    assert not torch.equal(before[:, 0], after[:, 0])  # [CLS] still aggregates every frame


def test_without_local_temporal_attention_the_layers_have_no_temporal_parameters() -> None:
    with_local = build_model(tiny_model_config()).state_dict()
    without = build_model(tiny_model_config(local_temporal=False)).state_dict()
    dropped = set(with_local) - set(without)
    assert dropped and all(".temporal." in k or ".ln_t." in k for k in dropped)
    assert set(without) < set(with_local)


def test_without_mst_the_sequence_is_cls_and_patches() -> None:
    tower = _tower(mst_levels=0)
    layout = tower.layout(T)
    assert layout.num_mst == 0 and layout.length == 1 + T * N
    assert tower.mst_tokens.shape[0] == 0
    assert tower.tokens(torch.randn(2, T, 3, 32, 32)).shape[1] == 1 + T * N
    assert summary_attention_mask(layout).shape == (1, 1 + T * N)  # only [CLS] summarises


def test_without_hierarchy_every_mst_token_sees_every_frame_and_every_other_token() -> None:
    flat = summary_attention_mask(_tower(mst_levels=1, mst_per_level=4, mst_stride=1).layout(T))
    assert flat.shape == (5, 5 + T * N) and flat[1:, 1:].all() and not flat[1:, 0].any()
    deep = summary_attention_mask(_tower(mst_levels=2, mst_per_level=2, mst_stride=2).layout(T))
    assert not deep[3:, 5:].all()  # with a hierarchy, level 1 skips odd frames


TABLE = {  # file: (local temporal attention, U, V, r) as the paper's rows say
    "table4-none": (False, 0, None, None),
    "table4-mst": (False, 1, 4, None),
    "table4-mst-hierarchy": (False, 3, 4, 2),
    "table4-mst-local": (True, 1, 4, None),
    "table4-full": (True, 3, 4, 2),
    "table15-uvr-2-4-2": (True, 2, 4, 2),
    "table15-uvr-2-4-3": (True, 2, 4, 3),
    "table15-uvr-3-4-3": (True, 3, 4, 3),
    "table5-short-only": (True, 3, 4, 2),
    "table6-unsummarised": (True, 3, 4, 2),
    "table6-caption-only": (True, 3, 4, 2),
    "table6-subtitle-only": (True, 3, 4, 2),
}


def test_every_ablation_config_is_a_row_of_the_table() -> None:
    rows = {p.stem for p in ABLATIONS.glob("*.yaml")} - {"base"}
    assert rows == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_each_ablation_config_loads_its_row_and_builds(name: str) -> None:
    cfg = load_config(ABLATIONS / f"{name}.yaml")
    local, u, v, r = TABLE[name]
    m = cfg.model
    assert (m.local_temporal, m.mst_levels) == (local, u)
    assert v is None or m.mst_per_level == v
    assert r is None or m.mst_stride == r
    assert m.clip == "openai/clip-vit-base-patch32" and m.num_frames == 12  # B/32 pre-training otherwise
    assert cfg.train.steps == 19532 and cfg.train.output_dir.name == name
    # The same switches on the tiny preset build and embed a video (no CLIP download here).
    tiny = load_config(ABLATIONS / f"{name}.yaml", ["model.preset=vidla-tiny", "model.compile=false"]).model
    model = build_model(tiny).eval()
    with torch.no_grad():
        assert model.encode_video(torch.randn(1, 8, 3, 64, 64)).shape == (1, 64)
    assert (name == "table5-short-only") == (cfg.data.scale_weights == {"short": 1.0})
    assert (name == "table6-caption-only") == (cfg.loss.subtitle_weight == 0)
    assert (name == "table6-subtitle-only") == (cfg.loss.caption_weight == 0)
    assert (name == "table6-unsummarised") == (cfg.data.subtitle_fields == ["subtitle"])
    assert (name == "table6-unsummarised") == (cfg.data.caption_fields == ["raw_caption"])
