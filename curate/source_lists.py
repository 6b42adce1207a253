"""Reading source lists as a stream of bounded batches: ``.txt``, ``.csv``, ``.jsonl``, ``.parquet``, local or a URI.

A list may hold 20 million URLs, so nothing here reads a whole list into memory: each format
is read in batches of at most ``batch_rows`` rows straight from its filesystem (local, or
``s3://`` through pyarrow, as outputs are, see :mod:`vidla_format.storage`), and every row carries
its 0-based position among the list's data rows (the ledger's ``input_row``). A parquet list
splits into ranges of row groups whose first row is known from the footer, so its ranges can
be read in parallel; the text formats are read front to back by one reader.

:func:`check_source_list` is the cheap usage check a driver makes before starting anything:
the format, the ``url`` column (csv header, parquet schema) and the first lines of a jsonl
list; a list that passes it never ends a run, because a bad row later on is a failed row
(``problem``), not an exception.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vidla_format.storage import filesystem, is_uri, redacted

FORMATS = (".csv", ".jsonl", ".parquet", ".txt")
BATCH_ROWS = 4096
CHECK_LINES = 1000
"""Lines of a jsonl list :func:`check_source_list` parses before a run starts."""
_TRAILING_COMMENT = re.compile(r"\s+#.*$")


@dataclass(frozen=True)
class RawBatch:
    """Rows as read, before any validation: position, URL text, given id, and why the row is unreadable."""

    rows: list[int]
    urls: list[str | None]
    ids: list[str | None]
    problems: list[str | None]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class ListRange:
    """One reader's share of a list: all of it, or parquet row groups ``[first_group, stop_group)``."""

    path: str
    first_group: int = 0
    stop_group: int | None = None
    first_row: int = 0
    num_rows: int | None = None


def list_format(path: str | Path) -> str:
    """The list's format by suffix; an unknown one is a usage error."""
    suffix = PurePosixPath(str(path).split("?", 1)[0]).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{redacted(str(path))}: unknown source list format {suffix!r} (expected one of {', '.join(FORMATS)})")
    return suffix


def _open(path: str | Path) -> tuple[pafs.FileSystem, str]:
    if is_uri(path):
        return filesystem(str(path))
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def strip_comment(line: str) -> str:
    """A line without a full-line ``#`` comment or a trailing `` # comment``."""
    text = line.strip()
    if text.startswith("#"):
        return ""
    return _TRAILING_COMMENT.sub("", text).strip()


# --------------------------------------------------------------------------- the usage check


def check_source_list(path: str | Path) -> None:
    """Raise ValueError (naming the list) when it cannot be a source list; reads a header, not the list."""
    fmt = list_format(path)
    name = redacted(str(path))
    fs, inner = _open(path)
    if fmt == ".parquet":
        with fs.open_input_file(inner) as handle:
            _require_url(pq.read_schema(handle).names, name)
    elif fmt == ".csv":
        with fs.open_input_stream(inner) as handle:
            _require_url(_csv_reader(handle).schema.names, name)
    elif fmt == ".jsonl":
        with fs.open_input_stream(inner) as handle:
            lines = itertools.islice(io.TextIOWrapper(handle, encoding="utf-8"), CHECK_LINES)
            records = [_json_record(line, number, name) for number, line in enumerate(lines, 1) if line.strip()]
        if records and not any("url" in r for r in records):
            raise ValueError(f"{name}: no line has a 'url' key (of the first {CHECK_LINES})")


def _require_url(columns: list[str], name: str) -> None:
    if "url" not in columns:
        raise ValueError(f"{name}: no 'url' column (columns: {', '.join(columns) or 'none'})")


def _json_record(line: str, number: int, name: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name}:{number}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{name}:{number}: each line must be a JSON object with a 'url' key")
    return record


# --------------------------------------------------------------------------- planning reads


