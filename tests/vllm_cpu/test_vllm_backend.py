"""The ``vllm`` backend in this process: one engine (a tiny random Qwen2-VL) for the whole module.

Checks the adapter itself, with the enricher around it as the pipeline runs it: several frames
per prompt reach the engine, answers come back in order with their token counts and go through
hygiene, and one undecodable frame fails only its own clip, not the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from metered_backend import MeteredBackend
from tiny_textgen import synthetic_samples

from curate.caption import TextEnricher
from curate.config import TextGenConfig
from curate.textgen.backend_configs import vlm_backend
from curate.textgen.prompts import CAPTION_PROMPT, caption_prompt

ENGINE = {"backend": "vllm", "dtype": "float32", "max_model_len": 2048, "max_new_tokens": 16,
          "engine_kwargs": {"enforce_eager": True}}  # fmt: skip


@pytest.fixture(scope="module")
def vlm(tiny_vlm: Path) -> Iterator[MeteredBackend]:
    from curate.textgen.vllm_backend import VLLMBackend

    backend = MeteredBackend(VLLMBackend(vlm_backend(model=str(tiny_vlm), **ENGINE), vision=True, max_images=4))
    yield backend
    backend.close()


def test_captions_carry_every_frame_of_a_clip(vlm: MeteredBackend, tiny_vlm: Path, tmp_path: Path) -> None:
    config = TextGenConfig(vlm=vlm_backend(model=str(tiny_vlm), **ENGINE))
    samples = synthetic_samples("cpu", tmp_path, ["One.", "Two.", "Three.", "Four."], frames_per_short=(1, 2, 3, 4))
    vlm.calls.clear()
    TextEnricher(config, stages=["vlm"], vlm=vlm)(samples)
    first = vlm.calls[0]
    assert [len(p.images) for p in first.prompts] == [1, 2, 3, 4], "one batch, in clip order"
    tokens = [g.tokens_in for g in first.generations]
    assert [g.error for g in first.generations] == [None] * 4
    # Each 455x256 frame is 15 image tokens plus its start and end markers in this model.
    assert [b - a for a, b in zip(tokens, tokens[1:], strict=False)] == [17, 17, 17]
    assert all(0 < g.tokens_out <= 16 for g in first.generations)
    for sample in (s for s in samples if s.scale == "short"):
        meta = sample.record["text_meta"]["caption"]
        assert meta["model"] == str(tiny_vlm) and meta["tokens_in"] > 0
        assert (sample.record["caption"] is None) == (meta["failure"] is not None)


def test_an_undecodable_frame_fails_only_its_own_prompt(vlm: MeteredBackend, tmp_path: Path) -> None:
    frame = Path(synthetic_samples("ok", tmp_path, None)[0].caption_frames[0]).read_bytes()
    prompts = [caption_prompt((frame,), CAPTION_PROMPT, 20, False),
               caption_prompt((b"\xff\xd8 not a jpeg",), CAPTION_PROMPT, 20, False),
               caption_prompt((frame, frame), CAPTION_PROMPT, 20, False)]  # fmt: skip
    out = vlm.generate(prompts, 8)
    assert out[0].error is None and out[2].error is None and out[2].tokens_in > out[0].tokens_in
    assert out[1].error is not None and out[1].text == ""


def test_the_cluster_configs_engine_arguments_are_vllm_engine_arguments() -> None:
    """configs/cluster-gpu.yaml's text engines cannot be started here (7-8B models, no GPU), but every
    argument they pass must be one vLLM 0.32's engine takes, and the image limit must match the frames sent."""
    from dataclasses import fields

    from vllm.engine.arg_utils import EngineArgs

    from curate.textgen.vllm_backend import engine_arguments
    from pipelines.config import load_pipeline_config

    config = load_pipeline_config(Path(__file__).resolve().parents[2] / "configs" / "cluster-gpu.yaml").text
    accepted = {f.name for f in fields(EngineArgs)}
    for stage, vision in (("vlm", True), ("llm", False)):
        args = engine_arguments(getattr(config, stage), vision, config.max_caption_frames)
        assert set(args) <= accepted, set(args) - accepted
        EngineArgs(**args)  # types as vLLM declares them
    vlm_args = engine_arguments(config.vlm, True, config.max_caption_frames)
    assert vlm_args["limit_mm_per_prompt"]["image"] == config.max_caption_frames
