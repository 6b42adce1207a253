"""The ``vllm`` backend for real, where it can run: vLLM importable and a CUDA GPU present.

Everything around the engine (prompts, hygiene, retry, order, metadata) is covered with
the other backends; this runs the same enrichment with tiny random models in two vLLM
engines (a LLaVA captioner and a Llama summariser) to check the adapter itself.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from curate.config import LLMBackendConfig, TextGenConfig, VLMBackendConfig
from curate.enrich import TextEnricher
from curate.textgen.backend import MeteredBackend
from curate.textgen.tiny import build_tiny_llm, build_tiny_vlm, smollm2_tokenizer, synthetic_samples


def _why_not() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install '.[gpu]' on a CUDA machine)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU: vLLM needs one"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


def test_vllm_engines_caption_and_summarise(tmp_path: Path) -> None:
    from curate.textgen.vllm_backend import VLLMBackend

    tokenizer = smollm2_tokenizer()
    vlm_dir = build_tiny_vlm(tmp_path / "vlm", tokenizer, wide=True)
    llm_dir = build_tiny_llm(tmp_path / "llm", tokenizer, wide=True)
    engine = {"backend": "vllm", "max_model_len": 2048, "gpu_memory_utilization": 0.3, "max_new_tokens": 16,
              "engine_kwargs": {"enforce_eager": True}}
    config = TextGenConfig(
        vlm=VLMBackendConfig(model=str(vlm_dir), **engine),
        llm=LLMBackendConfig(model=str(llm_dir), gguf_file=None, **engine),
    )
    vlm = MeteredBackend(VLLMBackend(config.vlm, vision=True, max_images=config.max_caption_frames))
    llm = MeteredBackend(VLLMBackend(config.llm, vision=False))
    samples = synthetic_samples("gpu", tmp_path / "frames", ["One sentence here.", "Two.", "Three words now.", "Four."])

    TextEnricher(config, vlm=vlm, llm=llm)(samples)

    first = vlm.calls[0].generations
    assert len(first) == 4 and [g.error for g in first] == [None] * 4
    # Frames 1, 2, 3, 1: the engine saw every image (prompt length grows with each frame).
    assert first[0].tokens_in < first[1].tokens_in < first[2].tokens_in and first[3].tokens_in == first[0].tokens_in
    assert all(0 < g.tokens_out <= 16 for g in first)
    summaries = llm.calls[0].generations
    assert [g.error for g in summaries] == [None] * len(summaries) and all(g.tokens_in > 0 for g in summaries)
    for sample in samples:
        meta = sample.record["text_meta"]
        assert meta["models"] == {"vlm": str(vlm_dir), "llm": str(llm_dir)}
        if sample.scale != "short":
            assert meta["summary"]["tokens_in"] > 0
