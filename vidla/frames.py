"""Frame sampling, cropping and decoding for one clip.

T frames are taken uniformly: the clip is cut into T equal segments and one frame is
taken per segment, at a random offset in training and at the middle in evaluation
(mismatching the two costs accuracy). The source is the sample's stored JPEG frames
(``f00.jpg...``, themselves the middles of K equal segments) when there are at least T of
them, else the ``mp4``, seek-decoded at the T chosen times.

One crop is drawn per clip and applied to every frame, so augmentation never breaks
temporal consistency: training takes a square of side ``s * short_side`` with ``s``
drawn from the crop scales (paper: 1.0, 0.8) at a random position, flipped
horizontally with probability 1/2; evaluation takes the centre square of the short
side. Both are resized to the model's input size. Frames come out as ``(T, S, S, 3)``
uint8 tensors; normalisation happens on the training device.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
import simplejpeg
import torch
import torch.nn.functional as F


def segment_indices(available: int, frames: int, train: bool, rng: random.Random) -> list[int]:
    """Indices into ``available`` stored frames: one per each of ``frames`` equal segments."""
    if available < 1:
        raise ValueError("no frames to sample from")
    out = []
    for i in range(frames):
        start, end = i * available / frames, (i + 1) * available / frames
        position = start + (rng.random() if train else 0.5) * (end - start)
        out.append(min(int(position), available - 1))
    return out


def segment_times(duration: float, frames: int, train: bool, rng: random.Random) -> list[float]:
    """Clip-relative times in ``[0, duration)``: one per each of ``frames`` equal segments."""
    step = duration / frames
    return [(i + (rng.random() if train else 0.5)) * step for i in range(frames)]


@dataclass(frozen=True)
class Crop:
    """A square crop in fractions of the frame, so one draw applies to JPEGs and mp4 frames of any size.

    ``side`` is a fraction of the short side; ``x``, ``y`` place the square's top-left corner
    as fractions of the free room (0 = left/top, 1 = right/bottom).
    """

    side: float
    x: float
    y: float
    flip: bool

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The crop in pixels of a ``width x height`` frame: ``(left, top, right, bottom)``."""
        size = self.side * min(width, height)
        left = self.x * (width - size)
        top = self.y * (height - size)
        return left, top, left + size, top + size


def draw_crop(train: bool, scales: list[float], hflip: bool, rng: random.Random) -> Crop:
    """Training: random scale, position and flip; evaluation: the centre square, unflipped."""
    if not train:
        return Crop(1.0, 0.5, 0.5, False)
    return Crop(rng.choice(scales), rng.random(), rng.random(), hflip and rng.random() < 0.5)


def pixel_box(crop: Crop, width: int, height: int) -> tuple[int, int, int, int]:
    """:meth:`Crop.box` rounded to whole pixels inside the frame."""
    left, top, right, bottom = crop.box(width, height)
    side = max(1, round(right - left))
    x0 = min(max(0, round(left)), width - side)
    y0 = min(max(0, round(top)), height - side)
    return x0, y0, x0 + side, y0 + side


