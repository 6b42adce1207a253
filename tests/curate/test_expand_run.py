"""End to end through the plain loop: a playlist in the source list becomes its videos' clips, once."""

from __future__ import annotations

import json
from pathlib import Path

from playlist_site import check_expanded, ledger, playlist_site, shard_files

from curate.config import load_config
from curate.run import run

ROOT = Path(__file__).resolve().parents[2]


def test_a_feed_expands_into_clips_and_a_rerun_lists_it_again_without_downloading_its_entries(demo_corpus, tmp_path):
    corpus_dir, _ = demo_corpus
    overrides = ["download.allow_hosts=127.0.0.1", "download.attempts=1", "text.llm.backend=none", "text.vlm.backend=none"]
    config = load_config(ROOT / "configs" / "demo.yaml", overrides)
    out = tmp_path / "dataset"
    with playlist_site(corpus_dir, tmp_path / "site") as (base, sources):
        first = run(sources, out, config, workers=2, progress=False)
        assert first.processed == 2  # the lecture and the feed's new entry; the rest are ledger rows
        check_expanded(out, base)
        written, rows = shard_files(out), ledger(out)
        again = run(sources, out, config, workers=2, progress=False)
    assert again.processed == 0 and shard_files(out) == written
    after = ledger(out)
    assert {k: v for k, v in after.items() if k != "feed/None"} == {k: v for k, v in rows.items() if k != "feed/None"}
    assert after["feed/None"]["entries"] == 2  # listed again: a new entry would have been picked up
    assert json.loads((out / "stats.json").read_text())["run"]["samples_written"] == {"short": 0, "medium": 0, "long": 0}
