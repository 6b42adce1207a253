"""Curation wall time against the decode floor, measured in the same run.

The floor is one downscaled ffmpeg decode pass over every demo video (the least any
curation must do: every frame decoded once), run on the same number of processes.
The curation run is the full loop over loopback HTTP: download, subtitles, the one
decode pass, planning, stream-copy cutting, shard writing. Target: ratio <= 2.

    .venv/bin/python bench/curate_throughput.py [--workers 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from curate.config import load_config
from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory, write_source_list
from curate.probe import probe
from curate.run import run

ROOT = Path(__file__).resolve().parent.parent


def decode_floor(videos: list[Path], workers: int) -> float:
    """Seconds to decode every frame of every video once, scaled to 256 px, on ``workers`` processes."""

    def decode(path: Path) -> None:
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", "scale=-2:256", "-f", "null", "-"]
        subprocess.run(cmd, check=True)

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode, sorted(videos, key=lambda p: -p.stat().st_size)))
    return time.monotonic() - started


def curate_once(corpus_dir: Path, corpus: dict, workers: int) -> tuple[float, dict]:
    config = load_config(ROOT / "configs" / "demo.yaml")
    out = Path(tempfile.mkdtemp(prefix="bench-curate-"))
    try:
        with serve_directory(corpus_dir) as base_url:
            sources = out / "sources.txt"
            write_source_list(corpus, base_url, sources)
            started = time.monotonic()
            summary = run(sources, out / "dataset", config, workers=workers, progress=False)
            return time.monotonic() - started, summary.stats
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="alternating floor/curate measurements; the best of each")
    parser.add_argument("--corpus", type=Path, default=ROOT / "demo-out" / "corpus")
    args = parser.parse_args()

    corpus = build_corpus(args.corpus)
    videos = sorted(args.corpus.glob("*.mp4"))
    seconds_of_video = sum(probe(v).duration for v in videos)
    floors, curates, stats = [], [], {}
    for _ in range(args.repeat):
        floors.append(decode_floor(videos, args.workers))
        wall, stats = curate_once(args.corpus, corpus, args.workers)
        curates.append(wall)
    floor, curate = min(floors), min(curates)
    peak_child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "videos": len(videos),
        "seconds_of_video": round(seconds_of_video, 1),
        "workers": args.workers,
        "decode_floor_s": round(floor, 2),
        "curate_s": round(curate, 2),
        "ratio": round(curate / floor, 2),
        "clips": stats.get("funnel", {}).get("clips"),
        "peak_worker_rss_mib": round(peak_child_mib, 1),
        "all_floor_s": [round(x, 2) for x in floors],
        "all_curate_s": [round(x, 2) for x in curates],
    }
    print(json.dumps(result, indent=2))
    print(f"curate {curate:.2f} s vs decode floor {floor:.2f} s: ratio {curate / floor:.2f} (target <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
