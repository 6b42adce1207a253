"""``report.html``: a page a person opens to look at a dataset.

Clip-length histograms per scale, the funnel, a failure table, and a gallery of sampled
clips with a thumbnail (read from the shard by the index's byte offset, no full scan),
the time span and the texts. Assets go to ``report/`` beside the page.

It is written at the end of every run, by the driver, of a dataset that may hold 800M clips
and 20M ledger rows: the histograms stream two columns of ``clips.parquet`` and keep counts
per second of length, the gallery samples the newest part (the latest runs' clips) scanning
only until it has enough, and the failure table shows the first rows only (the funnel counts
every failure by code).
"""

from __future__ import annotations

import html
import io
import tarfile
from collections.abc import Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.dataset as pads  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from vidla_format.clips import clip_files  # noqa: E402
from vidla_format.layout import SCALES, VIDEOS_FILE  # noqa: E402
from vidla_format.storage import Storage  # noqa: E402

REPORT_FILE = "report.html"
ASSETS_DIR = "report"
GALLERY_SIZE = 24
GALLERY_POOL = 20
"""The gallery takes every k-th of the first ``GALLERY_POOL ×`` its size clips of each scale in the newest part."""
MAX_FAILURE_ROWS = 500
LENGTH_BINS_S = 1.0
MAX_LENGTH_S = 3600


def read_member(storage: Storage, shard: str, offset: int, name: str) -> bytes | None:
    """One member of the sample starting at ``offset`` in ``shard`` (random access via the index)."""
    with storage.fs.open_input_file(storage.path(shard)) as f:
        f.seek(offset)
        key = name.split(".", 1)[0]
        while True:
            header = f.read(tarfile.BLOCKSIZE)
            if len(header) < tarfile.BLOCKSIZE or not header.strip(b"\0"):
                return None
            info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
            if not info.name.startswith(key + "."):
                return None
            data = f.read(info.size)
            if info.name == name:
                return data
            f.seek(-info.size % tarfile.BLOCKSIZE, 1)


