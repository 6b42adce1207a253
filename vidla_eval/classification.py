"""Zero-shot video classification: Kinetics-400 and Something-Something v2 from their local copies.

    python -m vidla_eval.classification --checkpoint out/train/vidla-b32 --dataset kinetics400 --root /data/k400
    python -m vidla_eval.classification --config configs/train/vidla-b32.yaml --dataset ssv2 --root /data/ssv2

Each class name becomes a prompt (``"a video of {label}."``, the paper's protocol for its
zero-shot K400 figure: 60.2 top-1 for VidLA-B/16, 48.9 for CLIP), each video is embedded with
evaluation frames (middle of T segments, centre crop) exactly as retrieval embeds benchmark
videos, and a video's prediction is the class whose prompt embedding is most similar.
Reports top-1 and top-5 accuracy and writes ``metrics.json``. ``--config`` without
``--checkpoint`` evaluates a config's initialisation: with a CLIP config that is the CLIP
baseline the retrieval evaluation supports.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidla.config import MissingVideos
from vidla_eval.benchmarks import BenchmarkVideos
from vidla_eval.benchmarks.records import BenchmarkFormatError, BenchmarkVideo, RetrievalSplit
from vidla_eval.benchmarks.registry import CLASSIFICATION_BENCHMARKS, annotated_entries
from vidla_eval.benchmarks.video_files import find_videos
from vidla_eval.cli import run_cli
from vidla_eval.eval_model import LoadedModel, image_size
from vidla_eval.eval_retrieval import Encoder, open_encoder
from vidla_eval.result_files import ResultDir

log = logging.getLogger(__name__)

#: Version of this evaluation's ``metrics.json`` layout.
EVAL_FORMAT = "vidla-eval-classification/1"
DEFAULT_PROMPT = "a video of {label}."
DEFAULT_SPLITS = {"kinetics400": "val", "ssv2": "validation"}
TOP_K = (1, 5)


@dataclass(frozen=True)
class ClassificationSplit:
    """The videos of one split, the class names, and each video's class index."""

    name: str
    videos: list[BenchmarkVideo]
    classes: list[str]
    labels: list[int]
    skipped_videos: tuple[str, ...] = ()


def load_classification(
    name: str, root: str | Path, split: str | None = None, *, missing: MissingVideos = "error"
) -> ClassificationSplit:
    """Read split ``split`` (default: the validation split) of ``kinetics400`` or ``ssv2`` at ``root``."""
    if name not in CLASSIFICATION_BENCHMARKS:
        raise ValueError(
            f"unknown classification dataset {name!r}; known: {sorted(CLASSIFICATION_BENCHMARKS)}"
        )
    bench, read_classes = CLASSIFICATION_BENCHMARKS[name]
    split = split or DEFAULT_SPLITS[name]
    root = Path(root)
    entries = annotated_entries(bench, name, root, split)
    classes = read_classes(root, split)
    index = {c: i for i, c in enumerate(classes)}
    unlisted = next((e for e in entries if e.texts[0] not in index), None)
    if unlisted is not None:
        raise BenchmarkFormatError(
            f"{root}: {name}/{split}: {unlisted.video_id}'s class {unlisted.texts[0]!r} is not listed"
        )
    found, absent = find_videos(bench, root, split, entries, missing)
    videos = [BenchmarkVideo(entry.video_id, path) for entry, path in found]
    labels = [index[entry.texts[0]] for entry, _ in found]
    return ClassificationSplit(f"{name}/{split}", videos, classes, labels, tuple(absent))


def prompts(classes: list[str], template: str = DEFAULT_PROMPT) -> list[str]:
    """One prompt per class; a capitalised template name (SSv2's "Pushing something ...") reads as a phrase."""
    return [template.format(label=c[:1].lower() + c[1:] if c[1:2].islower() else c) for c in classes]


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = TOP_K) -> dict[str, float]:
    """Percent of rows whose label is among the k best-scored classes.

    A label's rank counts the classes scored strictly higher, plus equal scores at lower class
    indices (ties broken by index, so a constant scorer is not credited with every class).
    """
    rows = np.arange(len(labels))
    true = scores[rows, labels][:, None]
    columns = np.arange(scores.shape[1])[None, :]
    better = (scores > true) | ((scores == true) & (columns < labels[:, None]))
    rank = better.sum(axis=1)
    return {f"top{k}": float(100.0 * np.mean(rank < k)) for k in ks}


