"""Clips/s of one loader worker on the JPEG path and on the mp4 seek-decode path, in the same run.

    python bench/loader_throughput.py [--shards DIR] [--frames 12] [--size 224] [--clips 64]

Without ``--shards`` it writes synthetic shards (synthetic_shards.py: real H.264 mp4s and
JPEG frames at the contract's 256-pixel short side) to a temporary directory. The
loader runs in this process (``num_workers=0``), so the figure is what one DataLoader
worker delivers: decoding, cropping, resizing, batching and tokenising. Target: at least
100 clips/s per worker for 12 frames on the JPEG path (a 16-core GPU host must feed
~1,000 clips/s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

from vidla.config import DataConfig
from vidla.data import ClipDataset
from vidla.text_tower import ByteTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test and bench support, not installed
from synthetic_shards import SyntheticClip, write_shards  # noqa: E402

TARGET_JPEG = 100.0


def measure(
    shards: Path, source: str, frames: int, size: int, clips: int, batch_size: int
) -> tuple[float, float]:
    """(wall-clock, CPU-time) clips/s of one in-process loader stream forcing ``source`` ('jpeg' or 'mp4').

    The CPU-time rate (clips per second of this process's CPU time) is what a worker with a
    core of its own delivers; it stays meaningful on a shared machine where wall time does not.
    """
    cfg = DataConfig(
        shards=str(shards), batch_size=batch_size, num_workers=0, shuffle_buffer=16, frame_source=source
    )
    dataset = ClipDataset(cfg, num_frames=frames, image_size=size, tokenizer=ByteTokenizer(77), seed=0)
    torch.set_num_threads(1)  # as in a DataLoader worker
    stream = iter(dataset)
    next(stream)  # opens the shards, fills the shuffle buffer
    batches = max(1, clips // batch_size)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in islice(stream, batches):
        pass
    done = batches * batch_size
    return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=Path, help="a shards/ directory; default: synthetic shards")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--clips", type=int, default=128, help="clips timed per path")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="synthetic clip length (s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards
        if shards is None:
            shards = Path(tmp) / "shards"
            made = [SyntheticClip(duration=args.duration, stored_frames=16) for _ in range(24)]
            t0 = time.perf_counter()
            write_shards(shards, made, samples_per_shard=8, size=(456, 256), fps=25.0, gop=50)
            print(f"wrote {len(made)} synthetic clips (456x256, 25 fps, 2 s GOP, {args.duration:.0f} s, 16 JPEGs) "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        results = {
            src: measure(shards, src, args.frames, args.size, args.clips, args.batch_size)
            for src in ("jpeg", "mp4")
        }
    print(f"loader, one worker, {args.frames} frames at {args.size}x{args.size}:")
    for src, (wall, cpu) in results.items():
        note = (
            f"; target >= {TARGET_JPEG:.0f}: {'met' if cpu >= TARGET_JPEG else 'NOT met'}"
            if src == "jpeg"
            else ""
        )
        print(
            f"  {src:4s} path: {cpu:7.1f} clips/s per worker-core ({cpu * args.frames:6.0f} frames/s){note}; "
            f"wall clock here {wall:.1f} clips/s"
        )


if __name__ == "__main__":
    main()
