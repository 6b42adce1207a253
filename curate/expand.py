"""Playlists, channels and multi-video pages: one source URL -> one source row per video it holds.

Users paste what they see: a YouTube playlist or channel, a feed, a page with several
``<video>`` elements. The download stage takes exactly one video per row (and fails such a
URL with the code ``playlist``), so a URL is expanded first: :func:`expand_source` lists the
videos the URL holds with a *flat* extraction (yt-dlp's ``extract_flat``: one request per page
of the list, never one per video) and returns one pending :class:`~curate.sources.SourceRow`
per entry, at most ``sources.max_entries_per_source``. Each entry is then an ordinary row:
its own ledger row, deterministic id, download (under the egress policy, like any row) and
clips. A URL that is one video comes back unexpanded, and a YouTube video URL does so
without a request.

Entry URLs: an entry that has its own page (a YouTube video, a feed item's link) is that
page's URL, normalised like any source URL, so the same video listed twice, in two
playlists or also on its own, dedupes by URL and by id. An entry embedded in the listing
page itself (the ``<video>`` elements of one HTML page) has no URL of its own and becomes the
page's URL with the fragment ``#entry=N`` (1-based, yt-dlp's ``playlist_index``), which the
download stage resolves to that entry (:func:`entry_index`); its id is the page's id with
``-eN``. Both are stable across reruns, so entries already done are skipped.

The listing runs like a download attempt: refused at once when the egress policy refuses
the URL, else in a limited child process (:mod:`curate.download_limits`) whose every
request and connection is held to the policy (:mod:`curate.egress`, :mod:`curate.ytdlp_guard`);
each entry URL is checked against the policy too, and a refused entry comes back as a
failed row rather than being dropped.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from curate.config import CurateConfig, DownloadConfig
from curate.errors import CurateError, permanent
from curate.sources import SourceRow, normalize_url, validate_url, video_id_for, youtube_id

ENTRY_FRAGMENT = re.compile(r"^entry=([1-9][0-9]{0,5})$")
_MAX_RESOLVE_DEPTH = 3
_LISTED_KINDS = ("playlist", "multi_video")


@dataclass(frozen=True)
class Expansion:
    """What one source URL holds.

    ``entries`` is ``[source]`` itself for a single video; for a list, one row per entry (pending,
    or failed/skipped with a code), ``listed`` the entries seen (at most the cap plus one, to know
    that the cap cut the list), ``capped`` whether entries were left out by the cap, and
    ``already_done`` the entries ``done`` said a previous run finished (left out of ``entries``).
    """

    source: SourceRow
    entries: list[SourceRow]
    expanded: bool
    listed: int = 0
    capped: bool = False
    already_done: int = 0

    def summary(self) -> str:
        """The source row's status text: how many entries the URL expanded into."""
        if not self.expanded:
            return "one video"
        text = f"expanded into {len(self.entries) + self.already_done} entries"
        if self.already_done:
            text += f" ({self.already_done} already done)"
        if self.capped:
            text += " (capped at sources.max_entries_per_source; the list holds more)"
        return text


_MEDIA_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".flv", ".ts", ".avi", ".m3u8", ".mpd")


def is_single_video_url(url: str) -> bool:
    """URLs known to hold one video without asking the server: a YouTube video, a local file, a link to
    a media file (listing them would cost every such row a second request, on every rerun)."""
    parts = urlsplit(url)
    if youtube_id(url) is not None or parts.scheme.lower() == "file":
        return True
    return parts.path.lower().endswith(_MEDIA_SUFFIXES)


def expand_source(
    source: SourceRow, config: CurateConfig, done: Callable[[str], bool] | None = None
) -> Expansion:
    """The videos ``source`` holds, as source rows; raises a classified CurateError when listing fails.

    ``done(url)`` says whether a previous run finished an entry (e.g. ``Ledger.done``); those
    entries are counted, not returned. Rows that are not pending, and single videos, come back
    as ``[source]``.
    """
    if source.status != "pending" or is_single_video_url(source.url):
        return Expansion(source, [source], expanded=False)
    from curate.egress import EgressPolicy

    EgressPolicy.from_entries(config.download.allow_hosts).check_url(source.url)
    listing = list_entries(source.url, config.download, config.sources.max_entries_per_source)
    if listing is None:
        return Expansion(source, [source], expanded=False)
    return _expansion(source, listing, config, done)


def list_entries(url: str, config: DownloadConfig, cap: int) -> dict[str, Any] | None:
    """``{"page": url, "entries": [...]}`` of at most ``cap + 1`` flat entries, or None for one video.

    Runs :func:`run_listing` in a limited child process, as a download attempt runs.
    """
    from curate.download_limits import ChildLimits, run_limited

    limits = ChildLimits(
        wall_s=config.time_limit_s, memory_bytes=config.memory_limit_bytes, file_bytes=config.max_page_bytes
    )
    # The scratch directory is made and removed here: a child killed at its limits (or ending with
    # os._exit, as forked children do) never runs its own clean-up.
    with tempfile.TemporaryDirectory(prefix="expand-") as scratch:
        request = {"url": url, "config": config.model_dump(mode="json"), "cap": cap, "scratch": scratch}
        return run_limited("curate.expand", request, limits)


def entry_index(url: str) -> int | None:
    """N when ``url`` names the N-th entry of a page (``#entry=N``), else None."""
    match = ENTRY_FRAGMENT.match(urlsplit(url).fragment)
    return int(match[1]) if match else None


# --------------------------------------------------------------------------- rows


