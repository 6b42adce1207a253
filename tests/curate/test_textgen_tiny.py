"""Captioning and summarisation with tiny random models: in-process (``hf``) and over HTTP
(``openai`` against a real ``transformers serve`` on loopback).

The models are built from configs (LLaVA with a CLIP tower, a 2-layer Llama, SmolLM2's
tokenizer) and saved, so every backend loads them as it would load a real checkpoint.
Their text is gibberish; the tests check the machinery: batching, multi-frame input,
child-to-parent order, token accounting and the failure path.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from metered_backend import MeteredBackend
from tiny_textgen import build_tiny_llm, build_tiny_vlm, smollm2_tokenizer, synthetic_samples

from curate.caption import TextEnricher
from curate.config import TextGenConfig
from curate.textgen.backend_configs import llm_backend, vlm_backend
from curate.textgen.hf import HFBackend
from curate.textgen.openai_backend import OpenAIBackend
from curate.textgen.prompts import STRICT_SUFFIX, as_data, caption_prompt

IMAGE_TOKENS = 16
"""Tokens one 56x56 frame becomes in the tiny LLaVA: (56 / 14) ** 2."""

SENTENCES = [
    "Today we are fixing a flat tyre on a road bike.",
    "First take the wheel off the frame.",
    "Then pull the old tube out carefully.",
    "Finally pump the new tube to full pressure.",
]


@dataclass(frozen=True)
class Tiny:
    vlm: Path
    llm: Path
    mute: Path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    root = tmp_path_factory.mktemp("tiny_models")
    tokenizer = smollm2_tokenizer()
    return Tiny(
        vlm=build_tiny_vlm(root / "vlm", tokenizer),
        llm=build_tiny_llm(root / "llm", tokenizer),
        mute=build_tiny_llm(root / "mute", tokenizer, mute=True),
    )


def _config(tiny: Tiny, **text: object) -> TextGenConfig:
    """hf backends over the tiny models; short generations keep random models out of loops."""
    vlm = vlm_backend(backend="hf", model=str(tiny.vlm), batch_size=3, max_new_tokens=16)
    llm = llm_backend(backend="hf", model=str(tiny.llm), gguf_file=None, max_new_tokens=16)
    return TextGenConfig(vlm=vlm, llm=llm, **text)


def test_vlm_batches_multi_frame_prompts(tiny: Tiny, tmp_path: Path) -> None:
    backend = HFBackend(vlm_backend(backend="hf", model=str(tiny.vlm), batch_size=2), vision=True)
    frames = synthetic_samples("v", tmp_path, None, mediums=1, shorts_per_medium=1, frames_per_short=[3])[0].caption_frames
    jpegs = tuple(p.read_bytes() for p in frames)
    prompts = [caption_prompt(jpegs[:k], "Describe in {max_words} words.", 20, strict=False) for k in (1, 3, 2, 1)]

    out = backend.generate(prompts, max_new_tokens=6)

    assert [g.error for g in out] == [None] * 4
    # Every frame reached the model: each one adds exactly its image tokens to the prompt.
    assert out[1].tokens_in - out[0].tokens_in == 2 * IMAGE_TOKENS
    assert out[2].tokens_in - out[0].tokens_in == IMAGE_TOKENS
    # Results come back in the caller's order although batches are formed by length.
    assert out[3] == out[0]
    assert all(0 < g.tokens_out <= 6 for g in out)
    alone = backend.generate(prompts[1:2], max_new_tokens=6)[0]
    assert alone.tokens_in == out[1].tokens_in


def test_children_are_captioned_before_their_parents(tiny: Tiny, tmp_path: Path) -> None:
    config = _config(tiny)
    vlm = MeteredBackend(HFBackend(config.vlm, vision=True))
    llm = MeteredBackend(HFBackend(config.llm, vision=False))
    samples = synthetic_samples("bike", tmp_path, SENTENCES)
    by_key = {s.key: s for s in samples}

    TextEnricher(config, vlm=vlm, llm=llm)(samples)

    # One VLM batch for every short clip of the call (plus a retry batch only for failures).
    assert len(vlm.calls[0].prompts) == 4
    assert all(c.prompts[0].images for c in vlm.calls)
    first, second = llm.calls[0], llm.calls[-1]
    # The first LLM batch: both mediums' captions and all three subtitle summaries.
    first_data = [_data(p.user) for p in first.prompts]
    subtitles = [as_data(s.record["subtitle"]) for s in samples if s.scale != "short"]
    for medium in ("bike_medium_0000", "bike_medium_0001"):
        children = [by_key[k].record["caption"] for k in by_key[medium].record["children"]]
        assert all(children), "the tiny VLM should caption every short clip"
        assert by_key[medium].record["text_meta"]["caption"]["source"] == "children"
        assert as_data(" ".join(children)) in first_data
    assert sorted(first_data) == sorted(subtitles + [as_data(" ".join(by_key[k].record["caption"] for k in by_key[m].record["children"])) for m in ("bike_medium_0000", "bike_medium_0001")])
    # The long clip's caption comes from the mediums' final captions, in the next batch.
    long = by_key["bike_long_0000"].record
    assert long["text_meta"]["caption"]["source"] == "children"
    medium_captions = as_data(" ".join(by_key[k].record["caption"] for k in long["children"]))
    assert [_data(p.user) for p in second.prompts] == [medium_captions]
    # The unsummarised captions (the paper's Table 6 text ablation): a short clip's own caption; a
    # parent's, the captions of the short clips it holds in time order, not its children's summaries.
    shorts = sorted((s for s in samples if s.scale == "short"), key=lambda s: s.key)  # ..._short_0000 first
    assert all(s.record["raw_caption"] == s.record["caption"] for s in shorts)
    assert long["raw_caption"] == " ".join(s.record["caption"] for s in shorts)
    for medium in ("bike_medium_0000", "bike_medium_0001"):
        children = by_key[medium].record["children"]
        assert by_key[medium].record["raw_caption"] == " ".join(by_key[k].record["caption"] for k in children)
        assert by_key[medium].record["raw_caption"] != by_key[medium].record["caption"]


def _data(user: str) -> str:
    """The delimited data of a summariser prompt."""
    return user.split("<text>", 1)[1].rsplit("</text>", 1)[0]


def test_every_sample_records_models_prompt_version_and_tokens(tiny: Tiny, tmp_path: Path) -> None:
    samples = synthetic_samples("meta", tmp_path, SENTENCES)
    TextEnricher(_config(tiny))(samples)
    for sample in samples:
        meta = sample.record["text_meta"]
        assert meta["prompt_version"] == "vidla-text-1"
        assert meta["models"] == {"vlm": str(tiny.vlm), "llm": str(tiny.llm)}
        caption = meta["caption"]
        if caption["source"] in ("vlm", "children"):
            assert caption["tokens_in"] > 0 and caption["tokens_out"] > 0
            assert (sample.record["caption"] is None) == (caption["failure"] is not None)
        if sample.scale == "short":
            assert sample.record["summary"] is None and meta["summary"] is None
        else:
            assert meta["summary"]["tokens_in"] > 0 and meta["summary"]["input_tokens"] > 0
            summary = sample.record["summary"]
            assert summary is None or len(summary.split()) <= 25


def test_a_model_that_answers_nothing_is_retried_once_then_recorded(tiny: Tiny, tmp_path: Path) -> None:
    config = _config(tiny)
    mute = MeteredBackend(HFBackend(llm_backend(backend="hf", model=str(tiny.mute), gguf_file=None), vision=False))
    samples = synthetic_samples("mute", tmp_path, SENTENCES)
    for sample in samples:  # children with captions, so the parents' caption jobs run too
        if sample.scale == "short":
            sample.record["caption"] = f"A person works on a bicycle wheel in shot {sample.key[-1]}."

    TextEnricher(config, stages=["llm"], llm=mute)(samples)

    parents = [s for s in samples if s.scale != "short"]
    for sample in parents:
        assert sample.record["caption"] is None
        # The summary falls back to the subtitle's first sentence, and says so.
        assert sample.record["summary"] == sample.record["subtitle"].split(". ")[0] + "."
        assert sample.record["text_meta"]["summary"]["fallback"] == "extractive"
        jobs = [sample.record["text_meta"]["summary"]]
        if sample.scale == "medium":
            jobs.append(sample.record["text_meta"]["caption"])
        for meta in jobs:
            assert meta["failure"] == "empty" and meta["first_failure"] == "empty" and meta["attempts"] == 2
            assert meta["tokens_out"] == 2 * config.llm.max_new_tokens
    # The mediums' captions failed, so the long clip had nothing to summarise: no third batch.
    assert samples[-1].record["text_meta"]["caption"] == {"source": "children", "skipped": "no_child_captions"}
    # The failures went out again as one batch, with the stricter prompt.
    strict = STRICT_SUFFIX.format(max_words=25)
    assert [len(c.prompts) for c in mute.calls] == [5, 5]
    assert [all(strict in p.user for p in c.prompts) for c in mute.calls] == [False, True]


def test_no_vlm_leaves_captions_null_and_says_why(tiny: Tiny, tmp_path: Path) -> None:
    config = _config(tiny).model_copy(update={"vlm": vlm_backend()})
    samples = synthetic_samples("novlm", tmp_path, SENTENCES)
    enricher = TextEnricher(config)
    assert enricher.vlm is None
    enricher(samples)
    for sample in samples:
        assert sample.record["caption"] is None
        expected = "no_vlm" if sample.scale == "short" else "no_child_captions"
        assert sample.record["text_meta"]["caption"]["skipped"] == expected
        assert sample.record["text_meta"]["models"]["vlm"] is None


def test_a_stage_that_is_off_is_recorded_even_when_its_pool_is_skipped(tiny: Tiny, tmp_path: Path) -> None:
    config = _config(tiny).model_copy(update={"vlm": vlm_backend()})
    samples = synthetic_samples("skipvlm", tmp_path, SENTENCES)
    TextEnricher(config, stages=["llm"])(samples)  # as a pipeline that runs no vlm pool
    assert samples[0].record["text_meta"]["caption"] == {"source": "vlm", "skipped": "no_vlm"}
    off = config.model_copy(update={"llm": llm_backend(backend="none")})
    samples = synthetic_samples("skipllm", tmp_path, SENTENCES)
    TextEnricher(off, stages=["vlm"])(samples)  # as a pipeline that runs no llm pool
    assert samples[-1].record["text_meta"]["summary"] == {"source": "subtitle", "skipped": "no_llm"}
    assert samples[-1].record["text_meta"]["models"]["llm"] is None


def test_unreadable_frames_and_missing_subtitles_are_recorded(tiny: Tiny, tmp_path: Path) -> None:
    samples = synthetic_samples("broken", tmp_path, None)
    samples[0].caption_frames[0].unlink()
    TextEnricher(_config(tiny))(samples)
    assert samples[0].record["caption"] is None
    assert samples[0].record["text_meta"]["caption"]["failure"].startswith("frames_unreadable")
    for sample in samples[4:]:
        assert sample.record["summary"] is None
        assert sample.record["text_meta"]["summary"] == {"source": "subtitle", "skipped": "no_subtitle"}


def test_long_subtitles_are_cut_to_the_token_budget(tiny: Tiny, tmp_path: Path) -> None:
    sentences = [" ".join(["The rider explains gear ratios and cadence on long climbs."] * 6)] * 4
    samples = synthetic_samples("long", tmp_path, sentences)
    TextEnricher(_config(tiny, max_input_tokens=32), stages=["llm"])(samples)
    for sample in samples[4:]:
        meta = sample.record["text_meta"]["summary"]
        assert meta["input_truncated"] is True and meta["input_tokens"] == 32


# --- the openai backend against a real `transformers serve` -------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``transformers serve`` on a free loopback port; models load on first request by path."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cli = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", proc, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"transformers serve not healthy after {timeout_s}s: {log.read_text()[-2000:]}")


def test_openai_backend_against_transformers_serve(tiny: Tiny, served: str, tmp_path: Path) -> None:
    http = {"backend": "openai", "base_url": served, "max_new_tokens": 16, "max_concurrency": 2, "timeout_s": 60}
    config = TextGenConfig(
        vlm=vlm_backend(model=str(tiny.vlm), **http),
        llm=llm_backend(model=str(tiny.llm), tokenizer=str(tiny.llm), **http),
    )
    vlm, llm = MeteredBackend(OpenAIBackend(config.vlm)), MeteredBackend(OpenAIBackend(config.llm))
    samples = synthetic_samples("http", tmp_path, SENTENCES)
    try:
        TextEnricher(config, vlm=vlm, llm=llm)(samples)
    finally:
        vlm.close()
        llm.close()

    first = vlm.calls[0].generations
    assert [g.error for g in first] == [None] * 4
    # Frames travel as data URLs: the server's prompt grows by one frame's tokens per frame.
    frames = [len(s.caption_frames) for s in samples[:4]]
    assert frames == [1, 2, 3, 1]
    assert first[1].tokens_in - first[0].tokens_in == IMAGE_TOKENS
    assert first[2].tokens_in - first[0].tokens_in == 2 * IMAGE_TOKENS
    assert all(0 < g.tokens_out <= 16 for g in first)
    for sample in samples:
        meta = sample.record["text_meta"]
        assert meta["models"]["llm"] == str(tiny.llm)
        if sample.scale != "short":
            assert meta["summary"]["tokens_in"] > 0 and meta["summary"]["input_tokens"] > 0
            assert meta["summary"]["failure"] is None or meta["summary"]["failure"] in ("empty", "repeated", "too_short", "refusal")
