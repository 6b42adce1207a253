"""Shard-writing throughput: the old single-driver sink against 1, 2, 4 … writer tasks of the write stage, in one run.

    python bench/sink_throughput.py [--samples 480] [--writers 1,2,4] [--out DIR]

Samples are synthetic, the size issue 12 measured with: a 1 MB clip and 16 frames of 16 KB.
*driver* is the old path (before the write stage): one process writes every sample through
:meth:`curate.sink.DatasetWriter.write` (shards, commit manifests, ledger), as the Ray driver
did after pulling every clip to itself with ``iter_rows()``. *N writer tasks* is the write
stage's code path without Ray: N processes each run :func:`curate.shard_batch.write_videos` on
batches of videos (one call per batch, as ``pipelines.stages.WriteStage`` does) into the one
output, and the parent commits each returned :class:`~curate.shard_batch.WrittenBatch` with
:meth:`DatasetWriter.publish` as it arrives, so the manifests and the ledger are in the figure.
Figures are wall-clock samples/s and MB/s, the speed-up over the driver in the same run, and
CPU ms per sample of the writing processes, which stays meaningful on a shared machine. The
bytes the old path moved from workers to the driver (Ray's object transfer) are not counted,
so its figure is an upper bound for it.

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
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate.config import load_config
from curate.ledger import VideoStatus
from curate.records import Sample
from curate.shard_batch import WrittenBatch, write_videos
from curate.sink import DatasetWriter
from vidla_format.storage import Storage

CLIP_BYTES = 1024**2
FRAMES, FRAME_BYTES = 16, 16 * 1024
CLIPS_PER_VIDEO = 8
MAX_SAMPLES = 64
BATCH_VIDEOS = MAX_SAMPLES // CLIPS_PER_VIDEO
"""Videos per write call (``ray.write.batch_size``): one shard's worth, as the driver path commits."""


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


def config():
    return load_config(None, [f"shards.max_samples={MAX_SAMPLES}"])


def videos(first: int, count: int) -> list[tuple[VideoStatus, list[Sample]]]:
    """The samples ``first`` .. ``first + count`` grouped into finished videos (status, samples)."""
    data = samples(first, count)
    out = []
    for start in range(0, count, CLIPS_PER_VIDEO):
        group = data[start : start + CLIPS_PER_VIDEO]
        vid = group[0].record["video_id"]
        out.append((VideoStatus(f"http://x/{vid}", vid, clips_short=len(group)), group))
    return out


def driver_path(out: Path, count: int) -> tuple[float, float]:
    """(wall s, CPU s) of one process writing ``count`` samples through the sink, videos at a time."""
    data = videos(0, count)
    started, cpu0 = time.perf_counter(), cpu_s(resource.RUSAGE_SELF)
    sink = DatasetWriter(str(out), config())
    for status, group in data:
        sink.write(status, group)
    sink.commit()
    sink.release()
    return time.perf_counter() - started, cpu_s(resource.RUSAGE_SELF) - cpu0


def write_task(out: str, run_id: str, first: int, count: int) -> tuple[WrittenBatch, float]:
    """In a writer process, one write-stage call: one batch of videos into shards; (the batch, CPU s)."""
    data = videos(first, count)  # the samples are where they were made: nothing crosses to the parent
    cpu0 = cpu_s(resource.RUSAGE_SELF)
    batch = write_videos(Storage(out), config().shards, run_id, data)
    return batch, cpu_s(resource.RUSAGE_SELF) - cpu0


def writers_path(out: Path, count: int, writers: int) -> tuple[float, float]:
    """(wall s, CPU s of the writers) of ``writers`` processes running the write stage's calls on batches of
    ``count`` samples, the parent committing each batch as it returns."""
    per_batch = BATCH_VIDEOS * CLIPS_PER_VIDEO
    with ProcessPoolExecutor(writers) as pool:
        list(pool.map(time.sleep, [0] * writers))  # the pool is up before the clock starts
        started = time.perf_counter()
        sink = DatasetWriter(str(out), config())
        futures = [pool.submit(write_task, str(out), sink.run_id, first, min(per_batch, count - first))
                   for first in range(0, count, per_batch)]
        cpu = 0.0
        for future in as_completed(futures):
            batch, used = future.result()
            cpu += used
            assert sink.publish(batch)
        sink.release()
    return time.perf_counter() - started, cpu


def row(name: str, count: int, wall: float, cpu: float, baseline_wall: float | None = None) -> dict:
    mb = count * sample_bytes() / 1e6
    return {"path": name, "samples": count, "wall_s": round(wall, 3), "samples_per_s": round(count / wall, 1),
            "mb_per_s": round(mb / wall, 1), "vs_driver": round((baseline_wall or wall) / wall, 2),
            "cpu_ms_per_sample": round(1000 * cpu / count, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=480)
    parser.add_argument("--writers", default="1,2,4")
    parser.add_argument("--out", type=Path, help="where to write (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="sink-bench-"))
    try:
        driver_wall, driver_cpu = driver_path(root / "driver", args.samples)
        results = [row("driver (old path: DatasetWriter.write)", args.samples, driver_wall, driver_cpu)]
        for n in (int(w) for w in args.writers.split(",")):
            wall, cpu = writers_path(root / f"writers{n}", args.samples, n)
            results.append(row(f"{n} writer task(s) (write_videos + publish)", args.samples, wall, cpu, driver_wall))
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
