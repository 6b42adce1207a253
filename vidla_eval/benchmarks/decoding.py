"""Decoding a benchmark video: T frames from the part of the file its texts describe."""

from __future__ import annotations

import io
import random

import av
import torch

from vidla.frames import Crop, decode_mp4, segment_times
from vidla_eval.benchmarks.records import BenchmarkVideo


def video_duration(data: bytes) -> float:
    """Seconds of the first video stream (its own duration, else the container's, else frames / rate)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
        if stream.frames and stream.average_rate:
            return stream.frames / float(stream.average_rate)
    raise ValueError("video has no known duration")


def decode_video(
    video: BenchmarkVideo,
    num_frames: int,
    image_size: int,
    *,
    train: bool,
    crop: Crop,
    rng: random.Random,
    seek_gap_s: float = 1.0,
) -> torch.Tensor:
    """``(T, S, S, 3)`` uint8: one frame per each of T equal segments of the video's window.

    The window is ``[start, end]`` clamped to the file (annotated durations and downloaded
    files disagree by fractions of a second), or the whole file; frames are the segments'
    middles in evaluation and random within them in training (:func:`vidla.frames.segment_times`).
    """
    data = video.path.read_bytes()
    duration = video_duration(data)
    start = max(0.0, video.start or 0.0)
    end = duration if video.end is None else min(video.end, duration)
    if end <= start:
        raise ValueError(
            f"{video.path}: window [{start:.2f}, {end:.2f}] s is outside the video ({duration:.2f} s)"
        )
    times = [start + t for t in segment_times(end - start, num_frames, train, rng)]
    return decode_mp4(data, times, crop, image_size, seek_gap_s)
