"""Captions and summaries for the samples of a batch of videos (issue 4).

:class:`TextEnricher` is the seam both drivers call: the plain loop makes one per run, the
Ray pipeline one per actor (``map_batches`` with a callable class), so models load once.
Each call takes *all* samples of some videos and fills, in place:

- ``caption``: short clips from their caption frames via the VLM (one batch for the call);
  medium clips from their children's captions, then long clips from theirs, via the LLM;
- ``summary``: medium and long clips with subtitles, the paper's prompt over the subtitle
  (cut to ``text.max_input_tokens``), or, when the model fails twice, the subtitle's first
  sentence (``text.summary_fallback``); short clips keep their raw subtitle and no summary;
- ``text_meta``: prompt version, model names, and per field the model, token counts,
  attempts and failure (see :func:`base_meta`).

The work splits into two stages that can run in separate pools: ``vlm`` (short captions)
and ``llm`` (everything else, which needs the short captions first). The LLM stage sends
the subtitle summaries together with the medium captions, then the long captions, so a
call makes at most two LLM batches plus their retries.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from curate.config import TextGenConfig
from curate.records import Sample
from curate.shards import data_of
from curate.textgen.backend_configs import BackendConfig
from curate.textgen.factory import load_backend
from curate.textgen.hygiene import clean, first_sentence
from curate.textgen.interface import Backend, model_label
from curate.textgen.prompts import caption_prompt, prompt_version, summary_prompt
from curate.textgen.runner import Job, Outcome, run_jobs
from vidla_format.layout import SCALES

STAGES = ("vlm", "llm")
META = "text_meta"


def startup_notes(config: TextGenConfig) -> list[str]:
    """What the driver should log once per run (actors would repeat it per replica)."""
    notes = []
    if config.vlm.backend == "none":
        notes.append(
            "text: no VLM configured (text.vlm.backend=none): captions stay null and training uses the subtitle-only loss"
        )
    if config.llm.backend == "none":
        notes.append("text: no LLM configured (text.llm.backend=none): medium/long summaries and captions stay null")
    return notes


class TextEnricher:
    """Loads the configured backends once; each call enriches a list of samples in place."""

    def __init__(
        self,
        config: TextGenConfig,
        stages: Collection[str] = STAGES,
        vlm: Backend | None = None,
        llm: Backend | None = None,
    ) -> None:
        """Load the backends of ``stages`` from ``config``; ``vlm``/``llm`` pass already-loaded ones instead.

        Passing a backend lets one loaded model serve several enrichers (the benchmark, tests
        that observe the batches a backend receives); a stage left out loads nothing.
        """
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown text stages {sorted(unknown)}; choose from {STAGES}")
        self.config = config
        self.stages = tuple(s for s in STAGES if s in stages)
        self.version = prompt_version(config.system_prompt, config.summary_prompt, config.caption_prompt)
        self.vlm: Backend | None = None
        self.llm: Backend | None = None
        if "vlm" in self.stages:
            self.vlm = vlm if vlm is not None else load_backend(config.vlm, vision=True, max_images=config.max_caption_frames)
        if "llm" in self.stages:
            self.llm = llm if llm is not None else load_backend(config.llm, vision=False)
        self._owned = [b for b, given in ((self.vlm, vlm), (self.llm, llm)) if b is not None and given is None]

    def __call__(self, samples: list[Sample]) -> list[Sample]:
        """Run this enricher's stages over ``samples`` (every scale of each video); returns the same list."""
        if "vlm" in self.stages:
            self.caption_short(samples)
        if "llm" in self.stages:
            self.summarize(samples)
        return samples

    def close(self) -> None:
        """Release the backends this enricher loaded (not those passed in)."""
        for backend in self._owned:
            backend.close()
        self._owned = []

    def _prepare(self, samples: Sequence[Sample]) -> None:
        for sample in samples:
            base_meta(sample, self.version, self.config)

    # --- vlm stage ------------------------------------------------------------------------------

    def caption_short(self, samples: Sequence[Sample]) -> None:
        """Caption every short clip from its caption frames, all in one VLM batch."""
        self._prepare(samples)
        shorts = [s for s in samples if s.scale == SCALES[0]]
        if self.vlm is None:
            for sample in shorts:
                _meta(sample)["caption"] = {"source": "vlm", "skipped": "no_vlm"}
            return
        jobs, targets = [], []
        for sample in shorts:
            frames, error = read_frames(sample.caption_frames, self.config.max_caption_frames)
            if error is not None:
                _meta(sample)["caption"] = {"source": "vlm", "failure": error}
                continue
            prompt = partial(caption_prompt, frames, self.config.caption_prompt, self.config.caption_max_words)
            jobs.append(Job(prompt, self.config.caption_max_words, {"source": "vlm", "frames": len(frames)}))
            targets.append(sample)
        outcomes = run_jobs(self.vlm, jobs, self.config.vlm.max_new_tokens, self.config.retry)
        for sample, outcome in zip(targets, outcomes, strict=True):
            _store(sample, "caption", outcome)
        store_raw_captions(samples)

    # --- llm stage ------------------------------------------------------------------------------

    def summarize(self, samples: Sequence[Sample]) -> None:
        """Subtitle summaries and parent captions, scale by scale so children come first."""
        self._prepare(samples)
        by_key = {s.key: s for s in samples}
        for depth, scale in enumerate(SCALES[1:]):
            parents = [s for s in samples if s.scale == scale]
            jobs: list[Job] = []
            sinks: list[tuple[Sample, str]] = []
            for sample in parents:
                self._caption_job(sample, by_key, jobs, sinks)
            if depth == 0:
                for sample in (s for s in samples if s.scale != SCALES[0]):
                    self._summary_job(sample, jobs, sinks)
            if self.llm is not None:
                outcomes = run_jobs(self.llm, jobs, self.config.llm.max_new_tokens, self.config.retry)
                for (sample, name), outcome in zip(sinks, outcomes, strict=True):
                    _store(sample, name, self._fallback(sample, outcome) if name == "summary" else outcome)

    def _caption_job(self, sample: Sample, by_key: dict[str, Sample], jobs: list[Job], sinks: list[tuple[Sample, str]]) -> None:
        """A parent's caption from its children's: copied when there is one, summarised when several."""
        children = [by_key[k].record.get("caption") for k in sample.record.get("children", []) if k in by_key]
        captions = [c for c in children if c]
        meta = _meta(sample)
        if not captions:
            meta["caption"] = {"source": "children", "skipped": "no_child_captions"}
        elif len(captions) == 1:
            sample.record["caption"] = captions[0]
            meta["caption"] = {"source": "child_copy", "model": None, "tokens_in": 0, "tokens_out": 0}
        elif self.llm is None:
            meta["caption"] = {"source": "children", "skipped": "no_llm"}
        else:
            jobs.append(self._text_job(" ".join(captions), {"source": "children", "children_captioned": len(captions)}))
            sinks.append((sample, "caption"))

    def _summary_job(self, sample: Sample, jobs: list[Job], sinks: list[tuple[Sample, str]]) -> None:
        subtitle = (sample.record.get("subtitle") or "").strip()
        meta = _meta(sample)
        if not subtitle:
            meta["summary"] = {"source": "subtitle", "skipped": "no_subtitle"}
        elif self.llm is None:
            meta["summary"] = {"source": "subtitle", "skipped": "no_llm"}
        else:
            jobs.append(self._text_job(subtitle, {"source": "subtitle"}))
            sinks.append((sample, "summary"))

    def _fallback(self, sample: Sample, outcome: Outcome) -> Outcome:
        """A failed subtitle summary becomes the subtitle's first sentence within the word limit.

        So every medium and long clip with subtitles has a summary; ``text_meta`` keeps the
        failure and says ``fallback: extractive`` so users can filter these out.
        """
        if outcome.text is not None or self.config.summary_fallback != "extractive":
            return outcome
        # The first sentence only: speech repeats itself, and the whole subtitle could read as a loop.
        extract = clean(first_sentence(sample.record.get("subtitle") or ""), self.config.summary_max_words)
        if extract.text is None:
            return outcome
        return Outcome(extract.text, {**outcome.meta, "fallback": "extractive"})

    def _text_job(self, text: str, meta: dict[str, Any]) -> Job:
        """A summariser job over ``text``, cut to the input token budget first."""
        assert self.llm is not None
        cut, tokens, truncated = self.llm.truncate(text, self.config.max_input_tokens)
        prompt = partial(
            summary_prompt, cut, self.config.summary_prompt, self.config.system_prompt, self.config.summary_max_words
        )
        return Job(prompt, self.config.summary_max_words, {**meta, "input_tokens": tokens, "input_truncated": truncated})


