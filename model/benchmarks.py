"""The standard text-video retrieval benchmarks, read from local copies in their usual formats.

Each benchmark is read from the annotation files that CLIP4Clip, CLIP-ViP and most
open-source retrieval code use, so numbers are comparable with the literature. All
loaders return one :class:`RetrievalSplit`: the split's videos, its texts, and for each
text the index of its video (several texts may share a video: MSVD and VATEX have many
captions per video). ``docs/benchmarks.md`` says where to get each file and how to lay
the files out.

=============  ==========================================  ============================
benchmark      annotation files (under ``root``)           standard test (``"test"``)
=============  ==========================================  ============================
``msrvtt``     ``MSRVTT_JSFUSION_test.csv``,               1k-A: 1,000 videos, one
               ``MSRVTT_train.9k.csv`` (``.7k``),           sentence each
               ``MSRVTT_data.json``
``didemo``     ``{train,val,test}_data.json``              ``test_data.json``, paragraph
                                                           to video
``activitynet`` ``train.json``, ``val_1.json``, ``val_2.json`` ``val_1.json``, paragraph to
                                                           video
``msvd``       ``raw-captions.pkl``,                       ``test_list.txt``: 670 videos,
               ``{train,val,test}_list.txt``               ~40 captions each
``vatex``      ``vatex_training_v1.0.json``,               ``test_list.txt``: the common
               ``vatex_validation_v1.0.json``,             1,500 videos of the public
               ``{test,val}_list.txt``                     validation set, 10 captions each
=============  ==========================================  ============================

Videos are found by file stem with any common extension, first anywhere under
``root/videos/`` (so ``videos/all/``, ``videos/train/`` work), then in the benchmark's
original release folders (MSVD ``YouTubeClips/``; MSR-VTT ``MSRVTT/videos/all/`` as
``MSRVTT.zip`` unpacks, ``TrainValVideo/``, ``TestVideo/``), then in ``root`` itself. A
missing video is an error listing how many are missing and the first few: the test sets
are fixed-size, and silently dropping videos changes the numbers. ``missing="skip"`` drops them explicitly (logged, and kept
in :attr:`RetrievalSplit.skipped_videos`), for training sets with dead YouTube links.

:class:`BenchmarkVideos` decodes one split for evaluation (middle frame of T equal
segments, centre crop); :class:`BenchmarkTrainDataset` fine-tunes on a split through the
trainer with batches in exactly :class:`model.data.ClipDataset`'s format.
"""

from __future__ import annotations

import builtins
import csv
import io
import json
import logging
import os
import pickle
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import torch
from torch.utils.data import Dataset, IterableDataset

from model.config import BENCHMARK_NAMES, DataConfig, MissingVideos
from model.data import Clip, clip_batches, collate_clips, resumed_stream, seeded_rng, stream_slot
from model.frames import Crop, decode_mp4, draw_crop, segment_times
from model.text_tower import Tokenizer

log = logging.getLogger(__name__)

#: Extensions a benchmark video may have, in order of preference when a stem has several.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".3gp", ".flv", ".wmv",
)  # fmt: skip

#: DiDeMo's annotators saw only the first 30 s of each video (6 chunks of 5 s), so only that
#: window can match the paragraph; CLIP4Clip likewise reads seconds 0-31.
DIDEMO_ANNOTATED_S = 30.0

#: How many missing video names an error message lists.
_MISSING_SHOWN = 5

class BenchmarkFormatError(ValueError):
    """An annotation file that is not in its benchmark's format; the message names the file."""


# -- the public records -----------------------------------------------------------------------


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
class _Entry:
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
    read: Callable[[Path, str], list[_Entry]]
    summary: str


# -- reading annotation files -----------------------------------------------------------------


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {what} (see docs/benchmarks.md)")
    return path


