"""MSR-VTT: the 1k-A test (JSFusion's 1,000 videos, one sentence each) and the 9k / 7k training splits."""

from __future__ import annotations

from pathlib import Path

from vidla_eval.benchmarks.annotations import clean_text, read_csv, read_json, with_captions
from vidla_eval.benchmarks.records import AnnotatedVideo, Benchmark, BenchmarkFormatError

_MSRVTT_TRAIN = {"train": "MSRVTT_train.9k.csv", "train-7k": "MSRVTT_train.7k.csv"}


def _msrvtt_sentences(root: Path) -> dict[str, list[str]]:
    path = root / "MSRVTT_data.json"
    data = read_json(path, "MSR-VTT annotations with the 'sentences' list")
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise BenchmarkFormatError(f"{path}: expected an object with a 'sentences' list")
    captions: dict[str, list[str]] = {}
    for i, item in enumerate(data["sentences"]):
        if not isinstance(item, dict) or not isinstance(item.get("video_id"), str):
            raise BenchmarkFormatError(f"{path}: sentences[{i}] has no string 'video_id'")
        text = clean_text(item.get("caption"), path, f"sentences[{i}].caption")
        captions.setdefault(item["video_id"], []).append(text)
    return captions


def read_msrvtt(root: Path, split: str) -> list[AnnotatedVideo]:
    """1k-A test: the JSFusion CSV's 1,000 (video, sentence) rows; train: all captions of the 9k (7k) videos."""
    if split == "test":
        path = root / "MSRVTT_JSFUSION_test.csv"
        rows = read_csv(path, ("video_id", "sentence"), "the MSR-VTT 1k-A test split")
        grouped: dict[str, list[str]] = {}
        for line, row in enumerate(rows, start=2):
            grouped.setdefault(row["video_id"].strip(), []).append(
                clean_text(row["sentence"], path, f"line {line} sentence")
            )
        return [AnnotatedVideo(v, (v,), tuple(texts)) for v, texts in grouped.items()]
    path = root / _MSRVTT_TRAIN[split]
    ids = list(dict.fromkeys(r["video_id"].strip() for r in read_csv(path, ("video_id",), "the train ids")))
    return with_captions(ids, _msrvtt_sentences(root), root / "MSRVTT_data.json", path.name)


BENCHMARK = Benchmark(
    "msrvtt",
    ("train", "train-7k", "test"),
    ("MSRVTT/videos/all", "TrainValVideo", "TestVideo"),
    read_msrvtt,
    "MSR-VTT: 1k-A test (1,000 videos, one sentence each); train: 9k videos x 20 captions",
)
