"""One download attempt: the only code that talks to the network, run in a limited child process.

yt-dlp runs through its Python API with exactly one extraction per attempt: ``extract_info``
with ``process=False`` gives the metadata, which is enough to refuse a too-long video and to
choose the subtitle track *before* any media byte is fetched; ``process_ie_result`` then
downloads from that same result. :func:`run_attempt` is what :mod:`curate.download` runs in a
child (``python -m curate.download_attempt`` under :mod:`curate.download_limits`), so a
deadline, an address-space limit and a file-size limit hold whatever a server does; inside it
every connection is checked by the egress policy (:mod:`curate.egress`, :mod:`curate.ytdlp_guard`).

Untrusted input never reaches a file name: everything is written under fixed names
(``video.<ext>``, ``video.<lang>.<vtt|srt>``) inside ``workdir``.
"""

from __future__ import annotations

import importlib
import itertools
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.networking import Request
from yt_dlp.networking.exceptions import RequestError
from yt_dlp.utils import determine_ext, determine_protocol

from curate.config import RESERVED_YTDLP_OPTIONS, DownloadConfig
from curate.download_errors import classify_error
from curate.egress import ALLOWED_SCHEMES, EgressPolicy, install_connect_guard
from curate.errors import CurateError, permanent, transient
from curate.expand import entry_index
from curate.jsruntime import js_runtimes
from curate.media_guard import ALLOWED_DEMUXERS, demuxer_of, describe_bytes
from curate.subtitle_tracks import SubtitleKind, choose_subtitle_track, subtitle_format
from curate.ytdlp_guard import BodyCaps, GuardedYoutubeDL

INFO_FIELDS = ("id", "title", "duration", "width", "height", "fps", "extractor", "uploader", "upload_date",
               "license", "webpage_url", "format_id", "vcodec", "acodec")  # fmt: skip
ALLOWED_PROTOCOLS = frozenset({"http", "https", "m3u8", "m3u8_native", "http_dash_segments"})
"""Format protocols yt-dlp downloads natively, through the guarded ``urlopen``."""
HEAD_BYTES = 2 * 1024**2
_MAX_RESOLVE_DEPTH = 3


@dataclass(frozen=True)
class AttemptResult:
    """What a successful attempt hands back across the process boundary (plain, picklable data)."""

    video_path: str | None
    subtitle_path: str | None
    subtitle: tuple[str, SubtitleKind] | None
    warnings: tuple[str, ...]
    info: dict[str, Any]
    announced_too_large: bool


def ydl_params(config: DownloadConfig, workdir: Path) -> dict[str, Any]:
    """The yt-dlp options of one attempt (without logger and hooks, which belong to the attempt)."""
    params: dict[str, Any] = dict(config.extra_options)
    clash = RESERVED_YTDLP_OPTIONS & params.keys()
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
        "updatetime": False, "writesubtitles": False, "writeautomaticsub": False, "cachedir": False,
        "external_downloader": {"default": "native"}, "hls_prefer_native": True,
    })  # fmt: skip
    if config.format:
        params["format"] = config.format
    else:
        params["format"] = "bv*+ba/b"
        params["format_sort"] = [f"+res:{config.target_short_side}", "vcodec:h264", "ext:mp4:m4a", "+size", "+br"]
    optional = {"cookiefile": config.cookies and str(config.cookies), "proxy": config.proxy,
                "ratelimit": config.rate_limit_bytes}  # fmt: skip
    params.update({key: value for key, value in optional.items() if value is not None})
    params.setdefault("js_runtimes", js_runtimes())  # YouTube's challenges (curate.jsruntime)
    return params


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


class _SizeLimit:
    """A progress hook: stop a download as soon as it passes max_filesize_bytes (fragments included)."""

    def __init__(self, config: DownloadConfig) -> None:
        self.config = config

    def __call__(self, status: dict) -> None:
        size = max(status.get("downloaded_bytes") or 0, status.get("total_bytes") or 0)
        if status.get("status") == "downloading" and size > self.config.max_filesize_bytes:
            raise permanent("too_large", f"{size} bytes > max_filesize_bytes={self.config.max_filesize_bytes}")