def _read_json(path: Path, what: str) -> Any:
    _require(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({exc})") from exc


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """Rows of a CSV with a header holding ``columns`` (extra columns, such as a pandas index, are fine)."""
    _require(path, what)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise BenchmarkFormatError(f"{path}: missing columns {missing} (header: {header})")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if any(not (row.get(c) or "").strip() for c in columns):
            raise BenchmarkFormatError(f"{path}, line {line}: empty {list(columns)} value")
    return rows


def _read_id_list(path: Path, what: str) -> list[str]:
    """One id per line (blank lines ignored), order kept, duplicates dropped."""
    _require(path, what)
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(i for i in ids if i))


def _text(value: Any, path: Path, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkFormatError(f"{path}: {where}: expected a non-empty string, got {value!r:.80}")
    return " ".join(value.split())


def _video_file_stem(name: str) -> str:
    """``a.mov`` -> ``a``; a name without a video extension is its own stem."""
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in VIDEO_EXTENSIONS else name


def _with_captions(
    ids: list[str], captions: dict[str, Any], annotations: Path, listing: str
) -> list[_Entry]:
    """An entry per listed id with all its captions; a listed id without captions is a format error."""
    without = [v for v in ids if v not in captions]
    if without:
        raise BenchmarkFormatError(
            f"{annotations}: no captions for {len(without)} videos of {listing}, e.g. {without[:_MISSING_SHOWN]}"
        )
    return [_Entry(v, (v,), tuple(captions[v])) for v in ids]


def _number_pairs(value: Any) -> bool:
    """Whether ``value`` is a non-empty list of ``[a, b]`` number pairs (DiDeMo times, ActivityNet timestamps)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, int | float) for x in p) for p in value)
    )


# -- MSR-VTT ----------------------------------------------------------------------------------

_MSRVTT_TRAIN = {"train": "MSRVTT_train.9k.csv", "train-7k": "MSRVTT_train.7k.csv"}


def _msrvtt_sentences(root: Path) -> dict[str, list[str]]:
    path = root / "MSRVTT_data.json"
    data = _read_json(path, "MSR-VTT annotations with the 'sentences' list")
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise BenchmarkFormatError(f"{path}: expected an object with a 'sentences' list")
    captions: dict[str, list[str]] = {}
    for i, item in enumerate(data["sentences"]):
        if not isinstance(item, dict) or not isinstance(item.get("video_id"), str):
            raise BenchmarkFormatError(f"{path}: sentences[{i}] has no string 'video_id'")
        text = _text(item.get("caption"), path, f"sentences[{i}].caption")
        captions.setdefault(item["video_id"], []).append(text)
    return captions


def read_msrvtt(root: Path, split: str) -> list[_Entry]:
    """1k-A test: the JSFusion CSV's 1,000 (video, sentence) rows; train: all captions of the 9k (7k) videos."""
    if split == "test":
        path = root / "MSRVTT_JSFUSION_test.csv"
        rows = _read_csv(path, ("video_id", "sentence"), "the MSR-VTT 1k-A test split")
        grouped: dict[str, list[str]] = {}
        for line, row in enumerate(rows, start=2):
            grouped.setdefault(row["video_id"].strip(), []).append(
                _text(row["sentence"], path, f"line {line} sentence")
            )
        return [_Entry(v, (v,), tuple(texts)) for v, texts in grouped.items()]
    path = root / _MSRVTT_TRAIN[split]
    ids = list(dict.fromkeys(r["video_id"].strip() for r in _read_csv(path, ("video_id",), "the train ids")))
    return _with_captions(ids, _msrvtt_sentences(root), root / "MSRVTT_data.json", path.name)


# -- DiDeMo -----------------------------------------------------------------------------------


def _didemo_start(times: Any, path: Path, where: str) -> tuple[float, float]:
    """Mean (start, end) chunk over the annotators: the moment's place in the video, for ordering."""
    if not _number_pairs(times):
        raise BenchmarkFormatError(f"{path}: {where}: 'times' must be a list of [start, end] chunk pairs")
    return sum(t[0] for t in times) / len(times), sum(t[1] for t in times) / len(times)


def read_didemo(root: Path, split: str) -> list[_Entry]:
    """One paragraph per video: its descriptions ordered by the mean annotated start (then end), joined."""
    path = root / f"{split}_data.json"
    data = _read_json(path, f"DiDeMo {split} annotations")
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a list of moment annotations")
    moments: dict[str, list[tuple[tuple[float, float], int, str]]] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("video"), str) or not item["video"]:
            raise BenchmarkFormatError(f"{path}: item {i} has no 'video' name")
        order = _didemo_start(item.get("times"), path, f"item {i}")
        text = _text(item.get("description"), path, f"item {i} description")
        moments.setdefault(item["video"], []).append((order, i, text))
    return [
        _Entry(
            video,
            (_video_file_stem(video), video),
            (" ".join(text for _, _, text in sorted(items)),),
            0.0,
            DIDEMO_ANNOTATED_S,
        )
        for video, items in moments.items()
    ]


