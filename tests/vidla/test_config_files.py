"""Training configs by name and by difference: model presets, ``extends``, and what they resolve to.

``fixtures/train_configs_resolved.json`` holds every ``configs/train/*.yaml`` as the loader
resolved it before presets and ``extends`` existed, when each file spelled out its whole
model section: the short files must mean exactly the same runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from vidla.config import load_config
from vidla.config_files import load_preset, preset_names

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"
RESOLVED = json.loads((Path(__file__).parent / "fixtures" / "train_configs_resolved.json").read_text())


def test_every_recorded_config_still_ships() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name in RESOLVED) == sorted(RESOLVED)


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_shipped_configs_resolve_to_the_recorded_values(name: str) -> None:
    assert load_config(CONFIGS / name).model_dump(mode="json") == RESOLVED[name]


def test_shipped_configs_name_a_preset_instead_of_copying_the_model() -> None:
    for path in CONFIGS.glob("*.yaml"):
        text = path.read_text()
        assert "mst_per_level" not in text and "random_clip" not in text, path.name


def test_each_finetune_is_the_shared_base_plus_its_benchmark() -> None:
    base = CONFIGS / "finetune-base-b32.yaml"
    for name in ("msrvtt", "didemo", "activitynet", "msvd", "vatex"):
        text = (CONFIGS / f"finetune-{name}-b32.yaml").read_text()
        assert "extends: finetune-base-b32.yaml" in text and "model:" not in text
    assert load_config(base).model.num_frames == 32


def test_presets_are_buildable_by_name() -> None:
    assert {"vidla-b32", "vidla-b16", "vidla-tiny"} <= set(preset_names())
    b32 = load_config(None, ["model=vidla-b32"]).model
    assert b32.clip == "openai/clip-vit-base-patch32"
    assert (b32.num_frames, b32.mst_levels, b32.mst_per_level) == (12, 3, 4)
    assert load_config(None, ["model=vidla-b16"]).model.clip == "openai/clip-vit-base-patch16"
    with pytest.raises(ValueError, match="unknown model preset 'vidla-h14'.*vidla-b32"):
        load_config(None, ["model=vidla-h14"])


def test_given_model_values_win_over_the_preset_and_sections_merge_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  preset: vidla-tiny\n  num_frames: 4\n  random_clip: {projection_dim: 32}\n")
    model = load_config(path).model
    assert model.num_frames == 4 and model.random_clip.projection_dim == 32
    tiny = load_preset("vidla-tiny")
    assert model.random_clip.vision == tiny["random_clip"]["vision"]  # kept from the preset
    assert model.temporal_positions == 8  # the preset's, not the class default (12)


def test_overrides_apply_before_the_preset_so_they_can_switch_it() -> None:
    cfg = load_config(CONFIGS / "vidla-b32.yaml", ["model.preset=vidla-b16", "model.num_frames=8"])
    assert cfg.model.clip == "openai/clip-vit-base-patch16" and cfg.model.num_frames == 8
    assert cfg.model.compile is True  # the file's own model value survives the switch
    with pytest.raises(ValidationError):
        load_config(CONFIGS / "demo.yaml", ["model.mst_levelz=2"])  # typos still rejected


def test_a_config_extends_another_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "common.yaml").write_text(
        "model: vidla-tiny\ndata: {batch_size: 4, scale_weights: {short: 1, medium: 1}}\noptim: {lr: 1.0e-3}\n"
    )
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: base/common.yaml\ndata: {scale_weights: {long: 2}}\noptim: {warmup_steps: 3}\n"
    )
    cfg = load_config(child)
    assert cfg.data.batch_size == 4 and cfg.optim.lr == 1e-3 and cfg.optim.warmup_steps == 3
    assert cfg.data.scale_weights == {"long": 2.0}  # a plain dict value is replaced whole, not merged
    assert cfg.model.num_frames == 8


def test_extends_cycles_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "a.yaml")
