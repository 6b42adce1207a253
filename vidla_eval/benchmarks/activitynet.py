"""ActivityNet Captions, paragraph to video: each video's sentences in timestamp order form one text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidla_eval.benchmarks.annotations import clean_text, number_pairs, read_json
from vidla_eval.benchmarks.records import AnnotatedVideo, Benchmark, BenchmarkFormatError

_ACTIVITYNET_FILES = {
    "train": "train.json",
    "val_1": "val_1.json",
    "val_2": "val_2.json",
    "test": "val_1.json",
}


def _activitynet_entry(key: str, item: Any, path: Path) -> AnnotatedVideo:
    if not isinstance(item, dict):
        raise BenchmarkFormatError(f"{path}: {key}: expected an object")
    sentences, stamps, duration = item.get("sentences"), item.get("timestamps"), item.get("duration")
    if not isinstance(sentences, list) or not sentences or not isinstance(stamps, list):
        raise BenchmarkFormatError(f"{path}: {key}: needs non-empty 'sentences' and 'timestamps' lists")
    if len(stamps) != len(sentences) or not number_pairs(stamps):
        raise BenchmarkFormatError(f"{path}: {key}: 'timestamps' must hold one [start, end] per sentence")
    if not isinstance(duration, int | float) or duration <= 0:
        raise BenchmarkFormatError(f"{path}: {key}: 'duration' must be a positive number")
    texts = [clean_text(s, path, f"{key} sentence {i}") for i, s in enumerate(sentences)]
    ordered = [t for _, _, t in sorted(zip((s[0] for s in stamps), range(len(texts)), texts, strict=True))]
    bare = key[2:] if key.startswith("v_") else key
    return AnnotatedVideo(key, (key, bare), (" ".join(ordered),), 0.0, float(duration))


def read_activitynet(root: Path, split: str) -> list[AnnotatedVideo]:
    """One paragraph per video: its sentences in timestamp order, joined; the window is [0, duration]."""
    path = root / _ACTIVITYNET_FILES[split]
    data = read_json(path, f"ActivityNet Captions {split} annotations")
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{path}: expected an object mapping 'v_ID' to annotations")
    return [_activitynet_entry(key, item, path) for key, item in data.items()]


BENCHMARK = Benchmark(
    "activitynet",
    ("train", "val_1", "val_2", "test"),
    (),
    read_activitynet,
    "ActivityNet Captions paragraph-to-video; test = val_1",
)