# -- ActivityNet Captions ---------------------------------------------------------------------

_ACTIVITYNET_FILES = {
    "train": "train.json",
    "val_1": "val_1.json",
    "val_2": "val_2.json",
    "test": "val_1.json",
}


def _activitynet_entry(key: str, item: Any, path: Path) -> _Entry:
    if not isinstance(item, dict):
        raise BenchmarkFormatError(f"{path}: {key}: expected an object")
    sentences, stamps, duration = item.get("sentences"), item.get("timestamps"), item.get("duration")
    if not isinstance(sentences, list) or not sentences or not isinstance(stamps, list):
        raise BenchmarkFormatError(f"{path}: {key}: needs non-empty 'sentences' and 'timestamps' lists")
    if len(stamps) != len(sentences) or not _number_pairs(stamps):
        raise BenchmarkFormatError(f"{path}: {key}: 'timestamps' must hold one [start, end] per sentence")
    if not isinstance(duration, int | float) or duration <= 0:
        raise BenchmarkFormatError(f"{path}: {key}: 'duration' must be a positive number")
    texts = [_text(s, path, f"{key} sentence {i}") for i, s in enumerate(sentences)]
    ordered = [t for _, _, t in sorted(zip((s[0] for s in stamps), range(len(texts)), texts, strict=True))]
    bare = key[2:] if key.startswith("v_") else key
    return _Entry(key, (key, bare), (" ".join(ordered),), 0.0, float(duration))


def read_activitynet(root: Path, split: str) -> list[_Entry]:
    """One paragraph per video: its sentences in timestamp order, joined; the window is [0, duration]."""
    path = root / _ACTIVITYNET_FILES[split]
    data = _read_json(path, f"ActivityNet Captions {split} annotations")
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{path}: expected an object mapping 'v_ID' to annotations")
    return [_activitynet_entry(key, item, path) for key, item in data.items()]


# -- MSVD -------------------------------------------------------------------------------------


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
    _require(path, "MSVD captions (CLIP4Clip's raw-captions.pkl)")
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
        return _text(" ".join(caption), path, f"{video} caption {i}")
    return _text(caption, path, f"{video} caption {i}")


def read_msvd(root: Path, split: str) -> list[_Entry]:
    """Every caption of each video in ``{split}_list.txt`` (multi-caption retrieval)."""
    ids = _read_id_list(root / f"{split}_list.txt", f"MSVD {split} video list")
    path = root / "raw-captions.pkl"
    return _with_captions(ids, load_msvd_captions(path), path, f"{split}_list.txt")


# -- VATEX ------------------------------------------------------------------------------------


def _vatex_annotations(path: Path, what: str) -> dict[str, tuple[str, ...]]:
    data = _read_json(path, what)
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
            _text(c, path, f"{item['videoID']} enCap {j}") for j, c in enumerate(caps)
        )
    return out


def read_vatex(root: Path, split: str) -> list[_Entry]:
    """English captions (10 per video). ``test``/``val``: the ids of ``test_list.txt``/``val_list.txt``
    (the common 1,500/1,500 halves of the public validation set); ``val-full``: all of it."""
    if split == "train":
        captions = _vatex_annotations(root / "vatex_training_v1.0.json", "VATEX training annotations")
        return [_Entry(v, (v,), caps) for v, caps in captions.items()]
    path = root / "vatex_validation_v1.0.json"
    captions = _vatex_annotations(path, "VATEX validation annotations (source of val and test)")
    if split == "val-full":
        ids = list(captions)
    else:
        ids = _read_id_list(
            root / f"{split}_list.txt", f"the VATEX {split} ids (the common 1,500-video split)"
        )
    return _with_captions(ids, captions, path, f"{split}_list.txt")


