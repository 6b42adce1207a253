"""VidLA: the two-tower video-language model trained on the curated multi-scale shards.

Library (importable without the trainer):

* :mod:`model.attention`: token layout, the paper's masks, factored fast attentions and dense references.
* :mod:`model.video_tower`: :class:`VidLAVideoTower`, :class:`ClipImageTower`, :class:`MeanPoolVideoTower`.
* :mod:`model.text_tower`: CLIP's text tower and the tokenizers.
* :mod:`model.vidla`: :class:`VidLA` and :func:`build_model` from a CLIP checkpoint.
* :mod:`model.loss`: the two-term masked InfoNCE with gather-with-grad.
* :mod:`model.data`, :mod:`model.frames`: the WebDataset loader and frame decoding.
* :mod:`model.config`: the typed YAML configuration; :mod:`model.config_files`: models by preset name
  (``model/presets/``, e.g. ``vidla-b32``) and configs that ``extends:`` another.
* :mod:`model.metrics`: exact retrieval metrics (ties against the query, multi-caption, DSL beside plain).
* :mod:`model.benchmarks`: MSR-VTT, DiDeMo, ActivityNet Captions, MSVD and VATEX (one reader each, a registry).

Evaluation: :mod:`model.eval_retrieval` (``python -m model.eval_retrieval``, ``make eval-retrieval``),
with :mod:`model.retrieval_plot` and :mod:`model.result_files` (``--output`` as a directory or URI).

Trainer: :mod:`model.train` (``python -m model.train``), with :mod:`model.train_step` (the one
training step, shared with the benchmarks), :mod:`model.train_metrics`, :mod:`model.schedule`,
:mod:`model.checkpoint` and :mod:`model.distributed`. :mod:`model.synthetic` writes small
shards in the dataset format for tests and benchmarks.
"""

from model.attention import TokenLayout, factored_global_attention, global_attention_mask
from model.config import TrainConfig, load_config
from model.loss import VidLALoss
from model.video_tower import ClipImageTower, MeanPoolVideoTower, VidLAVideoTower
from model.vidla import VidLA, build_model, normalize_video

__all__ = [
    "ClipImageTower",
    "MeanPoolVideoTower",
    "TokenLayout",
    "TrainConfig",
    "VidLA",
    "VidLALoss",
    "VidLAVideoTower",
    "build_model",
    "factored_global_attention",
    "global_attention_mask",
    "load_config",
    "normalize_video",
]
