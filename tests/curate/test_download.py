"""The Download stage against real yt-dlp, a real loopback HTTP server and real ffmpeg."""

from __future__ import annotations

import http.server
import io
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yt_dlp
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import DownloadError, ExtractorError

from curate.config import DownloadConfig
from curate.demo.server import serve_directory
from curate.download import (
    backoff_seconds,
    choose_subtitle_track,
    classify_error,
    download,
    subtitle_format,
    ydl_params,
)
from curate.errors import CurateError

network = pytest.mark.timeout(60, func_only=True)
LOOPBACK = ["127.0.0.1"]
"""The test servers listen on loopback, which downloads may only reach when download.allow_hosts says so."""


def _loopback(**options: object) -> DownloadConfig:
    return DownloadConfig(**{"allow_hosts": LOOPBACK, **options})


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _fail(url: str, workdir: Path, sleeps: list[float] | None = None, **options: object) -> CurateError:
    with pytest.raises(CurateError) as caught:
        download(url, "vid", workdir, _loopback(**options), sleep=(sleeps if sleeps is not None else []).append)
    return caught.value


@contextmanager
def _serve_handler(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site(tmp_path: Path, demo_corpus: tuple[Path, dict]) -> Iterator[tuple[Path, str]]:
    """A served scratch directory seeded with a few corpus files, for pages the corpus lacks."""
    root = tmp_path / "site"
    root.mkdir()
    for name in ("silent.mp4", "lecture.en.vtt"):
        shutil.copyfile(demo_corpus[0] / name, root / name)
    with serve_directory(root) as base_url:
        yield root, base_url


def _page(root: Path, name: str, body: str, title: str = "page") -> str:
    (root / name).write_text(f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>")
    return name


# --------------------------------------------------------------------------- successful downloads


@network
def test_direct_mp4_without_audio(demo_server: str, tmp_path: Path) -> None:
    result = download(demo_server + "silent.mp4", "silent", tmp_path / "w", _loopback(attempts=1))
    assert result.video_path == tmp_path / "w" / "video.mp4"
    assert result.subtitle_path is None and result.subtitle_kind is None and result.attempts == 1
    assert result.info["duration"] == pytest.approx(40.0) and result.info["acodec"] == "none"
    assert (result.info["width"], result.info["height"], result.info["vcodec"]) == (640, 360, "h264")
    assert json.loads(result.info_path.read_text()) == result.info
    assert _tree(tmp_path / "w") == {"video.mp4", "video.info.json"}


@network
def test_page_with_manual_vtt(demo_corpus: tuple[Path, dict], demo_server: str, tmp_path: Path) -> None:
    result = download(demo_server + "lecture.html", "lecture", tmp_path, _loopback(attempts=1))
    assert (result.subtitle_language, result.subtitle_kind) == ("en", "manual")
    assert result.subtitle_path == tmp_path / "video.en.vtt"
    assert result.subtitle_path.read_bytes() == (demo_corpus[0] / "lecture.en.vtt").read_bytes()
    assert result.info["extractor"] == "html5" and result.info["acodec"] == "aac"
    assert result.info["duration"] == pytest.approx(150.0) and result.subtitle_warning is None


@network
def test_page_with_srt_track(demo_server: str, tmp_path: Path) -> None:
    result = download(demo_server + "cooking.html", "cooking", tmp_path, _loopback(attempts=1))
    assert result.subtitle_path == tmp_path / "video.en.srt"
    assert result.subtitle_path.read_text().startswith("1\n00:00:01,000 --> ")
    assert _tree(tmp_path) == {"video.mp4", "video.en.srt", "video.info.json"}


@network
def test_missing_subtitle_file_keeps_the_video(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    page = _page(root, "p.html", '<video><source src="silent.mp4" type="video/mp4">'
                                 '<track kind="subtitles" srclang="en" src="gone.vtt"></video>')  # fmt: skip
    result = download(base + page, "p", tmp_path / "w", _loopback(attempts=1))
    assert result.subtitle_path is None and result.video_path.is_file()
    assert "http_404" in (result.subtitle_warning or "")


# --------------------------------------------------------------------------- choosing what to fetch


def test_manual_subtitles_beat_automatic_captions() -> None:
    manual = {"de": [{"ext": "vtt", "url": "u"}], "en-GB": [{"ext": "srt", "url": "u"}]}
    auto = {"en": [{"ext": "json3", "url": "u"}, {"ext": "vtt", "url": "u"}]}
    assert choose_subtitle_track(manual, auto, ["en", "en-GB"]) == ("en-GB", "manual")
    assert choose_subtitle_track({"de": manual["de"]}, auto, ["en", "en.*"]) == ("en", "automatic")
    assert choose_subtitle_track(manual, auto, ["fr"]) is None


def test_subtitle_preference_order_and_regexes() -> None:
    vtt = [{"ext": "vtt", "url": "u"}]
    tracks = {"en-US": vtt, "en-GB": vtt, "fr": vtt}
    assert choose_subtitle_track(tracks, {}, ["en", "en-GB", "en.*"]) == ("en-GB", "manual")
    assert choose_subtitle_track(tracks, {}, ["de", "en.*"]) == ("en-US", "manual")
    assert choose_subtitle_track(tracks, {}, ["FR"]) == ("fr", "manual")
    assert choose_subtitle_track(tracks, {}, ["en[", "fr"]) == ("fr", "manual")  # a broken regex is a literal


def test_subtitle_tracks_we_cannot_use_are_skipped() -> None:
    assert choose_subtitle_track({"en": [{"ext": "ttml", "url": "u"}]}, {}, ["en"]) is None
    assert choose_subtitle_track({"../../en": [{"ext": "vtt", "url": "u"}]}, {}, [".*"]) is None
    by_url = {"en": [{"url": "http://h/a.srt"}, {"url": "http://h/a.vtt?x=1"}]}
    assert choose_subtitle_track(by_url, {}, ["en"]) == ("en", "manual")
    assert subtitle_format(by_url["en"]) == "vtt" and subtitle_format([{"url": "http://h/b.srt"}]) == "srt"


def _format(fid: str, width: int | None, height: int | None, vcodec: str, acodec: str, ext: str, size: float) -> dict:
    return {"format_id": fid, "url": f"https://media.invalid/{fid}.{ext}", "width": width, "height": height,
            "vcodec": vcodec, "acodec": acodec, "ext": ext, "filesize": size}  # fmt: skip


FORMATS = [
    _format("160", 256, 144, "avc1.4d400c", "none", "mp4", 1e6),
    _format("133", 426, 240, "avc1.4d4015", "none", "mp4", 2e6),
    _format("243", 640, 360, "vp9", "none", "webm", 3e6),
    _format("134", 640, 360, "avc1.4d401e", "none", "mp4", 4e6),
    _format("136", 1280, 720, "avc1.4d401f", "none", "mp4", 10e6),
    _format("137", 1920, 1080, "avc1.640028", "none", "mp4", 20e6),
    _format("251", None, None, "none", "opus", "webm", 1.1e6),
    _format("140", None, None, "none", "mp4a.40.2", "m4a", 1e6),
    _format("18", 640, 360, "avc1.42001E", "mp4a.40.2", "mp4", 6e6),
]


class _Silent:
    def debug(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...


@pytest.mark.parametrize(("target", "expected"), [(64, "160+140"), (256, "134+140"), (360, "134+140"),
                                                  (361, "136+140"), (720, "136+140"), (4000, "137+140")])  # fmt: skip
def test_format_choice_is_smallest_at_or_above_the_target(tmp_path: Path, target: int, expected: str) -> None:
    """yt-dlp's own selector on a synthetic YouTube-like format list (download=False: no network)."""
    params = ydl_params(DownloadConfig(target_short_side=target), tmp_path) | {"logger": _Silent()}
    info = {"id": "abc", "title": "t", "formats": [dict(f) for f in FORMATS], "extractor": "x",
            "extractor_key": "X", "webpage_url": "https://example.invalid/"}  # fmt: skip
    with yt_dlp.YoutubeDL(params) as ydl:
        assert ydl.process_ie_result(info, download=False)["format_id"] == expected
    portrait = [dict(f, width=f["height"], height=f["width"]) for f in FORMATS]  # short side is the width
    with yt_dlp.YoutubeDL(params) as ydl:
        assert ydl.process_ie_result(dict(info, formats=portrait), download=False)["format_id"] == expected


def test_options_pass_through_but_cannot_move_files(tmp_path: Path) -> None:
    config = DownloadConfig(cookies=tmp_path / "c.txt", proxy="http://proxy.invalid:3128", rate_limit_bytes=10_000,
                            extra_options={"geo_bypass": False}, format="best")  # fmt: skip
    params = ydl_params(config, tmp_path)
    assert params["cookiefile"] == str(tmp_path / "c.txt") and params["proxy"] == "http://proxy.invalid:3128"
    assert params["ratelimit"] == 10_000 and params["geo_bypass"] is False
    assert params["format"] == "best" and "format_sort" not in params
    assert (params["retries"], params["extractor_retries"], params["fragment_retries"]) == (1, 0, 3)
    with pytest.raises(ValueError, match="outtmpl"):
        ydl_params(DownloadConfig(extra_options={"outtmpl": "/tmp/%(title)s"}), tmp_path)


# --------------------------------------------------------------------------- classification


def _http_error(status: int) -> HTTPError:
    return HTTPError(Response(io.BytesIO(b""), "https://example.invalid/", {}, status=status))


def _wrapped(cause: Exception, message: str) -> DownloadError:
    """How yt-dlp reports a failure: DownloadError around ExtractorError around the cause."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise ExtractorError(message, cause=exc, expected=True) from exc
    except ExtractorError as outer:
        return DownloadError(f"ERROR: {outer}", outer.exc_info)


@pytest.mark.parametrize(("status", "code", "error_class"), [
    (404, "http_404", "permanent"), (410, "http_410", "permanent"), (451, "http_4xx", "permanent"),
    (403, "http_403", "transient"), (429, "rate_limited", "transient"), (503, "http_5xx", "transient"),
])  # fmt: skip
def test_http_status_classification(status: int, code: str, error_class: str) -> None:
    error = classify_error(_wrapped(_http_error(status), "Unable to download webpage"))
    assert (error.code, error.error_class) == (code, error_class)
    assert not error.message.startswith("ERROR")


@pytest.mark.parametrize(("message", "code", "error_class"), [
    ("[youtube] abc: Private video. Sign in if you've been granted access", "private", "permanent"),
    ("[youtube] abc: Sign in to confirm you\u2019re not a bot", "bot_check", "transient"),
    ("[youtube] abc: Video unavailable. This video has been removed by the uploader", "unavailable", "permanent"),
    ("[youtube] abc: Sign in to confirm your age", "login_required", "permanent"),
    ("[generic] x: No video formats found!", "no_video", "permanent"),
    ("Unsupported URL: https://example.invalid/", "unsupported_url", "permanent"),
    ("unable to download video data: HTTP Error 500: Internal Server Error", "http_5xx", "transient"),
    ("Read timed out. (read timeout=1.0)", "timeout", "transient"),
    ("something nobody has seen before", "unknown", "transient"),
])  # fmt: skip
def test_message_classification(message: str, code: str, error_class: str) -> None:
    error = classify_error(DownloadError(f"ERROR: {message}"))
    assert (error.code, error.error_class) == (code, error_class)


def test_typed_causes_win_over_messages() -> None:
    assert classify_error(_wrapped(TimeoutError("timed out"), "Video unavailable")).code == "timeout"
    assert classify_error(_wrapped(TransportError("Connection refused"), "x")).code == "connection"
    assert classify_error(_wrapped(ConnectionResetError(104, "reset"), "x")).is_transient


def test_backoff_is_exponential_jittered_and_capped() -> None:
    config = DownloadConfig(backoff_base_s=2.0, backoff_max_s=5.0)
    for attempt, ceiling in ((1, 2.0), (2, 4.0), (3, 5.0), (9, 5.0)):
        delays = [backoff_seconds(attempt, config) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


# --------------------------------------------------------------------------- failures


@network
def test_404_is_permanent_and_not_retried(demo_server: str, tmp_path: Path) -> None:
    sleeps: list[float] = []
    error = _fail(demo_server + "missing.mp4", tmp_path, sleeps, attempts=3)
    assert (error.code, error.error_class, error.attempts, sleeps) == ("http_404", "permanent", 1, [])


@network
def test_server_that_never_answers_times_out_transiently(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts TCP connections (kernel backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/video.mp4"
        sleeps: list[float] = []
        started = time.monotonic()
        error = _fail(url, tmp_path, sleeps, socket_timeout_s=1, attempts=2, backoff_base_s=2.0)
    assert (error.code, error.error_class, error.attempts) == ("timeout", "transient", 2)
    assert time.monotonic() - started < 10
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 2.0


@network
def test_server_error_is_retried_with_backoff(tmp_path: Path) -> None:
    requests: list[str] = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            requests.append(self.path)
            self.send_error(500, "broken")

        def log_message(self, *args: object) -> None: ...

    sleeps: list[float] = []
    with _serve_handler(Failing) as base:
        error = _fail(base + "v.mp4", tmp_path, sleeps, attempts=3, backoff_base_s=1.0, backoff_max_s=60)
    assert (error.code, error.error_class, error.attempts) == ("http_5xx", "transient", 3)
    assert len(requests) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


@network
def test_truncated_mp4_is_invalid_media(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    data = (root / "silent.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) * 2 // 5])  # faststart: the index survives, the tail not
    error = _fail(base + "cut.mp4", tmp_path / "w", attempts=2)
    assert (error.code, error.error_class, error.attempts) == ("invalid_media", "permanent", 1)


@network
def test_text_served_as_mp4_is_rejected(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    (root / "fake.mp4").write_text("this is not a video\n" * 100)
    error = _fail(base + "fake.mp4", tmp_path / "w")
    assert error.code in ("invalid_media", "no_video_stream") and error.error_class == "permanent"


@network
def test_audio_only_file_has_no_video_stream(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=d=3", "-c:a", "aac",
           "-f", "mp4", str(root / "audio.mp4")]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=30)
    error = _fail(base + "audio.mp4", tmp_path / "w")
    assert (error.code, error.error_class) == ("no_video_stream", "permanent")


@network
def test_pages_without_exactly_one_video_are_permanent(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    empty = _page(root, "empty.html", "<p>Nothing to see.</p>")
    two = _page(root, "two.html", '<video><source src="silent.mp4" type="video/mp4"></video>' * 2)
    assert _fail(base + empty, tmp_path / "a").code == "unsupported_url"
    assert _fail(base + two, tmp_path / "b").code == "playlist"
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b") == set()


@network
@pytest.mark.parametrize("name", ["silent.mp4", "bikes.mp4", "lecture.html"])
def test_too_long_fails_before_downloading(demo_server: str, tmp_path: Path, name: str) -> None:
    """Generic links carry no duration: it is read from the media header, so nothing is written."""
    error = _fail(demo_server + name, tmp_path, max_duration_s=5)
    assert (error.code, error.error_class, error.attempts) == ("too_long", "permanent", 1)
    assert _tree(tmp_path) == set()


@network
def test_too_large_is_permanent(demo_server: str, tmp_path: Path) -> None:
    error = _fail(demo_server + "silent.mp4", tmp_path, max_filesize_bytes=100_000)
    assert (error.code, error.error_class) == ("too_large", "permanent")
    assert not (tmp_path / "video.mp4").exists()


@network
def test_time_limit_is_permanent(demo_server: str, tmp_path: Path) -> None:
    """A server that cannot deliver within the limit will not on a retry either: the attempt's process is killed."""
    sleeps: list[float] = []
    error = _fail(demo_server + "lecture.html", tmp_path, sleeps, time_limit_s=0.001, attempts=2)
    assert (error.code, error.error_class, error.attempts, len(sleeps)) == ("time_limit", "permanent", 1, 0)
    assert not any(name.endswith((".part", ".ytdl")) for name in _tree(tmp_path))


@network
def test_hostile_url_and_page_cannot_write_outside_the_workdir(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    page = _page(root, "evil.html", '<video><source src="silent.mp4" type="video/mp4">'
                 '<track kind="subtitles" srclang="../../../evil" src="lecture.en.vtt">'
                 '<track kind="captions" srclang="en;touch PWNED" src="lecture.en.vtt"></video>',
                 title="$(touch PWNED); ../../../title")  # fmt: skip
    scratch = tmp_path / "scratch"
    urls = [base + "a/..%2f..%2f$(touch%20PWNED)%3bb/../../silent.mp4?n=../../../evil&t=$(id);rm", base + page]
    for index, url in enumerate(urls):
        workdir = scratch / str(index) / "work"
        result = download(url, "x", workdir, _loopback(attempts=1))
        assert result.subtitle_path is None
    assert _tree(scratch) == {"0", "1", "0/work", "1/work", "0/work/video.mp4", "1/work/video.mp4",
                              "0/work/video.info.json", "1/work/video.info.json"}  # fmt: skip
    assert not (root / "PWNED").exists() and not Path("PWNED").exists()
