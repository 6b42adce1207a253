"""Issue 13, one attack per test: what a URL list and its servers send back cannot read local files,
reach private hosts, outlast the limits, or cost a video through its subtitles.

Every attack is served for real from loopback (tests/curate/hostile_site.py) and goes through
the real download stage: a child process running yt-dlp, then ffprobe on what came back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_site import DROPPED_CUES, TOKENS_VTT, VALID_CUES, HostileSite, serve_hostile_site

from curate.config import DownloadConfig, load_config
from curate.download import Downloaded, download
from curate.egress import EgressPolicy, EgressRefused
from curate.errors import CurateError
from curate.media_guard import media_input_args
from curate.probe import probe
from curate.redact import redact_url
from curate.subtitles import load_sentences, parse_subtitles
from curate.textgen.prompts import SUMMARY_PROMPT, SYSTEM_PROMPT, summary_prompt
from curate.workdir import private_workdir, remove_workdir

pytestmark = pytest.mark.timeout(120)
LOOPBACK = ["127.0.0.1"]
SPECIAL = ("<|im_start|>", "<|im_end|>", "[INST]", "[/INST]")


@pytest.fixture(scope="module")
def site(hostile_files: Path) -> Iterator[HostileSite]:
    with serve_hostile_site(hostile_files) as served:
        yield served


def _config(**options: object) -> DownloadConfig:
    return DownloadConfig(**{"allow_hosts": LOOPBACK, "attempts": 1, **options})


def _fails(url: str, workdir: Path, **options: object) -> tuple[CurateError, float]:
    started = time.monotonic()
    with pytest.raises(CurateError) as caught:
        download(url, "attack", workdir, _config(**options))
    return caught.value, time.monotonic() - started


def _fetch(url: str, workdir: Path, **options: object) -> tuple[Downloaded, float]:
    started = time.monotonic()
    return download(url, "attack", workdir, _config(**options)), time.monotonic() - started


# --------------------------------------------------------------------------- local files


def test_an_hls_playlist_served_as_mp4_never_reaches_ffmpeg(site: HostileSite, tmp_path: Path) -> None:
    error, _ = _fails(site.url("hls.mp4"), tmp_path / "w")
    assert (error.code, error.error_class) == ("invalid_media", "permanent")
    assert "HLS playlist" in error.message
    assert not any(tmp_path.rglob("*.mp4")), "the playlist is not kept either"
    playlist = site.root / "hls.mp4"
    for call in (lambda: probe(playlist), lambda: media_input_args(playlist)):
        with pytest.raises(CurateError, match="invalid_media"):
            call()


def test_file_urls_are_copied_from_under_the_root_only(site: HostileSite, tmp_path: Path) -> None:
    inside = (site.root / "video.mp4").as_uri()
    got = download(inside, "local", tmp_path / "a", _config(file_root=site.root))
    assert got.video_path.read_bytes() == (site.root / "video.mp4").read_bytes() and got.media.demuxer == "mov"
    outside = (site.root.parent / "secret.ts").as_uri()
    for config in (_config(file_root=site.root), _config()):
        with pytest.raises(CurateError) as caught:
            download(outside, "local", tmp_path / "b", config)
        assert (caught.value.code, caught.value.error_class) == ("file_url_refused", "permanent")
    os.symlink(site.root.parent / "secret.ts", tmp_path / "link.mp4")
    with pytest.raises(CurateError, match="file_url_refused"):
        download((tmp_path / "link.mp4").as_uri(), "local", tmp_path / "c", _config(file_root=tmp_path))


# --------------------------------------------------------------------------- private hosts


@pytest.mark.parametrize(("page", "code"), [("hex.html", "egress_refused"), ("link_local.html", "egress_refused"),
                                            ("ftp.html", "unsupported_scheme")])  # fmt: skip
def test_media_urls_of_a_page_may_not_leave_the_public_internet(site: HostileSite, tmp_path: Path, page: str, code: str) -> None:
    error, seconds = _fails(site.url(page), tmp_path / "w", socket_timeout_s=60)
    assert (error.code, error.error_class) == (code, "permanent"), error
    assert seconds < 45, "refused before connecting, not after a socket timeout"
    assert not [hit for hit in site.hits if hit.startswith("0x7f000001")]


@pytest.mark.parametrize("url", ["http://0x7f000001:{port}/video.mp4", "http://2130706433:{port}/video.mp4",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/video.mp4",
                                 "http://127.0.0.2:{port}/video.mp4", "ftp://127.0.0.1:{port}/video.mp4"])  # fmt: skip
def test_source_urls_to_private_hosts_are_refused_at_once(site: HostileSite, tmp_path: Path, url: str) -> None:
    error, seconds = _fails(url.format(port=site.base.rsplit(":", 1)[1].strip("/")), tmp_path / "w")
    assert error.code in ("egress_refused", "unsupported_scheme") and error.error_class == "permanent"
    assert seconds < 2 and not any((tmp_path / "w").iterdir())


def test_a_redirect_to_a_private_host_is_not_followed(site: HostileSite, tmp_path: Path) -> None:
    error, _ = _fails(site.url("redirect.mp4"), tmp_path / "w")
    assert (error.code, error.error_class) == ("egress_refused", "permanent")
    assert "127.0.0.2" in error.message and site.private_hits == []


def test_the_egress_policy_by_name_address_and_encoding() -> None:
    policy = EgressPolicy.from_entries(["127.0.0.1", "media.internal", "10.0.0.0/8"])
    for allowed in ("http://127.0.0.1:8000/v.mp4", "https://media.internal/v.mp4", "http://10.2.3.4/v", "https://93.184.216.34/"):
        policy.check_url(allowed)
    refused = ["http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://2130706433/", "http://[::1]/",
               "http://[::ffff:127.0.0.2]/", "http://169.254.169.254/", "http://100.64.0.1/", "http://192.168.1.1/",
               "http://224.0.0.1/", "http://0.0.0.0/", "http://[fd00::1]/", "http://[64:ff9b::a9fe:a9fe]/",
               "file:///etc/passwd", "ftp://93.184.216.34/", "data:video/mp4;base64,AAAA", "rtmp://93.184.216.34/x"]  # fmt: skip
    for url in refused:
        with pytest.raises(EgressRefused):
            policy.check_url(url)


def test_allow_hosts_is_a_list_or_a_comma_separated_override() -> None:
    config = load_config(None, ["download.allow_hosts=127.0.0.1,localhost"])
    assert config.download.allow_hosts == ["127.0.0.1", "localhost"]
    assert load_config(None, ["download.allow_hosts=[10.0.0.0/8, '::1']"]).download.allow_hosts == ["10.0.0.0/8", "::1"]
    for odd in ("0x7f000001", "127.1", "not a host"):
        with pytest.raises(ValueError, match="allow_hosts"):
            load_config(None, [f"download.allow_hosts={odd}"])


@pytest.mark.parametrize("option", ["enable_file_urls", "exec", "netrc_cmd", "exec_before_dl", "postprocessors",
                                    "external_downloader", "post_hooks"])  # fmt: skip
def test_dangerous_yt_dlp_options_are_config_errors(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        load_config(None, [f"download.extra_options={{{option}: 'touch /tmp/PWNED'}}"])


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("name", ["trickle.html", "trickle.mp4"])
def test_a_trickling_server_ends_at_the_time_limit(site: HostileSite, tmp_path: Path, name: str) -> None:
    error, seconds = _fails(site.url(name), tmp_path / "w", time_limit_s=2)
    assert (error.code, error.error_class) == ("time_limit", "permanent")
    assert seconds < 2 + 4


def test_a_huge_page_is_cut_off_with_bounded_memory(site: HostileSite, tmp_path: Path) -> None:
    error, seconds = _fails(site.url("huge.html"), tmp_path / "w")
    assert (error.code, error.error_class) == ("page_too_large", "permanent")
    assert error.peak_rss_bytes < 400 * 1024**2, "a 400 MB page costs its 32 MB cap, not 400 MB"  # type: ignore[attr-defined]


def test_memory_is_limited_even_when_the_caps_are_not(site: HostileSite, tmp_path: Path) -> None:
    error, _ = _fails(site.url("huge.html"), tmp_path / "w", max_page_bytes=2 * 1024**3, memory_limit_bytes=768 * 1024**2)
    assert (error.code, error.error_class) == ("memory_limit", "permanent")


def test_a_huge_subtitle_track_costs_the_subtitles_only(site: HostileSite, tmp_path: Path) -> None:
    got, seconds = _fetch(site.url("huge_subs.html"), tmp_path / "w", time_limit_s=60)
    assert got.video_path.is_file() and got.subtitle_path is None
    assert "subtitle_too_large" in (got.subtitle_warning or "")
    assert seconds < 60, "the track was cut at its cap, not read to its 200 MB end"


def test_a_thousand_fps_video_is_refused_on_its_packets(site: HostileSite, tmp_path: Path) -> None:
    error, _ = _fails(site.url("fast.mp4"), tmp_path / "w")
    assert (error.code, error.error_class) == ("fps_too_high", "permanent")
    assert not (tmp_path / "w" / "video.mp4").exists()


def test_a_header_that_lies_about_the_duration_is_refused(site: HostileSite, tmp_path: Path) -> None:
    error, _ = _fails(site.url("lying.mkv"), tmp_path / "w", max_duration_s=10)
    assert (error.code, error.error_class) == ("duration_mismatch", "permanent")
    assert "40" in error.message


# --------------------------------------------------------------------------- subtitles


def test_an_empty_subtitle_file_keeps_the_video(site: HostileSite, tmp_path: Path) -> None:
    got, _ = _fetch(site.url("empty_subs.html"), tmp_path / "w")
    assert got.video_path.is_file() and got.subtitle_path is None and got.subtitle_warning


def test_malformed_cues_drop_alone_and_valid_ones_survive(hostile_files: Path) -> None:
    cues = parse_subtitles(hostile_files / "half.vtt")
    assert [cue.text for cue in cues] == list(VALID_CUES)
    assert [(cue.start, cue.end) for cue in cues] == [(1.0, 4.0), (5.0, 8.0), (9.5, 12.0), (19.0, 22.0), (24.0, 28.0)]
    assert not any(word in cue.text for cue in cues for word in DROPPED_CUES)


def test_subtitles_cannot_carry_chat_template_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.vtt"
    path.write_text(TOKENS_VTT)
    sentences, warning = load_sentences(path, load_config(None).subtitles)
    text = " ".join(s.text for s in sentences)
    assert warning is None and text.startswith("Welcome to the show.") and "say PWNED" in text
    prompt = summary_prompt(text + " <|endoftext|>", SUMMARY_PROMPT, SYSTEM_PROMPT, 25, strict=False)
    assert not any(token in text or token in prompt.user for token in (*SPECIAL, "<|endoftext|>"))


# --------------------------------------------------------------------------- what is stored


def test_credentials_and_signatures_leave_stored_urls() -> None:
    url = ("https://user:hunter2@bucket.s3.amazonaws.com/v.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Credential=AKIA%2F20240101&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
           "&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeef&x-amz-security-token=tok&part=2")  # fmt: skip
    clean = redact_url(url)
    assert not any(secret in clean for secret in ("hunter2", "AKIA", "deadbeef", "tok&", "Expires", "user"))
    assert clean.startswith("https://bucket.s3.amazonaws.com/v.mp4?") and "part=2" in clean
    assert redact_url("https://cdn.example/v.mp4?Expires=1&Signature=abc&Key-Pair-Id=K&q=1") == "https://cdn.example/v.mp4?q=1"
    assert redact_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3") == "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3"


def test_work_directories_are_private_and_removal_never_follows_links(tmp_path: Path) -> None:
    first, second = private_workdir(tmp_path / "root"), private_workdir(tmp_path / "root")
    assert first != second and first.parent == tmp_path / "root"
    assert (first.stat().st_mode & 0o777) == 0o700
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (first / "escape").symlink_to(victim)
    remove_workdir(first)
    assert not first.exists() and (victim / "keep.txt").exists()
    (tmp_path / "swapped").symlink_to(victim)
    with pytest.raises(PermissionError):
        remove_workdir(tmp_path / "swapped" / "keep.txt")
    with pytest.raises(PermissionError):
        private_workdir(tmp_path / "swapped")
    assert (victim / "keep.txt").read_text() == "precious"


def test_every_connection_of_the_download_process_is_checked_by_address(site: HostileSite) -> None:
    """Whatever name led there (DNS rebinding, a library that skips urlopen), a connect to a private
    address fails in the process that runs an attempt."""
    port = int(site.base.rsplit(":", 1)[1].strip("/"))
    code = ("import socket, sys\nfrom curate.egress import EgressPolicy, EgressRefused, install_connect_guard\n"
            "install_connect_guard(EgressPolicy.from_entries(sys.argv[2:]))\n"
            "try:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5).close()\n"
            "    print('connected')\nexcept EgressRefused as e:\n    print(e.code)\n")  # fmt: skip
    refused = subprocess.run([sys.executable, "-c", code, str(port)], capture_output=True, text=True, timeout=60)
    allowed = subprocess.run([sys.executable, "-c", code, str(port), "127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert (refused.stdout.strip(), allowed.stdout.strip()) == ("egress_refused", "connected"), refused.stderr
