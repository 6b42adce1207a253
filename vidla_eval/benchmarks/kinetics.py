"""Kinetics-400 for zero-shot classification: the release CSVs and the trimmed clips the downloaders write.

``{split}.csv`` (``train``, ``validate``/``val``, ``test``; in ``root`` or ``root/annotations``)
has the header ``label,youtube_id,time_start,time_end,split``; each row is a 10-second clip,
stored trimmed as ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`` (the naming of the
common downloaders; a bare ``{youtube_id}`` file is accepted too). The classes are the sorted
label names of the split's CSV: all 400 in ``validate.csv``.
"""

from __future__ import annotations

from pathlib import Path

from vidla_eval.benchmarks.annotations import clean_text, read_csv
from vidla_eval.benchmarks.records import AnnotatedVideo, Benchmark, BenchmarkFormatError

COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
#: The CSV names of each split in the release (``val`` is ``validate.csv`` there).
SPLIT_FILES = {"train": ("train.csv",), "val": ("validate.csv", "val.csv"), "test": ("test.csv",)}


def _split_csv(root: Path, split: str) -> Path:
    names = SPLIT_FILES[split]
    for folder in (root, root / "annotations"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return root / names[0]  # read_csv names the missing file


def clip_stem(youtube_id: str, start: str, end: str, path: Path) -> str:
    """``{youtube_id}_{start:06d}_{end:06d}``: the trimmed clip's file stem."""
    try:
        return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"
    except ValueError as exc:
        raise BenchmarkFormatError(f"{path}: {youtube_id}: time_start/time_end must be numbers") from exc


def read_kinetics(root: Path, split: str) -> list[AnnotatedVideo]:
    """One entry per CSV row, its class name as the single text (the test split has no labels)."""
    path = _split_csv(root, split)
    entries = []
    for i, row in enumerate(read_csv(path, COLUMNS, f"Kinetics-400 {split} annotations")):
        label = clean_text(row["label"], path, f"row {i + 2} label")
        youtube_id = clean_text(row["youtube_id"], path, f"row {i + 2} youtube_id")
        stem = clip_stem(youtube_id, row["time_start"], row["time_end"], path)
        entries.append(AnnotatedVideo(stem, (stem, youtube_id), (label,)))
    return entries


def kinetics_classes(root: Path, split: str) -> list[str]:
    """The sorted class names of the split (what the label indices of an evaluation refer to)."""
    return sorted({entry.texts[0] for entry in read_kinetics(root, split)})


BENCHMARK = Benchmark(
    "kinetics400",
    ("train", "val"),
    ("val", "validate", "kinetics400_val", "train"),
    read_kinetics,
    "Kinetics-400: 400 human actions; val: ~19.8K 10-second clips",
)
