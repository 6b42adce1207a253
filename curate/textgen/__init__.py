"""Text generation for the curation pipeline: VLM captions and LLM summaries.

Modules: :mod:`~curate.textgen.prompts` (prompt texts and message building),
:mod:`~curate.textgen.hygiene` (output cleaning and failure detection),
:mod:`~curate.textgen.backend` (the backend interface and factory) with one module per
backend (``hf``, ``openai_backend``, ``vllm_backend``), :mod:`~curate.textgen.runner`
(batched generation with one stricter retry), :mod:`~curate.textgen.gguf` (dense copies of GGUF
models for vLLM) and :mod:`~curate.textgen.tiny` (tiny random models built offline, for tests
and the CPU benchmark). :mod:`curate.enrich` drives them.

This package imports nothing at import time so :mod:`curate.config` can import the prompt
defaults without loading torch or transformers.
"""
