"""Frame sampling (uniform segments), crops, and the two decoders (JPEG, mp4 seek-decode)."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic_shards import clip_frames, encode_mp4, jpeg

from vidla.frames import (
    Crop,
    crop_resize,
    decode_jpegs,
    decode_mp4,
    draw_crop,
    segment_indices,
    segment_times,
)

FPS, DURATION = 8.0, 2.0


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, bytes]:
    frames = clip_frames(DURATION, FPS, (64, 48), phase=0.3)
    return frames, encode_mp4(frames, FPS, gop=4)


def level_at(frame_index: int) -> float:
    """The synthetic clip's mean brightness in frame ``frame_index``."""
    return 40 + 150 * (frame_index + 0.5) / FPS / DURATION


def test_training_indices_fall_one_in_each_segment_and_evaluation_takes_the_middles() -> None:
    rng = random.Random(0)
    for _ in range(50):
        picks = segment_indices(16, 12, train=True, rng=rng)
        for i, p in enumerate(picks):
            assert int(i * 16 / 12) <= p < (i + 1) * 16 / 12
    assert segment_indices(16, 4, train=False, rng=rng) == [2, 6, 10, 14]
    assert segment_indices(16, 16, train=False, rng=rng) == list(range(16))
    many = {tuple(segment_indices(16, 12, train=True, rng=rng)) for _ in range(20)}
    assert len(many) > 1  # random offsets, not a fixed pattern


def test_fewer_stored_frames_than_wanted_repeat_in_order() -> None:
    picks = segment_indices(3, 8, train=True, rng=random.Random(1))
    assert picks == sorted(picks) and set(picks) <= {0, 1, 2} and len(picks) == 8


def test_segment_times_are_uniform_with_random_or_middle_offsets() -> None:
    assert segment_times(12.0, 4, train=False, rng=random.Random(0)) == [1.5, 4.5, 7.5, 10.5]
    times = segment_times(12.0, 4, train=True, rng=random.Random(0))
    assert all(3 * i <= t < 3 * (i + 1) for i, t in enumerate(times))


def test_evaluation_crop_is_the_unflipped_centre_square_and_training_crops_vary() -> None:
    assert draw_crop(False, [1.0, 0.8], True, random.Random(0)).box(400, 200) == (100.0, 0.0, 300.0, 200.0)
    rng = random.Random(0)
    crops = [draw_crop(True, [1.0, 0.8], True, rng) for _ in range(200)]
    assert {c.side for c in crops} == {1.0, 0.8}
    assert {c.flip for c in crops} == {True, False}
    for c in crops:
        left, top, right, bottom = c.box(400, 200)
        assert 0 <= left and right <= 400 and 0 <= top and bottom <= 200
        assert right - left == pytest.approx(200 * c.side)
    assert not any(draw_crop(True, [1.0], False, rng).flip for _ in range(50))


def test_jpeg_crop_resize_and_flip() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255  # left half black, right half white
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    left = decode_jpegs([data, data], Crop(1.0, 0.0, 0.5, False), 32)  # the left square: all black
    assert left.shape == (2, 32, 32, 3) and left.dtype == torch.uint8 and left.float().mean() < 10
    centre = decode_jpegs([data], Crop(1.0, 0.5, 0.5, False), 32)[0].float()
    assert centre[:, :12].mean() < 20 and centre[:, -12:].mean() > 235  # black | white
    flipped = decode_jpegs([data], Crop(1.0, 0.5, 0.5, True), 32)[0].float()
    assert flipped[:, :12].mean() > 235 and flipped[:, -12:].mean() < 20
    small = decode_jpegs([data], Crop(0.5, 1.0, 0.0, False), 32)[0].float()  # top-right quarter-height square
    assert small.mean() > 235


