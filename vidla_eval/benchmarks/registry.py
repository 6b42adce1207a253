"""The benchmarks by name, and reading one split of one from its local copy.

Each benchmark's module declares its :class:`~vidla_eval.benchmarks.records.Benchmark` (name,
splits, release folders, reader); this registry lists them. ``vidla.config``'s
``BenchmarkName`` names the same set for config validation; ``tests/vidla/test_benchmarks.py``
holds the two equal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vidla.config import MissingVideos
from vidla_eval.benchmarks import activitynet, didemo, kinetics, msrvtt, msvd, ssv2, vatex
from vidla_eval.benchmarks.records import Benchmark, BenchmarkFormatError, BenchmarkVideo, RetrievalSplit
from vidla_eval.benchmarks.video_files import find_videos

#: Every benchmark by name, in the order docs/benchmarks.md lists them.
BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (msrvtt.BENCHMARK, didemo.BENCHMARK, activitynet.BENCHMARK, msvd.BENCHMARK, vatex.BENCHMARK)
}

#: The zero-shot classification datasets (:mod:`vidla_eval.classification`), apart from the
#: retrieval benchmarks above (which fine-tuning may name): each one's reader, whose entries
#: carry their class name as the only text, and its class list for a root and split.
CLASSIFICATION_BENCHMARKS: dict[str, tuple[Benchmark, Callable[[Path, str], list[str]]]] = {
    kinetics.BENCHMARK.name: (kinetics.BENCHMARK, kinetics.kinetics_classes),
    ssv2.BENCHMARK.name: (ssv2.BENCHMARK, ssv2.ssv2_classes),
}


def load_benchmark(
    name: str, root: str | Path, split: str = "test", *, missing: MissingVideos = "error"
) -> RetrievalSplit:
    """Read split ``split`` of benchmark ``name`` from its local copy at ``root``.

    Texts come video by video in annotation order (each video's captions in file order),
    so ``text_to_video`` is non-decreasing. Raises ``FileNotFoundError`` for a missing
    annotation file or video (see ``missing``) and :class:`BenchmarkFormatError` for a
    malformed annotation, each naming the file.
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    root = Path(root)
    entries = annotated_entries(bench, name, root, split)
    found, absent = find_videos(bench, root, split, entries, missing)
    videos, texts, labels = [], [], []
    for i, (entry, path) in enumerate(found):
        videos.append(BenchmarkVideo(entry.video_id, path, entry.start, entry.end))
        texts.extend(entry.texts)
        labels.extend([i] * len(entry.texts))
    return RetrievalSplit(f"{name}/{split}", videos, texts, labels, tuple(absent))


def annotated_entries(bench: Benchmark, name: str, root: Path, split: str) -> list:
    """The annotation entries of ``split`` of a local copy at ``root``; a split the benchmark lacks, a
    missing root or an empty annotation is an error that names it (retrieval and classification alike)."""
    if split not in bench.splits:
        raise ValueError(f"{name} has no split {split!r}; known: {list(bench.splits)}")
    if not root.is_dir():
        raise FileNotFoundError(f"{name} root {root} is not a directory")
    entries = bench.read(root, split)
    if not entries:
        raise BenchmarkFormatError(f"{root}: {name}/{split} has no annotated videos")
    return entries