def crop_resize(frames: list[np.ndarray], crop: Crop, size: int) -> torch.Tensor:
    """One clip's ``(H, W, 3)`` uint8 frames -> ``(T, size, size, 3)`` uint8, cropped, resized, flipped.

    The crop is a view, so the one stack copies only the crop; all T frames then go
    through a single antialiased bilinear resize on uint8 (PyTorch's vectorised
    channels-last kernel, about 4x faster than PIL per frame), whose channels-last output
    already is the ``(T, size, size, 3)`` layout. The flip comes last, on the smaller
    image, in torch (a numpy copy through negative strides is ten times slower).
    """
    height, width = frames[0].shape[:2]
    x0, y0, x1, y1 = pixel_box(crop, width, height)
    region = np.stack([f[y0:y1, x0:x1] for f in frames])  # (T, h, w, 3)
    pixels = torch.from_numpy(region).permute(0, 3, 1, 2)  # (T, 3, h, w) channels-last view
    if pixels.shape[-1] != size:
        pixels = F.interpolate(
            pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    if crop.flip:
        pixels = pixels.flip(-1)  # keeps the channels-last strides
    return pixels.permute(0, 2, 3, 1).contiguous()  # no copy for channels-last


def decode_jpegs(frames: list[bytes], crop: Crop, size: int) -> torch.Tensor:
    """One clip's JPEGs (same size) -> ``(T, size, size, 3)`` uint8.

    libjpeg-turbo through simplejpeg decodes straight into numpy, about twice as fast as
    PIL plus its copy out. When the crop is at least 2, 4 or 8 times ``size`` the DCT
    decodes at that reduced scale (free speed for small models); the in-between
    factors (7/8, 3/4...) are slower than a full decode and are not used.
    """
    height, width, _, _ = simplejpeg.decode_jpeg_header(frames[0])
    crop_px = crop.side * min(width, height)
    factor = max((f for f in (1, 2, 4, 8) if crop_px / f >= size), default=1)
    scale = (
        {}
        if factor == 1
        else {"min_factor": factor, "min_height": -(-height // factor), "min_width": -(-width // factor)}
    )
    return crop_resize(
        [simplejpeg.decode_jpeg(data, colorspace="RGB", **scale) for data in frames], crop, size
    )


def _crop_video_frame(frame: av.VideoFrame, crop: Crop, size: int) -> np.ndarray:
    """Scale the whole frame so the crop becomes ``size`` pixels (swscale), then cut it out (unflipped)."""
    scale = size / (crop.side * min(frame.width, frame.height))
    width = max(size, round(frame.width * scale))
    height = max(size, round(frame.height * scale))
    rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR").to_ndarray()
    left, top, _, _ = crop.box(width, height)
    left, top = min(round(left), width - size), min(round(top), height - size)
    return rgb[top : top + size, left : left + size]


def decode_mp4(
    data: bytes, times: list[float], crop: Crop, size: int, seek_gap_s: float = 1.0
) -> torch.Tensor:
    """Seek-decode the frames nearest to clip-relative ``times`` from an mp4 -> ``(T, size, size, 3)`` uint8.

    Times are visited in order; the decoder seeks (to the preceding keyframe) only when
    the next time is more than ``seek_gap_s`` ahead of the last decoded frame, otherwise
    it decodes forward, which is cheaper than a seek for nearby frames. Decoding is
    single-threaded: the loader's parallelism is its worker processes.
    """
    order = sorted(range(len(times)), key=lambda i: times[i])
    picked: list[np.ndarray] = [np.empty(0, np.uint8)] * len(times)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        base = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        decoded: Iterator[av.VideoFrame] | None = None
        prev: av.VideoFrame | None = None  # the frame decoded before `cur`
        cur: av.VideoFrame | None = None  # the latest decoded frame
        for i in order:
            target = base + times[i]
            if decoded is None or (cur is not None and target - cur.time > seek_gap_s):
                container.seek(max(0, int(target / stream.time_base)), stream=stream, backward=True)
                decoded = container.decode(stream)
                prev = cur = None
            while cur is None or cur.time < target:
                frame = next(decoded, None)
                if frame is None:  # end of stream: the last frame is the nearest
                    break
                prev, cur = cur, frame
            best = cur if prev is None or cur is None or cur.time < target else _nearer(prev, cur, target)
            if best is None:
                raise ValueError("mp4 has no decodable video frame")
            picked[i] = _crop_video_frame(best, crop, size)
    pixels = torch.from_numpy(np.stack(picked))  # (T, size, size, 3)
    return pixels.flip(2) if crop.flip else pixels


def _nearer(a: av.VideoFrame, b: av.VideoFrame, target: float) -> av.VideoFrame:
    return a if abs(a.time - target) <= abs(b.time - target) else b
