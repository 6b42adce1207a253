"""Shot-cut detectors fed by the decode pass's tiny detection frames.

The decode pass (:mod:`curate.decode`) pipes small BGR frames at the source rate; a
detector turns them into cut frame numbers. Cost per frame matters as much as accuracy:
the decode itself is the floor, and PySceneDetect's per-frame Python loop adds ~0.3 ms per
frame on top of it (``bench/detector_accuracy.py``).

- ``fast`` (default): PySceneDetect's adaptive rule over its content score, vectorised over
  batches of frames (:class:`BatchAdaptiveDetector`).
- ``content``, ``adaptive``, ``histogram``, ``hash``: PySceneDetect's detectors, frame by frame.
- ``scdet`` runs inside ffmpeg (see :mod:`curate.decode`); nothing is piped for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # PySceneDetect (~0.5 s to import) only for the detectors that use it, not for ``fast``
    from scenedetect import SceneDetector

PYSCENEDETECT = ("content", "adaptive", "histogram", "hash")
DETECTORS = ("fast", *PYSCENEDETECT, "scdet")
BATCH_FRAMES = 256


class BatchAdaptiveDetector:
    """PySceneDetect's adaptive rule over its content score, vectorised over batches of frames.

    Each frame's content score is the mean absolute change of hue, saturation and luma (OpenCV
    HSV) from the previous frame: one colour conversion and one ``absdiff`` per batch, in C.
    Scores alone can't tell a cut from a scene that changes every frame (noise, confetti, a
    cellular automaton), so, as PySceneDetect's ``AdaptiveDetector`` does, a frame starts a
    shot when its score is at least ``min_score`` *and* ``ratio`` times the mean score of the
    ``window`` frames on each side. Decisions need the frames after, so they are made in
    :meth:`finish`; the scores (one float per frame) are all that is kept.
    """

    def __init__(self, threshold: float | None, min_len: int, min_score: float = 15.0, window: int = 2):
        self.ratio = 3.0 if threshold is None else threshold
        self.min_len, self.min_score, self.window = max(1, min_len), min_score, window
        self._last: np.ndarray | None = None
        self._scores: list[np.ndarray] = []

    def process(self, frames: np.ndarray) -> list[int]:
        """Score ``frames`` (N x H x W x 3 BGR, following the previous batch); cuts come from :meth:`finish`."""
        n, h, w, _ = frames.shape
        hsv = cv2.cvtColor(frames.reshape(n * h, w, 3), cv2.COLOR_BGR2HSV).reshape(n, h * w * 3)
        previous = hsv[:1] if self._last is None else self._last[None]
        before = np.concatenate([previous, hsv[:-1]])
        diff = cv2.absdiff(hsv, before)
        self._scores.append(np.add.reduce(diff, axis=1, dtype=np.uint32) / (h * w * 3))
        self._last = hsv[-1].copy()
        return []

    def finish(self) -> list[int]:
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
        if len(scores) < 2:
            return []
        padded = np.pad(scores, self.window, mode="edge")
        kernel = np.ones(2 * self.window + 1)
        kernel[self.window] = 0
        around = np.convolve(padded, kernel, mode="valid") / (2 * self.window)
        ratio = np.where(around > 0, scores / np.maximum(around, 1e-9), np.inf)
        candidates = np.flatnonzero((scores >= self.min_score) & (ratio >= self.ratio))
        cuts: list[int] = []
        for frame in candidates.tolist():
            if frame > 0 and frame - (cuts[-1] if cuts else 0) >= self.min_len:
                cuts.append(frame)
        return cuts


class PySceneDetectAdapter:
    """One of PySceneDetect's detectors behind the same batch interface (frame by frame inside)."""

    def __init__(self, detector: SceneDetector, fps: float):
        self.detector, self.fps, self._seen = detector, fps, 0

    def process(self, frames: Iterable[np.ndarray]) -> list[int]:
        from scenedetect import FrameTimecode

        cuts: list[int] = []
        for frame in frames:
            cuts += [tc.frame_num for tc in self.detector.process_frame(FrameTimecode(self._seen, self.fps), frame)]
            self._seen += 1
        return cuts

    def finish(self) -> list[int]:
        from scenedetect import FrameTimecode

        if not self._seen:
            return []
        return [tc.frame_num for tc in self.detector.post_process(FrameTimecode(self._seen - 1, self.fps))]


Detector = BatchAdaptiveDetector | PySceneDetectAdapter


def make_detector(name: str, threshold: float | None, min_len: int, fps: float) -> Detector:
    """The named detector; ``threshold`` None keeps each detector's own default."""
    if name == "fast":
        return BatchAdaptiveDetector(threshold, min_len)
    from scenedetect import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector

    kwargs: dict = {}
    if name == "adaptive":
        kwargs = {"adaptive_threshold": threshold} if threshold is not None else {}
        return PySceneDetectAdapter(AdaptiveDetector(min_scene_len=min_len, **kwargs), fps)
    if threshold is not None:
        kwargs = {"threshold": threshold}
    kinds = {"content": ContentDetector, "histogram": HistogramDetector, "hash": HashDetector}
    if name not in kinds:
        raise ValueError(f"unknown piped detector {name!r}; choose from {DETECTORS}")
    return PySceneDetectAdapter(kinds[name](min_scene_len=min_len, **kwargs), fps)
