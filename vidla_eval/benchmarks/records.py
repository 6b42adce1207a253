"""What a benchmark is and what reading one split gives: the records every benchmark module shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Extensions a benchmark video may have, in order of preference when a stem has several.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".3gp", ".flv", ".wmv",
)  # fmt: skip

#: How many missing video names an error message lists.
MISSING_SHOWN = 5


class BenchmarkFormatError(ValueError):
    """An annotation file that is not in its benchmark's format; the message names the file."""


@dataclass(frozen=True)
class BenchmarkVideo:
    """One video of a split; ``start``/``end`` (seconds) bound the part the texts describe (None: the file's ends)."""

    video_id: str
    path: Path
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class RetrievalSplit:
    """A retrieval split: ``texts[t]`` describes ``videos[text_to_video[t]]``.

    ``skipped_videos`` are the annotated videos left out because their files were missing
    (only with ``missing="skip"``; empty for a complete split).
    """

    name: str
    videos: list[BenchmarkVideo]
    texts: list[str]
    text_to_video: list[int]
    skipped_videos: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.text_to_video):
            raise ValueError(f"{self.name}: {len(self.texts)} texts but {len(self.text_to_video)} labels")
        if any(not 0 <= v < len(self.videos) for v in self.text_to_video):
            raise ValueError(f"{self.name}: text_to_video indexes outside the {len(self.videos)} videos")

    def captions(self) -> list[list[str]]:
        """The texts of each video, in split order (the fine-tune loader draws one per sample)."""
        grouped: list[list[str]] = [[] for _ in self.videos]
        for text, video in zip(self.texts, self.text_to_video, strict=True):
            grouped[video].append(text)
        return grouped


@dataclass(frozen=True)
class AnnotatedVideo:
    """One annotated video before its file is looked up: ids to try as file stems, its texts, its window."""

    video_id: str
    stems: tuple[str, ...]
    texts: tuple[str, ...]
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's splits, where its videos live, and the reader of its annotations."""

    name: str
    splits: tuple[str, ...]
    video_dirs: tuple[str, ...]  # release folders searched (non-recursively) after root/videos/
    read: Callable[[Path, str], list[AnnotatedVideo]]
    summary: str
