"""The decode floor: what any curation of these videos must at least spend.

Every frame of every video decoded once (scaled to 256 px, as the analysis pass does),
on ``workers`` parallel ffmpeg processes. Benchmarks print their wall time as a ratio to
this floor, measured in the same run, because these machines are noisy.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def decode_floor(videos: list[Path], workers: int, scale: bool = True) -> float:
    """Seconds to decode every frame of every video once, scaled to 256 px, on ``workers`` processes.

    ``scale=False`` decodes only: a stricter floor, since the analysis pass no longer scales
    every frame to 256 px (it scales them to 96 px, and only 2 a second to 256 px), and the
    256 px bicubic scale costs about half as much again as the decode (bench/decode_pass_cost.py).
    """

    def decode(path: Path) -> None:
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), *(["-vf", "scale=-2:256"] if scale else []), "-f", "null", "-"]
        subprocess.run(cmd, check=True)

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode, sorted(videos, key=lambda p: -p.stat().st_size)))
    return time.monotonic() - started
