"""The *Sources* stage: turn a user's list of URLs into one ledger row per input row.

URLs are untrusted input, so every row is validated and normalised here, before
anything is downloaded, and every row gets a ``video_id`` that is safe as a file
name and as part of a WebDataset key (``[A-Za-z0-9_-]``, never a ``.``).  Rows
are never silently dropped: an invalid, duplicate or opted-out row comes back
with a status and an error code, because the ledger must account for every
input URL (see ``docs/dataset-format.md``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

import pyarrow.fs as pafs

from curate.redact import redact_url
from curate.source_lists import RawBatch, check_source_list, iter_batches, read_ranges, strip_comment
from vidla_format.storage import filesystem, is_uri

if TYPE_CHECKING:
    from curate.ledger import VideoStatus

Status = Literal["pending", "skipped", "failed", "expanded"]

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YOUTUBE_HOSTS = frozenset(
    {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "www.youtube-nocookie.com"}
)
_YOUTUBE_PATH_PREFIXES = ("shorts", "embed", "live", "v")


@dataclass(frozen=True)
class SourceRow:
    """One input row, as the ledger will record it.

    ``status`` is ``pending`` for rows to download; ``skipped`` and ``failed``
    rows are final and carry ``error_code`` / ``error``; ``expanded`` is a playlist
    or multi-video page whose ``entries`` videos follow as rows of their own, each
    with ``expanded_from`` (the source's ``video_id``) and the source's ``row``.
    ``row`` is the 0-based position among the input's data rows, so messages can
    point back at it. ``error_class`` is set where a failure may be retried
    (``transient``); other failed rows are permanent.
    """

    url: str
    video_id: str
    status: Status
    error_code: str | None
    error: str | None
    row: int
    error_class: str | None = None
    expanded_from: str | None = None
    entries: int | None = None

    def ledger_row(self) -> VideoStatus:
        """The ledger row of a row that is not downloaded (refused, or expanded into entries)."""
        from curate.ledger import VideoStatus

        error_class = self.error_class or ("permanent" if self.status == "failed" else None)
        return VideoStatus(self.url, self.video_id, self.status, error_class, self.error_code, self.error,
                           input_row=self.row, entries=self.entries, expanded_from=self.expanded_from)  # fmt: skip


# --------------------------------------------------------------------------- URLs


def normalize_url(url: str) -> str:
    """The canonical form of ``url``, so that the same video given twice dedupes.

    Whitespace is stripped, scheme and host are lowercased, default ports and the
    ``#fragment`` are dropped; path and query are kept as given (servers may treat
    them case-sensitively).  YouTube watch, short, embed and ``youtu.be`` links
    all become ``https://www.youtube.com/watch?v=ID``.  Raises ``ValueError``
    for text that cannot be parsed as a URL (e.g. a non-numeric port).
    """
    yt_id = youtube_id(url)
    if yt_id is not None:
        return f"https://www.youtube.com/watch?v={yt_id}"
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    return urlunsplit((scheme, _normalized_netloc(scheme, parts), parts.path, parts.query, ""))


def _normalized_netloc(scheme: str, parts: SplitResult) -> str:
    """``user@host:port`` with the host lowercased and a default port left out."""
    hostname = parts.hostname or ""
    port = parts.port  # raises ValueError for a port that is not a number in range
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    return f"{userinfo}@{host}" if userinfo else host


def _youtube_id(hostname: str | None, path: str, query: str) -> str | None:
    """The 11-character video id of a YouTube video URL, or None if it is not one."""
    host = (hostname or "").lower()
    segments = [segment for segment in path.split("/") if segment]
    candidate: str | None = None
    if host == "youtu.be" and segments:
        candidate = segments[0]
    elif host in _YOUTUBE_HOSTS:
        if segments == ["watch"]:
            candidate = (parse_qs(query).get("v") or [None])[0]
        elif len(segments) >= 2 and segments[0] in _YOUTUBE_PATH_PREFIXES:
            candidate = segments[1]
    if candidate is not None and _YOUTUBE_ID.match(candidate):
        return candidate
    return None


def youtube_id(url: str) -> str | None:
    """The YouTube video id of ``url``, or None when it is not a YouTube video URL."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        return None
    return _youtube_id(parts.hostname, parts.path, parts.query)


def validate_url(url: str, *, allow_file_urls: bool = False) -> str | None:
    """Why ``url`` (already stripped) must not be fetched, or None if it may be.

    Only http(s) is accepted by default: the list is untrusted, and schemes like
    ``file://`` would let it read local files, ``javascript:`` or ``ftp://`` are
    not videos yt-dlp should be pointed at.
    """
    if not url:
        return "empty URL"
    if len(url) > MAX_URL_LENGTH:
        return f"URL is {len(url)} characters long, more than {MAX_URL_LENGTH}"
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in url):
        return "URL contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as error:
        return f"URL cannot be parsed: {error}"
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not allow_file_urls:
            return "file:// URLs are not allowed (set sources.allow_file_urls to accept local files)"
        return None if parts.path else "file:// URL has no path"
    if not scheme:
        return "not a URL (no scheme): only http:// and https:// URLs are allowed"
    if scheme not in _DEFAULT_PORTS:
        return f"scheme {scheme!r} is not allowed: only http:// and https:// URLs are"
    if not parts.hostname:
        return "URL has no host"
    return None


# --------------------------------------------------------------------------- ids


