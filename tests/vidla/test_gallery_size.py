"""--gallery-size: the hierarchical test ranks a fixed-size gallery per scale, drawn reproducibly by seed."""

from __future__ import annotations

import numpy as np
import pytest

from vidla_eval.eval_retrieval import ShardEmbeddings, gallery_rows, parse_args, shard_sets


def _embeddings(per_scale: dict[str, int]) -> ShardEmbeddings:
    emb = ShardEmbeddings()
    rng = np.random.default_rng(0)
    for scale, n in per_scale.items():
        for i in range(n):
            emb.keys.append(f"{scale}-{i}")
            emb.scales.append(scale)
            emb.video.append(rng.standard_normal(4))
            for name in ("caption", "subtitle"):
                emb.text[name].append(rng.standard_normal(4))
                emb.valid[name].append(True)
    return emb


def test_each_scale_ranks_a_gallery_of_the_given_size_drawn_by_the_seed() -> None:
    emb = _embeddings({"short": 50, "medium": 30, "long": 5})
    sets = {s.name: s for s in shard_sets(emb, gallery_size=20, seed=1)}
    assert [len(sets[f"{sc}/caption"].video) for sc in ("short", "medium", "long", "all")] == [20, 20, 5, 20]
    assert all(len(s.text) == len(s.video) for s in sets.values())  # each drawn clip brings its own text
    again = {s.name: s for s in shard_sets(emb, gallery_size=20, seed=1)}
    other = {s.name: s for s in shard_sets(emb, gallery_size=20, seed=2)}
    assert np.array_equal(sets["short/caption"].video, again["short/caption"].video)
    assert not np.array_equal(sets["short/caption"].video, other["short/caption"].video)
    whole = {s.name: s for s in shard_sets(emb)}
    assert len(whole["short/caption"].video) == 50


def test_gallery_rows_are_a_sorted_sample_without_replacement() -> None:
    rows = np.arange(100, 200)
    got = gallery_rows(rows, 30, seed=0, set_index=3)
    assert len(got) == len(set(got.tolist())) == 30 and set(got) <= set(rows) and (np.diff(got) > 0).all()
    assert gallery_rows(rows, None, 0, 0) is rows and gallery_rows(rows[:5], 30, 0, 0).size == 5


def test_gallery_size_needs_shards() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--config", "c.yaml", "--benchmark", "msrvtt", "--benchmark-root", "/x", "--gallery-size", "10"])
    assert parse_args(["--config", "c.yaml", "--shards", "s", "--gallery-size", "1000"]).gallery_size == 1000
