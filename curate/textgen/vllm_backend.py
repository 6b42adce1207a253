"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``) inside the calling process.

Why ``LLM`` in the enrichment actor rather than ``ray.data.llm``'s processor: the
processor is a Dataset-to-Dataset transform with its own row schema (``messages`` in,
``generated_text`` out), so using it would mean exploding each video's samples into
prompt rows, joining answers back by key, and doing that twice (children's captions
must exist before their parents are summarised) with hygiene and the retry as further
stages. With ``LLM`` in the same callable class as the other backends, the Ray pipeline
runs :class:`curate.enrich.TextEnricher` in ``map_batches`` with ``num_gpus =
tensor_parallel_size`` and ``concurrency`` = the pool's engine replicas (one pool for the
VLM, one for the LLM, see ``docs/scaling.md``); ``LLM.chat`` takes the whole batch of
conversations at once and vLLM's scheduler batches them continuously on the GPU, so the
hygiene, retry and parent ordering code is the same for every backend.

This module is a thin adapter and only imports ``vllm`` when constructed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curate.config import BackendConfig
from curate.textgen.backend import Generation, model_label, resolve_model, truncate_with_tokenizer
from curate.textgen.prompts import Prompt, openai_messages


class VLLMBackend:
    """One vLLM engine; ``vision=True`` allows up to ``text.max_caption_frames`` images a prompt."""

    def __init__(self, config: BackendConfig, vision: bool, max_images: int = 4) -> None:
        from vllm import LLM, SamplingParams

        self.name = model_label(config)
        self._config = config
        self._sampling = SamplingParams
        self._llm = LLM(**engine_arguments(config, vision, max_images))

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Generation]:
        """All prompts in one ``LLM.chat`` call: vLLM schedules them with continuous batching."""
        conversations = [openai_messages(p, self._config.system_role) for p in prompts]
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens)
        try:
            outputs = self._llm.chat(conversations, sampling_params=params, use_tqdm=False)
        except Exception as exc:  # an engine-level failure errors the batch, not the process
            return [Generation("", 0, 0, error=f"{type(exc).__name__}: {exc}")] * len(prompts)
        return [_generation(o) for o in outputs]

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        return truncate_with_tokenizer(self._llm.get_tokenizer(), text, max_tokens)

    def close(self) -> None:
        self._llm = None


def engine_arguments(config: BackendConfig, vision: bool, max_images: int) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for ``config`` (kept separate so it can be checked without vLLM)."""
    model = resolve_model(config.model)
    args: dict[str, Any] = {
        "model": str(Path(model) / config.gguf_file) if config.gguf_file else model,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "seed": 0,
    }
    if config.max_model_len is not None:
        args["max_model_len"] = config.max_model_len
    if config.tokenizer:
        args["tokenizer"] = config.tokenizer
    if vision:
        args["limit_mm_per_prompt"] = {"image": max_images}
    args.update(config.engine_kwargs)
    return args


def _generation(output: Any) -> Generation:
    completion = output.outputs[0] if output.outputs else None
    tokens_in = len(output.prompt_token_ids or [])
    if completion is None:
        return Generation("", tokens_in, 0, error="no completion")
    return Generation(completion.text, tokens_in, len(completion.token_ids))
