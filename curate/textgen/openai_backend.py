"""The ``openai`` backend: any OpenAI-compatible chat endpoint.

``vllm serve``, ``transformers serve``, SGLang or a hosted API. A thread pool of
``max_concurrency`` bounds the requests in flight (the server batches them); the client's
own ``timeout`` and ``max_retries`` (exponential backoff on connection errors, 408, 409,
429 and 5xx) handle transient failures; frames travel as base64 ``data:`` URLs, so the
server needs no access to this machine's files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

from curate.textgen.backend_configs import OpenAIBackendConfig
from curate.textgen.interface import Generation, model_label, truncate_with_tokenizer
from curate.textgen.prompts import Prompt, openai_messages

CHARS_PER_TOKEN = 4
"""Truncation estimate when no tokenizer is configured (English BPE averages about 4 characters a token)."""


class OpenAIBackend:
    """Chat completions over HTTP, ``max_concurrency`` at a time."""

    def __init__(self, config: OpenAIBackendConfig) -> None:
        self.name = model_label(config)
        self._config = config
        self._client = openai.OpenAI(
            base_url=config.base_url,
            api_key=os.environ.get(config.api_key_env) or "not-needed",
            timeout=config.timeout_s,
            max_retries=config.max_retries,
        )
        self._pool = ThreadPoolExecutor(max_workers=config.max_concurrency, thread_name_prefix="textgen-http")
        self._tokenizer = _load_tokenizer(config.tokenizer) if config.tokenizer else None

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Generation]:
        return list(self._pool.map(lambda p: self._one(p, max_new_tokens), prompts))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        """Exact with ``tokenizer`` configured, else an estimate of ``CHARS_PER_TOKEN`` characters a token."""
        if self._tokenizer is not None:
            return truncate_with_tokenizer(self._tokenizer, text, max_tokens)
        limit = max_tokens * CHARS_PER_TOKEN
        if len(text) <= limit:
            return text, -(-len(text) // CHARS_PER_TOKEN), False
        return text[:limit].rsplit(" ", 1)[0], max_tokens, True

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def _one(self, prompt: Prompt, max_new_tokens: int) -> Generation:
        try:
            response = self._client.chat.completions.create(
                model=self._config.model,
                messages=openai_messages(prompt, self._config.system_role),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=0.0,
            )
        except openai.OpenAIError as exc:
            return Generation("", 0, 0, error=f"{type(exc).__name__}: {exc}")
        return _generation(response)


def _generation(response: Any) -> Generation:
    """Text and usage of a chat completion; servers that omit ``usage`` count as zero tokens."""
    choices = response.choices or []
    text = (choices[0].message.content or "") if choices else ""
    usage = response.usage
    tokens_in = usage.prompt_tokens if usage is not None else 0
    tokens_out = usage.completion_tokens if usage is not None else 0
    return Generation(text, tokens_in, tokens_out, None if choices else "no choices in response")


def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)
