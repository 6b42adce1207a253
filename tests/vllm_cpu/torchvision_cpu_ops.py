"""Make PyPI's torchvision importable beside the CPU build of torch, in ``.venv-vllm`` only.

PyPI's torchvision 0.28.0 wheel is a CUDA build: its compiled ops (``torchvision/_C.so``) link
``libtorch_cuda.so``, which the CPU torch (``torch==2.13.0+cpu``) lacks, so they do not load.
torchvision then fails at import, because ``_meta_registrations`` registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms`` without checking that the ops exist. vLLM's
LLaVA and transformers' Qwen2-VL video processor import torchvision; what they use of it are
the Python image transforms, which need none of the compiled ops.

``make setup-vllm`` copies this file into the environment's site-packages with a ``.pth`` line
that calls :func:`install`; every process of that environment (vLLM's engine processes and Ray
workers too) then gets an import hook that, the first time torchvision is imported, loads the
compiled ops if they load and otherwise declares the two operator schemas, so the import
succeeds and any use of a compiled op still fails loudly. The main ``.venv`` never has it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: object = None


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs :func:`_declare_missing_ops` once, just before ``torchvision`` is first imported."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201 (the finder protocol)
        if name == "torchvision":
            sys.meta_path.remove(self)
            _declare_missing_ops()
        return None


def _declare_missing_ops() -> None:
    """Load torchvision's compiled ops; when they cannot load, declare the schemas its import needs."""
    global _library
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    import torch

    compiled = Path(spec.origin).with_name("_C.so")
    try:
        torch.ops.load_library(str(compiled))
        return
    except (OSError, RuntimeError):
        pass
    _library = torch.library.Library("torchvision", "DEF")  # kept alive: dropping it unregisters the ops
    for schema in SCHEMAS.values():
        _library.define(schema)  # type: ignore[attr-defined]


def install() -> None:
    """Put the hook in front of the import system (idempotent)."""
    if not any(isinstance(finder, _BeforeTorchvision) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvision())
