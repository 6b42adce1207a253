"""The *Download* stage: one URL -> one video file (+ one subtitle track) in a work directory.

Untrusted input is held on all sides here:

* the URL and everything its server sends back may only reach public addresses or what
  ``download.allow_hosts`` names (:mod:`curate.egress`), over http(s), through yt-dlp's native
  downloaders (:mod:`curate.ytdlp_guard`); ``file://`` sources are copied from under
  ``download.file_root`` without yt-dlp (:mod:`curate.local_source`);
* each attempt runs in a child with a deadline, a memory limit and a file-size limit
  (:mod:`curate.download_limits`, :mod:`curate.download_attempt`), and the video's attempts
  together have a deadline too;
* the file that comes out must be an allowed container (:mod:`curate.media_guard`) whose
  packets agree with its header and stay within the frame-rate, resolution, packet and
  duration caps (:func:`curate.probe.probe`) before any later stage opens it;
* a subtitle track that is missing, empty, too large or refused costs the subtitles, never
  the video.

Every failure is classified (:func:`classify_error`) so that the ledger retries only what a
retry can fix; transient failures are retried here with jittered exponential backoff.
Everything is written under fixed names (``video.<ext>``, ``video.<lang>.<vtt|srt>``,
``video.info.json``) inside ``workdir``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curate.config import DownloadConfig
from curate.download_attempt import AttemptResult, attempt_request, attempt_result, ydl_params
from curate.download_errors import classify_error
from curate.download_limits import ChildLimits, prestart, run_limited
from curate.egress import EgressPolicy
from curate.errors import CurateError, permanent, transient
from curate.local_source import fetch_local, is_file_url
from curate.probe import MediaInfo, MediaLimits, probe
from curate.redact import redact_text
from curate.subtitle_tracks import SubtitleKind, choose_subtitle_track, subtitle_format

ATTEMPT_MODULE = "curate.download_attempt"
"""The module whose ``handle_request`` makes one attempt in a child forked from a warm zygote."""

__all__ = ["Downloaded", "backoff_seconds", "choose_subtitle_track", "classify_error", "download", "media_limits",
           "subtitle_format", "ydl_params"]  # fmt: skip

_PARTIAL_PATTERNS = ("*.part", "*.part-Frag*", "*.ytdl", "*.temp.*", ".head")
_PROBE_TIMEOUT_S = 120.0

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
    """Why the chosen subtitle track could not be used (the video itself was kept)."""


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
    deadline = time.monotonic() + config.total_time_limit_s
    for attempt in range(1, config.attempts + 1):
        _remove_partials(workdir)
        try:
            return replace(_attempt(url, workdir, config, deadline), attempts=attempt)
        except CurateError as error:
            _remove_partials(workdir)
            error.message = redact_text(error.message)
            error.attempts = attempt  # type: ignore[attr-defined]
            delay = backoff_seconds(attempt, config)
            if not error.is_transient or attempt >= config.attempts or time.monotonic() + delay >= deadline:
                raise
            log.info("%s: attempt %d failed (%s), retrying in %.1f s", video_id, attempt, error, delay)
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def warm_start() -> None:
    """Start the download attempts' fork server now (a long-lived worker calls this when it starts),
    so that its warm-up overlaps the worker's other start-up instead of delaying the first download."""
    prestart(ATTEMPT_MODULE)


def backoff_seconds(attempt: int, config: DownloadConfig, rng: random.Random | None = None) -> float:
    """Jittered exponential backoff after ``attempt`` (1-based): many workers that failed together
    (a rate limit, a flaky server) must not all come back at the same instant."""
    base = min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempt - 1))
    return base * (rng or random).uniform(0.5, 1.0)


def media_limits(config: DownloadConfig) -> MediaLimits:
    """The caps a downloaded video must meet, from the download config."""
    return MediaLimits(config.max_duration_s, config.max_fps, config.max_frame_side, config.max_packets)


