"""Shard-writing throughput: the single-driver sink against 1, 2, 4 … writer processes, in one run.

    python bench/sink_throughput.py [--samples 240] [--writers 1,2,4] [--out DIR]

Samples are synthetic, the size the issue measured with: a 1 MB clip and 16 frames of 16 KB.
*driver* is today's path: one process (the Ray driver) writes every sample through
:class:`curate.sink.DatasetWriter` (shards, commit manifests, ledger). *N writers* is the
worker-side sink's shape: N processes each write their share with a
:class:`curate.shards.ShardWriter` into a directory of their own, and the parent only collects
the names of the closed shards (what a commit manifest needs), never the bytes. Figures are
wall-clock samples/s and MB/s, plus CPU seconds per sample of the writing processes, which stay
meaningful on a shared machine. The bytes moved from workers to the driver by the old path
(Ray's object transfer) are not counted, so the driver's figure is an upper bound for it.

For a cluster: shard-writing capacity is ``writers × per-writer rate`` until the storage's
bandwidth binds, against the driver path's fixed single-process rate.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate.config import load_config
from curate.ledger import VideoStatus
from curate.records import Sample
from curate.shards import ShardWriter
from curate.sink import DatasetWriter
from curate.storage import Storage

CLIP_BYTES = 1024**2
FRAMES, FRAME_BYTES = 16, 16 * 1024
CLIPS_PER_VIDEO = 8
MAX_SAMPLES = 64


def samples(first: int, count: int) -> list[Sample]:
    """``count`` short-clip samples of videos of :data:`CLIPS_PER_VIDEO` clips, numbered from ``first``."""
    out = []
    for n in range(first, first + count):
        vid, i = f"v{n // CLIPS_PER_VIDEO:06d}", n % CLIPS_PER_VIDEO
        key = f"{vid}_short_{i:04d}"
        record = {"key": key, "video_id": vid, "url": f"http://x/{vid}", "scale": "short", "index": i,
                  "start": float(i), "end": i + 5.0, "duration": 5.0, "split": "train"}
        out.append(Sample(key, "short", record, bytes([n % 251]) * CLIP_BYTES, [bytes([i]) * FRAME_BYTES] * FRAMES))
    return out


def sample_bytes() -> int:
    return CLIP_BYTES + FRAMES * FRAME_BYTES


def cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def driver_path(out: Path, count: int) -> tuple[float, float]:
    """(wall s, CPU s) of one process writing ``count`` samples through the sink, videos at a time."""
    data = samples(0, count)
    config = load_config(None, [f"shards.max_samples={MAX_SAMPLES}"])
    started, cpu0 = time.perf_counter(), cpu_s(resource.RUSAGE_SELF)
    sink = DatasetWriter(str(out), config)
    for first in range(0, count, CLIPS_PER_VIDEO):
        batch = data[first : first + CLIPS_PER_VIDEO]
        sink.write(VideoStatus(f"http://x/{batch[0].record['video_id']}", batch[0].record["video_id"],
                               clips_short=len(batch)), batch)
    sink.commit()
    sink.release()
    return time.perf_counter() - started, cpu_s(resource.RUSAGE_SELF) - cpu0


def write_share(out: str, first: int, count: int) -> tuple[list[str], float]:
    """In a writer process: write its share into its own directory; return (closed shard stems, CPU s)."""
    data = samples(first, count)
    cpu0 = cpu_s(resource.RUSAGE_SELF)
    writer = ShardWriter(Storage(out), "short", MAX_SAMPLES, 10**12)
    for sample in data:
        writer.write(sample)
    return writer.take_closed(), cpu_s(resource.RUSAGE_SELF) - cpu0


def writers_path(out: Path, count: int, writers: int) -> tuple[float, float]:
    """(wall s, CPU s of the writers) of ``writers`` processes writing ``count`` samples between them."""
    share = -(-count // writers)
    with ProcessPoolExecutor(writers) as pool:
        pool.submit(time.sleep, 0).result()  # the pool is up before the clock starts
        started = time.perf_counter()
        futures = [pool.submit(write_share, str(out / f"w{w}"), w * share, min(share, count - w * share))
                   for w in range(writers)]
        results = [f.result() for f in futures]
    return time.perf_counter() - started, sum(c for _, c in results)


def row(name: str, count: int, wall: float, cpu: float) -> dict:
    mb = count * sample_bytes() / 1e6
    return {"path": name, "samples": count, "wall_s": round(wall, 3), "samples_per_s": round(count / wall, 1),
            "mb_per_s": round(mb / wall, 1), "cpu_ms_per_sample": round(1000 * cpu / count, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=240)
    parser.add_argument("--writers", default="1,2,4")
    parser.add_argument("--out", type=Path, help="where to write (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="sink-bench-"))
    try:
        results = [row("driver (DatasetWriter)", args.samples, *driver_path(root / "driver", args.samples))]
        for n in (int(w) for w in args.writers.split(",")):
            results.append(row(f"{n} writer process(es)", args.samples, *writers_path(root / f"writers{n}", args.samples, n)))
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
