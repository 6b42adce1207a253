"""A benchmark split as a dataset: one video per item for evaluation, endless batches for fine-tuning.

:class:`BenchmarkVideos` decodes one split for evaluation (middle frame of T equal
segments, centre crop); :class:`BenchmarkTrainDataset` fine-tunes on a split through the
trainer with batches in exactly :class:`vidla.data.ClipDataset`'s format.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset

from vidla.config import DataConfig
from vidla.data import Clip, clip_batches, collate_clips, resumed_stream, seeded_rng, stream_slot
from vidla.frames import draw_crop
from vidla.text_tower import Tokenizer
from vidla_eval.benchmarks.decoding import decode_video
from vidla_eval.benchmarks.records import RetrievalSplit
from vidla_eval.benchmarks.registry import load_benchmark


class BenchmarkVideos(Dataset):
    """A split's videos for evaluation, one item per video: deterministic middle frames, centre crop."""

    def __init__(self, split: RetrievalSplit, num_frames: int, image_size: int) -> None:
        self.split = split
        self.num_frames = num_frames
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.split.videos)

    def __getitem__(self, i: int) -> torch.Tensor:
        video = self.split.videos[i]
        rng = random.Random(0)  # unused in evaluation mode: segment middles, centre crop
        crop = draw_crop(False, [1.0], False, rng)
        try:
            return decode_video(video, self.num_frames, self.image_size, train=False, crop=crop, rng=rng)
        except Exception as exc:
            raise RuntimeError(f"{self.split.name}: cannot decode {video.path}: {exc}") from exc


class BenchmarkTrainDataset(IterableDataset):
    """Endless training batches from a benchmark split, in :class:`vidla.data.ClipDataset`'s format.

    Every epoch is one permutation of the split's videos, the same on every process; the
    (rank, worker) slot ``k`` of ``K`` takes positions ``k, k + K, ...`` of it (all of it when
    there are fewer videos than slots). Each sample draws one of its video's captions, its
    frame offsets and its crop from a generator seeded by ``(seed, slot, position)``, so the
    stream is a function of the step: a resume skips the consumed samples without decoding
    them and continues exactly (same world size and worker count), as in :mod:`vidla.data`.
    The subtitle side of every clip is empty and invalid; the caption side is the caption.
    """

    def __init__(
        self,
        cfg: DataConfig,
        *,
        num_frames: int,
        image_size: int,
        tokenizer: Tokenizer,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        super().__init__()
        if cfg.benchmark is None or cfg.benchmark_root is None:
            raise ValueError("data.benchmark and data.benchmark_root must be set to fine-tune on a benchmark")
        self.cfg = cfg
        self.num_frames = num_frames
        self.image_size = image_size
        self.tokenizer = tokenizer
        self.rank, self.world_size = rank, world_size
        self.seed, self.start_batch = resumed_stream(seed, start_batch, cfg.resume)
        self.split = load_benchmark(
            cfg.benchmark, cfg.benchmark_root, cfg.benchmark_split, missing=cfg.benchmark_missing
        )
        self.captions = self.split.captions()

    def _video_order(self, slot: int, slots: int) -> Iterator[int]:
        """The slot's endless sequence of video indices, epoch after epoch."""
        n = len(self.split.videos)
        epoch = 0
        while True:
            order = list(range(n))
            seeded_rng("epoch", self.seed, epoch).shuffle(order)
            yield from (order[slot::slots] if n >= slots else order)
            epoch += 1

    def sample(self, video_index: int, rng: random.Random) -> Clip:
        """One training clip: random-offset frames, the configured random crop, one random caption."""
        cfg = self.cfg
        caption = rng.choice(self.captions[video_index])
        crop = draw_crop(True, cfg.crop_scales, cfg.hflip, rng)
        video = self.split.videos[video_index]
        frames = decode_video(
            video,
            self.num_frames,
            self.image_size,
            train=True,
            crop=crop,
            rng=rng,
            seek_gap_s=cfg.mp4_seek_gap_s,
        )
        return Clip(frames=frames, subtitle=None, caption=caption, key=video.video_id, scale=self.split.name)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        batch_size = self.cfg.batch_size
        place = stream_slot(self.rank, self.world_size, self.start_batch, batch_size)
        order = self._video_order(place.slot, place.slots)
        for clips in clip_batches(
            order,
            self.sample,
            lambda video_index: self.split.videos[video_index].path,
            seed=self.seed,
            slot=place.slot,
            skip=place.skip,
            batch_size=batch_size,
            keep_last=False,
        ):
            yield collate_clips(clips, self.tokenizer)
