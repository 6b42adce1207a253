"""vLLM for real, on CPU: these tests run in ``.venv-vllm`` (``make test-vllm``, make test's second step).

vllm-cpu cannot share the main ``.venv``: it needs transformers < 5.20 and its own dependency
set (see the Makefile's ``setup-vllm``). In the main environment every test here is skipped with
that reason; in ``.venv-vllm`` they run, and a broken vLLM install fails them (the check below
only asks whether vLLM is installed, never whether it imports).

vLLM on CPU needs a KV-cache size (GiB) and, on a 2-core machine, all cores for its engine;
the two variables are set here, before any engine starts, and reach Ray workers and engine
processes through the environment. Models are built once per session and shared: an engine
start costs ~40 s on two cores, so tests share engines through session fixtures too.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")

NOT_HERE = "vLLM is not installed in this environment: these tests run in .venv-vllm (make test-vllm)"
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this directory's tests ``vllm``; skip them where vLLM is not installed."""
    missing = find_spec("vllm") is None
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.vllm)
            if missing:
                item.add_marker(pytest.mark.skip(reason=NOT_HERE))


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-VL with SmolLM2's tokenizer (head size 64, 15 image tokens a frame)."""
    from tiny_textgen import build_tiny_qwen2_vl, smollm2_tokenizer

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny-qwen2-vl"), smollm2_tokenizer())
