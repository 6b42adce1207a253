"""``report.html``: a page a person opens to look at a dataset.

Clip-length histograms per scale, the funnel, a failure table, and a gallery of sampled
clips with a thumbnail (read from the shard by the index's byte offset, no full scan),
the time span and the texts. Assets go to ``report/`` beside the page.
"""

from __future__ import annotations

import hashlib
import html
import io
import tarfile
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from vidla_format.clips import read_clips  # noqa: E402
from vidla_format.layout import SCALES, VIDEOS_FILE  # noqa: E402
from vidla_format.storage import Storage  # noqa: E402

REPORT_FILE = "report.html"
ASSETS_DIR = "report"
GALLERY_SIZE = 24


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


def _histograms(clips: list[dict]) -> bytes:
    fig, axes = plt.subplots(1, len(SCALES), figsize=(4 * len(SCALES), 3), constrained_layout=True)
    for ax, scale in zip(axes, SCALES, strict=True):
        lengths = [c["duration"] for c in clips if c["scale"] == scale]
        ax.hist(lengths, bins=20, color="#4477aa")
        mean = f", mean {sum(lengths) / len(lengths):.1f} s" if lengths else ""
        ax.set_title(f"{scale}: {len(lengths)} clips{mean}")
        ax.set_xlabel("clip length (s)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _sampled(clips: list[dict]) -> list[dict]:
    """A deterministic, scale-balanced sample of clips for the gallery."""
    ranked = sorted(clips, key=lambda c: hashlib.sha1(c["key"].encode()).hexdigest())
    per_scale = max(1, GALLERY_SIZE // len(SCALES))
    return [c for scale in SCALES for c in [c for c in ranked if c["scale"] == scale][:per_scale]]


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


def _failed_videos(storage: Storage) -> list[dict]:
    """The ledger's failed rows: filtered in Arrow, since the ledger has a row per source video (20M in the paper)."""
    if not storage.exists(VIDEOS_FILE):
        return []
    videos = storage.read_parquet(VIDEOS_FILE, ["url", "status", "error_class", "error_code", "error"])
    return videos.filter(pc.equal(videos["status"], "failed")).to_pylist()


def write_report(storage: Storage, stats: dict[str, Any]) -> None:
    """Write ``report.html`` and its assets from the dataset's ``clips.parquet`` and ledger."""
    clips = read_clips(storage).to_pylist()
    videos = _failed_videos(storage)
    storage.write_bytes(f"{ASSETS_DIR}/lengths.png", _histograms(clips))
    frames = int(stats.get("config", {}).get("samples", {}).get("frames_per_clip", 16))
    funnel = stats.get("funnel", {})
    funnel_rows = [[k, v] for k, v in funnel.items() if not isinstance(v, dict)]
    funnel_rows += [[f"clips {s}", n] for s, n in funnel.get("clips", {}).items()]
    failures = [[v["url"], v["error_class"], v["error_code"], (v["error"] or "")[:300]] for v in videos]
    cards = "".join(_card(storage, c, frames) for c in _sampled(clips))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Dataset report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
.gallery{{display:flex;flex-wrap:wrap;gap:12px}} .card{{width:280px;border:1px solid #ddd;padding:8px}} .card img{{width:100%}}
.key{{font-family:monospace;font-size:small}}</style></head><body>
<h1>Dataset report</h1>
<h2>Funnel</h2>{_table(funnel_rows, ["stage", "count"])}
<h2>Clip lengths</h2><img id="lengths" src="{ASSETS_DIR}/lengths.png" alt="clip length histograms per scale">
<h2>Failures ({len(failures)})</h2>{_table(failures, ["url", "class", "code", "message"]) if failures else "<p>none</p>"}
<h2>Sampled clips</h2><div class="gallery">{cards}</div>
</body></html>
"""
    storage.write_bytes(REPORT_FILE, page.encode())
