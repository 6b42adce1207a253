"""The WebDataset loader over the multi-scale shards (``docs/dataset-format.md``).

Training reads ``shards/{short,medium,long}/shard-*.tar`` (the tars commit manifests name) as an endless stream:

* **Committed shards of the split only.** A ``.tar`` counts once a commit manifest in
  ``commits/`` names it (the contract's commit rule), and only if its index lists a sample of the
  requested split (``train``); within a shard, samples of other splits are dropped.
* **Local or object storage.** ``data.shards`` is a local path or a filesystem URI
  (``s3://bucket/prefix/shards``): a URI root is listed and read through
  :class:`vidla_format.storage.Storage` (pyarrow), each tar streamed with a large read-ahead,
  and each DataLoader worker opens its own connection to the store.
* **Resampled shards, split by node and worker.** Each (rank, worker) slot draws shards
  with replacement from its own disjoint share of a scale's shards when there are at
  least as many shards as slots, else from all of them; every slot has its own seeds,
  so no two slots read the same sequence.
* **Scale mixing.** Each scale is its own shuffled sample stream; every sample comes from
  a scale drawn by the configured weights (default: shard counts, about uniform over
  clips).
* **One clip per video per batch.** Shards hold a video's clips together, so a shuffle buffer
  alone leaves several clips of one video in a batch, each the others' false negative;
  with ``data.distinct_videos`` (default) a clip whose video is already in the forming batch
  waits for a later one (:mod:`vidla.batching`).
* **Deterministic and resumable.** All randomness (shard draws, shuffle buffers, the mix,
  each sample's frame offsets and crop) is seeded from ``(seed, rank, worker, position)``,
  so the stream is a function of the step: resuming at step ``s`` skips the samples of
  the first ``s`` batches before decoding them and continues with exactly the batches an
  uninterrupted run would have seen (given the same world size and worker count).

Each sample yields T frames (:mod:`vidla.frames`: stored JPEGs, or the mp4 when there are
fewer than T) and its two texts; workers batch and tokenise, so the trainer receives
ready tensors. Evaluation mode reads each shard of the split once, deterministically
(middle frames, centre crop).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.filters import shuffle
from webdataset.handlers import warn_and_continue
from webdataset.tariterators import group_by_keys, tar_file_expander, tarfile_samples

from vidla.batching import DEFER_LIMIT_PER_CLIP, DistinctVideos, video_of_key
from vidla.config import DataConfig
from vidla.frames import decode_jpegs, decode_mp4, draw_crop, segment_indices, segment_times
from vidla.shard_sources import ScaleSource, scale_sources
from vidla.text_tower import Tokenizer
from vidla_format.layout import FRAME_RE
from vidla_format.storage import Storage, is_uri

log = logging.getLogger(__name__)

Item = TypeVar("Item")

REMOTE_READ_BUFFER = 8 * 1024**2
"""Read-ahead of a remote tar stream: without it each of tarfile's small reads is one ranged GET."""
@dataclass
class Clip:
    """One decoded sample."""

    frames: torch.Tensor  # (T, S, S, 3) uint8
    subtitle: str | None
    caption: str | None
    key: str
    scale: str


def _first_text(meta: dict[str, Any], fields: list[str]) -> str | None:
    for name in fields:
        value = meta.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def sample_video(sample: dict[str, Any]) -> str:
    """The source video of an admitted sample: ``json.video_id``, else the key's video part."""
    video = sample["__meta__"].get("video_id")
    return str(video) if video else video_of_key(str(sample.get("__key__", "")))


def seeded_rng(*parts: object) -> random.Random:
    """A generator seeded by its parts (string seeding is stable across processes and runs)."""
    return random.Random("/".join(str(p) for p in parts))


@dataclass(frozen=True)
class StreamSlot:
    """Which sample stream this DataLoader worker of this rank plays, and how many samples it skips."""

    slot: int
    slots: int
    skip: int


