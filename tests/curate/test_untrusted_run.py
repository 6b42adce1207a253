"""Issue 13 end to end: the plain loop over every attack at once, and a worker killed mid-video.

``python -m curate run`` curates a URL list made of the hostile site's attacks (served from
loopback, tests/curate/hostile_site.py) next to videos with broken, empty, oversized and
token-carrying subtitles and a URL with credentials; every input must end as exactly one
status row, the good videos as ``ok`` with their valid cues, and nothing may be written
outside the output directory (temp, home and working directories are the test's own).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from hostile_site import DROPPED_CUES, VALID_CUES, HostileSite, serve_hostile_site

from curate.config import load_config
from curate.redact import redact_url
from curate.run import run

SECRETS = (b"hunter2", b"SIGSECRET", b"AKIAEXAMPLE")
OVERRIDES = ["download.allow_hosts=127.0.0.1", "download.attempts=1", "download.time_limit_s=30",
             "text.llm.backend=none", "shards.max_samples=50"]  # fmt: skip


@pytest.fixture(scope="module")
def site(hostile_files: Path) -> Iterator[HostileSite]:
    with serve_hostile_site(hostile_files) as served:
        yield served


def _cases(site: HostileSite) -> dict[str, tuple[str, str | None]]:
    """URL -> (status, error code) for every input of the run."""
    port = site.base.rsplit(":", 1)[1].strip("/")
    creds = (f"http://viewer:hunter2@127.0.0.1:{port}/video.mp4?X-Amz-Credential=AKIAEXAMPLE"
             "&X-Amz-Expires=60&X-Amz-Signature=SIGSECRET")  # fmt: skip
    failed = {"hls.mp4": "invalid_media", "hex.html": "egress_refused", "link_local.html": "egress_refused",
              "ftp.html": "unsupported_scheme", "redirect.mp4": "egress_refused", "trickle.html": "time_limit",
              "huge.html": "page_too_large", "fast.mp4": "fps_too_high", "lying.mkv": "duration_mismatch"}  # fmt: skip
    cases: dict[str, tuple[str, str | None]] = {creds: ("ok", None)}
    cases |= {site.url(name): ("ok", None) for name in ("half_subs.html", "empty_subs.html", "tokens_subs.html", "huge_subs.html")}
    cases |= {site.url(name): ("failed", code) for name, code in failed.items()}
    cases |= {"http://169.254.169.254/latest/meta-data/": ("failed", "egress_refused"),
              f"http://0x7f000001:{port}/video.mp4": ("failed", "egress_refused"),
              f"ftp://127.0.0.1:{port}/video.mp4": ("failed", "invalid_url"), "file:///etc/passwd": ("failed", "invalid_url")}  # fmt: skip
    return cases


@pytest.fixture(scope="module")
def hostile_run(site: HostileSite, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(output, the run's scratch root, cases) of ``python -m curate run`` over every case."""
    scratch = tmp_path_factory.mktemp("hostile-run")
    for name in ("cwd", "tmp", "home", "cache"):
        (scratch / name).mkdir()
    cases = _cases(site)
    (scratch / "cwd" / "urls.txt").write_text("".join(f"{url}\n" for url in cases))
    env = {**os.environ, "TMPDIR": str(scratch / "tmp"), "HOME": str(scratch / "home"),
           "XDG_CACHE_HOME": str(scratch / "home" / ".cache"), "VIDLA_CACHE": str(scratch / "cache")}  # fmt: skip
    cmd = [sys.executable, "-m", "curate", "run", "--sources", "urls.txt", "--output", "out", "--workers", "2", "--quiet", *OVERRIDES]
    done = subprocess.run(cmd, cwd=scratch / "cwd", env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return scratch / "cwd" / "out", scratch, cases


def test_every_input_has_exactly_one_row_with_its_verdict(hostile_run: tuple[Path, Path, dict]) -> None:
    out, _, cases = hostile_run
    rows = pq.read_table(out / "videos.parquet").to_pylist()
    assert len(rows) == len(cases)
    by_url = {row["url"]: row for row in rows}
    for url, (status, code) in cases.items():
        row = by_url[redact_url(url)]
        assert (row["status"], row["error_code"]) == (status, code), (url, row["error"])
        assert status == "ok" or row["error_class"] == "permanent", (url, row["error"])


def test_nothing_is_written_outside_the_output(hostile_run: tuple[Path, Path, dict]) -> None:
    _, scratch, _ = hostile_run
    assert list((scratch / "tmp").iterdir()) == [], "work directories are removed"
    assert list((scratch / "home").rglob("*")) == [], "no cache or config files (only the tool's own $VIDLA_CACHE)"
    assert {p.name for p in (scratch / "cache").rglob("*") if p.is_file()} <= {p.name for p in (scratch / "cache").glob("bin/deno-*")}
    assert sorted(p.name for p in (scratch / "cwd").iterdir()) == ["out", "urls.txt"]


def test_no_credential_or_signature_is_stored(hostile_run: tuple[Path, Path, dict]) -> None:
    out, _, _ = hostile_run
    for path in (p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not [secret for secret in SECRETS if secret in data], path


def test_subtitles_never_cost_a_video_and_valid_cues_reach_the_clips(hostile_run: tuple[Path, Path, dict]) -> None:
    out, _, _ = hostile_run
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    videos = {row["url"].rsplit("/", 1)[1]: row for row in pq.read_table(out / "videos.parquet").to_pylist()}
    text = {name: " ".join(c["subtitle"] for c in clips if c["subtitle"] and c["video_id"] == videos[name]["video_id"] and c["scale"] == "short")
            for name in ("half_subs.html", "tokens_subs.html", "empty_subs.html", "huge_subs.html")}  # fmt: skip
    assert all(cue in text["half_subs.html"] for cue in VALID_CUES), text["half_subs.html"]
    assert not any(word in text["half_subs.html"] for word in DROPPED_CUES)
    assert "Welcome to the show." in text["tokens_subs.html"] and "<|" not in text["tokens_subs.html"]
    assert text["empty_subs.html"] == text["huge_subs.html"] == "", "no subtitles: clipped by shots"
    assert not videos["empty_subs.html"]["has_subtitles"] and videos["empty_subs.html"]["subtitle_warning"]
    assert "subtitle_too_large" in videos["huge_subs.html"]["subtitle_warning"]


# --------------------------------------------------------------------------- a killed worker


def _kill_the_worker_that_fetches(site: HostileSite, killed: list[int]) -> None:
    """Wait for the request to ``/hang.mp4``, SIGKILL the plain loop's worker whose download holds it
    (as the OOM killer would), then let the request go."""
    me = psutil.Process()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        for proc in me.children(recursive=True) if site.hang_clients else ():
            try:
                held = any(c.laddr and c.laddr.port in site.hang_clients for c in proc.net_connections(kind="tcp"))
                worker = next(p for p in [proc, *proc.parents()] if p.ppid() == me.pid) if held else None
            except (psutil.Error, StopIteration):
                continue
            if worker is not None:
                worker.kill()
                killed.append(worker.pid)
                break
        time.sleep(0.05)
    site.release.set()


def test_a_killed_worker_costs_its_video_only(site: HostileSite, tmp_path: Path) -> None:
    hang, good = site.url("hang.mp4"), site.url("video.mp4")
    (tmp_path / "urls.txt").write_text(f"{hang}\n{good}\n")
    killed: list[int] = []
    killer = threading.Thread(target=_kill_the_worker_that_fetches, args=(site, killed), daemon=True)
    killer.start()
    summary = run(tmp_path / "urls.txt", tmp_path / "out", load_config(None, OVERRIDES), workers=2, progress=False)
    killer.join(timeout=5)
    rows = {row["url"]: row for row in pq.read_table(tmp_path / "out" / "videos.parquet").to_pylist()}
    assert killed and summary.processed == 2
    assert (rows[hang]["status"], rows[hang]["error_code"], rows[hang]["error_class"]) == ("failed", "worker_died", "transient")
    assert "signal 9" in rows[hang]["error"]
    assert rows[good]["status"] == "ok" and rows[good]["clips_short"] >= 1
