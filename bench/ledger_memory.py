"""The driver's memory per ledger row: the dict-of-objects ledger against the columnar one.

    python bench/ledger_memory.py [--rows 200000,1000000] [--impls old,new]

The paper's dataset is 20M source videos and the driver holds the ledger of all of them, so its
bytes per row decide whether a resume fits in the driver. For each size N a dataset is built in a
temp dir, shaped like a resumed one: ``videos.parquet`` with N rows (YouTube-like URLs and ids;
85% ``ok`` with realistic clip counts and timings, 15% failed with ~80-character messages),
10 ledger parts holding N/50 later rows (half retries of failed videos, half new ones), and the
rows of the ``ok`` videos as the commit manifests hand them over (dicts). Each implementation
then runs in a fresh process on its own copy, and the bench reports the process's RSS growth
per row (rows: the distinct keys) after each step, the Arrow pool's unused memory released and
``gc`` run first:

- ``load``: ``Ledger(storage, committed)``, the manifests' dicts already held (as in the sink);
- ``retained``: after the manifests' dicts are dropped, against the process before they were read;
- ``filter``: :meth:`curate.source_plan.LedgerFilter.of` (the filter itself is ~32 bytes a row);
- ``consolidate``: writing ``videos.parquet``; ``consolidate_peak`` is its peak (``ru_maxrss``).

Each case runs under Arrow's default pool (mimalloc) and under the system allocator: mimalloc keeps
pages of freed buffers resident even after ``release_unused`` (~150-250 bytes a row here, reused by
later allocations), so its RSS is what the driver shows, and the system pool's is closer to what
the ledger holds (its ``nbytes``).

*old* is the ledger this replaced (a ``dict`` of :class:`~curate.ledger.VideoStatus`), copied
below with the old ``LedgerFilter.of``, measured in the same run.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from curate.dedupe import key_hash
from curate.ledger import SCHEMA, VideoStatus, _part_order
from curate.source_plan import LedgerFilter
from vidla_format.layout import LEDGER_DIR, VIDEOS_FILE
from vidla_format.storage import Storage

LIBC = ctypes.CDLL("libc.so.6")
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ERRORS = [
    ("permanent", "http_404", "download failed: HTTP Error 404: Not Found (the video was removed or made private)"),
    ("transient", "timeout", "download failed: read timed out after 60 s while fetching the media segment list"),
    ("permanent", "too_short", "source is 3.2 s long, shorter than the shortest clip of any scale (4 s minimum)"),
    ("transient", "http_429", "download failed: HTTP Error 429: Too Many Requests (rate limited by the site)"),
]


class OldLedger:
    """The ledger before the columnar one: every row a :class:`VideoStatus` in a dict (~2.1 KB a row)."""

    def __init__(self, storage: Storage, committed: list[dict] | None = None):
        self.storage = storage
        storage.mkdir(LEDGER_DIR)
        storage.remove_temporaries(LEDGER_DIR)
        self.rows: dict[str, VideoStatus] = {}
        for table in self._tables():
            for row in table.to_pylist():
                self.put(VideoStatus(**{k: row.get(k) for k in SCHEMA.names}))
        for row in committed or []:
            self.put(VideoStatus(**{k: row.get(k) for k in SCHEMA.names}))

    def put(self, status: VideoStatus) -> None:
        self.rows[status.key] = status

    def _parts(self) -> list[str]:
        return [f"{LEDGER_DIR}/{name}" for name in self.storage.list(LEDGER_DIR) if name.startswith("part-")]

    def _tables(self) -> list[pa.Table]:
        names = ([VIDEOS_FILE] if self.storage.exists(VIDEOS_FILE) else []) + sorted(self._parts(), key=_part_order)
        return [self.storage.read_parquet(name) for name in names]

    def done(self, video_id: str, retry_failed: bool = False) -> bool:
        row = self.rows.get(video_id)
        if row is None:
            return False
        return row.status in ("ok", "skipped") if retry_failed else row.done

    def consolidate(self) -> None:
        table = pa.Table.from_pylist([asdict(r) for r in self.rows.values()], schema=SCHEMA)
        self.storage.write_parquet(VIDEOS_FILE, table)
        for part in self._parts():
            self.storage.delete(part)


def old_filter(ledger: OldLedger, retry_failed: bool = False) -> LedgerFilter:
    """``LedgerFilter.of`` as it was: a pass over every row object."""
    rows = list(ledger.rows.values())
    ok = sorted((key_hash(r.video_id), key_hash(r.url)) for r in rows if r.status == "ok")
    done = (key_hash(r.video_id) for r in rows if ledger.done(r.video_id, retry_failed) and r.key == r.video_id)
    return LedgerFilter(
        np.unique(np.fromiter(done, np.int64)),
        np.array([i for i, _ in ok], np.int64),
        np.array([u for _, u in ok], np.int64),
        np.unique(np.fromiter((key_hash(r.key) for r in rows), np.int64)),
    )


def video_row(rng: random.Random, index: int, failed: bool) -> dict:
    """One ledger row shaped like a real one."""
    vid = "".join(rng.choice(ALPHABET) for _ in range(11))
    common = {"url": f"https://www.youtube.com/watch?v={vid}", "video_id": vid, "input_row": index,
              "finished_at": f"2026-11-30T{index // 72000 % 24:02d}:{index // 1200 % 60:02d}:{index // 20 % 60:02d}+00:00"}  # fmt: skip
    if failed:
        error_class, code, message = rng.choice(ERRORS)
        return asdict(VideoStatus(**common, status="failed", error_class=error_class, error_code=code, error=message,
                                  attempts=3, total_s=rng.uniform(1, 90)))  # fmt: skip
    timings = {k: rng.uniform(0.1, 40) for k in ("download_s", "analyze_s", "cut_s", "total_s", "cpu_s", "download_cpu_s",
                                               "analyze_cpu_s", "cut_cpu_s", "text_s", "text_cpu_s", "preroll_s")}  # fmt: skip
    has_subtitles = rng.random() < 0.6
    return asdict(VideoStatus(**common, **timings, attempts=1, clips_short=rng.randint(0, 24), clips_medium=rng.randint(0, 8),
                              clips_long=rng.randint(0, 3), duration=rng.uniform(20, 1800), has_subtitles=has_subtitles,
                              subtitle_language="en" if has_subtitles else None, subtitle_kind=rng.choice(["manual", "auto"]),
                              cut_mode="copy"))  # fmt: skip


def build(root: Path, rows: int) -> None:
    """``root/out``: a resumed dataset of ``rows`` videos; ``root/committed.parquet``: the manifests' rows."""
    rng = random.Random(rows)
    videos = [video_row(rng, i, rng.random() < 0.15) for i in range(rows)]
    storage = Storage(root / "out")
    storage.mkdir(LEDGER_DIR)
    storage.write_parquet(VIDEOS_FILE, pa.Table.from_pylist(videos, schema=SCHEMA))
    failed = [v for v in videos if v["status"] == "failed"]
    later = [{**rng.choice(failed), "status": "ok", "error_class": None, "error_code": None, "error": None} for _ in range(rows // 100)]
    later += [video_row(rng, rows + i, rng.random() < 0.15) for i in range(rows // 100)]
    for part, start in enumerate(range(0, len(later), max(1, len(later) // 10))):
        table = pa.Table.from_pylist(later[start : start + max(1, len(later) // 10)], schema=SCHEMA)
        storage.write_parquet(f"{LEDGER_DIR}/part-{part:06d}-1.parquet", table)
    pq.write_table(pa.Table.from_pylist([v for v in videos if v["status"] == "ok"], schema=SCHEMA), root / "committed.parquet")


def rss() -> int:
    """Resident bytes once freed memory is given back (``gc``, Arrow's pool, glibc's heap), so that
    what is counted is what is held, not what an allocator keeps cached."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    LIBC.malloc_trim(0)
    return psutil.Process().memory_info().rss


def measure(impl: str, root: Path) -> dict:
    """Run one implementation on a copy of ``root/out`` (in this process); bytes and seconds per step."""
    from curate.ledger import Ledger

    work = Path(tempfile.mkdtemp(prefix="ledger-", dir=root))
    shutil.copytree(root / "out", work / "out")
    storage, make = Storage(work / "out"), {"old": OldLedger, "new": Ledger}[impl]
    base = rss()
    committed = pq.read_table(root / "committed.parquet").to_pylist()
    figures, before, t = {}, rss(), time.perf_counter()
    ledger = make(storage, committed)
    figures["load_s"], after = time.perf_counter() - t, rss()
    rows = len(ledger.rows) if impl == "old" else len(ledger)
    figures["load"] = (after - before) / rows
    del committed
    figures["retained"] = (rss() - base) / rows
    before, t = rss(), time.perf_counter()
    flt = old_filter(ledger) if impl == "old" else LedgerFilter.of(ledger)
    figures["filter_s"], figures["filter"] = time.perf_counter() - t, (rss() - before) / rows
    del flt
    before, peak, t = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.perf_counter()
    ledger.consolidate()
    figures["consolidate_s"], figures["consolidate"] = time.perf_counter() - t, (rss() - before) / rows
    figures["consolidate_peak"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - max(peak, before)) / rows
    if impl == "new":
        figures["nbytes"] = ledger.nbytes / rows
    shutil.rmtree(work)
    return {"impl": impl, "rows": rows, **{k: round(v, 3 if k.endswith("_s") else 1) for k, v in figures.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="200000")
    parser.add_argument("--impls", default="old,new")
    parser.add_argument("--pools", default="mimalloc,system", help="Arrow memory pools (ARROW_DEFAULT_MEMORY_POOL) to run under")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
        return
    for rows in (int(n) for n in args.rows.split(",")):
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            build(Path(tmp), rows)
            for pool in args.pools.split(","):
                results = {}
                for impl in args.impls.split(","):
                    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": pool}
                    out = subprocess.run([sys.executable, __file__, "--child", impl, tmp], check=True, capture_output=True, text=True, env=env)
                    results[impl] = json.loads(out.stdout)
                    print(json.dumps({"N": rows, "pool": pool, **results[impl]}), flush=True)
                if {"old", "new"} <= results.keys():
                    ratio = {k: round(results["old"][k] / results["new"][k], 1) for k in ("load", "retained") if results["new"][k] > 0}
                    print(json.dumps({"N": rows, "pool": pool, "old_over_new_bytes_per_row": ratio}), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
