"""MSVD: about 40 captions per video (multi-caption retrieval), from CLIP4Clip's ``raw-captions.pkl``, unpickled safely."""

from __future__ import annotations

import builtins
import io
import pickle
from pathlib import Path
from typing import Any

from vidla_eval.benchmarks.annotations import clean_text, read_id_list, require_file, with_captions
from vidla_eval.benchmarks.records import AnnotatedVideo, Benchmark, BenchmarkFormatError


class _CaptionUnpickler(pickle.Unpickler):
    """Loads only dicts, lists and strings: ``raw-captions.pkl`` is downloaded, and a pickle can run code.

    Plain containers and strings need no global lookup; any other global (a function a
    malicious file would call, or an unexpected class) is refused before it is resolved.
    """

    ALLOWED = frozenset({"dict", "list", "str"})

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in self.ALLOWED:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def load_msvd_captions(path: Path) -> dict[str, list[str]]:
    """``raw-captions.pkl`` (video -> list of token lists) unpickled safely -> video -> captions."""
    require_file(path, "MSVD captions (CLIP4Clip's raw-captions.pkl)")
    try:
        data = _CaptionUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as exc:  # any unpickling failure is a bad file, whatever the pickle module raises
        raise BenchmarkFormatError(f"{path}: refused or unreadable pickle ({exc})") from exc
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{path}: expected a dict of video -> captions, got {type(data).__name__}")
    captions: dict[str, list[str]] = {}
    for video, items in data.items():
        if not isinstance(video, str) or not isinstance(items, list) or not items:
            raise BenchmarkFormatError(f"{path}: entry {video!r:.60} must map a name to a non-empty list")
        captions[video] = [_msvd_caption(c, path, video, i) for i, c in enumerate(items)]
    return captions


def _msvd_caption(caption: Any, path: Path, video: str, i: int) -> str:
    if isinstance(caption, list) and caption and all(isinstance(t, str) for t in caption):
        return clean_text(" ".join(caption), path, f"{video} caption {i}")
    return clean_text(caption, path, f"{video} caption {i}")


def read_msvd(root: Path, split: str) -> list[AnnotatedVideo]:
    """Every caption of each video in ``{split}_list.txt`` (multi-caption retrieval)."""
    ids = read_id_list(root / f"{split}_list.txt", f"MSVD {split} video list")
    path = root / "raw-captions.pkl"
    return with_captions(ids, load_msvd_captions(path), path, f"{split}_list.txt")


BENCHMARK = Benchmark(
    "msvd",
    ("train", "val", "test"),
    ("YouTubeClips",),
    read_msvd,
    "MSVD: ~40 captions per video; test: 670 videos",
)
