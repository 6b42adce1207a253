"""Text generation for the curation pipeline: VLM captions and LLM summaries.

Modules: :mod:`~curate.textgen.prompts` (prompt texts and message building),
:mod:`~curate.textgen.hygiene` (output cleaning and failure detection),
:mod:`~curate.textgen.interface` (the backend interface, a leaf), :mod:`~curate.textgen.factory`
(the backend by name) with one module per backend (``hf``, ``openai_backend``, ``vllm_backend``),
:mod:`~curate.textgen.runner` (batched generation with one stricter retry) and
:mod:`~curate.textgen.gguf` (dense copies of GGUF models for vLLM). :mod:`curate.caption` drives
them. The package imports no curation stage (``tests/test_import_rules.py``); tiny random
models and the metered wrapper are test and benchmark support under ``tests/``.

This package imports nothing at import time so :mod:`curate.config` can import the prompt
defaults without loading torch or transformers.
"""
