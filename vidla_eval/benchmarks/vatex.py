"""VATEX: 10 English captions per video; the test split is the common 1,500-video half of the public validation set."""

from __future__ import annotations

from pathlib import Path

from vidla_eval.benchmarks.annotations import clean_text, read_id_list, read_json, with_captions
from vidla_eval.benchmarks.records import AnnotatedVideo, Benchmark, BenchmarkFormatError


def _vatex_annotations(path: Path, what: str) -> dict[str, tuple[str, ...]]:
    data = read_json(path, what)
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a list of {{videoID, enCap}} objects")
    out: dict[str, tuple[str, ...]] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("videoID"), str):
            raise BenchmarkFormatError(f"{path}: item {i} has no string 'videoID'")
        caps = item.get("enCap")
        if not isinstance(caps, list) or not caps:
            raise BenchmarkFormatError(f"{path}: item {i} ({item['videoID']}) has no 'enCap' list")
        out[item["videoID"]] = tuple(
            clean_text(c, path, f"{item['videoID']} enCap {j}") for j, c in enumerate(caps)
        )
    return out


def read_vatex(root: Path, split: str) -> list[AnnotatedVideo]:
    """English captions (10 per video). ``test``/``val``: the ids of ``test_list.txt``/``val_list.txt``
    (the common 1,500/1,500 halves of the public validation set); ``val-full``: all of it."""
    if split == "train":
        captions = _vatex_annotations(root / "vatex_training_v1.0.json", "VATEX training annotations")
        return [AnnotatedVideo(v, (v,), caps) for v, caps in captions.items()]
    path = root / "vatex_validation_v1.0.json"
    captions = _vatex_annotations(path, "VATEX validation annotations (source of val and test)")
    if split == "val-full":
        ids = list(captions)
    else:
        ids = read_id_list(
            root / f"{split}_list.txt", f"the VATEX {split} ids (the common 1,500-video split)"
        )
    return with_captions(ids, captions, path, f"{split}_list.txt")


BENCHMARK = Benchmark(
    "vatex",
    ("train", "val", "test", "val-full"),
    (),
    read_vatex,
    "VATEX: 10 English captions per video; test: the common 1,500-video half of validation",
)