def attempt_request(url: str, workdir: Path, config: DownloadConfig) -> dict[str, Any]:
    """The JSON request :func:`curate.download_limits.run_limited` hands this module's child."""
    return {"url": url, "workdir": str(workdir), "config": config.model_dump(mode="json"),
            "ie_key": extractor_key(url, config)}  # fmt: skip


def extractor_key(url: str, config: DownloadConfig) -> str | None:
    """The yt-dlp extractor that will take ``url`` (the first suitable one, as yt-dlp picks it).

    Finding it compiles the URL patterns of ~1,900 extractors, about 2 s of CPU; a long-lived
    caller (a worker) pays that once, while each attempt's fresh child would pay it every time.
    """
    if "allowed_extractors" in config.extra_options:
        return None
    return next((ie.ie_key() for ie in gen_extractor_classes() if ie._ENABLED and ie.suitable(url)), None)


def attempt_result(answer: dict[str, Any]) -> AttemptResult:
    """The child's JSON answer back as an :class:`AttemptResult`."""
    subtitle = tuple(answer["subtitle"]) if answer.get("subtitle") else None
    return AttemptResult(**{**answer, "subtitle": subtitle, "warnings": tuple(answer.get("warnings") or ())})


def warm_up(media: bool = True) -> None:
    """One-time work every attempt would otherwise repeat after the fork: import every extractor
    module (the generic extractor's embed search imports all ~900 lazily, ~0.35 s per attempt), build
    a YoutubeDL and its request director (TLS context, CA certificates), and (``media``) import PyAV
    for the head probe (~0.27 s). The zygote calls this once before it forks anything; it makes no
    request. A page listing's zygote passes ``media=False``: it never probes media."""
    importlib.import_module("yt_dlp.extractor._extractors")
    importlib.import_module("_strptime")
    if media:
        importlib.import_module("av")
    with tempfile.TemporaryDirectory() as workdir:
        config = DownloadConfig()
        ydl = GuardedYoutubeDL(
            ydl_params(config, Path(workdir)), policy=EgressPolicy.from_entries([]),
            caps=BodyCaps(page=config.max_page_bytes, stream=config.max_filesize_bytes), subtitle_bytes=1,
        )  # fmt: skip
        with ydl:
            ydl._request_director  # noqa: B018 - a cached property: building it is the point
            _compile_extractor_patterns(ydl)


def _compile_extractor_patterns(ydl: Any) -> None:
    """Compile every extractor's URL and embed patterns, as yt-dlp does lazily on first use (and caches
    on the class): a URL that no named extractor takes (every generic page) is matched against all ~1,800
    ``_VALID_URL`` patterns, then the generic extractor searches the page with every extractor's embed
    patterns: ~0.9 CPU-s that each forked attempt would otherwise repeat. Both run here on an empty page,
    so nothing is found and no request is made."""
    probe = "https://warm-up.invalid/"
    for ie in ydl._ies.values():
        ie.suitable(probe)
    ydl.get_info_extractor("Generic")._extract_embeds(probe, "")


def handle_request(request: dict[str, Any]) -> dict[str, Any]:
    """The forked child's entry (:func:`curate.download_limits.run_limited`): one attempt, as JSON-ready data."""
    config = DownloadConfig.model_validate(request["config"])
    return asdict(run_attempt(request["url"], request["workdir"], config, request.get("ie_key")))


def run_attempt(url: str, workdir: str, config: DownloadConfig, ie_key: str | None = None) -> AttemptResult:
    """Extract and download ``url`` into ``workdir``; every failure comes out as a classified CurateError."""
    policy = EgressPolicy.from_entries(config.allow_hosts)
    install_connect_guard(policy, [h for h in [_proxy_host(config.proxy)] if h])
    captured = _CapturedLog()
    params = ydl_params(config, Path(workdir)) | {"logger": captured, "progress_hooks": [_SizeLimit(config)]}
    caps = BodyCaps(page=config.max_page_bytes, stream=config.max_filesize_bytes)
    try:
        with GuardedYoutubeDL(params, policy=policy, caps=caps, subtitle_bytes=config.max_subtitle_bytes) as ydl:
            info = _extract(ydl, url, ie_key)
            _keep_allowed_formats(info)
            _fill_unknown_duration(ydl, info, Path(workdir), config)
            _check_before_download(info, config)
            choice = _request_subtitles(ydl, info, config.subtitle_languages)
            result = ydl.process_ie_result(info, download=True)
            warnings = tuple(ydl.subtitle_warnings)
    except CurateError:
        raise
    except Exception as exc:  # noqa: BLE001 - yt-dlp and its libraries raise anything; all of it is classified
        raise classify_error(exc) from exc
    return _result(result, choice, warnings, captured)