BENCHMARKS: dict[str, Benchmark] = {
    "msrvtt": Benchmark(
        "msrvtt", ("train", "train-7k", "test"), ("MSRVTT/videos/all", "TrainValVideo", "TestVideo"), read_msrvtt,
        "MSR-VTT: 1k-A test (1,000 videos, one sentence each); train: 9k videos x 20 captions",
    ),
    "didemo": Benchmark(
        "didemo", ("train", "val", "test"), (), read_didemo,
        "DiDeMo paragraph-to-video: each video's descriptions in time order form one text",
    ),
    "activitynet": Benchmark(
        "activitynet", ("train", "val_1", "val_2", "test"), (), read_activitynet,
        "ActivityNet Captions paragraph-to-video; test = val_1",
    ),
    "msvd": Benchmark(
        "msvd", ("train", "val", "test"), ("YouTubeClips",), read_msvd,
        "MSVD: ~40 captions per video; test: 670 videos",
    ),
    "vatex": Benchmark(
        "vatex", ("train", "val", "test", "val-full"), (), read_vatex,
        "VATEX: 10 English captions per video; test: the common 1,500-video half of validation",
    ),
}  # fmt: skip
assert tuple(BENCHMARKS) == BENCHMARK_NAMES, "model.config.BENCHMARK_NAMES must list the benchmarks"


# -- finding the video files ------------------------------------------------------------------


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


def _resolve(
    bench: Benchmark, root: Path, split: str, entries: list[_Entry], missing: MissingVideos
) -> tuple[list[tuple[_Entry, Path]], list[str]]:
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
            f"(searched {places} for any of {', '.join(VIDEO_EXTENSIONS)}), e.g. {absent[:_MISSING_SHOWN]}; "
            "the standard splits are fixed-size (missing='skip' drops them explicitly)"
        )
    if absent:
        log.warning(
            "%s/%s: skipping %d of %d videos without a file, e.g. %s",
            bench.name, split, len(absent), len(entries), absent[:_MISSING_SHOWN],
        )  # fmt: skip
    return found, absent


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
    if split not in bench.splits:
        raise ValueError(f"{name} has no split {split!r}; known: {list(bench.splits)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{name} root {root} is not a directory")
    entries = bench.read(root, split)
    if not entries:
        raise BenchmarkFormatError(f"{root}: {name}/{split} has no annotated videos")
    found, absent = _resolve(bench, root, split, entries, missing)
    videos, texts, labels = [], [], []
    for i, (entry, path) in enumerate(found):
        videos.append(BenchmarkVideo(entry.video_id, path, entry.start, entry.end))
        texts.extend(entry.texts)
        labels.extend([i] * len(entry.texts))
    return RetrievalSplit(f"{name}/{split}", videos, texts, labels, tuple(absent))


# -- decoding ---------------------------------------------------------------------------------


def video_duration(data: bytes) -> float:
    """Seconds of the first video stream (its own duration, else the container's, else frames / rate)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
        if stream.frames and stream.average_rate:
            return stream.frames / float(stream.average_rate)
    raise ValueError("video has no known duration")


def decode_video(
    video: BenchmarkVideo,
    num_frames: int,
    image_size: int,
    *,
    train: bool,
    crop: Crop,
    rng: random.Random,
    seek_gap_s: float = 1.0,
) -> torch.Tensor:
    """``(T, S, S, 3)`` uint8: one frame per each of T equal segments of the video's window.

    The window is ``[start, end]`` clamped to the file (annotated durations and downloaded
    files disagree by fractions of a second), or the whole file; frames are the segments'
    middles in evaluation and random within them in training (:func:`model.frames.segment_times`).
    """
    data = video.path.read_bytes()
    duration = video_duration(data)
    start = max(0.0, video.start or 0.0)
    end = duration if video.end is None else min(video.end, duration)
    if end <= start:
        raise ValueError(
            f"{video.path}: window [{start:.2f}, {end:.2f}] s is outside the video ({duration:.2f} s)"
        )
    times = [start + t for t in segment_times(end - start, num_frames, train, rng)]
    return decode_mp4(data, times, crop, image_size, seek_gap_s)


class BenchmarkVideos(Dataset):
    """A split's videos for evaluation, one item per video: deterministic middle frames, centre crop."""

    def __init__(self, split: RetrievalSplit, num_frames: int, image_size: int) -> None:
        self.split = split
        self.num_frames = num_frames
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.split.videos)

    def __getitem__(self, i: int) -> torch.Tensor:
        video = self.split.videos[i]
        rng = random.Random(0)  # unused in evaluation mode: segment middles, centre crop
        crop = draw_crop(False, [1.0], False, rng)
        try:
            return decode_video(video, self.num_frames, self.image_size, train=False, crop=crop, rng=rng)
        except Exception as exc:
            raise RuntimeError(f"{self.split.name}: cannot decode {video.path}: {exc}") from exc


