"""Clip planning: nested scales, boundaries on frames where the content says, respect for shot cuts, text placement."""

from __future__ import annotations

import random

import pytest

from curate.config import PlanConfig
from curate.plan import group_spans, plan_clips, sentence_runs
from curate.subtitles import Sentence
from vidla_format.layout import SCALES, clip_key

FPS = 25.0


def speech(duration: float, every: float = 6.0, length: float = 4.5, seed: int = 0) -> list[Sentence]:
    """Sentences of ~``length`` s every ~``every`` s, with a little jitter."""
    rng = random.Random(seed)
    out, t = [], 0.5
    while t + length < duration:
        n = len(out)
        out.append(Sentence(round(t, 3), round(t + length, 3), f"sentence number {n}."))
        t += every + rng.uniform(-1.0, 1.0)
    return out


def grid(duration: float, step: float) -> list[float]:
    return [round(i * step, 6) for i in range(int(duration / step) + 1)]


def assert_nested(plan, duration):
    for lower, upper in zip(SCALES, SCALES[1:], strict=False):
        for parent in plan.clips[upper]:
            kids = [plan.clips[lower][i] for i in parent.children]
            assert kids, "every clip above short has children"
            assert kids[0].start == parent.start and kids[-1].end == parent.end
            for a, b in zip(kids, kids[1:], strict=False):
                assert a.end == b.start, "children tile their parent"
            assert all(k.parent == parent.index for k in kids)
    for scale in SCALES:
        cfg = getattr(PlanConfig(), scale)
        for clip in plan.clips[scale]:
            assert cfg.min_s - 1e-6 <= clip.duration <= cfg.max_s + 1e-6
            assert 0 <= clip.start < clip.end <= duration + 1e-6


def test_speech_video_gets_nested_clips_at_all_three_scales():
    duration = 300.0
    plan = plan_clips(duration, speech(duration), [], grid(duration, 2.0), FPS, PlanConfig())
    assert all(plan.count(s) > 0 for s in SCALES)
    assert_nested(plan, duration)


def test_mean_lengths_land_near_the_targets():
    duration = 1200.0
    plan = plan_clips(duration, speech(duration, seed=3), [], grid(duration, 2.0), FPS, PlanConfig())
    cfg = PlanConfig()
    for scale in SCALES:
        lengths = [c.duration for c in plan.clips[scale]]
        mean = sum(lengths) / len(lengths)
        assert abs(mean - getattr(cfg, scale).target_s) < 0.2 * getattr(cfg, scale).target_s, (scale, mean)


def boundaries(plan) -> list[float]:
    return sorted({t for scale in SCALES for c in plan.clips[scale] for t in (c.start, c.end)})


def test_boundaries_sit_on_frames_where_the_speech_is_not_on_sparse_keyframes():
    # YouTube-like: keyframes 5 s apart. Boundaries follow the sentences, to the frame.
    duration = 200.0
    sentences = speech(duration)
    plan = plan_clips(duration, sentences, [], grid(duration, 5.0), FPS, PlanConfig())
    points = boundaries(plan)
    assert all(abs(t * FPS - round(t * FPS)) < 1e-6 for t in points), "every boundary is a frame start"
    off_keyframe = [t for t in points if min(abs(t - k) for k in grid(duration, 5.0)) > 2.5 / FPS]
    assert len(off_keyframe) > 0.8 * len(points), "sparse keyframes don't pull boundaries away from the speech"
    pauses = [(a.end, b.start) for a, b in zip(sentences, sentences[1:], strict=False)]
    inner = [t for t in points if sentences[0].start + 1 / FPS < t < sentences[-1].end - 1 / FPS]
    for t in inner:
        assert any(lo - 1 / FPS <= t <= hi + 1 / FPS for lo, hi in pauses), f"{t} cuts into a sentence"


def test_a_keyframe_a_frame_or_two_away_is_taken():
    # The pause between two sentences is centred 0.06 s (1.5 frames) from a keyframe at 12.0.
    sentences = [Sentence(0.2, 5.0, "one."), Sentence(5.2, 11.9, "two."), Sentence(12.22, 19.0, "three.")]
    sentences += [Sentence(19.5, 25.0, "four."), Sentence(25.4, 31.0, "five.")]
    cfg = PlanConfig(short={"min_s": 5, "max_s": 13, "target_s": 11})
    plan = plan_clips(32.0, sentences, [], [0.0, 12.0, 24.0], FPS, cfg)
    assert 12.0 in boundaries(plan)
    far = plan_clips(32.0, sentences, [], [0.0, 12.0, 24.0], FPS, cfg.model_copy(update={"keyframe_snap_frames": 0}))
    assert 12.0 not in boundaries(far) and 12.08 in boundaries(far), "else the frame nearest mid-pause (12.06)"


