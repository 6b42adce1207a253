"""End to end through the Ray pipeline: a playlist in the source list becomes its videos' clips, once.

The same site and checks as the plain loop's test (``tests/playlist_site.py``), with the planner's
stages (read, plan with listings, in-order de-duplication, the ledger's verdict) on a local Ray.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from playlist_site import check_expanded, ledger, playlist_site, shard_files

from pipelines.build_dataset import build
from pipelines.config import load_pipeline_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def local_ray():
    """A Ray of this test's own (never a cluster another process started), shut down after it."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_feed_expands_into_clips_and_a_rerun_does_not_download_its_entries(demo_corpus, tmp_path, local_ray):
    corpus_dir, _ = demo_corpus
    overrides = ["download.allow_hosts=127.0.0.1", "download.attempts=1", "ray.progress=false", "text.llm.backend=none",
                 "text.vlm.backend=none"]
    config = load_pipeline_config(ROOT / "configs" / "demo.yaml", overrides)
    out = tmp_path / "dataset"
    with playlist_site(corpus_dir, tmp_path / "site") as (base, sources):
        build(sources, str(out), config)
        check_expanded(out, base)
        written, rows = shard_files(out), ledger(out)
        again = build(sources, str(out), config)
    assert shard_files(out) == written and sum(again.samples_written.values()) == 0
    after = ledger(out)
    assert {k: v for k, v in after.items() if k != "feed/None"} == {k: v for k, v in rows.items() if k != "feed/None"}
    assert after["feed/None"]["entries"] == 2
