"""Build the configured text-generation backend by name (``none``, ``hf``, ``openai``, ``vllm``).

The backends are imported here, lazily, so choosing one never loads another's dependencies
(vLLM, the OpenAI client, transformers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate.textgen.interface import Backend

if TYPE_CHECKING:
    from curate.textgen.backend_configs import BackendConfig


def load_backend(config: BackendConfig, vision: bool, max_images: int = 4) -> Backend | None:
    """The configured backend, loaded (models are loaded here, once); None for ``none``.

    ``max_images`` bounds the frames of one prompt where an engine must reserve memory for them (vLLM).
    """
    if config.backend == "none":
        return None
    if config.backend == "hf":
        from curate.textgen.hf import HFBackend

        return HFBackend(config, vision)
    if config.backend == "openai":
        from curate.textgen.openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    from curate.textgen.vllm_backend import VLLMBackend

    return VLLMBackend(config, vision, max_images)