def _sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def video_id_for(url: str, given_id: str | None = None) -> str:
    """A deterministic id, safe in file names and sample keys (``[A-Za-z0-9_-]``).

    A given id is kept when already safe; otherwise it is sanitised and suffixed
    with 8 hex digits of its SHA-1, so two different given ids never map to the
    same id.  YouTube URLs use the YouTube id (stable across URL spellings).
    Other URLs get a readable stem of their last path component plus 12 hex
    digits of the SHA-1 of the normalised URL.
    """
    if given_id is not None and given_id.strip():
        return _sanitized_given_id(given_id.strip())
    yt_id = youtube_id(url)
    if yt_id is not None:
        return yt_id
    canonical = _normalized_or_stripped(url)
    digest = _sha1_hex(canonical)[:12]
    stem = _readable_stem(canonical)
    return f"{stem}-{digest}" if stem else digest


def _sanitized_given_id(given_id: str) -> str:
    if _SAFE_ID.match(given_id):
        return given_id
    return f"{_UNSAFE_ID_CHARS.sub('-', given_id)[:48]}-{_sha1_hex(given_id)[:8]}"


def _normalized_or_stripped(url: str) -> str:
    """The normalised URL, or the stripped text for input that is not a URL at all."""
    try:
        return normalize_url(url)
    except ValueError:
        return url.strip()


def _readable_stem(canonical_url: str) -> str:
    """Up to 24 safe characters from the file name in the URL path, for humans."""
    try:
        path = urlsplit(canonical_url).path
    except ValueError:
        return ""
    name = PurePosixPath(unquote(path)).stem
    stem = re.sub(r"-{2,}", "-", _UNSAFE_ID_CHARS.sub("-", name))
    return stem[:24].strip("-")


# --------------------------------------------------------------------------- classifying


def _opt_out_key(entry: str) -> str:
    """URLs are compared in normalised form; ids are compared as given."""
    return _normalized_or_stripped(entry) if "://" in entry else entry.strip()


def load_opt_out(path: str | Path) -> set[str]:
    """Video ids and URLs (normalised) whose owners asked not to be included.

    One entry per line, ``#`` comments allowed.  URLs are normalised so any
    spelling of a URL matches any other spelling of it in the source list.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {_opt_out_key(entry) for entry in map(strip_comment, lines) if entry}




@dataclass(frozen=True)
class Rules:
    """What classification needs besides the row: whether file:// is allowed, and the opt-out list."""

    allow_file_urls: bool = False
    opt_out: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allow_file_urls: bool = False, opt_out: Iterable[str] | None = None) -> Rules:
        return cls(allow_file_urls, frozenset(_opt_out_key(entry) for entry in opt_out or ()))


def classify(row: int, raw_url: str | None, given_id: str | None, rules: Rules, problem: str | None = None) -> SourceRow:
    """One input row, validated and normalised: pending, failed (``invalid_url``, or ``invalid_row`` for
    a line that could not be read) or skipped (``opted_out``). Duplicates are :mod:`curate.dedupe`'s."""
    text = (raw_url or "").strip()
    video_id = video_id_for(text, given_id)
    if problem is not None:
        return SourceRow(text, video_id, "failed", "invalid_row", f"row {row}: {problem}", row)
    invalid = validate_url(text, allow_file_urls=rules.allow_file_urls)
    if invalid is not None:
        return SourceRow(text, video_id, "failed", "invalid_url", f"row {row}: {invalid}", row)
    url = normalize_url(text)
    if {url, redact_url(url)} & rules.opt_out or video_id in rules.opt_out:
        matched = f"video_id {video_id!r}" if video_id in rules.opt_out else "URL"
        return SourceRow(url, video_id, "skipped", "opted_out", f"row {row}: {matched} is on the opt-out list", row)
    return SourceRow(url, video_id, "pending", None, None, row)


def classify_batch(batch: RawBatch, rules: Rules) -> list[SourceRow]:
    """Every row of a batch classified; the unit a parallel planner runs (no state between batches)."""
    fields = zip(batch.rows, batch.urls, batch.ids, batch.problems, strict=True)
    return [classify(row, url, given_id, rules, problem) for row, url, given_id, problem in fields]


def source_list_exists(path: str | Path) -> bool:
    """Whether the source list is there: a local file, or an object/file behind a URI."""
    if not is_uri(path):
        return Path(path).is_file()
    fs, inner = filesystem(str(path))
    return fs.get_file_info(inner).type == pafs.FileType.File


def read_classified(path: str | Path, rules: Rules) -> list[SourceRow]:
    """Every row of a list, classified but not de-duplicated, in one process; raises ValueError for an
    unusable list, and (this reader has the whole list) for any line that cannot be read."""
    check_source_list(path)
    rows: list[SourceRow] = []
    for share in read_ranges(path):
        for batch in iter_batches(share):
            problem = next((p for p in batch.problems if p is not None), None)
            if problem is not None:
                raise ValueError(problem)
            rows.extend(classify_batch(batch, rules))
    return rows


def read_sources(
    path: str | Path, *, allow_file_urls: bool = False, opt_out: Iterable[str] | None = None
) -> list[SourceRow]:
    """Read a source list (.txt, .csv, .jsonl or .parquet) into one row per input row.

    ``path`` is a local path or a filesystem URI (``s3://bucket/urls.parquet``, credentials
    as for outputs, see :mod:`vidla_format.storage`). ``.txt`` has one URL per line (``#``
    comments and blank lines ignored); the tabular formats have a ``url`` column and an
    optional ``id`` column.  An unknown format or a missing ``url`` column is a usage
    error for the whole run and raises ``ValueError``; a bad row only fails that row.
    Opt-out is checked before duplicates, so every copy of an opted-out video says why.
    Lists too long for memory are read in batches by the Ray pipeline (``pipelines/sources.py``).
    """
    from curate.dedupe import dedupe

    return dedupe(read_classified(path, Rules.of(allow_file_urls, opt_out)))