def _expansion(
    source: SourceRow, listing: dict[str, Any], config: CurateConfig, done: Callable[[str], bool] | None
) -> Expansion:
    cap = config.sources.max_entries_per_source
    listed = listing["entries"]
    policy_check = _policy_check(config.download)
    rows = [_entry_row(source, listing["page"], entry, policy_check) for entry in listed[:cap]]
    rows = _dedupe(rows)
    finished = [r for r in rows if r.status == "pending" and done is not None and done(r.url)]
    kept = [r for r in rows if r not in finished]
    return Expansion(source, kept, expanded=True, listed=len(listed), capped=len(listed) > cap, already_done=len(finished))


def _entry_row(source: SourceRow, page: str, entry: dict[str, Any], check: Callable[[str], str | None]) -> SourceRow:
    """One entry as a source row (failed with a code when its URL is unusable or refused)."""
    index = int(entry["index"])
    own = entry.get("url")
    if own:
        url = own.strip()
        problem = validate_url(url)
        if problem is None:
            url = normalize_url(url)
            video_id = video_id_for(url)
            problem = check(url)
            if problem is None:
                return SourceRow(url, video_id, "pending", None, None, source.row)
            return SourceRow(url, video_id, "failed", "egress_refused", f"entry {index} of {source.url}: {problem}", source.row)
        return SourceRow(url, f"{source.video_id}-e{index}", "failed", "invalid_url",
                         f"entry {index} of {source.url}: {problem}", source.row)  # fmt: skip
    url = urlunsplit(urlsplit(page)._replace(fragment=f"entry={index}"))
    return SourceRow(url, f"{source.video_id}-e{index}", "pending", None, None, source.row)


def _policy_check(config: DownloadConfig) -> Callable[[str], str | None]:
    from curate.egress import EgressPolicy

    policy = EgressPolicy.from_entries(config.allow_hosts)

    def check(url: str) -> str | None:
        try:
            policy.check_url(url)
        except CurateError as error:
            return error.message
        return None

    return check


def _dedupe(rows: Iterable[SourceRow]) -> list[SourceRow]:
    """A video listed twice in one list keeps its first row; later ones are skipped duplicates."""
    seen_urls: dict[str, int] = {}
    seen_ids: set[str] = set()
    out = []
    for number, row in enumerate(rows, start=1):
        if row.status == "pending" and (row.url in seen_urls or row.video_id in seen_ids):
            row = replace(row, status="skipped", error_code="duplicate", error=f"entry {number} repeats an earlier entry")
        elif row.status == "pending":
            seen_urls[row.url] = number
            seen_ids.add(row.video_id)
        out.append(row)
    return out


# --------------------------------------------------------------------------- in the child


def run_listing(url: str, config: DownloadConfig, cap: int, scratch: Path) -> dict[str, Any] | None:
    """The flat listing of ``url`` under the egress policy (this process's connections included);
    yt-dlp's files go under ``scratch``, which the caller removes."""
    from curate.download_attempt import _proxy_host, ydl_params
    from curate.download_errors import classify_error
    from curate.egress import EgressPolicy, install_connect_guard
    from curate.ytdlp_guard import BodyCaps, GuardedYoutubeDL

    policy = EgressPolicy.from_entries(config.allow_hosts)
    install_connect_guard(policy, [h for h in [_proxy_host(config.proxy)] if h])
    caps = BodyCaps(page=config.max_page_bytes, stream=config.max_page_bytes)
    params = ydl_params(config, Path(scratch)) | {"noplaylist": False, "extract_flat": "in_playlist"}
    try:
        with GuardedYoutubeDL(params, policy=policy, caps=caps, subtitle_bytes=config.max_subtitle_bytes) as ydl:
            return _listing(ydl, url, cap)
    except CurateError:
        raise
    except Exception as exc:  # noqa: BLE001 - yt-dlp raises anything; classified like a download's failure
        raise classify_error(exc) from exc


def _listing(ydl: Any, url: str, cap: int) -> dict[str, Any] | None:
    info = ydl.extract_info(url, download=False, process=False)
    for _ in range(_MAX_RESOLVE_DEPTH):
        kind = info.get("_type", "video")
        if kind in _LISTED_KINDS:
            page = info.get("webpage_url") or info.get("original_url") or url
            entries = itertools.islice(iter(info.get("entries") or []), cap + 1)
            flat = [_flat(e, i) for i, e in enumerate(entries, start=1) if isinstance(e, dict)]
            # A page that wraps one video is that video: the download stage takes it as is.
            return {"page": page, "entries": flat} if len(flat) > 1 else None
        if kind not in ("url", "url_transparent"):
            return None
        info = ydl.extract_info(info["url"], download=False, process=False, ie_key=info.get("ie_key"))
    raise permanent("unsupported_url", f"no video or list after following {_MAX_RESOLVE_DEPTH} redirections")


def _flat(entry: dict[str, Any], index: int) -> dict[str, Any]:
    """The JSON-safe part of one entry: its own URL when it has a page, its id and title."""
    own = entry.get("url") if entry.get("_type") in ("url", "url_transparent") else entry.get("webpage_url")
    own = own if isinstance(own, str) and re.match(r"https?://", own) else None
    return {"index": index, "url": own, "id": _text(entry.get("id")), "title": _text(entry.get("title"))}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


def warm_up() -> None:
    """The zygote's one-time set-up, as for a download attempt (every extractor imported, a YoutubeDL's
    request director built): without it each forked listing paid ~0.9 CPU-s for what a warm one does in 0.1."""
    from curate.download_attempt import warm_up as warm_download

    warm_download(media=False)


def handle_request(request: dict[str, Any]) -> dict[str, Any] | None:
    """The forked child's entry (:func:`curate.download_limits.run_limited`): one listing, as JSON-ready data."""
    config = DownloadConfig.model_validate(request["config"])
    return run_listing(request["url"], config, int(request["cap"]), Path(request["scratch"]))
