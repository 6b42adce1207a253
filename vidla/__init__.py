"""VidLA: the two-tower video-language model, as a library (no trainer, no curation code).

* :mod:`vidla.attention`: token layout, the paper's masks, factored fast attentions and dense references.
* :mod:`vidla.video_tower`: :class:`VidLAVideoTower`, :class:`ClipImageTower`, :class:`MeanPoolVideoTower`.
* :mod:`vidla.text_tower`: CLIP's text tower and the tokenizers.
* :mod:`vidla.vidla`: :class:`VidLA` and :func:`build_model` from a CLIP checkpoint.
* :mod:`vidla.loss`: the two-term masked InfoNCE with gather-with-grad (:mod:`vidla.distributed`).
* :mod:`vidla.data`, :mod:`vidla.shard_sources`, :mod:`vidla.frames`: reading the curated shards
  (the dataset format, ``docs/dataset-format.md``) as WebDataset stages, and frame decoding.
* :mod:`vidla.config`: the typed YAML configuration; :mod:`vidla.config_files`: models by preset name
  (``vidla/presets/``, e.g. ``vidla-b32``) and configs that ``extends:`` another.
* :mod:`vidla.checkpoint`: saving and loading the model with its config.

Training is :mod:`vidla_train` (``python -m vidla_train.train``, ``make train``) and evaluation
:mod:`vidla_eval` (``python -m vidla_eval.eval_retrieval``, ``make eval-retrieval``); both build on
this package, which imports neither.
"""

from vidla.attention import TokenLayout, factored_global_attention, global_attention_mask
from vidla.config import TrainConfig, load_config
from vidla.loss import VidLALoss
from vidla.video_tower import ClipImageTower, MeanPoolVideoTower, VidLAVideoTower
from vidla.vidla import VidLA, build_model, normalize_video

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