def store_raw_captions(samples: Sequence[Sample]) -> None:
    """Every clip's ``raw_caption``: the captions of the short clips it holds, in time order, joined
    unsummarised (a short clip's is its own caption).

    The paper captions frames at ~0.1 FPS and summarises a clip's frame captions into its caption;
    its text ablation (Table 6) trains on the unsummarised ones. A short clip here is captioned
    from its ~0.1 FPS frames in one VLM call, so the short captions are the frame-level captions
    and a parent's raw text is theirs, not its children's summaries. Null when none exists.
    """
    by_key = {s.key: s for s in samples}

    def shorts_in(sample: Sample) -> list[Sample]:
        if sample.scale == SCALES[0]:
            return [sample]
        children = [by_key[k] for k in sample.record.get("children", []) if k in by_key]
        return [short for child in children for short in shorts_in(child)]

    for sample in samples:
        texts = [s.record.get("caption") for s in shorts_in(sample)]  # children are listed in time order
        joined = " ".join(t for t in texts if t)
        sample.record["raw_caption"] = joined or None


def base_meta(sample: Sample, version: str, config: TextGenConfig) -> dict[str, Any]:
    """``record["text_meta"]``, created once per sample and kept across stages.

    ``{"prompt_version", "models": {"vlm", "llm"}, "caption", "summary"}``; ``caption`` and
    ``summary`` hold ``{"source", "model", "tokens_in", "tokens_out", "attempts", "failure",
    "first_failure", "words_truncated", "input_tokens", "input_truncated", "fallback", ...}``
    (keys as they apply) once the stage ran, ``{"source", "skipped": reason}`` when it could not, and stay
    None where the field does not apply (a short clip's summary).
    """
    meta = sample.record.get(META)
    if meta is None:
        meta = {"prompt_version": version, "models": {"vlm": _label(config.vlm), "llm": _label(config.llm)}}
        meta.update(_unconfigured(sample, config))
        sample.record[META] = meta
    return meta


