"""The event-order clips (temporal_events.py) and the temporal benchmark built on them.

What the benchmark's reading rests on: captions name the order that is on screen, hard
negatives are permutations, "order-sensitive" means what the docs say, nothing but the
order distinguishes a clip from its negatives (so a permutation-invariant model can only
guess), and the bench prints both models' numbers in one table.
"""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from temporal_events import (
    COLOURS,
    LENGTHS,
    SHAPES,
    Batch,
    eval_gallery,
    event_set,
    make_clip,
    order_sensitive,
    orders_in_gallery,
    sample_frames,
    train_batch,
    visible_colours,
)
from transformers import CLIPVisionConfig

from vidla.video_tower import MeanPoolVideoTower, VidLAVideoTower
from vidla.vidla import normalize_video
from vidla_format.layout import SCALES

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "temporal_benchmark.py"
FRAMES, SIZE, GROUPS = 12, 32, 3


def _bench():
    """``bench/temporal_benchmark.py`` as a module (``bench/`` is scripts, not a package)."""
    if "temporal_benchmark" not in sys.modules:
        spec = importlib.util.spec_from_file_location("temporal_benchmark", BENCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["temporal_benchmark"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["temporal_benchmark"]


@pytest.fixture(scope="module")
def gallery() -> Batch:
    return eval_gallery(seed=5, groups=GROUPS, frames=FRAMES, size=SIZE)


def _colours_in_caption(caption: str) -> list[str]:
    """The colour words of a caption, read from its text (not from the generator's sequence)."""
    parts = caption.split(", then ")
    colours = [p.split()[1] for p in parts]
    assert all(p.startswith("a ") and p.split()[2] in SHAPES and len(p.split()) == 3 for p in parts), caption
    return colours


def _on_screen_order(frames: np.ndarray) -> list[str]:
    """The colours decoded from the frames, consecutive repeats collapsed."""
    seen = [c for c in visible_colours(frames) if c is not None]
    return [c for i, c in enumerate(seen) if i == 0 or seen[i - 1] != c]


def test_generator_is_deterministic_and_steps_differ() -> None:
    a, b = train_batch(3, 7, 8, FRAMES, SIZE), train_batch(3, 7, 8, FRAMES, SIZE)
    assert np.array_equal(a.video, b.video) and a.captions == b.captions and a.lengths == b.lengths
    c = train_batch(3, 8, 8, FRAMES, SIZE)
    assert not np.array_equal(a.video, c.video)
    g1, g2 = eval_gallery(5, 2, FRAMES, SIZE), eval_gallery(5, 2, FRAMES, SIZE)
    assert np.array_equal(g1.video, g2.video) and g1.captions == g2.captions


def test_captions_name_the_order_on_screen(gallery: Batch) -> None:
    train = train_batch(0, 0, 32, FRAMES, SIZE)
    for batch in (gallery, train):
        for frames, caption, length in zip(batch.video, batch.captions, batch.lengths, strict=True):
            colours = _colours_in_caption(caption)
            assert len(colours) == LENGTHS[length].events
            assert _on_screen_order(frames) == colours, caption


def test_every_event_is_sampled_whatever_the_random_offsets() -> None:
    rng = np.random.default_rng(0)
    for length in SCALES:
        for i in range(40):
            sequence = tuple((c, "square") for c in list(COLOURS)[: LENGTHS[length].events])
            clip = make_clip(rng, length, sequence, FRAMES)
            frames = sample_frames(clip, FRAMES, SIZE, train=True, rng=random.Random(i))
            assert _on_screen_order(frames) == [c for c, _ in sequence]


def test_gallery_hard_negatives_are_permutations_and_captions_unique(gallery: Batch) -> None:
    assert len(set(gallery.captions)) == len(gallery.captions)
    start = 0
    for length in SCALES:
        k = LENGTHS[length].events
        block = gallery.sequences[start : start + GROUPS * (k + 1)]
        assert all(g == length for g in gallery.lengths[start : start + len(block)])
        for g in range(GROUPS):
            orders = block[g * k : (g + 1) * k]
            assert len(set(orders)) == k  # k distinct orders...
            assert len({event_set(s) for s in orders}) == 1  # ...of the same events
        sets = [event_set(block[g * k]) for g in range(GROUPS)] + [event_set(s) for s in block[GROUPS * k :]]
        assert len(set(sets)) == 2 * GROUPS  # no set shared between groups
        start += len(block)
    assert start == len(gallery.sequences)


def test_order_sensitive_definition() -> None:
    r, b, g, y = ("red", "square"), ("blue", "disc"), ("green", "square"), ("yellow", "disc")
    sequences = [(r, b), (b, r), (r, g), (g, y, b), (y, g, b), (b, y, r)]
    assert order_sensitive(sequences).tolist() == [True, True, False, True, True, False]
    assert orders_in_gallery(sequences).tolist() == [2, 2, 1, 2, 2, 1]
    with pytest.raises(ValueError, match="ambiguous"):
        order_sensitive([(r, b), (r, b)])


def test_gallery_order_sensitive_queries_are_exactly_the_multi_order_groups(gallery: Batch) -> None:
    expected = []
    for length in SCALES:
        k = LENGTHS[length].events
        expected += [True] * (GROUPS * k) + [False] * GROUPS
    assert order_sensitive(gallery.sequences).tolist() == expected


def test_order_is_the_only_difference_on_average() -> None:
    """Permutation-invariant statistics carry no order: each position in the order is on screen equally long."""
    rng = np.random.default_rng(1)
    for length in SCALES:
        k = LENGTHS[length].events
        shares = np.zeros(k)
        n = 300
        for i in range(n):
            sequence = tuple((c, "disc") for c in rng.permutation(list(COLOURS))[:k])
            clip = make_clip(rng, length, sequence, FRAMES)
            seen = visible_colours(sample_frames(clip, FRAMES, SIZE, train=True, rng=random.Random(i)))
            shares += [seen.count(c) / FRAMES for c, _ in sequence]
        shares /= n
        assert np.allclose(shares, 1 / k, atol=0.03), (length, shares)


def _towers() -> tuple[MeanPoolVideoTower, VidLAVideoTower]:
    config = CLIPVisionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=SIZE,
        patch_size=8,
    )  # fmt: skip
    torch.manual_seed(0)
    vidla = VidLAVideoTower(config, 16, temporal_positions=FRAMES, mst_levels=3, mst_per_level=2, mst_stride=2)
    with torch.no_grad():
        vidla.temporal_embedding.normal_(0, 0.5)  # as after training: frames know their time
    return MeanPoolVideoTower(config, 16).eval(), vidla.eval()


@torch.no_grad()
def test_mean_pooling_ties_exact_permutations_but_not_the_generated_negatives(gallery: Batch) -> None:
    meanpool, vidla = _towers()
    clip = make_clip(np.random.default_rng(2), "short", (("red", "square"), ("blue", "disc")), FRAMES)
    frames = sample_frames(clip, FRAMES, SIZE, train=False, rng=random.Random(0))
    first = [i for i, c in enumerate(visible_colours(frames)) if c == "red"]
    # Blue first: the same frames, reordered in time.
    swapped = frames[[i for i in range(FRAMES) if i not in first] + first]
    assert _on_screen_order(swapped) == ["blue", "red"]
    pair = normalize_video(torch.from_numpy(np.stack([frames, swapped])))
    pooled = meanpool(pair)
    assert torch.allclose(pooled[0], pooled[1], atol=1e-6)  # mean pooling cannot tell them apart
    assert not torch.allclose(vidla(pair)[0], vidla(pair)[1], atol=1e-3)  # the video tower can
    # The generated negatives are fresh renderings: mean pooling is not trivially tied on them.
    siblings = normalize_video(torch.from_numpy(gallery.video[:2]))  # one short set, both orders
    assert event_set(gallery.sequences[0]) == event_set(gallery.sequences[1])
    pooled = meanpool(siblings)
    assert not torch.allclose(pooled[0], pooled[1], atol=1e-3)


def test_evaluation_counts_ties_against_the_query(gallery: Batch) -> None:
    bench = _bench()
    n = len(gallery.captions)
    perfect = bench.evaluate(np.eye(n), gallery)
    assert perfect["all"]["r1"] == perfect["all"]["r1_order"] == perfect["all"]["pick"] == 100.0
    keys = [event_set(s) for s in gallery.sequences]
    blind = np.array([[float(keys[q] == keys[v]) for v in range(n)] for q in range(n)])  # order-blind, tied
    scores = bench.evaluate(blind, gallery)
    assert scores["all"]["r1_order"] == scores["all"]["pick"] == 0.0
    singles = ~order_sensitive(gallery.sequences)
    assert scores["all"]["r1"] == pytest.approx(100.0 * singles.mean())


def test_both_models_start_from_the_same_clip() -> None:
    bench = _bench()
    budget = bench.Budget(pretrain_steps=2, pretrain_batch=8, steps=1, batch=4)
    models = bench.build_pair(0, budget)
    bench.check_same_clip(models["vidla"], models["meanpool"])
    assert hasattr(models["vidla"].video, "mst_tokens") and hasattr(models["meanpool"].video, "image")
    with torch.no_grad():
        models["meanpool"].video.image.pre_ln.weight[0] += 1e-3
    with pytest.raises(AssertionError, match="pre_ln"):
        bench.check_same_clip(models["vidla"], models["meanpool"])


def test_quick_bench_prints_both_models_in_one_table(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.perf_counter() - start < 60
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| length |"))
    assert "R@1 VidLA" in header and "R@1 meanP" in header and "ratio VidLA/meanP" in header
    assert "order-blind ceiling" in header and "chance R@1" in header
    rows = [line for line in lines if line.startswith("|") and line.split("|")[1].strip() in (*SCALES, "all")]
    assert [r.split("|")[1].strip() for r in rows] == [*SCALES, "all"]
    assert all(len(r.split("|")) == len(header.split("|")) for r in rows)
    result = json.loads(out.read_text())
    facts = result["facts"]
    for length in SCALES:
        k = LENGTHS[length].events
        groups = result["budget"]["groups"]
        assert facts[length]["queries"] == groups * (k + 1) and facts[length]["order_queries"] == groups * k
        assert facts[length]["order_blind"] == pytest.approx(100.0 / k)
    (run,) = result["runs"]
    for arch in ("vidla", "meanpool"):
        assert set(run["scores"][arch]) == {*SCALES, "all"}
        assert all(0 <= run["scores"][arch]["all"][m] <= 100 for m in ("r1", "r1_order", "pick"))
    assert "| no [MST] |" in proc.stdout
