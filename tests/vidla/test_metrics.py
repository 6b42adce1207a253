"""Retrieval metrics: hand-computed cases, ties against the query, several captions per video,
DSL beside the plain numbers, and the chunked / embedding paths equal to the dense definition."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from vidla_eval.metrics import (
    dual_softmax,
    format_table,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    retrieval_ranks,
)


def brute_ranks(t2v_scores: np.ndarray, v2t_scores: np.ndarray, labels: np.ndarray) -> tuple[list, list]:
    """The definition, one query at a time: candidates scoring >= the ground truth, ground truth included."""
    n_texts, n_videos = t2v_scores.shape
    t2v = [
        int(sum(t2v_scores[t, v] >= t2v_scores[t, labels[t]] for v in range(n_videos)))
        for t in range(n_texts)
    ]
    v2t = []
    for v in range(n_videos):
        own = [t for t in range(n_texts) if labels[t] == v]
        if not own:
            continue
        best = max(v2t_scores[t, v] for t in own)
        v2t.append(1 + sum(int(v2t_scores[t, v] >= best) for t in range(n_texts) if labels[t] != v))
    return t2v, v2t


def test_perfect_similarity_scores_rank_one_everywhere_with_and_without_dsl() -> None:
    m = retrieval_metrics(torch.eye(12), torch.arange(12), dsl=True)
    for scoring in ("plain", "dsl"):
        for direction in ("t2v", "v2t"):
            row = m[scoring][direction]
            assert (row["R@1"], row["R@5"], row["R@10"], row["MdR"], row["MnR"]) == (100, 100, 100, 1, 1)
            assert row["queries"] == 12


def test_reversed_order_gives_the_hand_computed_ranks() -> None:
    # Every text scores video v as v: text t's own video has 11 - t better videos, so rank 12 - t.
    # Each video column is constant, so every video->text query is a 12-way tie: rank 12.
    n = 12
    sim = np.tile(np.arange(n, dtype=np.float32), (n, 1))
    plain, _ = retrieval_ranks(sim, np.arange(n))
    assert plain.t2v.tolist() == list(range(12, 0, -1))
    m = retrieval_metrics(sim, np.arange(n))["plain"]
    assert m["t2v"]["R@1"] == pytest.approx(100 / 12)
    assert m["t2v"]["R@5"] == pytest.approx(500 / 12)
    assert m["t2v"]["R@10"] == pytest.approx(1000 / 12)
    assert m["t2v"]["MdR"] == 6.5 and m["t2v"]["MnR"] == 6.5
    assert m["v2t"] == {"R@1": 0, "R@5": 0, "R@10": 0, "MdR": 12, "MnR": 12, "queries": 12}


def test_constant_matrix_ties_count_against_the_query() -> None:
    # argsort-based code would place the ground truth first and report R@1 = 100.
    n = 15
    m = retrieval_metrics(np.full((n, n), 0.3), np.arange(n), dsl=True)
    for scoring in ("plain", "dsl"):
        for direction in ("t2v", "v2t"):
            assert m[scoring][direction] == {"R@1": 0, "R@5": 0, "R@10": 0, "MdR": n, "MnR": n, "queries": n}


def test_random_scores_give_the_expected_recall_and_mean_rank() -> None:
    # With i.i.d. scores a text's rank is uniform on 1..n_v: R@K = 100 K / n_v, MnR = (n_v + 1) / 2.
    rng = np.random.default_rng(0)
    n_texts, n_videos = 20_000, 20
    labels = rng.integers(0, n_videos, n_texts)
    m = retrieval_metrics(rng.standard_normal((n_texts, n_videos)), labels)["plain"]["t2v"]
    # Tolerances are about 5 standard deviations of the binomial / sample mean.
    assert m["R@1"] == pytest.approx(5.0, abs=0.8)
    assert m["R@5"] == pytest.approx(25.0, abs=1.5)
    assert m["R@10"] == pytest.approx(50.0, abs=1.8)
    assert m["MnR"] == pytest.approx(10.5, abs=0.2)
    assert m["MdR"] in (10, 10.5, 11)

    square = retrieval_metrics(rng.standard_normal((400, 400)), np.arange(400))["plain"]
    for direction in ("t2v", "v2t"):
        assert square[direction]["MnR"] == pytest.approx(200.5, abs=30)
        assert square[direction]["R@10"] <= 7.5


def test_several_captions_per_video_hand_computed() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])  # video 3 has no text: not a video->text query
    sim = np.array(
        [
            [0.9, 0.5, 0.1, 0.9],  # gt 0.9 ties video 3: rank 2
            [0.2, 0.8, 0.3, 0.1],  # gt 0.2, three videos >= it: rank 3
            [0.1, 0.7, 0.2, 0.0],  # rank 1
            [0.3, 0.3, 0.3, 0.3],  # all tied: rank 4
            [0.0, 0.7, 0.5, 0.2],  # rank 2
            [0.1, 0.2, 0.5, 0.9],  # rank 2
        ]
    )
    plain, _ = retrieval_ranks(sim, labels)
    assert plain.t2v.tolist() == [2, 3, 1, 4, 2, 2]
    # v0: best own text 0.9, no other text reaches it -> 1. v1: own 0.7; text 1 (0.8) and the
    # tie of text 4 (0.7) count against it -> 3. v2: best own 0.5; its own tied text 5 is not a
    # competitor -> 1.
    assert plain.v2t_videos.tolist() == [0, 1, 2]
    assert plain.v2t.tolist() == [1, 3, 1]
    m = retrieval_metrics(sim, labels)["plain"]
    assert m["t2v"]["R@1"] == pytest.approx(100 / 6)
    assert (m["t2v"]["MdR"], m["t2v"]["MnR"]) == (2, pytest.approx(14 / 6))
    assert m["v2t"]["R@1"] == pytest.approx(200 / 3)
    assert (m["v2t"]["MdR"], m["v2t"]["MnR"], m["v2t"]["queries"]) == (1, pytest.approx(5 / 3), 3)


def tied_problem(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued scores (many exact ties), several texts per video, some videos without text."""
    rng = np.random.default_rng(seed)
    sim = rng.integers(0, 5, (37, 23)).astype(np.float32)
    labels = rng.integers(0, 23, 37)
    assert len(np.unique(labels)) < 23
    return sim, labels