def _proxy_host(proxy: str | None) -> str | None:
    """The configured proxy's host: the one non-public address an attempt may always connect to."""
    if not proxy:
        return None
    return urlsplit(proxy if "://" in proxy else f"http://{proxy}").hostname


def _result(result: dict, choice: tuple[str, SubtitleKind] | None, warnings: tuple[str, ...], captured: _CapturedLog) -> AttemptResult:
    downloads = result.get("requested_downloads") or []
    video = downloads[0].get("filepath") if downloads else None
    subtitle = ((result.get("requested_subtitles") or {}).get(choice[0]) or {}).get("filepath") if choice else None
    info = {key: _json_scalar(result.get(key)) for key in INFO_FIELDS}
    return AttemptResult(video, subtitle, choice, warnings, info, captured.mentions(r"larger than max-filesize"))


def _json_scalar(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:1000]


# --------------------------------------------------------------------------- extraction


def _extract(ydl: GuardedYoutubeDL, url: str, ie_key: str | None) -> dict:
    """The single extraction, reduced to one video (a one-entry playlist or a link to follow)."""
    info = ydl.extract_info(url, download=False, process=False, ie_key=ie_key)
    for _ in range(_MAX_RESOLVE_DEPTH):
        kind = info.get("_type", "video")
        if kind in ("playlist", "multi_video"):
            info = _single_entry(info, entry_index(url))
        elif kind in ("url", "url_transparent"):
            info = _follow(ydl, info)
        else:
            return info
    raise permanent("unsupported_url", f"no video after following {_MAX_RESOLVE_DEPTH} redirections")


def _single_entry(playlist: dict, index: int | None = None) -> dict:
    """A page that wraps one video is that video; several videos are not one video, unless the URL
    names one of them (``#entry=N``: how :mod:`curate.expand` lists the videos embedded in one page)."""
    entries = playlist.get("entries") or []
    start, stop = (index - 1, index) if index is not None else (0, 2)
    first = list(itertools.islice(iter(entries), start, stop)) if not hasattr(entries, "getslice") else entries.getslice(start, stop)
    if index is not None and not first:
        raise permanent("playlist", f"the page has no entry {index}")
    if len(first) != 1:
        raise permanent("playlist", f"the URL holds {'no' if not first else 'several'} videos, not one")
    if not isinstance(first[0], dict):
        raise permanent("playlist", "the URL's only entry is not a video")
    entry = dict(first[0])
    for key in ("extractor", "extractor_key", "webpage_url", "webpage_url_basename", "webpage_url_domain",
                "original_url"):  # fmt: skip
        entry.setdefault(key, playlist.get(key))
    return entry


def _follow(ydl: GuardedYoutubeDL, link: dict) -> dict:
    """A page that only links to the video (an embed): extract the target, keeping the page's fields
    for url_transparent as yt-dlp itself does."""
    target = ydl.extract_info(link["url"], download=False, process=False, ie_key=link.get("ie_key"))
    if link.get("_type") == "url_transparent":
        skip = {"_type", "url", "id", "extractor", "extractor_key", "ie_key"}
        target = {**target, **{k: v for k, v in link.items() if v is not None and k not in skip}}
    return target


def _keep_allowed_formats(info: dict) -> None:
    """Drop formats yt-dlp could only fetch outside the policy (ftp, rtmp, file, ffmpeg-only protocols),
    so the format choice falls on one it may fetch; none left is a permanent refusal."""
    formats = info.get("formats")
    candidates = formats if isinstance(formats, list) else [info]
    allowed = [f for f in candidates if isinstance(f, dict) and _format_allowed(f)]
    if not allowed:
        schemes = sorted({str(f.get("url", "")).partition(":")[0] for f in candidates if isinstance(f, dict)})
        raise permanent("unsupported_scheme", f"no format of the video can be fetched over http(s) (found: {', '.join(schemes)})")
    if isinstance(formats, list):
        info["formats"] = allowed


