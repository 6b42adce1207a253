"""The *Download* stage: one URL -> one video file (+ one subtitle track) in a work directory.

yt-dlp runs through its Python API with exactly one extraction per attempt: ``extract_info``
with ``process=False`` gives the metadata, which is enough to refuse a too-long video and to
choose the subtitle track *before* any media byte is fetched; ``process_ie_result`` then
downloads from that same result.  Every failure is classified (:func:`classify_error`) so that
the ledger retries only what a retry can fix; transient failures are retried here with
jittered exponential backoff.

Untrusted input never reaches a file name: everything is written under fixed names
(``video.<ext>``, ``video.<lang>.<vtt|srt>``, ``video.info.json``) inside ``workdir``.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import random
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yt_dlp
from yt_dlp.networking.exceptions import HTTPError, IncompleteRead, TransportError
from yt_dlp.utils import (
    ContentTooShortError,
    DownloadError,
    GeoRestrictedError,
    UnsupportedError,
    YoutubeDLError,
    determine_ext,
)

from curate.config import DownloadConfig
from curate.errors import CurateError, permanent, transient
from curate.probe import MediaInfo, probe

FFPROBE = "ffprobe"
SubtitleKind = Literal["manual", "automatic"]
SUBTITLE_FORMATS = ("vtt", "srt")  # what curate.subtitles parses, best first
INFO_FIELDS = ("id", "title", "duration", "width", "height", "fps", "extractor", "uploader", "upload_date",
               "license", "webpage_url", "format_id", "vcodec", "acodec")  # fmt: skip
# Options that decide where files go, what is logged and which subtitles are fetched: extra_options
# may not override them, or a config could write outside the work directory.
RESERVED_OPTIONS = frozenset({
    "outtmpl", "paths", "logger", "progress_hooks", "postprocessor_hooks", "writesubtitles", "writeautomaticsub",
    "subtitleslangs", "subtitlesformat", "allsubtitles", "noplaylist", "simulate", "skip_download",
})  # fmt: skip
_SAFE_LANGUAGE = re.compile(r"[A-Za-z0-9_-]{1,35}")
_PARTIAL_PATTERNS = ("*.part", "*.part-Frag*", "*.ytdl", "*.temp.*")
_MAX_MESSAGE = 500
_MAX_RESOLVE_DEPTH = 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Downloaded:
    """What the download stage hands to the analysis stage."""

    video_path: Path
    subtitle_path: Path | None
    subtitle_language: str | None
    subtitle_kind: SubtitleKind | None
    info_path: Path
    info: dict
    media: MediaInfo
    """The downloaded file's own facts (streams, duration, keyframes), probed once here."""
    attempts: int
    subtitle_warning: str | None = None
    """Why the chosen subtitle track could not be fetched (the video itself was kept)."""


# --------------------------------------------------------------------------- public API