def _batches(storage: Storage, rel: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    with storage.fs.open_input_file(storage.path(rel)) as f:
        yield from pq.ParquetFile(f).iter_batches(batch_size=65_536, columns=columns)


def length_counts(storage: Storage) -> dict[str, np.ndarray]:
    """Per scale, how many clips have each length (bins of ``LENGTH_BINS_S``), streamed over every part."""
    counts = {scale: np.zeros(int(MAX_LENGTH_S / LENGTH_BINS_S) + 1, np.int64) for scale in SCALES}
    for rel in clip_files(storage):
        for batch in _batches(storage, rel, ["scale", "duration"]):
            durations = np.nan_to_num(batch.column("duration").to_numpy(zero_copy_only=False))
            bins = np.clip((durations / LENGTH_BINS_S).astype(np.int64), 0, len(counts[SCALES[0]]) - 1)
            scales = batch.column("scale")
            for scale in SCALES:
                mask = pc.equal(scales, scale).to_numpy(zero_copy_only=False)
                counts[scale] += np.bincount(bins[mask], minlength=len(counts[scale]))
    return counts


def _histograms(counts: dict[str, np.ndarray]) -> bytes:
    fig, axes = plt.subplots(1, len(SCALES), figsize=(4 * len(SCALES), 3), constrained_layout=True)
    for ax, scale in zip(axes, SCALES, strict=True):
        per_bin, n = counts[scale], int(counts[scale].sum())
        lefts = np.arange(len(per_bin)) * LENGTH_BINS_S
        if n:
            last = int(np.nonzero(per_bin)[0][-1]) + 1
            ax.bar(lefts[:last], per_bin[:last], width=LENGTH_BINS_S, align="edge", color="#4477aa")
        mean = f", mean {float((per_bin * (lefts + LENGTH_BINS_S / 2)).sum()) / n:.1f} s" if n else ""
        ax.set_title(f"{scale}: {n} clips{mean}")
        ax.set_xlabel("clip length (s)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def sampled_clips(storage: Storage) -> list[dict]:
    """A deterministic, scale-balanced gallery from the newest part: per scale, evenly spaced among the
    first clips of that scale (a scan that stops early, whatever the size of the dataset)."""
    files = clip_files(storage)
    if not files:
        return []
    dataset = pads.dataset(storage.path(files[-1]), filesystem=storage.fs, format="parquet")
    per_scale = max(1, GALLERY_SIZE // len(SCALES))
    columns = ["key", "scale", "start", "end", "duration", "summary", "caption", "subtitle", "shard", "offset"]
    sample = []
    for scale in SCALES:
        pool = dataset.head(per_scale * GALLERY_POOL, columns=columns, filter=pads.field("scale") == scale).to_pylist()
        sample += pool[:: max(1, len(pool) // per_scale)][:per_scale]
    return sample


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _card(storage: Storage, clip: dict, frames_per_clip: int) -> str:
    middle = f"{clip['key']}.f{frames_per_clip // 2:02d}.jpg"
    thumb = read_member(storage, clip["shard"], clip["offset"], middle)
    img = ""
    if thumb:
        storage.write_bytes(f"{ASSETS_DIR}/{clip['key']}.jpg", thumb)
        img = f'<img src="{ASSETS_DIR}/{html.escape(clip["key"])}.jpg" alt="{html.escape(clip["key"])}">'
    texts = "".join(
        f"<p><b>{name}</b>: {html.escape(clip[name])}</p>" for name in ("summary", "caption", "subtitle") if clip.get(name)
    )
    span = f"{clip['start']:.2f}–{clip['end']:.2f} s ({clip['duration']:.1f} s)"
    return f'<div class="card">{img}<p class="key">{html.escape(clip["key"])}</p><p>{span}</p>{texts}</div>'


def _failed_videos(storage: Storage) -> tuple[list[dict], int]:
    """The first ``MAX_FAILURE_ROWS`` failed rows of the ledger and how many there are, filtered in Arrow
    batch by batch (the ledger has a row per source video: 20M in the paper)."""
    if not storage.exists(VIDEOS_FILE):
        return [], 0
    rows, total = [], 0
    for batch in _batches(storage, VIDEOS_FILE, ["url", "status", "error_class", "error_code", "error"]):
        failed = batch.filter(pc.equal(batch.column("status"), "failed"))
        total += failed.num_rows
        rows += failed.slice(0, max(0, MAX_FAILURE_ROWS - len(rows))).to_pylist()
    return rows, total


def write_report(storage: Storage, stats: dict[str, Any]) -> None:
    """Write ``report.html`` and its assets from the dataset's ``clips.parquet`` and ledger."""
    videos, failed = _failed_videos(storage)
    storage.write_bytes(f"{ASSETS_DIR}/lengths.png", _histograms(length_counts(storage)))
    frames = int(stats.get("config", {}).get("samples", {}).get("frames_per_clip", 16))
    funnel = stats.get("funnel", {})
    funnel_rows = [[k, v] for k, v in funnel.items() if not isinstance(v, dict)]
    funnel_rows += [[f"clips {s}", n] for s, n in funnel.get("clips", {}).items()]
    failures = [[v["url"], v["error_class"], v["error_code"], (v["error"] or "")[:300]] for v in videos]
    cards = "".join(_card(storage, c, frames) for c in sampled_clips(storage))
    more = f"<p>the first {len(failures)} of {failed}; the funnel counts them all by code</p>" if failed > len(failures) else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Dataset report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
.gallery{{display:flex;flex-wrap:wrap;gap:12px}} .card{{width:280px;border:1px solid #ddd;padding:8px}} .card img{{width:100%}}
.key{{font-family:monospace;font-size:small}}</style></head><body>
<h1>Dataset report</h1>
<h2>Funnel</h2>{_table(funnel_rows, ["stage", "count"])}
<h2>Clip lengths</h2><img id="lengths" src="{ASSETS_DIR}/lengths.png" alt="clip length histograms per scale">
<h2>Failures ({failed})</h2>{_table(failures, ["url", "class", "code", "message"]) if failures else "<p>none</p>"}{more}
<h2>Sampled clips</h2><div class="gallery">{cards}</div>
</body></html>
"""
    storage.write_bytes(REPORT_FILE, page.encode())
