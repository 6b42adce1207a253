"""The ``openai`` backend and the failure path against a scripted OpenAI-compatible server.

The server is a real HTTP server on loopback that answers chat completions from a script
(a refusal, a loop, a 500, a stall), so hygiene, the stricter retry, the client's retries,
timeouts, concurrency bounds and data-URL frames are exercised over real HTTP.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tiny_textgen import synthetic_samples

from curate.caption import TextEnricher
from curate.config import TextGenConfig
from curate.shards import data_of
from curate.textgen.backend_configs import llm_backend, vlm_backend
from curate.textgen.prompts import STRICT_SUFFIX

Reply = tuple[int, str]
"""(HTTP status, assistant text)."""


@dataclass
class Script:
    """How the server answers, and what it saw."""

    answer: Callable[[dict[str, Any]], Reply]
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.requests.append(body)
                script.in_flight += 1
                script.max_in_flight = max(script.max_in_flight, script.in_flight)
            try:
                time.sleep(script.delay_s)
                status, text = script.answer(body)
                self._send(status, _completion(body, text) if status == 200 else {"error": {"message": "scripted"}})
            finally:
                with script.lock:
                    script.in_flight -= 1

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and went away

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    prompt_words = sum(len(json.dumps(m["content"]).split()) for m in body["messages"])
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(text.split()), "total_tokens": prompt_words + len(text.split())},
    }


@contextmanager
def scripted_server(script: Script) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[-1]["text"]


def _is_strict(body: dict[str, Any]) -> bool:
    return STRICT_SUFFIX.format(max_words=25)[:40] in _user_text(body)


def _config(url: str, **backend: Any) -> TextGenConfig:
    http = {"backend": "openai", "base_url": url, "model": "scripted", "max_retries": 0, "timeout_s": 10, **backend}
    return TextGenConfig(vlm=vlm_backend(**http), llm=llm_backend(**http))


SENTENCES = ["The rider checks the tyre pressure.", "Two words here now.", "Three more words follow here.", "Four."]


def _first(sample: Any) -> str:
    """The first sentence of a parent's subtitle: its first short clip's, the extractive fallback."""
    first_child = sample.record["children"][0]
    return SENTENCES[int(first_child[-1])] if sample.scale == "medium" else SENTENCES[0]


def _captioned(tmp_path: Path, video: str) -> list:
    samples = synthetic_samples(video, tmp_path, SENTENCES)
    for sample in samples[:4]:
        sample.record["caption"] = f"A cyclist rides past camera {sample.key[-1]}."
    return samples


def test_refusal_is_retried_with_the_stricter_prompt(tmp_path: Path) -> None:
    script = Script(lambda b: (200, "Sure! Here is the summary: The video shows a mechanic patching a tube.")
                    if _is_strict(b) else (200, "I'm sorry, but I can't help with that."))
    samples = _captioned(tmp_path, "refuse")
    with scripted_server(script) as url:
        TextEnricher(_config(url), stages=["llm"])(samples)
    for sample in samples[4:]:
        assert sample.record["summary"] == "A mechanic patching a tube."
        meta = sample.record["text_meta"]["summary"]
        assert meta["attempts"] == 2 and meta["first_failure"] == "refusal" and meta["failure"] is None
        assert meta["tokens_out"] == len("I'm sorry, but I can't help with that.".split()) + len(
            "Sure! Here is the summary: The video shows a mechanic patching a tube.".split()
        )
    # 2 medium captions + 3 subtitle summaries, then the long caption: each asked twice.
    assert len(script.requests) == 2 * 6 and sum(map(_is_strict, script.requests)) == 6


def test_a_loop_that_survives_the_retry_is_recorded_as_a_failure(tmp_path: Path) -> None:
    script = Script(lambda b: (200, "Sure! " * 3 + "the bike the bike the bike the bike"))
    samples = _captioned(tmp_path, "loop")
    with scripted_server(script) as url:
        TextEnricher(_config(url), stages=["llm"])(samples)
    for sample in samples[4:]:
        meta = sample.record["text_meta"]["summary"]
        assert meta["failure"] == "repeated" and meta["attempts"] == 2
        # The failure stays recorded; the summary is the subtitle's first sentence.
        assert meta["fallback"] == "extractive" and sample.record["summary"] == _first(sample)
        assert sample.record["caption"] is None
    assert samples[-1].record["text_meta"]["caption"]["skipped"] == "no_child_captions"
    assert len(script.requests) == 2 * 5


def test_server_errors_are_retried_by_the_client_then_recorded(tmp_path: Path) -> None:
    script = Script(lambda b: (500, ""))
    samples = _captioned(tmp_path, "error")
    with scripted_server(script) as url:
        config = _config(url, max_retries=1).model_copy(update={"summary_fallback": "none"})
        TextEnricher(config, stages=["llm"])(samples)
    assert samples[-1].record["summary"] is None  # no fallback configured
    failure = samples[-1].record["text_meta"]["summary"]["failure"]
    assert failure.startswith("error: InternalServerError")
    # 5 jobs x 2 attempts (the stricter retry) x 2 requests (one client retry of the 500).
    assert len(script.requests) == 5 * 2 * 2


def test_a_stalled_server_times_out(tmp_path: Path) -> None:
    script = Script(lambda b: (200, "A slow answer that arrives too late."), delay_s=2.0)
    samples = _captioned(tmp_path, "stall")
    started = time.monotonic()
    with scripted_server(script) as url:
        TextEnricher(_config(url, timeout_s=0.3, max_concurrency=8), stages=["llm"])(samples)
    assert samples[4].record["text_meta"]["summary"]["failure"].startswith("error: APITimeoutError")
    assert time.monotonic() - started < 10


def test_frames_go_as_data_urls_with_bounded_concurrency(tmp_path: Path) -> None:
    script = Script(lambda b: (200, f"A scene shown in {len(b['messages'][-1]['content']) - 1} frames of a city street."),
                    delay_s=0.2)
    samples = synthetic_samples("frames", tmp_path, None, mediums=3, shorts_per_medium=2)
    for sample in samples[:6:2]:  # as rows of the Ray pipeline carry them: bytes, not files
        sample.caption_frames = [p.read_bytes() for p in sample.caption_frames]
    with scripted_server(script) as url:
        TextEnricher(_config(url, max_concurrency=2), stages=["vlm"])(samples)
    assert script.max_in_flight == 2
    sent: list[list[bytes]] = []
    for body in script.requests:
        urls = [p["image_url"]["url"] for p in body["messages"][-1]["content"] if p["type"] == "image_url"]
        assert all(u.startswith("data:image/jpeg;base64,") for u in urls)
        sent.append([base64.b64decode(u.split(",", 1)[1]) for u in urls])
    shorts = [s for s in samples if s.scale == "short"]
    assert sorted(len(frames) for frames in sent) == sorted(len(s.caption_frames) for s in shorts)
    assert {b for frames in sent for b in frames} == {data_of(f) for s in shorts for f in s.caption_frames}
    for sample in shorts:
        n = len(sample.caption_frames)
        assert sample.record["caption"] == f"A scene shown in {n} frames of a city street."
