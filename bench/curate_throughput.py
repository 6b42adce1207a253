"""Curation wall time against the decode floor, measured in the same run.

The floor is one downscaled ffmpeg decode pass over every demo video (the least any
curation must do: every frame decoded once), run on the same number of processes.
The curation run is the full loop over loopback HTTP: download, subtitles, the one
decode pass, planning, cutting, shard writing. It is measured in the default ``auto``
cut mode (stream copy on the source's keyframes) and, for comparison, in ``reencode``
mode (one low-resolution short-GOP encode per source inside the decode pass).
Target for the default: ratio <= 2.

    .venv/bin/python bench/curate_throughput.py [--workers 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from floor import decode_floor

from curate.config import load_config
from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory, write_source_list
from curate.probe import probe
from curate.run import run

ROOT = Path(__file__).resolve().parent.parent


def multiply_sources(path: Path, copies: int) -> None:
    """List every URL ``copies`` times as distinct URLs (``?copy=i``), so fixed per-process costs amortise."""
    urls = path.read_text().split()
    path.write_text("".join(f"{u}\n" if i == 0 else f"{u}?copy={i}\n" for i in range(copies) for u in urls))


def curate_once(corpus_dir: Path, corpus: dict, workers: int, cut_mode: str, copies: int = 1) -> tuple[float, dict]:
    # Curation only: the caption/summary stages have their own benchmark (bench/caption_throughput.py).
    overrides = [f"cut.mode={cut_mode}", "text.vlm.backend=none", "text.llm.backend=none"]
    config = load_config(ROOT / "configs" / "demo.yaml", overrides)
    out = Path(tempfile.mkdtemp(prefix="bench-curate-"))
    try:
        with serve_directory(corpus_dir) as base_url:
            sources = out / "sources.txt"
            write_source_list(corpus, base_url, sources)
            multiply_sources(sources, copies)
            started = time.monotonic()
            summary = run(sources, out / "dataset", config, workers=workers, progress=False)
            return time.monotonic() - started, summary.stats
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="alternating floor/curate measurements; the best of each")
    parser.add_argument("--corpus", type=Path, default=ROOT / "demo-out-corpus")
    parser.add_argument(
        "--copies", type=int, default=1,
        help="list each demo URL this many times as distinct URLs (the floor decodes as many copies): "
        "with more, the fixed per-process start-up (imports, yt-dlp's first extraction) weighs less",
    )
    args = parser.parse_args()

    corpus = build_corpus(args.corpus)
    videos = sorted(args.corpus.glob("*.mp4"))
    seconds_of_video = sum(probe(v).duration for v in videos)
    floors: list[float] = []
    walls: dict[str, list[float]] = {"auto": [], "reencode": []}
    stats: dict = {}
    for _ in range(args.repeat):  # interleaved, so load changes hit every measurement alike
        floors.append(decode_floor(videos * args.copies, args.workers))
        for mode in walls:
            wall, mode_stats = curate_once(args.corpus, corpus, args.workers, mode, args.copies)
            walls[mode].append(wall)
            stats = stats or mode_stats
    floor = min(floors)
    peak_child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "videos": len(videos),
        "seconds_of_video": round(seconds_of_video * args.copies, 1),
        "copies": args.copies,
        "workers": args.workers,
        "decode_floor_s": round(floor, 2),
        **{f"curate_{m}_s": round(min(w), 2) for m, w in walls.items()},
        **{f"ratio_{m}": round(min(w) / floor, 2) for m, w in walls.items()},
        "clips": stats.get("funnel", {}).get("clips"),
        "peak_worker_rss_mib": round(peak_child_mib, 1),
        "all_floor_s": [round(x, 2) for x in floors],
        **{f"all_{m}_s": [round(x, 2) for x in w] for m, w in walls.items()},
    }
    print(json.dumps(result, indent=2))
    for mode, w in walls.items():
        print(f"curate ({mode}) {min(w):.2f} s vs decode floor {floor:.2f} s: ratio {min(w) / floor:.2f}")
    print("target for the default (auto): ratio <= 2.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