def read_ranges(path: str | Path, parallelism: int = 1) -> list[ListRange]:
    """How to split the list among ``parallelism`` readers: parquet by row groups, the rest whole."""
    if list_format(path) != ".parquet" or parallelism <= 1:
        return [ListRange(str(path))]
    fs, inner = _open(path)
    with fs.open_input_file(inner) as handle:
        meta = pq.ParquetFile(handle).metadata
    counts = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    per = max(1, -(-len(counts) // parallelism))
    ranges, first_row = [], 0
    for start in range(0, len(counts), per):
        rows = sum(counts[start : start + per])
        ranges.append(ListRange(str(path), start, min(start + per, len(counts)), first_row, rows))
        first_row += rows
    return ranges or [ListRange(str(path))]


def iter_batches(share: ListRange, batch_rows: int = BATCH_ROWS) -> Iterator[RawBatch]:
    """The rows of one range, ``batch_rows`` at a time; memory stays bounded by the batch."""
    fmt = list_format(share.path)
    fs, inner = _open(share.path)
    name = redacted(share.path)
    if fmt == ".parquet":
        yield from _parquet_batches(fs, inner, share, batch_rows, name)
        return
    with fs.open_input_stream(inner) as handle:
        if fmt == ".csv":
            yield from _csv_batches(handle, batch_rows, name)
        else:
            text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace")
            yield from _chunked(_txt_rows(text) if fmt == ".txt" else _jsonl_rows(text, name), batch_rows)


def _chunked(rows: Iterator[tuple[str | None, str | None, str | None]], size: int, first: int = 0) -> Iterator[RawBatch]:
    number = first
    while chunk := list(itertools.islice(rows, size)):
        yield RawBatch(list(range(number, number + len(chunk))), *(list(col) for col in zip(*chunk, strict=True)))
        number += len(chunk)


def _txt_rows(text: io.TextIOWrapper) -> Iterator[tuple[str | None, str | None, str | None]]:
    for line in text:
        entry = strip_comment(line)
        if entry:
            yield entry, None, None


def _jsonl_rows(text: io.TextIOWrapper, name: str) -> Iterator[tuple[str | None, str | None, str | None]]:
    """One row per non-blank line; a line that is not a JSON object is a row with a problem, not an error."""
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            record = _json_record(line, number, name)
        except ValueError as error:
            yield None, None, str(error)
            continue
        yield _text_or_none(record.get("url")), _text_or_none(record.get("id")), None


def _text_or_none(value: object) -> str | None:
    """JSON values as text; a non-string URL then fails validation with a clear message."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _csv_reader(handle: pa.NativeFile) -> pa_csv.CSVStreamingReader:
    # url and id as text: ids like 007 or 1e5 must not become numbers.
    convert = pa_csv.ConvertOptions(
        column_types={"url": pa.string(), "id": pa.string()}, strings_can_be_null=True
    )
    return pa_csv.open_csv(handle, convert_options=convert)


def _csv_batches(handle: pa.NativeFile, batch_rows: int, name: str) -> Iterator[RawBatch]:
    reader = _csv_reader(handle)
    _require_url(reader.schema.names, name)
    yield from _table_batches(reader, batch_rows, 0)


def _parquet_batches(fs: pafs.FileSystem, inner: str, share: ListRange, batch_rows: int, name: str) -> Iterator[RawBatch]:
    with fs.open_input_file(inner) as handle:
        parquet = pq.ParquetFile(handle)
        _require_url(parquet.schema_arrow.names, name)
        columns = [c for c in ("url", "id") if c in parquet.schema_arrow.names]
        stop = parquet.num_row_groups if share.stop_group is None else share.stop_group
        groups = list(range(share.first_group, stop))
        if groups:
            yield from _table_batches(parquet.iter_batches(batch_rows, groups, columns), batch_rows, share.first_row)


def _table_batches(batches, batch_rows: int, first_row: int) -> Iterator[RawBatch]:
    """Arrow record batches re-cut to ``batch_rows``, url and id as text, numbered from ``first_row``."""
    number = first_row
    for record_batch in batches:
        for offset in range(0, record_batch.num_rows, batch_rows):
            part = record_batch.slice(offset, batch_rows)
            urls, ids = (_strings(part, c) for c in ("url", "id"))
            yield RawBatch(list(range(number, number + part.num_rows)), urls, ids, [None] * part.num_rows)
            number += part.num_rows


def _strings(part: pa.RecordBatch, column: str) -> list[str | None]:
    if column not in part.schema.names:
        return [None] * part.num_rows
    return part.column(column).cast(pa.string()).to_pylist()
