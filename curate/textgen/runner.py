"""Batched generation with hygiene and one stricter retry.

Every stage hands the runner a list of :class:`Job`; the runner sends all of them to the
backend as one batch (so the engine can batch across videos), cleans each answer, sends the
failures once more with the stricter prompt (again as one batch), and returns the text or
the recorded failure with the token accounting that goes into ``text_meta``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from curate.textgen.hygiene import clean
from curate.textgen.interface import Backend, Generation
from curate.textgen.prompts import Prompt

ERROR_CHARS = 300
"""Backend error messages are cut to this length in ``text_meta``."""


@dataclass
class Job:
    """One text to generate: its prompt (``prompt(strict)``), its word limit and its starting metadata."""

    prompt: Callable[[bool], Prompt]
    max_words: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """The clean text, or None with ``meta["failure"]`` saying why."""

    text: str | None
    meta: dict[str, Any]


def run_jobs(backend: Backend, jobs: Sequence[Job], max_new_tokens: int, retry: bool = True) -> list[Outcome]:
    """Generate, clean, retry the failures once with the strict prompt; one outcome per job, in order."""
    if not jobs:
        return []
    first = backend.generate([job.prompt(False) for job in jobs], max_new_tokens)
    outcomes = [_outcome(backend.name, job, gen, attempt=1) for job, gen in zip(jobs, first, strict=True)]
    failed = [i for i, outcome in enumerate(outcomes) if outcome.text is None]
    if retry and failed:
        second = backend.generate([jobs[i].prompt(True) for i in failed], max_new_tokens)
        for i, gen in zip(failed, second, strict=True):
            outcomes[i] = _retried(outcomes[i], _outcome(backend.name, jobs[i], gen, attempt=2))
    return outcomes


def _outcome(model: str, job: Job, gen: Generation, attempt: int) -> Outcome:
    meta = {
        **job.meta,
        "model": model,
        "tokens_in": gen.tokens_in,
        "tokens_out": gen.tokens_out,
        "attempts": attempt,
        "failure": None,
        "words_truncated": False,
    }
    if gen.error is not None:
        meta["failure"] = "error: " + gen.error[:ERROR_CHARS]
        return Outcome(None, meta)
    cleaned = clean(gen.text, job.max_words)
    meta["failure"] = cleaned.failure
    meta["words_truncated"] = cleaned.truncated
    return Outcome(cleaned.text, meta)


def _retried(before: Outcome, after: Outcome) -> Outcome:
    """The retry's result, with both attempts' tokens counted and the first failure kept."""
    meta = dict(after.meta)
    meta["tokens_in"] += before.meta["tokens_in"]
    meta["tokens_out"] += before.meta["tokens_out"]
    meta["first_failure"] = before.meta["failure"]
    return Outcome(after.text, meta)
