"""Config loading: one YAML file serves both the plain loop and the Ray pipeline."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from curate.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_plain_loop_reads_the_pipeline_configs_without_their_ray_section():
    for name in ("demo.yaml", "cluster-gpu.yaml"):
        config = load_config(ROOT / "configs" / name)
        assert "ray" not in config.model_dump()


def test_overrides_patch_nested_keys_and_parse_values_as_yaml():
    config = load_config(None, ["plan.short.min_s=4", "download.subtitle_languages=[de, en]"])
    assert config.plan.short.min_s == 4 and config.download.subtitle_languages == ["de", "en"]


def test_unknown_keys_are_rejected_so_typos_never_fall_back_to_defaults():
    with pytest.raises(pydantic.ValidationError):
        load_config(None, ["plan.shrot.min_s=4"])
