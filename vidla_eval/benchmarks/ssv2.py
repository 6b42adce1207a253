"""Something-Something v2 for zero-shot classification: the release's ``labels.json`` and split files.

``labels.json`` maps each of the 174 class names (templates without brackets, e.g. "Pushing
something from left to right") to its id as a string; ``train.json`` / ``validation.json`` are
lists of ``{id, label, template, placeholders}`` whose ``template`` (with ``[something]``
brackets) names the class; the videos are ``{id}.webm`` in ``20bn-something-something-v2/``.
Classes are ordered by their id in ``labels.json``.
"""

from __future__ import annotations

from pathlib import Path

from vidla_eval.benchmarks.annotations import clean_text, read_json
from vidla_eval.benchmarks.records import AnnotatedVideo, Benchmark, BenchmarkFormatError

SPLIT_FILES = {"train": "train.json", "validation": "validation.json"}


def _annotation(root: Path, name: str) -> Path:
    """``root/name``, or ``root/labels/name`` as the release's ``labels.zip`` unpacks."""
    return (
        root / name
        if (root / name).is_file() or not (root / "labels" / name).is_file()
        else root / "labels" / name
    )


def ssv2_classes(root: Path, split: str = "validation") -> list[str]:
    """The 174 class names in the order of their ids (``labels.json``: name -> id string)."""
    path = _annotation(root, "labels.json")
    data = read_json(path, "Something-Something v2 labels.json")
    if not isinstance(data, dict) or not data:
        raise BenchmarkFormatError(f"{path}: expected a non-empty object of class name -> id")
    try:
        by_id = sorted((int(v), clean_text(k, path, "class name")) for k, v in data.items())
    except (TypeError, ValueError) as exc:
        raise BenchmarkFormatError(f"{path}: class ids must be integers (as strings)") from exc
    if [i for i, _ in by_id] != list(range(len(by_id))):
        raise BenchmarkFormatError(f"{path}: class ids must be 0..{len(by_id) - 1}, each once")
    return [name for _, name in by_id]


def class_of_template(template: str) -> str:
    """``"Putting [something] into [something]"`` -> ``"Putting something into something"``."""
    return " ".join(template.replace("[", "").replace("]", "").split())


def read_ssv2(root: Path, split: str) -> list[AnnotatedVideo]:
    """One entry per annotated video, its class name (from ``template``) as the single text."""
    path = _annotation(root, SPLIT_FILES[split])
    data = read_json(path, f"Something-Something v2 {split} annotations")
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a list of {{id, label, template, placeholders}}")
    entries = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "id" not in item or "template" not in item:
            raise BenchmarkFormatError(f"{path}: entry {i} needs 'id' and 'template'")
        video_id = clean_text(str(item["id"]), path, f"entry {i} id")
        name = class_of_template(clean_text(item["template"], path, f"entry {i} template"))
        entries.append(AnnotatedVideo(video_id, (video_id,), (name,)))
    return entries


BENCHMARK = Benchmark(
    "ssv2",
    ("train", "validation"),
    ("20bn-something-something-v2",),
    read_ssv2,
    "Something-Something v2: 174 object-manipulation templates; validation: 24,777 videos",
)
