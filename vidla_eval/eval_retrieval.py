"""Text-video retrieval evaluation: ``make eval-retrieval`` / ``python -m vidla_eval.eval_retrieval``.

    python -m vidla_eval.eval_retrieval --checkpoint demo-out/train --shards demo-out/shards
    python -m vidla_eval.eval_retrieval --checkpoint CKPT --benchmark msrvtt --benchmark-root /data/msrvtt
    python -m vidla_eval.eval_retrieval --config configs/train/vidla-b32.yaml --benchmark msrvtt ...   # zero-shot CLIP init

Videos and texts are encoded once (batched; bf16 autocast on a GPU), the similarities are
ranked exactly by :mod:`vidla_eval.metrics` (ties count against the query; several captions per
video; DSL reported beside the plain numbers, never instead) and the results are printed
as tables and written as ``metrics.json`` and ``retrieval.png`` (recall@K curves, R@1 per
scale) in ``--output``.

Two kinds of test set:

* **Our shards** (``--shards``): the ``test`` split of the multi-scale shards, the paper's
  hierarchical test. Each scale (short, medium, long) is its own retrieval problem, and
  ``all`` pools every clip of every scale into one gallery (nested clips then compete
  with their parents, which is harder). Each text field is evaluated separately:
  ``caption`` (the caption side) and ``subtitle`` (the subtitle side: the summary when
  there is one, else the subtitle, as in training). A set contains the clips that have
  that text, so every video query has a positive.
* **A standard benchmark** (``--benchmark``, loaders in :mod:`vidla_eval.benchmarks`): MSR-VTT
  1k-A, DiDeMo and ActivityNet paragraph-to-video, MSVD and VATEX (multi-caption).

Frames are taken as in training's evaluation mode: the middle of T equal segments, centre
crop; T is the model config's ``eval_frames`` (32, the paper's, for a zero-shot
initialisation, a pre-trained and a fine-tuned checkpoint alike) unless ``--frames`` says
otherwise; the temporal positions interpolate to it (:func:`vidla.video_tower.temporal_interpolation`).

``--gallery-size K`` (shards only) ranks K clips per scale and field drawn with
``--gallery-seed``, as the paper's hierarchical test ranks 1K clips per scale.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidla.config import SCALES, DataConfig, MissingVideos
from vidla.data import build_loader
from vidla.distributed import resolve_device
from vidla.text_tower import Tokenizer
from vidla.vidla import VidLA, normalize_video
from vidla_eval.cli import run_cli
from vidla_eval.eval_model import LoadedModel, image_size, load_model
from vidla_eval.metrics import (
    DEFAULT_DSL_TEMPERATURE,
    RetrievalRanks,
    embedding_ranks,
    format_table,
    summarize_ranks,
)
from vidla_eval.result_files import ResultDir
from vidla_eval.retrieval_plot import plot

log = logging.getLogger(__name__)

#: Version of ``metrics.json``'s layout (bump on a breaking change; readers check it).
EVAL_FORMAT = "vidla-eval/1"
TEXT_FIELDS = ("caption", "subtitle")


# -- encoding -------------------------------------------------------------------------------


@dataclass
class Encoder:
    """Embeds pixels and texts with one model on one device, under the run's precision."""

    model: VidLA
    tokenizer: Tokenizer
    device: torch.device
    bf16: bool

    def autocast(self) -> AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @torch.no_grad()
    def videos(self, frames: torch.Tensor) -> np.ndarray:
        """``(B, T, S, S, 3)`` uint8 -> ``(B, P)`` float32 unit vectors."""
        video = normalize_video(frames.to(self.device, non_blocking=True))
        with self.autocast():
            emb = self.model.encode_video(video)
        return emb.float().cpu().numpy()

    @torch.no_grad()
    def token_rows(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        with self.autocast():
            emb = self.model.encode_text(ids.to(self.device), mask.to(self.device))
        return emb.float().cpu().numpy()

    @torch.no_grad()
    def sides(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """The subtitle-side and caption-side embeddings of a loader batch (a text a clip lacks is a zero row)."""
        b = len(batch["keys"])
        valid = torch.cat([batch["subtitle_valid"], batch["caption_valid"]]).to(self.device)
        with self.autocast():
            emb = self.model.encode_valid_texts(
                batch["text_ids"].to(self.device), batch["text_mask"].to(self.device), valid
            )
        out = emb.float().cpu().numpy()
        return {"subtitle": out[:b], "caption": out[b:]}

    def texts(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Texts -> ``(N, P)`` float32 unit vectors, ``batch_size`` at a time."""
        out = []
        for start in tqdm(range(0, len(texts), batch_size), desc="texts", unit="batch", leave=False):
            ids, mask = self.tokenizer(texts[start : start + batch_size])
            out.append(self.token_rows(ids, mask))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


@dataclass
class ShardEmbeddings:
    """One row per test clip of the shards; a text is a zero row where ``*_valid`` is False."""

    keys: list[str] = field(default_factory=list)
    scales: list[str] = field(default_factory=list)
    video: list[np.ndarray] = field(default_factory=list)
    text: dict[str, list[np.ndarray]] = field(default_factory=lambda: {f: [] for f in TEXT_FIELDS})
    valid: dict[str, list[bool]] = field(default_factory=lambda: {f: [] for f in TEXT_FIELDS})
    seen: set[str] = field(default_factory=set)

    def add(self, batch: dict[str, Any], video: np.ndarray, sides: dict[str, np.ndarray]) -> None:
        """Append a loader batch, dropping clips already seen (keys are unique in a complete dataset)."""
        for i, key in enumerate(batch["keys"]):
            if key in self.seen:
                continue
            self.seen.add(key)
            self.keys.append(key)
            self.scales.append(batch["scales"][i])
            self.video.append(video[i])
            for name in TEXT_FIELDS:
                self.text[name].append(sides[name][i])
                self.valid[name].append(bool(batch[f"{name}_valid"][i]))


def encode_shards(
    encoder: Encoder, shards: str, split: str, num_frames: int, size: int, batch_size: int, workers: int
) -> ShardEmbeddings:
    """Embed every clip of ``split`` in the shards once, with training's evaluation-mode frames."""
    cfg = DataConfig(shards=shards, split=split, batch_size=batch_size, num_workers=workers, prefetch_factor=2)
    loader = build_loader(cfg, num_frames=num_frames, image_size=size, tokenizer=encoder.tokenizer, train=False)
    found = ShardEmbeddings()
    for batch in tqdm(loader, desc=f"{split} clips", unit="batch"):
        video = encoder.videos(batch["video"])
        found.add(batch, video, encoder.sides(batch))
    if not found.keys:
        raise ValueError(f"no {split!r} clips in {shards}")
    return found


def encode_benchmark(
    encoder: Encoder, split: Any, num_frames: int, size: int, batch_size: int, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(text embeddings, video embeddings)`` of a :class:`vidla_eval.benchmarks.RetrievalSplit`."""
    from vidla_eval.benchmarks import BenchmarkVideos

    dataset = BenchmarkVideos(split, num_frames=num_frames, image_size=size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    videos = [encoder.videos(frames) for frames in tqdm(loader, desc="videos", unit="batch")]
    return encoder.texts(list(split.texts), batch_size=4 * batch_size), np.concatenate(videos)


# -- evaluation -----------------------------------------------------------------------------


@dataclass
class EvalSet:
    """One retrieval problem: texts, a gallery of videos, and each text's video."""

    name: str
    text: np.ndarray  # (n_texts, P)
    video: np.ndarray  # (n_videos, P)
    text_to_video: np.ndarray  # (n_texts,) int


def gallery_rows(rows: np.ndarray, size: int | None, seed: int, set_index: int) -> np.ndarray:
    """``size`` of ``rows`` drawn without replacement (all of them when there are fewer), sorted.

    The paper's hierarchical test ranks 1K clips per scale; R@K depends on the gallery's size,
    so scales of different sizes are only comparable at a fixed one. Each set draws from its own
    generator, seeded by ``(seed, set_index)``: the same clips for a given seed whatever else is
    evaluated, and a different seed gives an independent draw (report the spread over seeds)."""
    if size is None or rows.size <= size:
        return rows
    rng = np.random.default_rng([seed, set_index])
    return np.sort(rng.choice(rows, size=size, replace=False))


def shard_sets(emb: ShardEmbeddings, gallery_size: int | None = None, seed: int = 0) -> Iterator[EvalSet]:
    """``scale/field`` sets for each scale and ``all``; a set holds the clips that have the field,
    or ``gallery_size`` of them drawn with ``seed`` (:func:`gallery_rows`)."""
    scales = np.asarray(emb.scales)
    video = np.stack(emb.video)
    texts = {name: np.stack(emb.text[name]) for name in TEXT_FIELDS}
    valid = {name: np.asarray(emb.valid[name], bool) for name in TEXT_FIELDS}
    for i, scale in enumerate((*SCALES, "all")):
        in_scale = np.ones(len(scales), bool) if scale == "all" else scales == scale
        for j, name in enumerate(TEXT_FIELDS):
            rows = np.flatnonzero(in_scale & valid[name])
            rows = gallery_rows(rows, gallery_size, seed, i * len(TEXT_FIELDS) + j)
            yield EvalSet(f"{scale}/{name}", texts[name][rows], video[rows], np.arange(rows.size))


def evaluate(sets: Iterable[EvalSet], dsl: bool, temperature: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics per set (``metrics.json``'s ``results``) and the plain ranks (for the curves).

    A set with fewer than two videos is recorded as skipped with its counts: ranking one
    candidate measures nothing."""
    results: dict[str, Any] = {}
    ranks: dict[str, RetrievalRanks] = {}
    for s in sets:
        counts = {"texts": int(len(s.text)), "videos": int(len(s.video))}
        if len(s.video) < 2:
            results[s.name] = {**counts, "skipped": "fewer than 2 videos"}
            continue
        plain, with_dsl = embedding_ranks(s.text, s.video, s.text_to_video, dsl=dsl, temperature=temperature)
        results[s.name] = {**counts, **summarize_ranks(plain, with_dsl, temperature)}
        ranks[s.name] = plain
    return results, ranks


# -- reporting ------------------------------------------------------------------------------


def format_results(results: dict[str, Any]) -> str:
    """One titled :func:`vidla_eval.metrics.format_table` per set, skipped sets named with the reason."""
    blocks = []
    for name, result in results.items():
        title = f"== {name}: {result['texts']} texts, {result['videos']} videos"
        if "skipped" in result:
            blocks.append(f"{title} (skipped: {result['skipped']})")
        else:
            blocks.append(f"{title}\n{format_table(result)}")
    return "\n\n".join(blocks)


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Text-video retrieval metrics of a VidLA checkpoint on our shards or a standard benchmark.",
        epilog="Overrides (key.sub=value) apply to --config when no checkpoint is given.",
    )
    p.add_argument("--checkpoint", type=Path, help="a step-*.pt file or a training output directory (newest)")
    p.add_argument("--config", type=Path, help="without --checkpoint: evaluate this training config's initial model")
    test = p.add_mutually_exclusive_group(required=True)
    test.add_argument("--shards", help="the shards/ directory (or URI) of a curated dataset")
    test.add_argument("--benchmark", help="msrvtt, didemo, activitynet, msvd or vatex (see docs/benchmarks.md)")
    p.add_argument("--benchmark-root", type=Path, help="the benchmark's local copy")
    p.add_argument("--split", default="test", help="dataset split to evaluate (default: test)")
    p.add_argument(
        "--missing-videos",
        choices=get_args(MissingVideos),
        default="error",
        help="a benchmark video without a local file: stop (default; the standard test sets are fixed-size), "
        "or skip it and record it in metrics.json (e.g. DiDeMo's dead links)",
    )
    p.add_argument(
        "--frames", type=int, help="frames per video (default: the model config's eval_frames, 32 unless changed)"
    )
    p.add_argument(
        "--gallery-size",
        type=int,
        help="with --shards: rank a random gallery of this many clips per scale and field (the paper's "
        "hierarchical test: 1000); default: every test clip",
    )
    p.add_argument("--gallery-seed", type=int, default=0, help="seed of the --gallery-size draw")
    p.add_argument("--batch-size", type=int, default=16, help="videos per forward pass")
    p.add_argument("--workers", type=int, default=2, help="frame-decoding worker processes")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu or cuda")
    p.add_argument("--no-dsl", action="store_true", help="skip the dual-softmax rows")
    p.add_argument("--dsl-temperature", type=float, default=DEFAULT_DSL_TEMPERATURE)
    p.add_argument(
        "--output",
        default="out/eval",
        help="where metrics.json and retrieval.png go: a directory or a URI (s3://bucket/eval)",
    )
    p.add_argument("overrides", nargs="*", help="key.sub=value for --config")
    args = p.parse_args(argv)
    if args.benchmark and args.benchmark_root is None:
        p.error("--benchmark needs --benchmark-root")
    if args.frames is not None and args.frames < 1:
        p.error("--frames must be >= 1")
    if args.gallery_size is not None and (args.gallery_size < 2 or not args.shards):
        p.error("--gallery-size goes with --shards and must be >= 2")
    return args


def open_encoder(args: argparse.Namespace) -> tuple[LoadedModel, Encoder]:
    """The model a command line names (``--checkpoint``, or ``--config`` with overrides; ``--frames``,
    ``--device``) and its encoder, bf16 on a GPU: what evaluation and fine-tuning both start from."""
    device = resolve_device(args.device, 0)
    loaded = load_model(args.checkpoint, args.config, args.overrides, args.frames, device)
    return loaded, Encoder(loaded.model, loaded.tokenizer, device, bf16=device.type == "cuda")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Encode, rank, print and write; returns the ``metrics.json`` payload."""
    loaded, encoder = open_encoder(args)
    device = encoder.device
    frames, size = loaded.config.num_frames, image_size(loaded.model)
    started = time.perf_counter()
    if args.shards:
        emb = encode_shards(encoder, str(args.shards), args.split, frames, size, args.batch_size, args.workers)
        sets = list(shard_sets(emb, args.gallery_size, args.gallery_seed))
        dataset = {
            "kind": "shards",
            "root": str(args.shards),
            "split": args.split,
            "gallery_size": args.gallery_size,
            "gallery_seed": args.gallery_seed,
        }
    else:
        from vidla_eval.benchmarks import load_benchmark

        split = load_benchmark(args.benchmark, args.benchmark_root, args.split, missing=args.missing_videos)
        text, video = encode_benchmark(encoder, split, frames, size, args.batch_size, args.workers)
        sets = [EvalSet(split.name, text, video, np.asarray(split.text_to_video))]
        dataset = {
            "kind": "benchmark",
            "name": args.benchmark,
            "root": str(args.benchmark_root),
            "split": args.split,
            "skipped_videos": list(split.skipped_videos),
        }
    encode_s = time.perf_counter() - started
    results, ranks = evaluate(sets, dsl=not args.no_dsl, temperature=args.dsl_temperature)
    payload = {
        "format": EVAL_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "source": loaded.source,
            "step": loaded.step,
            "arch": loaded.config.arch,
            "clip": loaded.config.clip,
            "num_frames": frames,
        },
        "dataset": dataset,
        "device": str(device),
        "encode_seconds": round(encode_s, 2),
        "results": results,
    }
    output = ResultDir(args.output)
    output.write_bytes("metrics.json", (json.dumps(payload, indent=2) + "\n").encode())
    title = f"{loaded.source} · {dataset.get('name', dataset['root'])} {args.split} · {frames} frames"
    if ranks:
        output.write_bytes("retrieval.png", plot(results, ranks, title, TEXT_FIELDS))
    print(format_results(results))
    written = [output.show("metrics.json"), *([output.show("retrieval.png")] if ranks else [])]
    print("\nwrote " + " and ".join(written))
    return payload


def main(argv: list[str] | None = None) -> None:
    run_cli("eval-retrieval", parse_args, run, argv)

if __name__ == "__main__":
    main()
