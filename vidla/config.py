"""The typed training configuration of the VidLA model.

One pydantic model per concern (model, data, optimiser, loss, run), gathered in
:class:`TrainConfig`. A YAML file provides values and ``key.sub=value`` overrides patch
it (``optim.lr=1e-4``, ``data.shards=/data/shards``); unknown keys are rejected, so a
typo never silently falls back to a default. The model section names a preset
(``model: vidla-b32``, files in ``vidla/presets/``) and a file may extend another
(:mod:`vidla.config_files`). The paper's recipe lives in ``configs/train/vidla-b32.yaml``
and ``vidla-b16.yaml``; ``demo.yaml`` trains a tiny random model on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vidla.config_files import train_config_data
from vidla_format.layout import SCALES

#: The retrieval benchmarks :mod:`vidla_eval.benchmarks` reads (fine-tuning: ``data.benchmark``).
BenchmarkName = Literal["msrvtt", "didemo", "activitynet", "msvd", "vatex"]
BENCHMARK_NAMES: tuple[str, ...] = get_args(BenchmarkName)
#: What a benchmark video without a local file does: stop the run, or be skipped and recorded.
MissingVideos = Literal["error", "skip"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RandomClipConfig(_Section):
    """A randomly initialised CLIP, used when no checkpoint can be loaded (tests, the CPU demo).

    The dictionaries are passed to ``transformers.CLIPVisionConfig`` / ``CLIPTextConfig``.
    """

    vision: dict[str, Any] = Field(default_factory=dict, description="CLIPVisionConfig keyword arguments.")
    text: dict[str, Any] = Field(default_factory=dict, description="CLIPTextConfig keyword arguments.")
    projection_dim: int = Field(512, ge=1)


#: Frames per video in retrieval evaluation (zero-shot and fine-tuned): the paper fine-tunes and tests
#: retrieval at 32 and evaluates zero-shot Kinetics at 32; stated once, here (``ModelConfig.eval_frames``).
EVAL_FRAMES = 32


class ModelConfig(_Section):
    """The two towers (see :mod:`vidla.video_tower`, :mod:`vidla.text_tower`) and their initialisation."""

    clip: str | None = Field(
        "openai/clip-vit-base-patch32",
        description="A transformers CLIP checkpoint (hub name or local path); null builds `random_clip`.",
    )
    random_clip: RandomClipConfig = Field(default_factory=RandomClipConfig)
    tokenizer: str | None = Field(
        None,
        description="Tokenizer name or path; null uses `clip`'s; 'bytes' is the built-in UTF-8 byte tokenizer "
        "(for random models, no files needed).",
    )
    context_length: int = Field(77, ge=4, description="Text tokens per sequence, truncating longer texts.")
    arch: Literal["vidla", "meanpool"] = Field(
        "vidla",
        description="'vidla': the paper's video tower; 'meanpool': CLIP4Clip-style mean of frame embeddings.",
    )
    num_frames: int = Field(
        12, ge=1, description="T, frames per training clip (paper: 12 in pre-training, 32 in fine-tuning)."
    )
    eval_frames: int = Field(
        EVAL_FRAMES,
        ge=1,
        description="Frames per video in retrieval evaluation, zero-shot and fine-tuned alike (the paper's 32); "
        "vidla_eval.eval_retrieval --frames overrides it.",
    )
    temporal_positions: int = Field(
        12,
        ge=1,
        description="Rows of the temporal position embedding: the frame count they are trained at (pre-training's "
        "12, kept when fine-tuning at 32). Any other T reads them linearly interpolated over the clip's time "
        "(vidla.video_tower.temporal_interpolation), in training and evaluation alike.",
    )
    local_temporal: bool = Field(
        True,
        description="The spatially-local temporal attention in every layer; false is the paper's ablation without "
        "it (Table 4): the layers have no temporal parameters.",
    )
    mst_levels: int = Field(
        3, ge=0, description="U, levels of [MST] tokens; 0: no [MST] tokens, 1: no hierarchy (ablations)."
    )
    mst_per_level: int = Field(4, ge=0, description="V, [MST] tokens per level.")
    mst_stride: int = Field(2, ge=1, description="r: level u sees the patches of every r**u-th frame.")
    patch_attends_cls: bool = Field(
        False,
        description="Whether patch queries see the [CLS] key in the global attention. The paper's text says no "
        "(default); its mask formula says yes. True makes a one-frame model exactly CLIP at initialisation.",
    )
    temporal_init: Literal["clip", "random"] = Field(
        "clip",
        description="Initial Q/K/V and LayerNorm of the temporal attention: copies of the layer's CLIP attention "
        "or random. Its output projection is zero either way, so the model starts as CLIP.",
    )
    logit_scale_init: float | None = Field(
        None,
        description="Initial log inverse temperature; null keeps the checkpoint's (random CLIP: ln(1/0.07)).",
    )
    logit_scale_max: float = Field(
        4.6052, description="The log inverse temperature is clamped to [0, this] (ln 100)."
    )
    grad_checkpointing: bool = Field(
        False, description="Recompute each transformer block in the backward pass."
    )
    compile: bool = Field(False, description="torch.compile each video-tower block.")
    init_checkpoint: str | None = Field(
        None,
        description="A VidLA checkpoint (the trainer's step-N.pt, or a bare state dict) whose model weights "
        "initialise a new run, e.g. fine-tuning from pre-training; optimiser and step start fresh. A resumed "
        "run (train.resume) ignores it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_max_frames(cls, data: Any) -> Any:
        """``max_frames`` (rows beyond the trained frame count, sliced per T) is gone; say what replaced it."""
        if isinstance(data, dict) and "max_frames" in data:
            raise ValueError(
                "model.max_frames was replaced by model.temporal_positions (the trained frame count, interpolated "
                "to any T); for a checkpoint saved with max_frames use vidla.checkpoint.upgrade_model_state"
            )
        return data

    @model_validator(mode="after")
    def _tokenizer_given(self) -> ModelConfig:
        if self.clip is None and self.tokenizer is None:
            raise ValueError("a random CLIP (clip: null) needs an explicit tokenizer (e.g. 'bytes')")
        return self


class DataConfig(_Section):
    """The WebDataset loader (see :mod:`vidla.data`)."""

    shards: str = Field(
        "out/shards",
        description="The `shards/` directory holding short/, medium/, long/: a local path or a filesystem URI "
        "(s3://bucket/prefix/shards; credentials and endpoint as in vidla_format/storage.py).",
    )
    scale_weights: dict[str, float] | None = Field(
        None,
        description="Relative sampling weight per scale; null weights each scale by its shard count "
        "(about uniform over all clips). A scale with weight 0 or without shards is never read.",
    )
    split: str = Field("train", description="Only samples whose json.split equals this are used.")
    batch_size: int = Field(
        32,
        ge=1,
        description="Clips per process and loader batch (micro-batch); the global contrastive batch is this x "
        "world size x optim.accum_steps.",
    )
    distinct_videos: bool = Field(
        True,
        description="Training batches hold at most one clip per source video (json.video_id): a clip whose video "
        "is already in the forming batch waits for a later one, so no positive pair's video is also a negative.",
    )
    num_workers: int = Field(4, ge=0, description="DataLoader worker processes per training process.")
    prefetch_factor: int = Field(4, ge=1, description="Batches each worker prepares ahead.")
    shuffle_buffer: int = Field(256, ge=1, description="Samples in each scale's shuffle buffer per worker.")
    crop_scales: list[float] = Field(
        [1.0, 0.8], description="Training crop side as a fraction of the short side."
    )
    hflip: bool = Field(True, description="Random horizontal flip in training.")
    frame_source: Literal["auto", "jpeg", "mp4"] = Field(
        "auto",
        description="'auto': the stored JPEG frames when a sample has at least num_frames, else seek-decode the mp4; "
        "'jpeg'/'mp4' force one path (benchmarks, tests).",
    )
    subtitle_fields: list[str] = Field(
        ["summary", "subtitle"], description="json fields for the subtitle-side text, first non-empty wins."
    )
    caption_fields: list[str] = Field(["caption"], description="json fields for the caption-side text.")
    resume: Literal["replay", "reseed"] = Field(
        "replay",
        description="On resume, 'replay' reads (without decoding) and skips the samples already trained on, so the "
        "run continues exactly; 'reseed' starts a fresh stream instead (no read-through, not exact).",
    )
    mp4_seek_gap_s: float = Field(
        1.0,
        ge=0,
        description="Seek instead of decoding forward when the next frame is further ahead than this.",
    )
    benchmark: BenchmarkName | None = Field(
        None,
        description="Fine-tune on this retrieval benchmark's split (vidla_eval.benchmarks) instead of the shards.",
    )
    benchmark_root: str | None = Field(
        None, description="The benchmark's local copy: annotation files and videos (docs/benchmarks.md)."
    )
    benchmark_split: str = Field("train", description="The benchmark split to fine-tune on.")
    benchmark_missing: MissingVideos = Field(
        "error",
        description="A split video without a file: 'error', or 'skip' it (logged; e.g. dead YouTube links).",
    )

    @model_validator(mode="after")
    def _benchmark_has_root(self) -> DataConfig:
        if (self.benchmark is None) != (self.benchmark_root is None):
            raise ValueError("data.benchmark and data.benchmark_root go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _valid_weights(self) -> DataConfig:
        if self.scale_weights is not None:
            unknown = set(self.scale_weights) - set(SCALES)
            if unknown:
                raise ValueError(f"unknown scales in scale_weights: {sorted(unknown)}")
            if any(w < 0 for w in self.scale_weights.values()) or sum(self.scale_weights.values()) <= 0:
                raise ValueError("scale_weights must be non-negative with a positive sum")
        if not self.crop_scales or any(not 0 < s <= 1 for s in self.crop_scales):
            raise ValueError("crop_scales must be fractions in (0, 1]")
        return self


class OptimConfig(_Section):
    """AdamW with linear warm-up and cosine decay (see :mod:`vidla_train.schedule`)."""

    lr: float = Field(2e-5, gt=0)
    min_lr: float = Field(4e-8, ge=0, description="Learning rate at the last step of the cosine.")
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(
        0.02, ge=0, description="Applied to matrices only (not biases, norms, tokens, scale)."
    )
    warmup_steps: int = Field(1000, ge=0)
    grad_clip: float | None = Field(
        10.0, gt=0, description="Max global gradient norm; null disables clipping."
    )
    accum_steps: int = Field(
        1,
        ge=1,
        description="Loader batches (micro-batches) per optimiser step, trained as one contrastive batch of "
        "data.batch_size x accum_steps clips per process with the feature cache (vidla_train.train_step): the "
        "same gradient as the large batch, for the memory of one micro-batch and one more no-grad forward.",
    )


class LossConfig(_Section):
    """The two InfoNCE terms (see :mod:`vidla.loss`)."""

    subtitle_weight: float = Field(1.0, ge=0)
    caption_weight: float = Field(1.0, ge=0)


class RunConfig(_Section):
    """Steps, logging, checkpoints (see :mod:`vidla_train.train`)."""

    steps: int = Field(
        1000, ge=1, description="Total optimiser steps; also the length of the cosine schedule."
    )
    output_dir: Path = Field(
        Path("out/train"), description="Checkpoints, TensorBoard logs and metrics.jsonl."
    )
    seed: int = 0
    precision: Literal["fp32", "bf16"] = Field(
        "bf16", description="bf16 autocast (fp32 master weights) or fp32."
    )
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda'.")
    log_every: int = Field(10, ge=1)
    ckpt_every: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(3, ge=1, description="Most recent checkpoints kept on disk.")
    resume: str = Field(
        "auto",
        description="'auto': continue from the newest checkpoint in output_dir; 'never'; or a checkpoint path.",
    )


class TrainConfig(_Section):
    """Everything one training run needs."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: RunConfig = Field(default_factory=RunConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (or the defaults), resolve ``extends`` and the model preset, apply overrides.

    Overrides are ``key.sub=value`` as in the curation configs; see :mod:`vidla.config_files`
    for the order in which files, overrides and presets combine.
    """
    return TrainConfig.model_validate(train_config_data(path, overrides, TrainConfig))