def test_mp4_seek_decode_returns_the_frames_nearest_to_the_times(clip: tuple[np.ndarray, bytes]) -> None:
    _, mp4 = clip
    times = [0.05, 1.9, 0.7, 1.3, 0.3]  # unordered: the decoder sorts, output keeps the order asked
    crop = Crop(1.0, 0.5, 0.5, False)
    for gap in (0.0, 10.0):  # seek for every frame / decode forward only
        frames = decode_mp4(mp4, times, crop, 32, seek_gap_s=gap)
        assert frames.shape == (5, 32, 32, 3) and frames.dtype == torch.uint8
        for t, frame in zip(times, frames.float(), strict=True):
            expected = level_at(round(t * FPS))
            assert abs(frame.mean().item() - expected) < 3.0, (gap, t, frame.mean(), expected)


def test_mp4_and_jpeg_paths_agree_on_the_same_moments(clip: tuple[np.ndarray, bytes]) -> None:
    frames, mp4 = clip
    rng = random.Random(0)
    stored = [jpeg(f, 48) for f in frames]  # every frame stored, so index == frame number
    indices = segment_indices(len(stored), 4, train=False, rng=rng)
    times = [i / FPS for i in indices]  # the stored frames' own times
    crop = Crop(0.8, 0.25, 0.75, True)
    from_jpeg = decode_jpegs([stored[i] for i in indices], crop, 32).float()
    from_mp4 = decode_mp4(mp4, times, crop, 32).float()
    assert (from_jpeg - from_mp4).abs().mean() < 4.0


def test_reduced_scale_jpeg_decoding_matches_a_full_decode() -> None:
    """Small models decode the DCT at 1/2..1/8 scale; the pixels must match a full-size decode."""
    y, x = np.mgrid[0:256, 0:456].astype(np.float32)
    smooth = [  # low-frequency content: the two decodes may only differ by their filters' aliasing
        np.stack([x / 456 * 200 + k * 20, y / 256 * 200, 100 + 50 * np.sin(x / 60 + y / 40)], -1).astype(
            np.uint8
        )
        for k in range(3)
    ]
    stored = [jpeg(f, 256) for f in smooth]
    full = [np.asarray(Image.open(io.BytesIO(d)).convert("RGB")) for d in stored]
    for crop in (Crop(1.0, 0.5, 0.5, False), Crop(0.8, 0.2, 0.9, True)):
        for size in (32, 64, 100):  # factors 8, 4 (or 2), 2
            fast = decode_jpegs(stored, crop, size).float()
            reference = crop_resize(full, crop, size).float()
            assert fast.shape == (3, size, size, 3)
            assert (fast - reference).abs().mean() < 3.0, (crop, size)


def test_mp4_fallback_decodes_exactly_the_planned_frames_of_an_edit_list_clip(tmp_path) -> None:
    """Clips start between sparse keyframes and hide their pre-roll with an edit list: the
    fallback must see clip time 0 as the planned start, and never a pre-roll or tail frame."""
    import subprocess

    from curate.cut import cut_clips
    from curate.probe import probe

    source = tmp_path / "source.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=14",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "125", "-keyint_min", "125", "-sc_threshold", "0",
         "-pix_fmt", "yuv420p", str(source)],
        check=True,
    )  # fmt: skip
    start, end = 7.32, 12.36  # keyframes at 0, 5, 10: 2.32 s of pre-roll, B-frames past the end
    cut_clips(source, [(start, end)], [tmp_path / "clip.mp4"], probe(source), time_limit_s=60)
    clip = (tmp_path / "clip.mp4").read_bytes()
    times = [0.0, 0.02, 1.5, 2.68, 2.7, 4.99, end - start - 0.04]
    crop = Crop(1.0, 0.5, 0.5, False)
    for gap in (0.0, 10.0):
        from_clip = decode_mp4(clip, times, crop, 32, seek_gap_s=gap)
        from_source = decode_mp4(source.read_bytes(), [start + t for t in times], crop, 32, seek_gap_s=gap)
        assert torch.equal(from_clip, from_source), f"seek_gap_s={gap}"
