"""A loopback site with a playlist (an RSS feed of two demo pages) and the list that points at it.

Shared by the end-to-end expansion tests of both drivers (``tests/curate/test_expand_run.py``,
``tests/pipelines/test_expand_pipeline.py``): the list names the lecture page itself first, then
the feed, so the feed's lecture entry is a duplicate of row 0 and only its cooking entry is new.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq

from curate.demo.server import serve_directory
from curate.sources import normalize_url, video_id_for

PAGES = ("cooking", "lecture")


@contextmanager
def playlist_site(corpus_dir: Path, root: Path) -> Iterator[tuple[str, Path]]:
    """Serve the pages and ``feed.xml``; yield the base URL and a source list (csv: lecture, the feed)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PAGES:
        for path in corpus_dir.glob(f"{name}.*"):
            shutil.copy(path, root / path.name)
    with serve_directory(root) as base:
        items = "".join(f"<item><title>{n}</title><link>{base}{n}.html</link></item>" for n in PAGES)
        (root / "feed.xml").write_text(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title><link>{base}</link>{items}</channel></rss>'
        )
        sources = root / "sources.csv"
        sources.write_text(f"id,url\nlecture,{base}lecture.html\nfeed,{base}feed.xml\n")
        yield base, sources


def ledger(out: Path) -> dict[str, dict]:
    return {f"{r['video_id']}/{r['error_code']}": r for r in pq.read_table(out / "videos.parquet").to_pylist()}


def check_expanded(out: Path, base: str) -> None:
    """The feed's row says it expanded into 2 entries; its new entry is an ordinary video with clips;
    its other entry is the duplicate of row 0 it is; every row is accounted for."""
    rows = ledger(out)
    cooking = video_id_for(normalize_url(f"{base}cooking.html"))
    lecture_entry = video_id_for(normalize_url(f"{base}lecture.html"))
    assert set(rows) == {"lecture/None", "feed/None", f"{cooking}/None", f"{lecture_entry}/duplicate"}
    feed = rows["feed/None"]
    assert (feed["status"], feed["entries"], feed["input_row"], feed["error_class"]) == ("expanded", 2, 1, None)
    entry = rows[f"{cooking}/None"]
    assert (entry["status"], entry["expanded_from"], entry["input_row"]) == ("ok", "feed", 1)
    assert entry["clips_short"] > 0 and rows["lecture/None"]["status"] == "ok"
    dup = rows[f"{lecture_entry}/duplicate"]
    assert (dup["status"], dup["expanded_from"], dup["input_row"]) == ("skipped", "feed", 1)
    assert "duplicate of row 0 (same URL)" in dup["error"]
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    assert {c["video_id"] for c in clips} == {"lecture", cooking}


def shard_files(out: Path) -> dict[Path, int]:
    """The shard files of every scale and when they were written (a rerun that downloads nothing adds none)."""
    return {p: p.stat().st_mtime_ns for p in out.glob("shards/*/shard-*")}
