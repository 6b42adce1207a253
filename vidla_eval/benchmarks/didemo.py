"""DiDeMo, paragraph to video: each video's moment descriptions in time order form one text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidla_eval.benchmarks.annotations import clean_text, number_pairs, read_json, video_file_stem
from vidla_eval.benchmarks.records import AnnotatedVideo, Benchmark, BenchmarkFormatError

#: DiDeMo's annotators saw only the first 30 s of each video (6 chunks of 5 s), so only that
#: window can match the paragraph; CLIP4Clip likewise reads seconds 0-31.
DIDEMO_ANNOTATED_S = 30.0


def _didemo_start(times: Any, path: Path, where: str) -> tuple[float, float]:
    """Mean (start, end) chunk over the annotators: the moment's place in the video, for ordering."""
    if not number_pairs(times):
        raise BenchmarkFormatError(f"{path}: {where}: 'times' must be a list of [start, end] chunk pairs")
    return sum(t[0] for t in times) / len(times), sum(t[1] for t in times) / len(times)


def read_didemo(root: Path, split: str) -> list[AnnotatedVideo]:
    """One paragraph per video: its descriptions ordered by the mean annotated start (then end), joined."""
    path = root / f"{split}_data.json"
    data = read_json(path, f"DiDeMo {split} annotations")
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a list of moment annotations")
    moments: dict[str, list[tuple[tuple[float, float], int, str]]] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("video"), str) or not item["video"]:
            raise BenchmarkFormatError(f"{path}: item {i} has no 'video' name")
        order = _didemo_start(item.get("times"), path, f"item {i}")
        text = clean_text(item.get("description"), path, f"item {i} description")
        moments.setdefault(item["video"], []).append((order, i, text))
    return [
        AnnotatedVideo(
            video,
            (video_file_stem(video), video),
            (" ".join(text for _, _, text in sorted(items)),),
            0.0,
            DIDEMO_ANNOTATED_S,
        )
        for video, items in moments.items()
    ]


BENCHMARK = Benchmark(
    "didemo",
    ("train", "val", "test"),
    (),
    read_didemo,
    "DiDeMo paragraph-to-video: each video's descriptions in time order form one text",
)