# -- fine-tuning ------------------------------------------------------------------------------


class BenchmarkTrainDataset(IterableDataset):
    """Endless training batches from a benchmark split, in :class:`model.data.ClipDataset`'s format.

    Every epoch is one permutation of the split's videos, the same on every process; the
    (rank, worker) slot ``k`` of ``K`` takes positions ``k, k + K, ...`` of it (all of it when
    there are fewer videos than slots). Each sample draws one of its video's captions, its
    frame offsets and its crop from a generator seeded by ``(seed, slot, position)``, so the
    stream is a function of the step: a resume skips the consumed samples without decoding
    them and continues exactly (same world size and worker count), as in :mod:`model.data`.
    The subtitle side of every clip is empty and invalid; the caption side is the caption.
    """

    def __init__(
        self,
        cfg: DataConfig,
        *,
        num_frames: int,
        image_size: int,
        tokenizer: Tokenizer,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        super().__init__()
        if cfg.benchmark is None or cfg.benchmark_root is None:
            raise ValueError("data.benchmark and data.benchmark_root must be set to fine-tune on a benchmark")
        self.cfg = cfg
        self.num_frames = num_frames
        self.image_size = image_size
        self.tokenizer = tokenizer
        self.rank, self.world_size = rank, world_size
        self.seed, self.start_batch = resumed_stream(seed, start_batch, cfg.resume)
        self.split = load_benchmark(
            cfg.benchmark, cfg.benchmark_root, cfg.benchmark_split, missing=cfg.benchmark_missing
        )
        self.captions = self.split.captions()

    def _video_order(self, slot: int, slots: int) -> Iterator[int]:
        """The slot's endless sequence of video indices, epoch after epoch."""
        n = len(self.split.videos)
        epoch = 0
        while True:
            order = list(range(n))
            seeded_rng("epoch", self.seed, epoch).shuffle(order)
            yield from (order[slot::slots] if n >= slots else order)
            epoch += 1

    def sample(self, video_index: int, rng: random.Random) -> Clip:
        """One training clip: random-offset frames, the configured random crop, one random caption."""
        cfg = self.cfg
        caption = rng.choice(self.captions[video_index])
        crop = draw_crop(True, cfg.crop_scales, cfg.hflip, rng)
        video = self.split.videos[video_index]
        frames = decode_video(
            video,
            self.num_frames,
            self.image_size,
            train=True,
            crop=crop,
            rng=rng,
            seek_gap_s=cfg.mp4_seek_gap_s,
        )
        return Clip(frames=frames, subtitle=None, caption=caption, key=video.video_id, scale=self.split.name)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        batch_size = self.cfg.batch_size
        place = stream_slot(self.rank, self.world_size, self.start_batch, batch_size)
        order = self._video_order(place.slot, place.slots)
        for clips in clip_batches(
            order,
            self.sample,
            lambda video_index: self.split.videos[video_index].path,
            seed=self.seed,
            slot=place.slot,
            skip=place.skip,
            batch_size=batch_size,
            keep_last=False,
        ):
            yield collate_clips(clips, self.tokenizer)
