"""Readers that honour the clips' edit lists present exactly the clip (docs/dataset-format.md, "Reading clips").

The source is red until 4.36 s and blue after, with keyframes only at 0 and 5 s, so the clip
4.36-8.0 stores 4.36 s of red pre-roll: a reader that ignores the edit list shows red first
and lasts ~8 s; one that honours it shows blue from the first frame and lasts 3.64 s.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from curate.cut import cut_clips
from curate.demo.server import serve_directory
from curate.probe import probe

START, END, FPS = 4.36, 8.0, 25
FRAMES = round((END - START) * FPS)

PAGE = """<html><body><video id="v" muted preload="auto" src="clip.mp4"></video>
<canvas id="c" width="320" height="180"></canvas><div id="result">pending</div><script>
const v = document.getElementById('v'), out = document.getElementById('result');
v.addEventListener('error', () => { out.textContent = 'error=' + (v.error && v.error.code); });
v.addEventListener('loadeddata', () => { v.currentTime = 0.02; });
v.addEventListener('seeked', () => {
  const c = document.getElementById('c').getContext('2d'); c.drawImage(v, 0, 0, 320, 180);
  const p = c.getImageData(160, 90, 1, 1).data;
  out.textContent = 'duration=' + v.duration.toFixed(3) + ' r=' + p[0] + ' g=' + p[1] + ' b=' + p[2];
}, {once: true});
</script></body></html>"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("readers")
    source = work / "source.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"color=c=red:s=320x180:r={FPS}:d={START}",
         "-f", "lavfi", "-i", f"color=c=blue:s=320x180:r={FPS}:d=5.64", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
         "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", "-g", "125", "-keyint_min", "125", "-sc_threshold", "0",
         "-pix_fmt", "yuv420p", str(source)],
        check=True,
    )  # fmt: skip
    media = probe(source)
    assert media.keyframes == (0.0, 5.0)
    (cut,) = cut_clips(source, [(START, END)], [work / "clip.mp4"], media, time_limit_s=60)
    assert cut.preroll_s == pytest.approx(START)
    return work / "clip.mp4"


def is_blue(rgb) -> bool:
    r, g, b = (int(x) for x in rgb)
    return b > 200 and r < 60 and g < 60


def test_ffmpeg_presents_only_the_clip(clip):
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 180, 320, 3)
    assert len(frames) == FRAMES
    assert all(is_blue(f[90, 160]) for f in frames)


def test_pyav_presents_only_the_clip(clip):
    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == FRAMES
    assert all(is_blue(f[90, 160]) for f in frames)


def test_chromium_video_element_presents_only_the_clip(clip, tmp_path):
    (clip.parent / "page.html").write_text(PAGE)
    with serve_directory(clip.parent) as base:
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=8000", "--dump-dom", base + "page.html"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    result = done.stdout.split('<div id="result">', 1)[-1].split("</div>", 1)[0]
    fields = dict(item.split("=", 1) for item in result.split())
    assert float(fields["duration"]) == pytest.approx(END - START, abs=0.01), result
    assert is_blue((fields["r"], fields["g"], fields["b"])), result
