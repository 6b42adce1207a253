"""Time to the first download and the driver's peak memory, for source lists of 10k to 1M URLs.

    python bench/source_list_startup.py [--sizes 10000,100000,1000000] [--old-sizes 10000] [--cpus 2]

*new* is the pipeline's planner (``pipelines/sources.py``): the list read by a streaming Ray
read task, classified and listed by planning actors, de-duplicated in input order by one actor
over a hash index, filtered by the ledger's hashes. *old* is the path it replaced, rebuilt here:
the driver reads the whole list (:func:`curate.sources.read_sources`) and makes one block per
URL with ``ray.data.from_items(rows, override_num_blocks=len(rows))``.

Both feed the same **stub download stage** (an actor pool of 2 that stamps the time and returns;
it downloads nothing): this bench measures planning, not downloading. *first_s* is the time
from the start of planning (Ray already up) to the first row entering the stub; the Ray start is
the same for both and reported apart. *driver_peak_mb* is the driver process's peak RSS
(``ru_maxrss``), *driver_base_mb* its RSS once Ray is up, before planning. Each case runs in a
fresh process with its own local Ray. The old path at 1M URLs (an hour at the 3.7 ms per URL
measured before) is left out by default; ``--old-sizes`` chooses where it runs.

The lists are YouTube video URLs (one video each, so no listing request is made), 1% of them
repeated, in ``.txt``: the format read by a single reader, the slowest case for the new path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def youtube_id(number: int) -> str:
    digits = []
    for _ in range(11):
        number, digit = divmod(number, 64)
        digits.append(ALPHABET[digit])
    return "".join(digits)


def write_list(path: Path, n: int) -> None:
    with path.open("w") as out:
        for i in range(n):
            number = i - 1 if i % 100 == 99 else i  # 1% repeats of the row before
            out.write(f"https://www.youtube.com/watch?v={youtube_id(number * 7919 + 13)}\n")


class StubDownload:
    """STUB download stage, for this bench only: stamps when a row arrives; downloads nothing."""

    def __call__(self, row: dict) -> dict:
        return {"video_id": row["video_id"], "at": time.time()}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(entry for entry in status if entry.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def planned(kind: str, path: Path):
    import ray

    from pipelines.config import load_pipeline_config

    config = load_pipeline_config(None, ["ray.progress=false"])
    if kind == "new":
        import numpy as np

        from curate.source_plan import LedgerFilter
        from curate.sources import Rules
        from pipelines.sources import planned_sources

        none = np.array([], np.int64)
        return planned_sources(str(path), config, LedgerFilter(none, none, none, none), Rules())
    from dataclasses import asdict

    from curate.sources import read_sources

    rows = [r for r in read_sources(path) if r.status == "pending"]
    return ray.data.from_items([asdict(r) for r in rows], override_num_blocks=len(rows))


def child(kind: str, path: Path, cpus: int) -> dict:
    """One measurement in this process: Ray up, then plan until the stub sees its first row."""
    import ray

    started = time.monotonic()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray_s, base = time.monotonic() - started, rss_mb()
    wall0, t0 = time.time(), time.monotonic()
    ds = planned(kind, path).map(StubDownload, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0)
    first = None
    for row in ds.iter_rows():
        first = row["at"] - wall0
        break
    seen_s = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ray.shutdown()
    return {"first_s": round(first, 2), "driver_sees_s": round(seen_s, 2), "ray_start_s": round(ray_s, 2),
            "driver_base_mb": round(base), "driver_peak_mb": round(peak)}  # fmt: skip


def measure(kind: str, path: Path, cpus: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--list", str(path), "--cpus", str(cpus)]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--old-sizes", default="10000", help="sizes the old from_items path also runs at")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--child", choices=["new", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--list", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.list, args.cpus)))
        return
    old_sizes = {int(s) for s in args.old_sizes.split(",") if s}
    results = []
    with tempfile.TemporaryDirectory(prefix="source-bench-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"urls-{n}.txt"
            write_list(path, n)
            for kind in ["new", "old"] if n in old_sizes else ["new"]:
                result = {"urls": n, "path": kind, **measure(kind, path, args.cpus)}
                results.append(result)
                print(json.dumps(result), flush=True)
    print("\nurls      path  first download (s)  driver peak RSS (MB)  (RSS once Ray is up)")
    for r in results:
        print(f"{r['urls']:>9,}  {r['path']:<4}  {r['first_s']:>18.2f}  {r['driver_peak_mb']:>20}  ({r['driver_base_mb']})")
    for n in sorted(old_sizes):
        new, old = (next((r for r in results if r["urls"] == n and r["path"] == k), None) for k in ("new", "old"))
        if new and old:
            print(f"{n:,} URLs: the old path takes {old['first_s'] / new['first_s']:.1f}x as long to its first download, "
                  f"its driver peaks {old['driver_peak_mb'] - new['driver_peak_mb']:+} MB against the new one")


if __name__ == "__main__":
    main()