def test_a_boundary_near_a_cut_moves_onto_the_cut():
    # A sentence ends at 11.4 and the next starts at 11.8: the ideal boundary is 11.6;
    # there is a cut at 12.2, within cut_snap_s, and no keyframe near it.
    sentences = [Sentence(0.2, 5.0, "one."), Sentence(5.2, 11.4, "two."), Sentence(11.8, 19.0, "three.")]
    sentences += [Sentence(19.5, 25.0, "four."), Sentence(25.4, 31.0, "five.")]
    cfg = PlanConfig(short={"min_s": 5, "max_s": 13, "target_s": 11})
    plan = plan_clips(32.0, sentences, [12.2], [0.0, 5.0, 10.0, 15.0], FPS, cfg)
    assert 12.2 in {round(c.end, 3) for c in plan.clips["short"]}


def test_no_clip_opens_or_closes_on_a_sliver_of_another_shot():
    duration = 120.0
    cuts = [7.92, 33.28, 61.12, 90.68]
    plan = plan_clips(duration, speech(duration), cuts, grid(duration, 5.0), FPS, PlanConfig())
    for scale in SCALES:
        for clip in plan.clips[scale]:
            inside = [c for c in cuts if clip.start < c < clip.end]
            if inside:
                assert inside[0] - clip.start >= 1.0 - 1e-6, f"{scale} opens on {inside[0] - clip.start:.2f} s of a shot"
                assert clip.end - inside[-1] >= 1.0 - 1e-6, f"{scale} closes on {clip.end - inside[-1]:.2f} s of a shot"


def test_a_long_silence_separates_clips():
    first = speech(60.0)
    second = [Sentence(s.start + 90.0, s.end + 90.0, s.text) for s in speech(60.0, seed=1)]
    plan = plan_clips(160.0, first + second, [], grid(160.0, 1.0), FPS, PlanConfig())
    for scale in SCALES:
        for clip in plan.clips[scale]:
            assert not (clip.start < 70.0 and clip.end > 85.0), f"{scale} clip spans the silence"


def test_each_sentence_lands_in_exactly_one_short_clip_and_in_its_ancestors():
    duration = 240.0
    sentences = speech(duration)
    plan = plan_clips(duration, sentences, [], grid(duration, 2.0), FPS, PlanConfig())
    placed = [s for c in plan.clips["short"] for s in c.sentences]
    assert len(placed) == len(set(placed)) == len(sentences) - plan.dropped_sentences
    for clip in plan.clips["short"]:
        for s in clip.sentences:
            assert clip.start <= (s.start + s.end) / 2 < clip.end
    for medium in plan.clips["medium"]:
        kids = [plan.clips["short"][i] for i in medium.children]
        assert medium.sentences == [s for k in kids for s in k.sentences]


def test_without_subtitles_shots_are_the_units():
    # bikes.mp4: 10 s, cuts (and keyframes) at 1.2, 3.04, 5.48, 7.48, 9.68.
    cuts = [1.2, 3.04, 5.48, 7.48, 9.68]
    plan = plan_clips(10.0, [], cuts, [0.0, *cuts], FPS, PlanConfig())
    # The last shot (0.32 s) is a sliver: the clip ends on the cut before it rather than on it.
    assert [(c.start, c.end) for c in plan.clips["short"]] == [(0.0, 9.68)]
    assert plan.count("medium") == plan.count("long") == 0


def test_a_shot_longer_than_the_short_maximum_is_split():
    plan = plan_clips(100.0, [], [], grid(100.0, 1.0), FPS, PlanConfig())
    assert plan.count("short") >= 100.0 / PlanConfig().short.max_s
    assert_nested(plan, 100.0)


def test_a_video_shorter_than_the_shortest_clip_gets_no_clip():
    plan = plan_clips(1.0, [], [], [0.0], FPS, PlanConfig())
    assert plan.total == 0


@pytest.mark.parametrize("video_id", ["abc", "a-b_c", "x" * 11])
def test_keys_are_deterministic_and_safe(video_id):
    key = clip_key(video_id, "medium", 7)
    assert key == f"{video_id}_medium_0007"
    assert all(ch.isalnum() or ch in "_-" for ch in key)


def test_sentence_runs_put_boundaries_mid_pause():
    runs = sentence_runs([Sentence(0.0, 4.0, "a."), Sentence(6.0, 9.0, "b.")], max_silence_s=10.0)
    assert runs == [[0.0, 5.0, 9.0]]


def test_group_spans_never_crosses_a_gap():
    spans = [(0.0, 6.0), (6.0, 12.0), (20.0, 26.0), (26.0, 32.0)]
    groups = group_spans(spans, PlanConfig().short)
    for g in groups:
        assert all(spans[i][1] == spans[i + 1][0] for i in g[:-1])