def download(
    url: str, video_id: str, workdir: Path, config: DownloadConfig, *, sleep: Callable[[float], Any] = time.sleep
) -> Downloaded:
    """Download ``url`` into ``workdir``, retrying transient failures; raise a classified CurateError.

    The error raised after the last attempt carries ``attempts`` (how many were made), which the
    ledger records.  ``sleep`` is injectable so tests can record the backoff instead of waiting.
    ``video_id`` only labels log messages: no file name is ever derived from it or from the URL.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, config.attempts + 1):
        _remove_partials(workdir)
        try:
            result = _attempt(url, workdir, config)
        except CurateError as error:
            _remove_partials(workdir)
            error.attempts = attempt  # type: ignore[attr-defined]
            if not error.is_transient or attempt >= config.attempts:
                raise
            delay = backoff_seconds(attempt, config)
            log.info("%s: attempt %d failed (%s), retrying in %.1f s", video_id, attempt, error, delay)
            sleep(delay)
        else:
            return replace(result, attempts=attempt)
    raise AssertionError("unreachable: the loop returns or raises")


def backoff_seconds(attempt: int, config: DownloadConfig, rng: random.Random | None = None) -> float:
    """Jittered exponential backoff after ``attempt`` (1-based): many workers that failed together
    (a rate limit, a flaky server) must not all come back at the same instant."""
    base = min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempt - 1))
    return base * (rng or random).uniform(0.5, 1.0)


def choose_subtitle_track(
    subtitles: dict, automatic_captions: dict, languages: list[str]
) -> tuple[str, SubtitleKind] | None:
    """The subtitle language to fetch, and whether it is manual or automatic.

    A manual track in any preferred language beats every automatic one, because manual
    subtitles are punctuated and well timed.  ``languages`` are tried in order and may be
    regexes (``en.*``).  Only languages offering a format we parse (vtt, srt) and a name that
    is safe inside a file name count.
    """
    for kind, tracks in (("manual", subtitles or {}), ("automatic", automatic_captions or {})):
        language = _preferred_language(tracks, languages)
        if language is not None:
            return language, kind  # type: ignore[return-value]
    return None


def subtitle_format(formats: list[dict]) -> str | None:
    """The best format of one language's track that curate.subtitles can parse (vtt, then srt)."""
    available = {_subtitle_ext(entry) for entry in formats or [] if isinstance(entry, dict)}
    return next((ext for ext in SUBTITLE_FORMATS if ext in available), None)


def ydl_params(config: DownloadConfig, workdir: Path) -> dict[str, Any]:
    """The yt-dlp options of one attempt (without logger and hooks, which belong to the attempt)."""
    params: dict[str, Any] = dict(config.extra_options)
    clash = RESERVED_OPTIONS & params.keys()
    if clash:
        raise ValueError(f"download.extra_options may not set {sorted(clash)}: the download stage owns them")
    params.update({
        "paths": {"home": str(workdir), "temp": str(workdir)},
        "outtmpl": {"default": "video.%(ext)s"},
        "merge_output_format": "mp4",
        "max_filesize": config.max_filesize_bytes,
        "socket_timeout": config.socket_timeout_s,
        "retries": 1, "extractor_retries": 0, "fragment_retries": 3, "skip_unavailable_fragments": False,
        "noplaylist": True, "quiet": True, "no_warnings": True, "noprogress": True, "color": "no_color",
        "updatetime": False, "writesubtitles": False, "writeautomaticsub": False,
    })  # fmt: skip
    if config.format:
        params["format"] = config.format
    else:
        params["format"] = "bv*+ba/b"
        params["format_sort"] = [f"+res:{config.target_short_side}", "vcodec:h264", "ext:mp4:m4a", "+size", "+br"]
    optional = {"cookiefile": config.cookies and str(config.cookies), "proxy": config.proxy,
                "ratelimit": config.rate_limit_bytes}  # fmt: skip
    params.update({key: value for key, value in optional.items() if value is not None})
    return params


# --------------------------------------------------------------------------- one attempt