def classify(
    encoder: Encoder,
    split: ClassificationSplit,
    frames: int,
    size: int,
    batch_size: int,
    workers: int,
    template: str,
) -> np.ndarray:
    """``(videos, classes)`` cosine similarities of each video to each class prompt."""
    texts = [split.classes[label] for label in split.labels]
    as_retrieval = RetrievalSplit(split.name, split.videos, texts, list(range(len(split.videos))))
    loader = DataLoader(
        BenchmarkVideos(as_retrieval, frames, size), batch_size=batch_size, num_workers=workers
    )
    video = np.concatenate([encoder.videos(f) for f in tqdm(loader, desc="videos", unit="batch")])
    text = encoder.texts(prompts(split.classes, template), batch_size=4 * batch_size)
    return video @ text.T


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Zero-shot video classification (Kinetics-400, Something-Something v2)."
    )
    p.add_argument("--checkpoint", type=Path, help="a step-*.pt file or a training output directory (newest)")
    p.add_argument(
        "--config", type=Path, help="without --checkpoint: evaluate this config's initial model (CLIP)"
    )
    p.add_argument("--dataset", required=True, choices=sorted(CLASSIFICATION_BENCHMARKS))
    p.add_argument("--root", type=Path, required=True, help="the dataset's local copy (docs/evaluation.md)")
    p.add_argument("--split", help="default: val (kinetics400), validation (ssv2)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="class-name prompt with {label}")
    p.add_argument("--frames", type=int, help="frames per video (default: the model config's eval_frames)")
    p.add_argument("--batch-size", type=int, default=16, help="videos per forward pass")
    p.add_argument("--workers", type=int, default=2, help="frame-decoding worker processes")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu or cuda")
    p.add_argument("--missing-videos", choices=("error", "skip"), default="error")
    p.add_argument("--output", required=True, help="directory (or URI) for metrics.json")
    p.add_argument("overrides", nargs="*", help="key.sub=value for --config")
    args = p.parse_args(argv)
    if args.checkpoint is None and args.config is None:
        p.error("give --checkpoint, or --config to evaluate a configuration's initial weights")
    if "{label}" not in args.prompt:
        p.error("--prompt must contain {label}")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, embed, score, print and write; returns the ``metrics.json`` payload."""
    loaded, encoder = open_encoder(args)
    device = encoder.device
    split = load_classification(args.dataset, args.root, args.split, missing=args.missing_videos)
    frames = loaded.config.num_frames
    started = time.perf_counter()
    scores = classify(
        encoder, split, frames, image_size(loaded.model), args.batch_size, args.workers, args.prompt
    )
    results = {**top_k_accuracy(scores, np.asarray(split.labels)), "videos": len(split.videos)}
    payload = metrics_payload(args, loaded, split, device, results, time.perf_counter() - started)
    write_metrics(args.output, payload, split)
    return payload


def metrics_payload(
    args: argparse.Namespace,
    loaded: LoadedModel,
    split: ClassificationSplit,
    device: torch.device,
    results: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """The ``metrics.json`` of an evaluation (shared with fine-tuning in ``vidla_train``)."""
    return {
        "format": EVAL_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "source": loaded.source,
            "step": loaded.step,
            "clip": loaded.config.clip,
            "num_frames": loaded.config.num_frames,
        },
        "dataset": {
            "name": args.dataset,
            "root": str(args.root),
            "split": split.name.split("/", 1)[1],
            "classes": len(split.classes),
            "prompt": args.prompt,
            "skipped_videos": list(split.skipped_videos),
        },
        "device": str(device),
        "encode_seconds": round(seconds, 2),
        "results": results,
    }


def write_metrics(output_uri: str, payload: dict[str, Any], split: ClassificationSplit) -> None:
    """Write ``metrics.json`` under ``output_uri`` and print the accuracies."""
    results = payload["results"]
    output = ResultDir(output_uri)
    output.write_bytes("metrics.json", (json.dumps(payload, indent=2) + "\n").encode())
    print(
        f"{split.name}: top-1 {results['top1']:.1f}  top-5 {results['top5']:.1f}  ({len(split.videos)} videos)"
    )
    print("wrote " + output.show("metrics.json"))


def main(argv: list[str] | None = None) -> None:
    run_cli("eval-classification", parse_args, run, argv)

if __name__ == "__main__":
    main()
