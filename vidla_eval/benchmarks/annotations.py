"""Reading annotation files: the checks and clean-ups every benchmark reader uses.

Every error names its file, so a wrong download is found from the message alone.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from vidla_eval.benchmarks.records import (
    MISSING_SHOWN,
    VIDEO_EXTENSIONS,
    AnnotatedVideo,
    BenchmarkFormatError,
)


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {what} (see docs/benchmarks.md)")
    return path


def read_json(path: Path, what: str) -> Any:
    require_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({exc})") from exc


def read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """Rows of a CSV with a header holding ``columns`` (extra columns, such as a pandas index, are fine)."""
    require_file(path, what)
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


def read_id_list(path: Path, what: str) -> list[str]:
    """One id per line (blank lines ignored), order kept, duplicates dropped."""
    require_file(path, what)
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(i for i in ids if i))


def clean_text(value: Any, path: Path, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkFormatError(f"{path}: {where}: expected a non-empty string, got {value!r:.80}")
    return " ".join(value.split())


def video_file_stem(name: str) -> str:
    """``a.mov`` -> ``a``; a name without a video extension is its own stem."""
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in VIDEO_EXTENSIONS else name


def with_captions(
    ids: list[str], captions: dict[str, Any], annotations: Path, listing: str
) -> list[AnnotatedVideo]:
    """An entry per listed id with all its captions; a listed id without captions is a format error."""
    without = [v for v in ids if v not in captions]
    if without:
        raise BenchmarkFormatError(
            f"{annotations}: no captions for {len(without)} videos of {listing}, e.g. {without[:MISSING_SHOWN]}"
        )
    return [AnnotatedVideo(v, (v,), tuple(captions[v])) for v in ids]


def number_pairs(value: Any) -> bool:
    """Whether ``value`` is a non-empty list of ``[a, b]`` number pairs (DiDeMo times, ActivityNet timestamps)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, int | float) for x in p) for p in value
        )
    )