class _CapturedLog:
    """yt-dlp's messages, kept for classification and debugging instead of printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _keep(self, message: str) -> None:
        if len(self.lines) < 500:
            self.lines.append(message)

    debug = info = warning = error = _keep

    def mentions(self, pattern: str) -> bool:
        return any(re.search(pattern, line, re.IGNORECASE) for line in self.lines)


class _Limits:
    """A progress hook: the only place yt-dlp lets us stop a download that is still making progress."""

    def __init__(self, config: DownloadConfig, started: float) -> None:
        self.config, self.started = config, started

    def __call__(self, status: dict) -> None:
        if status.get("status") != "downloading":
            return
        elapsed = time.monotonic() - self.started
        if elapsed > self.config.time_limit_s:
            raise transient("time_limit", f"download still running after {elapsed:.1f} s "
                                          f"(time_limit_s={self.config.time_limit_s:g})")  # fmt: skip
        size = max(status.get("downloaded_bytes") or 0, status.get("total_bytes") or 0)
        if size > self.config.max_filesize_bytes:
            raise permanent("too_large", f"{size} bytes > max_filesize_bytes={self.config.max_filesize_bytes}")


def _attempt(url: str, workdir: Path, config: DownloadConfig) -> Downloaded:
    captured = _CapturedLog()
    params = ydl_params(config, workdir) | {"logger": captured, "progress_hooks": [_Limits(config, time.monotonic())]}
    try:
        with yt_dlp.YoutubeDL(params) as ydl:
            info = _extract(ydl, url)
            _fill_unknown_duration(info, config)
            _check_before_download(info, config)
            choice = _request_subtitles(ydl, info, config.subtitle_languages)
            result, choice, warning = _process(ydl, info, choice)
    except CurateError:
        raise
    except (YoutubeDLError, OSError) as exc:
        raise classify_error(exc) from exc
    return _finish(workdir, result, choice, warning, captured, config)


def _extract(ydl: yt_dlp.YoutubeDL, url: str) -> dict:
    """The single extraction, reduced to one video (a one-entry playlist or a link to follow)."""
    info = ydl.extract_info(url, download=False, process=False)
    for _ in range(_MAX_RESOLVE_DEPTH):
        kind = info.get("_type", "video")
        if kind in ("playlist", "multi_video"):
            info = _single_entry(info)
        elif kind in ("url", "url_transparent"):
            info = _follow(ydl, info)
        else:
            return info
    raise permanent("unsupported_url", f"no video after following {_MAX_RESOLVE_DEPTH} redirections")


def _single_entry(playlist: dict) -> dict:
    """A page that wraps one video is that video; several videos are not one video."""
    entries = playlist.get("entries") or []
    first = list(itertools.islice(iter(entries), 2)) if not hasattr(entries, "getslice") else entries.getslice(0, 2)
    if len(first) != 1:
        raise permanent("playlist", f"the URL holds {'no' if not first else 'several'} videos, not one")
    if not isinstance(first[0], dict):
        raise permanent("playlist", "the URL's only entry is not a video")
    entry = dict(first[0])
    for key in ("extractor", "extractor_key", "webpage_url", "webpage_url_basename", "webpage_url_domain",
                "original_url"):  # fmt: skip
        entry.setdefault(key, playlist.get(key))
    return entry


def _follow(ydl: yt_dlp.YoutubeDL, link: dict) -> dict:
    """A page that only links to the video (an embed): extract the target, keeping the page's fields
    for url_transparent as yt-dlp itself does."""
    target = ydl.extract_info(link["url"], download=False, process=False, ie_key=link.get("ie_key"))
    if link.get("_type") == "url_transparent":
        skip = {"_type", "url", "id", "extractor", "extractor_key", "ie_key"}
        target = {**target, **{k: v for k, v in link.items() if v is not None and k not in skip}}
    return target


def _check_before_download(info: dict, config: DownloadConfig) -> None:
    """Refuse what must not be downloaded, while refusing still costs nothing."""
    live_status = info.get("live_status") or ("is_live" if info.get("is_live") else None)
    if live_status in ("is_live", "is_upcoming"):
        # A stream that has not ended has no fixed length; its recording usually appears later.
        raise transient("live" if live_status == "is_live" else "upcoming", f"the video is {live_status}")
    _check_duration(info.get("duration"), config)


def _check_duration(duration: Any, config: DownloadConfig) -> None:
    if isinstance(duration, int | float) and duration > config.max_duration_s:
        raise permanent("too_long", f"{duration:.0f} s > max_duration_s={config.max_duration_s:g}")


def _request_subtitles(ydl: yt_dlp.YoutubeDL, info: dict, languages: list[str]) -> tuple[str, SubtitleKind] | None:
    """Choose the track from the extracted metadata and tell yt-dlp to fetch exactly that one."""
    choice = choose_subtitle_track(info.get("subtitles") or {}, info.get("automatic_captions") or {}, languages)
    if choice is not None:
        language, kind = choice
        tracks = info["subtitles"] if kind == "manual" else info["automatic_captions"]
        ydl.params.update({
            "writesubtitles": kind == "manual", "writeautomaticsub": kind == "automatic",
            "subtitleslangs": [language], "subtitlesformat": subtitle_format(tracks[language]),
        })  # fmt: skip
    return choice


def _process(
    ydl: yt_dlp.YoutubeDL, info: dict, choice: tuple[str, SubtitleKind] | None
) -> tuple[dict, tuple[str, SubtitleKind] | None, str | None]:
    """Download from the extracted result.  yt-dlp fetches subtitles before the video and fails the
    whole video when they fail; a subtitle that is permanently gone must not cost the video, so
    that case is processed once more (from a copy of the same result, not a new extraction)."""
    snapshot = _copy_or_none(info) if choice is not None else None
    try:
        return ydl.process_ie_result(info, download=True), choice, None
    except DownloadError as exc:
        if snapshot is None or "unable to download video subtitles" not in str(exc).lower():
            raise
        error = classify_error(exc)
        if error.is_transient:
            raise error from exc
    ydl.params.update({"writesubtitles": False, "writeautomaticsub": False})
    warning = f"subtitle track {choice[0]!r} ({choice[1]}) could not be fetched: {error}"
    return ydl.process_ie_result(snapshot, download=True), None, warning


def _copy_or_none(info: dict) -> dict | None:
    """A deep copy, or None when an extractor put something uncopyable in its result."""
    try:
        return copy.deepcopy(info)
    except (TypeError, copy.Error, RecursionError):
        return None


# --------------------------------------------------------------------------- after the download


def _finish(
    workdir: Path,
    result: dict,
    choice: tuple[str, SubtitleKind] | None,
    warning: str | None,
    captured: _CapturedLog,
    config: DownloadConfig,
) -> Downloaded:
    video_path = _video_file(workdir, result, captured)
    media = probe(video_path)
    if media.duration > config.max_duration_s:
        video_path.unlink(missing_ok=True)
        _check_duration(media.duration, config)
    subtitle_path, warning = _subtitle_file(workdir, result, choice, warning)
    info = _info_subset(result, media)
    info_path = workdir / "video.info.json"
    _write_json(info_path, info)
    return Downloaded(
        video_path=video_path,
        subtitle_path=subtitle_path,
        subtitle_language=choice[0] if subtitle_path and choice else None,
        subtitle_kind=choice[1] if subtitle_path and choice else None,
        info_path=info_path,
        info=info,
        media=media,
        attempts=1,
        subtitle_warning=warning,
    )


def _video_file(workdir: Path, result: dict, captured: _CapturedLog) -> Path:
    """The file yt-dlp wrote, which must lie inside ``workdir`` (checked, not assumed)."""
    downloads = result.get("requested_downloads") or []
    path = Path(downloads[0].get("filepath") or "") if downloads else None
    if path is None or not path.is_file():
        if captured.mentions(r"larger than max-filesize"):
            raise permanent("too_large", "the server announced more than max_filesize_bytes")
        raise transient("unknown", "yt-dlp finished without writing a video file")
    if not _inside(path, workdir):
        raise permanent("unsafe_path", "yt-dlp wrote outside the work directory")
    return path


def _subtitle_file(
    workdir: Path, result: dict, choice: tuple[str, SubtitleKind] | None, warning: str | None
) -> tuple[Path | None, str | None]:
    if choice is None:
        return None, warning
    entry = (result.get("requested_subtitles") or {}).get(choice[0]) or {}
    path = Path(entry["filepath"]) if entry.get("filepath") else None
    if path is None or not path.is_file() or path.stat().st_size == 0 or not _inside(path, workdir):
        return None, warning or f"subtitle track {choice[0]!r} was not written"
    return path, warning


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _info_subset(result: dict, media: MediaInfo) -> dict:
    """The JSON-safe fields later stages and the dataset's ``source`` object use; the file's own
    facts (duration, size, codecs) win over the metadata, since they describe what was written."""
    info = {key: _json_scalar(result.get(key)) for key in INFO_FIELDS}
    info.update(
        duration=round(media.duration, 3), width=media.width, height=media.height, fps=round(media.fps, 3),
        vcodec=media.video_codec, acodec=media.audio_codec or "none",
    )
    return info


def _json_scalar(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _remove_partials(workdir: Path) -> None:
    """A killed attempt leaves ``.part``/``.ytdl`` files; resuming from them after a different
    format choice or a changed server file would splice two files together."""
    for pattern in _PARTIAL_PATTERNS:
        for path in workdir.glob(pattern):
            if path.is_file():
                path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the duration before the download


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _fill_unknown_duration(info: dict, config: DownloadConfig) -> None:
    """Plain media links and HTML5 pages carry no duration; read it from the media's header (a few
    KB of a faststart mp4) so max_duration_s still holds before the download."""
    if info.get("duration") is not None:
        return
    target = _direct_http_format(info)
    if target is None:
        return
    duration = _probe_remote_duration(target, config)
    if duration is not None:
        info["duration"] = duration


def _direct_http_format(info: dict) -> dict | None:
    candidates = [*(info.get("formats") or []), info]
    for entry in candidates:
        url = entry.get("url")
        if isinstance(url, str) and re.match(r"https?://", url) and entry.get("protocol") in (None, "http", "https"):
            if determine_ext(url) not in ("m3u8", "mpd", "f4m", "ism"):
                return entry
    return None


def _probe_remote_duration(entry: dict, config: DownloadConfig) -> float | None:
    headers = entry.get("http_headers") or {}
    options = ["-rw_timeout", str(int(config.socket_timeout_s * 1_000_000))]
    for option, header in (("-referer", "Referer"), ("-user_agent", "User-Agent")):
        if headers.get(header):
            options += [option, re.sub(r"[\x00-\x1f]", "", str(headers[header]))]
    if config.proxy and config.proxy.startswith("http"):
        options += ["-http_proxy", config.proxy]
    cmd = [FFPROBE, "-v", "error", "-protocol_whitelist", "http,https,tcp,tls", *options,
           "-show_entries", "format=duration", "-of", "csv=p=0", "-i", entry["url"]]  # fmt: skip
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=2 * config.socket_timeout_s + 5, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    value = _number(done.stdout.strip().splitlines()[0] if done.stdout.strip() else None)
    return value if done.returncode == 0 and value > 0 else None


# --------------------------------------------------------------------------- subtitle helpers


def _subtitle_ext(entry: dict) -> str:
    ext = entry.get("ext") or (determine_ext(entry["url"]) if isinstance(entry.get("url"), str) else "")
    return str(ext).lower()


def _preferred_language(tracks: dict, languages: list[str]) -> str | None:
    usable = [lang for lang, formats in tracks.items()
              if isinstance(lang, str) and _SAFE_LANGUAGE.fullmatch(lang) and subtitle_format(formats)]  # fmt: skip
    for wanted in languages:
        pattern = _language_pattern(wanted)
        match = next((lang for lang in usable if pattern.fullmatch(lang)), None)
        if match is not None:
            return match
    return None


def _language_pattern(wanted: str) -> re.Pattern[str]:
    try:
        return re.compile(wanted, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(wanted), re.IGNORECASE)


# --------------------------------------------------------------------------- classification

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


def _classify_cause(cause: BaseException, message: str) -> CurateError | None:
    if isinstance(cause, CurateError):
        return cause
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
    return " ".join(text.split())[:_MAX_MESSAGE]