def _unconfigured(sample: Sample, config: TextGenConfig) -> dict[str, Any]:
    """Fields a stage that is off will never fill, marked so from the start.

    A pipeline may skip the actor pool of a stage whose backend is ``none``; the records
    still say why their caption or summary is null.
    """
    short = sample.scale == SCALES[0]
    fields: dict[str, Any] = {"caption": None, "summary": None}
    if short and config.vlm.backend == "none":
        fields["caption"] = {"source": "vlm", "skipped": "no_vlm"}
    if not short and config.llm.backend == "none":
        fields["caption"] = {"source": "children", "skipped": "no_llm"}
        fields["summary"] = {"source": "subtitle", "skipped": "no_llm"}
    return fields


def read_frames(frames: Sequence[Path | bytes], limit: int) -> tuple[tuple[bytes, ...], str | None]:
    """The JPEG bytes of up to ``limit`` distinct caption frames, evenly chosen; or an error.

    Frames are files in the plain loop and bytes already in the Ray pipeline's rows; either
    way each is read once, here.
    """
    distinct = list(dict.fromkeys(frames))
    if not distinct:
        return (), "no_caption_frames"
    if len(distinct) > limit:
        distinct = [distinct[(2 * i + 1) * len(distinct) // (2 * limit)] for i in range(limit)]
    try:
        return tuple(data_of(f) for f in distinct), None
    except OSError as exc:
        return (), f"frames_unreadable: {exc.strerror or exc}"


def _meta(sample: Sample) -> dict[str, Any]:
    return sample.record[META]


def _store(sample: Sample, name: str, outcome: Outcome) -> None:
    sample.record[name] = outcome.text
    _meta(sample)[name] = outcome.meta


def _label(config: BackendConfig) -> str | None:
    return None if config.backend == "none" else model_label(config)
