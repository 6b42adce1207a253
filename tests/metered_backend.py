"""A backend wrapper that records every batch it forwards: test and benchmark support (not installed).

The caption benchmark derives clips/s and tokens/s from it; tests read which prompts went out
in which batch (the child-to-parent order) while the model calls stay real.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from curate.textgen.interface import Backend, Generation
from curate.textgen.prompts import Prompt


@dataclass(frozen=True)
class Call:
    """One batch a :class:`MeteredBackend` forwarded."""

    prompts: tuple[Prompt, ...]
    generations: tuple[Generation, ...]
    seconds: float


class MeteredBackend:
    """Wraps a backend and keeps every batch it forwards, with its wall time."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[Call] = []

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Generation]:
        started = time.perf_counter()
        out = self.inner.generate(prompts, max_new_tokens)
        self.calls.append(Call(tuple(prompts), tuple(out), time.perf_counter() - started))
        return out

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        return self.inner.truncate(text, max_tokens)

    def close(self) -> None:
        self.inner.close()
