"""The download attempt's own steps, below what ``test_download.py`` runs end to end over loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from curate.download_attempt import HEAD_BYTES, _probe_head
from curate.media_guard import demuxer_of, media_input_args


@pytest.mark.parametrize(("name", "encode"), [
    ("faststart.mp4", ["-c:v", "libx264", "-movflags", "+faststart"]),
    ("moov-at-end.mp4", ["-c:v", "libx264"]),
    ("video.mkv", ["-c:v", "libx264"]),
    ("video.ts", ["-c:v", "libx264"]),
    ("video.flv", ["-c:v", "flv1"]),
])  # fmt: skip
def test_the_head_duration_is_what_ffprobe_reads_from_the_same_bytes(tmp_path: Path, name: str, encode: list[str]) -> None:
    """Read in-process (PyAV) instead of by an ffprobe start: the same duration from the same first
    HEAD_BYTES, and none where the header is not in them (an mp4 with its index at the end)."""
    source = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=20",
                    *encode, "-b:v", "2M", "-g", "125", str(source)], check=True)  # fmt: skip
    head = source.read_bytes()[:HEAD_BYTES]
    assert source.stat().st_size > HEAD_BYTES  # the probe sees only the head, as before a download
    demuxer = demuxer_of(head)
    assert demuxer is not None
    (tmp_path / "head").write_bytes(head)
    ffprobe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                              *media_input_args(tmp_path / "head", demuxer)], capture_output=True, text=True)  # fmt: skip
    expected = float(ffprobe.stdout) if ffprobe.returncode == 0 and ffprobe.stdout.strip() not in ("", "N/A") else None
    got = _probe_head(head, demuxer, tmp_path)
    assert got == pytest.approx(expected, abs=1e-3) if expected is not None else got is None
    assert (name == "moov-at-end.mp4") == (got is None)
    assert not (tmp_path / ".head").exists()


@pytest.mark.parametrize(("module", "has_pyav"), [("curate.download_attempt", True), ("curate.expand", False)])
def test_a_fork_servers_warm_up_imports_pyav_only_where_heads_are_probed(module: str, has_pyav: bool) -> None:
    """The download fork server imports PyAV once for every attempt; a listing never probes media, so
    its fork server (and every listing child's address space) goes without."""
    code = f"import sys, {module} as m; m.warm_up(); print('av' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == str(has_pyav)
