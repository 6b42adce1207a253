"""``make demo`` (``pipelines/demo.py``): a second run on the same output resumes the first.

The demo serves its corpus on a fixed loopback port, so a rerun lists the same URLs under the same
ids. Served anywhere else, the ledger would refuse every video of the rerun as ``id_conflict``
(one id, one video), which is what a newcomer typing ``make demo`` twice used to get.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.demo import serve_corpus

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo(out: Path, corpus: Path, port: int) -> dict:
    """Run ``pipelines/demo.py`` as ``make demo`` does (the summariser off: it only adds minutes here); its stats.json."""
    cmd = [sys.executable, str(ROOT / "pipelines" / "demo.py"), "--output", str(out), "--corpus", str(corpus),
           "--port", str(port), "text.llm.backend=none", "text.vlm.backend=none", "ray.progress=false"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "stats.json").read_text())


def test_a_second_demo_resumes_the_first_and_redoes_nothing(demo_corpus, tmp_path):
    corpus = shutil.copytree(demo_corpus[0], tmp_path / "corpus")  # the demo writes its source list there
    out, port = tmp_path / "out", free_port()
    first = demo(out, corpus, port)
    shards = {p.relative_to(out): p.stat().st_mtime_ns for p in out.glob("shards/*/*")}
    second = demo(out, corpus, port)
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    assert first["funnel"]["ok"] == len(videos) == len(demo_corpus[1]["items"]) and first["funnel"]["failed"] == 0
    assert second["funnel"]["failed"] == 0 and second["funnel"]["ok"] == len(videos), "no id_conflict, nothing lost"
    assert second["run"]["videos_processed"] == 0
    assert {v["status"] for v in videos} == {"ok"}
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.glob("shards/*/*")} == shards, "no shard rewritten"


def test_a_taken_port_serves_on_another_and_says_what_a_rerun_will_meet(demo_corpus, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with contextlib.ExitStack() as stack:
            base_url = serve_corpus(stack, demo_corpus[0], port)
            assert base_url.startswith("http://127.0.0.1:") and not base_url.endswith(f":{port}/")
    note = capsys.readouterr().err
    assert f"port {port} is taken" in note and "id_conflict" in note