def _attempt(url: str, workdir: Path, config: DownloadConfig, deadline: float) -> Downloaded:
    if is_file_url(url):
        return _finish(workdir, fetch_local(url, workdir, config), config)
    EgressPolicy.from_entries(config.allow_hosts).check_url(url)  # refused at once, without a process
    limits = ChildLimits(
        wall_s=min(config.time_limit_s, deadline - time.monotonic()),
        memory_bytes=config.memory_limit_bytes,
        file_bytes=2 * config.max_filesize_bytes + config.max_page_bytes,  # a merge writes the parts' sum
    )
    answer = run_limited(ATTEMPT_MODULE, attempt_request(url, workdir, config), limits)
    return _finish(workdir, attempt_result(answer), config)


# --------------------------------------------------------------------------- after the download


def _finish(workdir: Path, fetched: AttemptResult, config: DownloadConfig) -> Downloaded:
    """Check what the attempt wrote (inside the work dir, an allowed container within the caps) and describe it."""
    video_path = _video_file(workdir, fetched)
    try:
        media = probe(video_path, _PROBE_TIMEOUT_S, media_limits(config))
    except CurateError:
        video_path.unlink(missing_ok=True)
        raise
    subtitle_path, warning = _subtitle_file(workdir, fetched, config)
    info = _info_subset(fetched.info, media)
    info_path = workdir / "video.info.json"
    _write_json(info_path, info)
    choice = fetched.subtitle if subtitle_path is not None else None
    return Downloaded(
        video_path=video_path,
        subtitle_path=subtitle_path,
        subtitle_language=choice[0] if choice else None,
        subtitle_kind=choice[1] if choice else None,
        info_path=info_path,
        info=info,
        media=media,
        attempts=1,
        subtitle_warning=warning,
    )


def _video_file(workdir: Path, fetched: AttemptResult) -> Path:
    """The file the attempt wrote, which must lie inside ``workdir`` (checked, not assumed)."""
    path = Path(fetched.video_path) if fetched.video_path else None
    if path is None or not path.is_file():
        if fetched.announced_too_large:
            raise permanent("too_large", "the server announced more than max_filesize_bytes")
        raise transient("unknown", "yt-dlp finished without writing a video file")
    if not _inside(path, workdir):
        raise permanent("unsafe_path", "yt-dlp wrote outside the work directory")
    return path


def _subtitle_file(workdir: Path, fetched: AttemptResult, config: DownloadConfig) -> tuple[Path | None, str | None]:
    """The subtitle file, when one was chosen, written, non-empty, inside ``workdir`` and within its cap."""
    warning = "; ".join(fetched.warnings) or None
    if fetched.subtitle is None:
        return None, warning
    path = Path(fetched.subtitle_path) if fetched.subtitle_path else None
    problem = _subtitle_problem(path, workdir, config)
    if problem is not None:
        if path is not None and path.is_file() and _inside(path, workdir):
            path.unlink()
        return None, redact_text(warning or f"subtitle track {fetched.subtitle[0]!r} {problem}")
    return path, warning


def _subtitle_problem(path: Path | None, workdir: Path, config: DownloadConfig) -> str | None:
    if path is None or not path.is_file() or not _inside(path, workdir):
        return "was not written"
    size = path.stat().st_size
    if size == 0:
        return "is empty"
    if size > config.max_subtitle_bytes:
        return f"is larger than max_subtitle_bytes={config.max_subtitle_bytes} (subtitle_too_large)"
    return None


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _info_subset(info: dict, media: MediaInfo) -> dict:
    """The JSON-safe fields later stages and the dataset's ``source`` object use; the file's own
    facts (duration, size, codecs) win over the metadata, since they describe what was written."""
    info = dict(info)
    if isinstance(info.get("webpage_url"), str):
        info["webpage_url"] = redact_text(info["webpage_url"])
    info.update(
        duration=round(media.duration, 3), width=media.width, height=media.height, fps=round(media.fps, 3),
        vcodec=media.video_codec, acodec=media.audio_codec or "none",
    )
    return info


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
