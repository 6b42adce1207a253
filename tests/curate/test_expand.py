"""Playlists and multi-video pages expand into one row per video, for real over loopback HTTP.

A page with two ``<video>`` elements (yt-dlp's html5 multi_video) and an RSS feed listing the
demo pages (a playlist of links) are served from a temporary directory; the listing runs in
the limited child under the egress policy, and the expanded entries download through the
real download stage.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.config import CurateConfig, load_config
from curate.demo.server import serve_directory
from curate.download import download
from curate.errors import CurateError
from curate.expand import entry_index, expand_source
from curate.sources import SourceRow, normalize_url, video_id_for

PAGES = ("cooking", "lecture", "vlog")
TWO_VIDEOS = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Two videos</title></head><body>
<video controls><source src="cooking.mp4" type="video/mp4"><track kind="subtitles" srclang="en" src="cooking.en.srt"></video>
<video controls><source src="lecture.mp4" type="video/mp4"><track kind="subtitles" srclang="en" src="lecture.en.vtt"></video>
</body></html>
"""


def feed(base: str, links: list[str]) -> str:
    items = "".join(f"<item><title>{link}</title><link>{link}</link></item>" for link in links)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Demo feed</title><link>{base}</link>{items}</channel></rss>'


@pytest.fixture(scope="module")
def site(demo_corpus, tmp_path_factory) -> Iterator[str]:
    corpus_dir, _ = demo_corpus
    root = tmp_path_factory.mktemp("site")
    for name in PAGES:
        for path in corpus_dir.glob(f"{name}.*"):
            shutil.copy(path, root / path.name)
    (root / "two.html").write_text(TWO_VIDEOS)
    with serve_directory(root) as base:
        links = [f"{base}{name}.html" for name in PAGES]
        (root / "feed.xml").write_text(feed(base, [*links, links[0], "http://10.11.12.13/private.html"]))
        yield base


def config(*overrides: str) -> CurateConfig:
    return load_config(None, ["download.allow_hosts=127.0.0.1", "download.attempts=1", *overrides])


def row(url: str, given_id: str | None = None) -> SourceRow:
    return SourceRow(normalize_url(url), video_id_for(url, given_id), "pending", None, None, 7)


def test_a_page_with_two_videos_expands_into_two_rows_that_download_their_own_video(site: str, tmp_path: Path) -> None:
    source = row(f"{site}two.html", "two")
    expansion = expand_source(source, config())
    assert expansion.expanded and expansion.summary() == "expanded into 2 entries"
    assert [(r.url, r.video_id, r.status, r.row) for r in expansion.entries] == [
        (f"{site}two.html#entry=1", "two-e1", "pending", 7),
        (f"{site}two.html#entry=2", "two-e2", "pending", 7),
    ]
    got = [download(r.url, r.video_id, tmp_path / r.video_id, config().download) for r in expansion.entries]
    # Each entry is its own video with its own subtitle track: the cooking clip's SRT, the lecture's VTT.
    assert [g.subtitle_path.suffix for g in got if g.subtitle_path] == [".srt", ".vtt"]
    assert abs(got[0].media.duration - got[1].media.duration) > 1


def test_a_missing_entry_of_a_page_fails_permanently(site: str, tmp_path: Path) -> None:
    with pytest.raises(CurateError) as failure:
        download(f"{site}two.html#entry=3", "two-e3", tmp_path, config().download)
    assert (failure.value.code, failure.value.error_class) == ("playlist", "permanent")


def test_a_feed_expands_into_its_linked_pages_deduped_and_refusing_private_hosts(site: str) -> None:
    expansion = expand_source(row(f"{site}feed.xml"), config())
    entries = expansion.entries
    assert [r.url for r in entries[:3]] == [normalize_url(f"{site}{name}.html") for name in PAGES]
    assert [r.video_id for r in entries[:3]] == [video_id_for(r.url) for r in entries[:3]]
    assert (entries[3].status, entries[3].error_code) == ("skipped", "duplicate")
    assert (entries[4].status, entries[4].error_code) == ("failed", "egress_refused")
    assert "10.11.12.13" in (entries[4].error or "")


def test_the_cap_and_the_entries_already_done(site: str) -> None:
    capped = expand_source(row(f"{site}feed.xml"), config("sources.max_entries_per_source=2"))
    assert len(capped.entries) == 2 and capped.capped and capped.listed == 3
    assert "capped" in capped.summary()
    done_url = normalize_url(f"{site}lecture.html")
    rerun = expand_source(row(f"{site}feed.xml"), config(), done=lambda url: url == done_url)
    assert rerun.already_done == 1 and done_url not in [r.url for r in rerun.entries]
    assert rerun.summary() == "expanded into 5 entries (1 already done)"


def test_single_videos_are_not_expanded(site: str) -> None:
    page = row(f"{site}cooking.html", "cooking")
    assert expand_source(page, config()).entries == [page]
    # A YouTube video URL holds one video: no request is made (this host is not reachable here).
    youtube = row("https://youtu.be/dQw4w9WgXcQ")
    expansion = expand_source(youtube, config())
    assert not expansion.expanded and expansion.entries == [youtube] and expansion.summary() == "one video"


def test_the_egress_policy_refuses_the_listing_itself(site: str) -> None:
    with pytest.raises(CurateError) as refused:
        expand_source(row(f"{site}feed.xml"), load_config(None, []))
    assert refused.value.code == "egress_refused"


def test_entry_fragments() -> None:
    assert entry_index("http://h/p.html#entry=12") == 12
    assert entry_index("http://h/p.html#entry=0") is None and entry_index("http://h/p.html#t=3") is None
