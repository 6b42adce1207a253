"""Finding a benchmark's video files by stem, wherever its release put them.

Videos are found by file stem with any common extension, first anywhere under
``root/videos/`` (so ``videos/all/``, ``videos/train/`` work), then in the benchmark's
original release folders (MSVD ``YouTubeClips/``; MSR-VTT ``MSRVTT/videos/all/`` as
``MSRVTT.zip`` unpacks, ``TrainValVideo/``, ``TestVideo/``), then in ``root`` itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from vidla.config import MissingVideos
from vidla_eval.benchmarks.records import MISSING_SHOWN, VIDEO_EXTENSIONS, AnnotatedVideo, Benchmark

log = logging.getLogger("vidla_eval.benchmarks")


def _video_files(directory: Path, recursive: bool) -> Iterator[Path]:
    if not directory.is_dir():
        return
    if recursive:
        for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                yield Path(dirpath) / name
    else:
        yield from sorted(p for p in directory.iterdir() if p.is_file())


def video_index(root: Path, release_dirs: tuple[str, ...]) -> dict[str, Path]:
    """Stem -> video file, scanning each folder once: ``root/videos/`` (recursive), the release folders, ``root``.

    An earlier folder wins; within one folder the preferred extension wins (mp4 first).
    """
    index: dict[str, Path] = {}
    places = [(root / "videos", True), *((root / d, False) for d in release_dirs), (root, False)]
    for directory, recursive in places:
        found: dict[str, Path] = {}
        for path in _video_files(directory, recursive):
            ext = path.suffix.lower()
            if ext not in VIDEO_EXTENSIONS:
                continue
            best = found.get(path.stem)
            if best is None or VIDEO_EXTENSIONS.index(ext) < VIDEO_EXTENSIONS.index(best.suffix.lower()):
                found[path.stem] = path
        for stem, path in found.items():
            index.setdefault(stem, path)
    return index


def find_videos(
    bench: Benchmark, root: Path, split: str, entries: list[AnnotatedVideo], missing: MissingVideos
) -> tuple[list[tuple[AnnotatedVideo, Path]], list[str]]:
    index = video_index(root, bench.video_dirs)
    found, absent = [], []
    for entry in entries:
        path = next((index[s] for s in entry.stems if s in index), None)
        if path is None:
            absent.append(entry.video_id)
        else:
            found.append((entry, path))
    if absent and missing == "error":
        places = ", ".join(["videos/**", *bench.video_dirs, "."])
        raise FileNotFoundError(
            f"{bench.name}/{split}: {len(absent)} of {len(entries)} videos not found under {root} "
            f"(searched {places} for any of {', '.join(VIDEO_EXTENSIONS)}), e.g. {absent[:MISSING_SHOWN]}; "
            "the standard splits are fixed-size (missing='skip' drops them explicitly)"
        )
    if absent:
        log.warning(
            "%s/%s: skipping %d of %d videos without a file, e.g. %s",
            bench.name, split, len(absent), len(entries), absent[:MISSING_SHOWN],
        )  # fmt: skip
    return found, absent