def _format_allowed(entry: dict) -> bool:
    url = entry.get("url")
    if not isinstance(url, str) or url.partition(":")[0].lower() not in ALLOWED_SCHEMES:
        return False
    return determine_protocol(entry) in ALLOWED_PROTOCOLS


def _check_before_download(info: dict, config: DownloadConfig) -> None:
    """Refuse what must not be downloaded, while refusing still costs nothing."""
    live_status = info.get("live_status") or ("is_live" if info.get("is_live") else None)
    if live_status in ("is_live", "is_upcoming"):
        # A stream that has not ended has no fixed length; its recording usually appears later.
        raise transient("live" if live_status == "is_live" else "upcoming", f"the video is {live_status}")
    duration = info.get("duration")
    if isinstance(duration, int | float) and duration > config.max_duration_s:
        raise permanent("too_long", f"{duration:.0f} s > max_duration_s={config.max_duration_s:g}")


def _request_subtitles(ydl: GuardedYoutubeDL, info: dict, languages: list[str]) -> tuple[str, SubtitleKind] | None:
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


# --------------------------------------------------------------------------- the duration before the download


def _fill_unknown_duration(ydl: GuardedYoutubeDL, info: dict, workdir: Path, config: DownloadConfig) -> None:
    """Plain media links and HTML5 pages carry no duration: read it from the media's first bytes (the
    header of a faststart mp4 or an mkv), fetched through the guarded ``urlopen`` and probed locally,
    so max_duration_s holds before the download and a file that is no allowed container is refused now."""
    if info.get("duration") is not None:
        return
    target = _direct_http_format(info)
    head = _fetch_head(ydl, target) if target is not None else None
    if head is None:
        return
    demuxer = demuxer_of(head)
    if demuxer is None:
        raise permanent("invalid_media", f"the media URL serves no container we accept ({', '.join(ALLOWED_DEMUXERS)}): "
                                         f"{describe_bytes(head)}")
    duration = _probe_head(head, demuxer, workdir)
    if duration is not None:
        info["duration"] = duration


def _direct_http_format(info: dict) -> dict | None:
    for entry in [*(info.get("formats") or []), info]:
        url = entry.get("url")
        if isinstance(url, str) and re.match(r"https?://", url) and entry.get("protocol") in (None, "http", "https"):
            if determine_ext(url) not in ("m3u8", "mpd", "f4m", "ism"):
                return entry
    return None


def _fetch_head(ydl: GuardedYoutubeDL, entry: dict) -> bytes | None:
    """The first HEAD_BYTES of the media, or None when the server does not give them (the download
    itself will then say why)."""
    headers = {**(entry.get("http_headers") or {}), "Range": f"bytes=0-{HEAD_BYTES - 1}"}
    try:
        with ydl.urlopen(Request(entry["url"], headers=headers)) as response:
            chunks, size = [], 0
            while size < HEAD_BYTES and (chunk := response.read(min(256 * 1024, HEAD_BYTES - size))):
                chunks.append(chunk)
                size += len(chunk)
    except (RequestError, OSError):
        return None
    return b"".join(chunks)


def _probe_head(head: bytes, demuxer: str, workdir: Path) -> float | None:
    """The duration the head's container header states, read by PyAV in this attempt's child.

    Only the duration guard uses it, so PyAV's FFmpeg (not the system one that cuts the clips) is
    exact enough, and it costs a few ms where an ffprobe start costs ~70 ms of CPU. Same input
    rules as the ffprobe runs: this one local file, the sniffed demuxer forced. A crash or a hang
    on hostile bytes ends only this forked child, within the attempt's deadline."""
    import av  # the download zygote imported it before forking (warm_up); imported here, it costs no listing child

    path = workdir / ".head"
    path.write_bytes(head)
    try:
        with av.open(f"file:{path}", format=demuxer, options={"protocol_whitelist": "file"}) as container:
            duration = container.duration
    except (av.FFmpegError, OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)
    return duration / av.time_base if duration is not None and duration > 0 else None
