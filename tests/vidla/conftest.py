"""Fixtures for the model tests: small shards in the dataset format, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_shards import SyntheticClip, write_shards


def _clips() -> list[SyntheticClip]:
    short = [
        SyntheticClip(scale="short", duration=2.0, stored_frames=8, subtitle=f"short clip {i}")
        for i in range(8)
    ]
    # Fewer stored frames than the model's 4: these take the mp4 seek-decode path.
    medium = [
        SyntheticClip(
            scale="medium", duration=4.0, stored_frames=2, caption=None, summary=f"medium summary {i}"
        )
        for i in range(4)
    ]
    long = [SyntheticClip(scale="long", duration=6.0, stored_frames=8, subtitle=None) for _ in range(3)]
    held_out = [
        SyntheticClip(scale="short", split="val", subtitle="validation clip"),
        SyntheticClip(scale="long", split="test", subtitle="test clip"),
    ]
    return short + medium + long + held_out


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``shards/{short,medium,long}`` with train/val/test samples, JPEG-path and mp4-path clips,
    missing captions and subtitles, and an uncommitted tar (no index) that readers must ignore."""
    root = tmp_path_factory.mktemp("demo") / "shards"
    write_shards(root, _clips(), samples_per_shard=4, size=(64, 48), frame_short_side=48)
    uncommitted = root / "short" / "shard-000009.tar"
    uncommitted.write_bytes((root / "short" / "shard-000000.tar").read_bytes())
    return root