def stream_slot(rank: int, world_size: int, start_batch: int, batch_size: int) -> StreamSlot:
    """The (rank, worker) slot and the samples to skip for an exact resume at batch ``start_batch``.

    The DataLoader takes batch j from worker j % workers, starting at worker 0 also after a
    resume; so the worker that delivers the resumed run's batch j plays the stream ("role")
    that delivered batch start + j originally, and skips the batches that role had made
    before ``start_batch``.
    """
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    role = (worker + start_batch) % workers
    skip = max(0, -(-(start_batch - role) // workers)) * batch_size
    return StreamSlot(rank * workers + role, world_size * workers, skip)


def resumed_stream(seed: int, start_batch: int, resume: str) -> tuple[int, int]:
    """The ``(seed, start_batch)`` a training stream starts from after ``start_batch`` batches.

    ``replay`` keeps both, so the stream skips what was consumed and continues exactly;
    ``reseed`` starts a fresh stream at batch 0 instead (see ``DataConfig.resume``).
    """
    if start_batch and resume == "reseed":
        return hash((seed, start_batch)) & 0x7FFFFFFF, 0
    return seed, start_batch


def clip_batches(
    items: Iterable[Item],
    decode: Callable[[Item, random.Random], Clip],
    describe: Callable[[Item], object],
    *,
    seed: int,
    slot: int,
    skip: int,
    batch_size: int,
    keep_last: bool,
    video_of: Callable[[Item], str] | None = None,
) -> Iterator[list[Clip]]:
    """Decoded clips of a slot's item stream, ``batch_size`` at a time, for both training datasets.

    Item ``position`` decodes with a generator seeded by ``(seed, slot, position)``, so the
    first ``skip`` items are passed over without decoding and a resume continues exactly. An
    item that fails to decode is logged and dropped (also on resume): one broken file must
    not stop a run; ``describe(item)`` names it in the log. With ``video_of`` no batch holds
    two items of one video (:class:`vidla.batching.DistinctVideos` defers the second); the
    skipped items replay those deferrals, so resuming stays exact.
    """
    distinct = DistinctVideos(video_of, DEFER_LIMIT_PER_CLIP * batch_size) if video_of is not None else None
    stream = distinct.candidates(enumerate(items)) if distinct is not None else enumerate(items)
    batch: list[Clip] = []
    skipped = 0
    for position, item in stream:
        if skipped < skip:
            skipped += 1
            if distinct is not None:
                distinct.place(item)
                if skipped % batch_size == 0:
                    distinct.new_batch()
            continue
        try:
            clip = decode(item, seeded_rng("sample", seed, slot, position))
        except Exception as exc:
            log.warning("skipping %s: %s: %s", describe(item), type(exc).__name__, exc)
            continue
        batch.append(clip)
        if distinct is not None:
            distinct.place(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
            if distinct is not None:
                distinct.new_batch()
    if batch and keep_last:
        yield batch


def collate_clips(clips: list[Clip], tokenizer: Tokenizer) -> dict[str, Any]:
    """The trainer's batch (see :class:`ClipDataset`): texts tokenised subtitle side first, then caption side."""
    ids, mask = tokenizer([c.subtitle or "" for c in clips] + [c.caption or "" for c in clips])
    return {
        "video": torch.stack([c.frames for c in clips]),
        "text_ids": ids,
        "text_mask": mask,
        "subtitle_valid": torch.tensor([c.subtitle is not None for c in clips]),
        "caption_valid": torch.tensor([c.caption is not None for c in clips]),
        "keys": [c.key for c in clips],
        "scales": [c.scale for c in clips],
    }


def worker_loader(dataset: IterableDataset, cfg: DataConfig, pin_memory: bool) -> DataLoader:
    """A DataLoader whose workers make whole batches (``batch_size=None``), as both training datasets do."""
    workers = cfg.num_workers
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=cfg.prefetch_factor if workers > 0 else None,
    )


class ClipDataset(IterableDataset):
    """Batches of clips from the shards; see the module docstring for the stream's guarantees.

    Each item is a dict: ``video`` ``(B, T, S, S, 3)`` uint8; ``text_ids``, ``text_mask``
    ``(2B, L)`` (subtitle side first, then caption side); ``subtitle_valid``,
    ``caption_valid`` ``(B,)`` bool; ``keys``, ``scales`` lists.
    """

    def __init__(
        self,
        cfg: DataConfig,
        *,
        num_frames: int,
        image_size: int,
        tokenizer: Tokenizer,
        train: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_frames = num_frames
        self.image_size = image_size
        self.tokenizer = tokenizer
        self.train = train
        self.rank = rank
        self.world_size = world_size
        self.seed, self.start_batch = (
            resumed_stream(seed, start_batch, cfg.resume) if train else (seed, start_batch)
        )
        self.sources = scale_sources(cfg.shards, cfg.split, cfg.scale_weights if train else None)
        self._storage: tuple[int, Storage] | None = None  # (pid, store): see _store

    # -- reading shards ---------------------------------------------------------------------

    def _store(self) -> Storage:
        """This process's connection to a URI root, made in the process that reads (each DataLoader
        worker opens its own instead of inheriting a forked copy of the parent's client)."""
        if self._storage is None or self._storage[0] != os.getpid():
            self._storage = (os.getpid(), Storage(self.cfg.shards))
        return self._storage[1]

    def _open_remote(self, urls: Iterable[dict[str, str]]) -> Iterator[dict[str, Any]]:
        """``{url, stream}`` per shard of a URI root; like webdataset's opener, a shard that cannot be
        opened is logged and skipped, and each stream is closed once its shard has been read."""
        for item in urls:
            try:
                store = self._store()
                stream = store.fs.open_input_stream(item["url"], buffer_size=REMOTE_READ_BUFFER)
            except Exception as exn:  # the stream must go on, as with local shards
                exn.args = (*exn.args, item["url"])
                if warn_and_continue(exn):
                    continue
                raise
            try:
                yield {**item, "stream": stream}
            finally:
                stream.close()

    def _samples(self, urls: Iterable[dict[str, str]]) -> Iterator[dict[str, Any]]:
        """The raw samples of the shards named by ``urls``, in order: local tars through webdataset's
        opener, as always; shards of a URI root through the filesystem."""
        if not is_uri(self.cfg.shards):
            return tarfile_samples(urls, handler=warn_and_continue)
        files = tar_file_expander(self._open_remote(urls), handler=warn_and_continue)
        return group_by_keys(files, handler=warn_and_continue)

    # -- sample selection -------------------------------------------------------------------

    def _use_jpeg(self, sample: dict[str, Any]) -> bool:
        frames = sum(1 for k in sample if FRAME_RE.match(k))
        if self.cfg.frame_source == "jpeg":
            return True
        if self.cfg.frame_source == "mp4":
            return False
        return frames >= self.num_frames or "mp4" not in sample

    def _admit(self, sample: dict[str, Any]) -> dict[str, Any] | None:
        """Parse the json, keep the split, and drop the frame source that will not be used (memory)."""
        if "json" not in sample:
            return None
        try:
            meta = json.loads(sample["json"])
        except ValueError as exc:  # a broken record must not stop the stream
            log.warning("skipping %s: unreadable json: %s", sample.get("__key__"), exc)
            return None
        if meta.get("split") != self.cfg.split:
            return None
        sample["__meta__"] = meta
        if self._use_jpeg(sample):
            sample.pop("mp4", None)
        else:
            for key in [k for k in sample if FRAME_RE.match(k)]:
                del sample[key]
        return sample

    def _scale_stream(self, source: ScaleSource, slot: int, slots: int) -> Iterator[dict[str, Any]]:
        """Endless shuffled samples of one scale for one (rank, worker) slot."""
        own = source.shards[slot::slots] if len(source.shards) >= slots else source.shards
        shard_rng = seeded_rng("shards", self.seed, source.scale, slot)

        def urls() -> Iterator[dict[str, str]]:
            while True:
                yield {"url": shard_rng.choice(own)}

        admitted = (s for s in map(self._admit, self._samples(urls())) if s is not None)
        bufsize = self.cfg.shuffle_buffer
        rng = seeded_rng("shuffle", self.seed, source.scale, slot)
        return iter(shuffle(bufsize=bufsize, initial=min(100, bufsize), rng=rng)(admitted))

    def _train_samples(self, slot: int, slots: int) -> Iterator[dict[str, Any]]:
        streams = [self._scale_stream(s, slot, slots) for s in self.sources]
        weights = [s.weight for s in self.sources]
        mix_rng = seeded_rng("mix", self.seed, slot)
        while True:
            (stream,) = mix_rng.choices(streams, weights=weights)
            yield next(stream)

    def _eval_samples(self, slot: int, slots: int) -> Iterator[dict[str, Any]]:
        for source in self.sources:
            urls = ({"url": u} for u in source.shards[slot::slots])
            for sample in self._samples(urls):
                admitted = self._admit(sample)
                if admitted is not None:
                    yield admitted

    # -- decoding and batching ---------------------------------------------------------------

    def decode(self, sample: dict[str, Any], rng: random.Random) -> Clip:
        """Frames and texts of one admitted sample."""
        meta = sample["__meta__"]
        t, size, cfg = self.num_frames, self.image_size, self.cfg
        crop = draw_crop(self.train, cfg.crop_scales, cfg.hflip, rng)
        names = sorted((k for k in sample if FRAME_RE.match(k)), key=lambda k: int(FRAME_RE.match(k)[1]))
        if names:
            chosen = segment_indices(len(names), t, self.train, rng)
            frames = decode_jpegs([sample[names[i]] for i in chosen], crop, size)
        else:
            duration = float(meta["duration"])
            times = segment_times(duration, t, self.train, rng)
            frames = decode_mp4(sample["mp4"], times, crop, size, cfg.mp4_seek_gap_s)
        return Clip(
            frames=frames,
            subtitle=_first_text(meta, cfg.subtitle_fields),
            caption=_first_text(meta, cfg.caption_fields),
            key=sample["__key__"],
            scale=str(meta.get("scale", "")),
        )

    def collate(self, clips: list[Clip]) -> dict[str, Any]:
        return collate_clips(clips, self.tokenizer)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        batch_size = self.cfg.batch_size
        place = stream_slot(self.rank, self.world_size, self.start_batch, batch_size)
        slot, slots = place.slot, place.slots
        samples = self._train_samples(slot, slots) if self.train else self._eval_samples(slot, slots)
        skip = place.skip if self.train else 0
        for clips in clip_batches(
            samples,
            self.decode,
            lambda sample: sample.get("__key__"),
            seed=self.seed,
            slot=slot,
            skip=skip,
            batch_size=batch_size,
            keep_last=not self.train,
            video_of=sample_video if self.train and self.cfg.distinct_videos else None,
        ):
            yield self.collate(clips)


def build_loader(cfg: DataConfig, *, pin_memory: bool = False, **options: Any) -> DataLoader:
    """A DataLoader over ``ClipDataset(cfg, **options)``; batches are made in the workers (``batch_size=None``)."""
    return worker_loader(ClipDataset(cfg, **options), cfg, pin_memory)
