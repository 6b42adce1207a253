"""Classifying a failed download: permanent (retrying cannot help) or transient (a retry may).

yt-dlp wraps the real cause (an HTTP status, a socket timeout, our own refusals) in
DownloadError / ExtractorError; the cause chain is searched first because it is exact, the
message text only when no typed cause decides. Messages are stored in the ledger, so the
URLs in them lose their credentials and signatures first.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterator

from yt_dlp.networking.exceptions import HTTPError, IncompleteRead, TransportError
from yt_dlp.utils import ContentTooShortError, GeoRestrictedError, UnsupportedError

from curate.errors import CurateError, permanent, transient
from curate.redact import redact_text

_MAX_MESSAGE = 500

_STATUS_CODES = {404: "http_404", 410: "http_410"}
_MESSAGE_RULES: tuple[tuple[str, Callable[[str, str], CurateError], str], ...] = (
    (r"not a bot|confirm you.re not a robot", transient, "bot_check"),
    (r"private video|video is private", permanent, "private"),
    (r"sign in to confirm your age|age.restricted|members.only|join this channel|login required|"
     r"requires? (?:a )?(?:login|authentication)", permanent, "login_required"),
    (r"larger than max-filesize|file is larger than", permanent, "too_large"),
    (r"video unavailable|video is unavailable|no longer available|has been removed|has been terminated|"
     r"not available in your country|geo.?restrict|copyright", permanent, "unavailable"),
    (r"no video formats found|requested format is not available|no formats", permanent, "no_video"),
    (r"unsupported url|is not a valid url", permanent, "unsupported_url"),
    (r"invalid data found when processing input|moov atom not found", permanent, "invalid_media"),
    (r"live event will begin|premieres in|is_upcoming", transient, "upcoming"),
    (r"timed? ?out", transient, "timeout"),
    (r"connection (?:refused|reset|aborted)|remote end closed|name or service not known|name resolution|"
     r"network is unreachable|no route to host|content too short|incomplete ?read|eof occurred|broken pipe",
     transient, "connection"),
)  # fmt: skip


def classify_error(exc: BaseException) -> CurateError:
    """Map any exception of a download attempt to a permanent or transient CurateError.

    yt-dlp wraps the real cause (an HTTP status, a socket timeout) in DownloadError /
    ExtractorError; the cause chain is searched first because it is exact, the message text
    only when no typed cause decides.
    """
    chain = list(_cause_chain(exc))
    message = _clean_message(exc)
    for cause in chain:
        decided = _classify_cause(cause, message)
        if decided is not None:
            return decided
    return _classify_message(message) or transient("unknown", message)


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    """exc, then what it wraps: yt-dlp's exc_info and cause, and Python's __cause__/__context__."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        yield current
        exc_info = getattr(current, "exc_info", None)
        wrapped = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        pending += [wrapped, getattr(current, "cause", None), current.__cause__, current.__context__]
        pending += list(getattr(current, "unexpected_errors", None) or [])  # yt-dlp's NoSupportingHandlers


def _classify_cause(cause: BaseException, message: str) -> CurateError | None:
    if isinstance(cause, CurateError):
        return cause
    if isinstance(cause, MemoryError):
        return permanent("memory_limit", f"the download ran out of its memory limit: {message}")
    if isinstance(cause, OSError) and cause.errno == errno.EFBIG:
        return permanent("too_large", f"the download wrote more than its file size limit: {message}")
    status = _http_status(cause)
    if status is not None:
        return _classify_status(status, message)
    if isinstance(cause, UnsupportedError):
        return permanent("unsupported_url", message)
    if isinstance(cause, GeoRestrictedError):
        return permanent("unavailable", message)
    if isinstance(cause, TimeoutError) or (isinstance(cause, TransportError) and "timed out" in str(cause)):
        return transient("timeout", message)
    if isinstance(cause, ContentTooShortError | IncompleteRead | TransportError | ConnectionError):
        return transient("connection", message)
    return None


def _http_status(cause: BaseException) -> int | None:
    if isinstance(cause, HTTPError):
        return cause.status
    code = getattr(cause, "code", None) if type(cause).__name__ == "HTTPError" else None
    return code if isinstance(code, int) else None


def _classify_status(status: int, message: str) -> CurateError:
    if status in _STATUS_CODES:
        return permanent(_STATUS_CODES[status], message)
    if status == 429:
        return transient("rate_limited", message)
    if status == 403:
        return transient("http_403", message)  # YouTube answers 403 to throttled clients
    if 500 <= status <= 599:
        return transient("http_5xx", message)
    if 400 <= status <= 499:
        return permanent("http_4xx", message)
    return transient("unknown", message)


def _classify_message(message: str) -> CurateError | None:
    status = re.search(r"HTTP Error (\d{3})", message)
    if status:
        return _classify_status(int(status.group(1)), message)
    for pattern, make, code in _MESSAGE_RULES:
        if re.search(pattern, message, re.IGNORECASE):
            return make(code, message)
    return None


def _clean_message(exc: BaseException) -> str:
    """One readable line: without yt-dlp's "ERROR:" prefix and its bug-report boilerplate."""
    text = str(exc) or type(exc).__name__
    text = re.sub(r"^(?:ERROR:\s*)+", "", text.strip())
    text = text.split("; please report this issue")[0]
    return redact_text(" ".join(text.split()))[:_MAX_MESSAGE]