@pytest.mark.parametrize("temperature", [0.5, 0.01])
def test_chunked_path_equals_the_dense_path_exactly_including_dsl(temperature: float) -> None:
    sim, labels = tied_problem()
    dense_plain, dense_dsl = retrieval_ranks(
        sim, labels, dsl=True, chunk=len(labels), temperature=temperature
    )
    t2v, v2t = brute_ranks(sim, sim, labels)
    assert dense_plain.t2v.tolist() == t2v and dense_plain.v2t.tolist() == v2t

    for chunk in (1, 4, 36, 1024):
        plain, dsl = retrieval_ranks(sim, labels, dsl=True, chunk=chunk, temperature=temperature)
        for got, want in ((plain, dense_plain), (dsl, dense_dsl)):
            np.testing.assert_array_equal(got.t2v, want.t2v)
            np.testing.assert_array_equal(got.v2t, want.v2t)
            np.testing.assert_array_equal(got.v2t_videos, want.v2t_videos)

    from_fn = retrieval_metrics(
        lambda rows: torch.from_numpy(sim[rows]),
        labels,
        n_videos=23,
        dsl=True,
        chunk=5,
        temperature=temperature,
    )
    assert from_fn == retrieval_metrics(sim, labels, dsl=True, chunk=len(labels), temperature=temperature)


def test_chunked_dsl_equals_the_dense_dual_softmax_definition() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 40, 60)
    sim = 0.3 * rng.standard_normal((60, 40))
    t2v_scores, v2t_scores = dual_softmax(sim, temperature=0.1)
    t2v, v2t = brute_ranks(t2v_scores, v2t_scores, labels)
    _, dsl = retrieval_ranks(sim, labels, dsl=True, chunk=7, temperature=0.1)
    assert dsl.t2v.tolist() == t2v and dsl.v2t.tolist() == v2t


def test_dsl_is_reported_beside_plain_and_uses_the_test_set_prior() -> None:
    # Video 1 is a "hub" that every text likes; text 0's own video loses to it in plain scoring.
    # The prior over texts says video 1 prefers text 1, so DSL ranks text 0's video first.
    sim = np.array([[0.5, 0.6], [0.1, 0.7]])
    m = retrieval_metrics(sim, np.array([0, 1]), dsl=True, temperature=0.01)
    assert m["plain"]["t2v"]["R@1"] == 50
    assert m["dsl"]["t2v"]["R@1"] == 100
    assert m["dsl"]["temperature"] == 0.01
    assert "dsl" not in retrieval_metrics(sim, np.array([0, 1]))
    table = format_table(m).splitlines()
    assert [line.split()[:2] for line in table[2:]] == [
        ["t2v", "plain"],
        ["t2v", "dsl"],
        ["v2t", "plain"],
        ["v2t", "dsl"],
    ]
    assert "50.00" in table[2] and "100.00" in table[3]


def test_embedding_path_equals_the_matrix_path() -> None:
    rng = np.random.default_rng(3)
    # Small integers: every dot product is exact in float32, whatever the BLAS blocking.
    text = rng.integers(-2, 3, (50, 8)).astype(np.float32)
    video = rng.integers(-2, 3, (30, 8)).astype(np.float32)
    labels = rng.integers(0, 30, 50)
    from_emb = retrieval_metrics_from_embeddings(
        torch.from_numpy(text), torch.from_numpy(video), labels, dsl=True, chunk=7, temperature=0.5
    )
    assert from_emb == retrieval_metrics(text @ video.T, labels, dsl=True, temperature=0.5)


def test_peak_memory_follows_the_chunk_not_the_matrix() -> None:
    # Documented bound: chunk * n_videos * (2 * itemsize + 1) bytes of blocks, plus about
    # 120 bytes per text and per video of vectors; the slack is for small temporaries.
    rng = np.random.default_rng(4)
    n, d, chunk = 3000, 32, 128
    text = rng.standard_normal((n, d), dtype=np.float32)
    video = rng.standard_normal((n, d), dtype=np.float32)
    labels = np.arange(n)
    bound = chunk * n * (2 * 4 + 1) + 128 * (n + n) + 2**18
    tracemalloc.start()
    try:
        retrieval_metrics_from_embeddings(text, video, labels, dsl=True, chunk=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < bound, f"peak {peak} B over the documented {bound} B"
    assert peak < n * n * 4 / 4  # far below the full float32 matrix


def test_invalid_inputs_are_refused() -> None:
    sim = np.eye(3)
    bad = sim.copy()
    bad[1, 2] = np.nan  # a NaN ground truth would compare false and earn rank 1
    with pytest.raises(ValueError, match="finite"):
        retrieval_metrics(bad, np.arange(3))
    with pytest.raises(ValueError, match="index videos"):
        retrieval_metrics(sim, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="n_videos"):
        retrieval_metrics(lambda rows: sim[rows], np.arange(3))
    with pytest.raises(ValueError, match="entries"):
        retrieval_metrics(sim, np.arange(2))
