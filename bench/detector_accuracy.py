"""Shot detectors: recall, precision and cost per frame on videos with known cuts, in one run.

Inputs: the demo corpus's generated videos (cuts known by construction; two of them are
encoded like real uploads, 5 s GOPs with no keyframe at the cuts) and the real
``bikes.mp4`` (cuts checked by eye). A found cut counts when it lies within one frame of a
true one.

Cost: the detection frames (``analysis.detect_width``, the source rate) are decoded once
per video and kept in memory; each piped detector is then timed on exactly those frames,
so ms/frame is the detector's own cost on top of the decode. ``scdet`` runs inside ffmpeg,
so its cost is the wall of a decode-and-scale pass with ``scdet`` minus the same pass
without it, measured back to back. The decode floor per frame is printed for scale.

    .venv/bin/python bench/detector_accuracy.py [--corpus demo-out-corpus] [--detect-width 192]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from curate.config import AnalysisConfig
from curate.decode import analyze, detect_size
from curate.demo.corpus import build_corpus
from curate.probe import probe
from curate.shots import DETECTORS, PYSCENEDETECT, make_detector

ROOT = Path(__file__).resolve().parent.parent
PIPED = ("fast", *PYSCENEDETECT)


def detection_frames(path: Path, fps: float, width: int) -> np.ndarray:
    """Every frame at the detector's size, BGR, as the decode pass pipes them."""
    w, h = detect_size(width)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf",
           f"setpts=PTS-STARTPTS,fps={fps:.6f},scale={w}:{h}:flags=fast_bilinear,format=bgr24",
           "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def run_piped(name: str, frames: np.ndarray, fps: float, min_len: int) -> tuple[list[float], float]:
    """(cut times, seconds) of one detector over all frames, fed in the decode pass's batches."""
    detector = make_detector(name, None, min_len, fps)
    started = time.perf_counter()
    cuts: list[int] = []
    for lo in range(0, len(frames), 256):
        cuts += detector.process(frames[lo : lo + 256])
    cuts += detector.finish()
    return sorted({f / fps for f in cuts if f > 0}), time.perf_counter() - started


def scdet_cost(path: Path, fps: float, width: int) -> float:
    """Seconds that ffmpeg's scdet adds to a decode-and-scale pass (best of 3 each)."""
    w, h = detect_size(width)
    base = f"setpts=PTS-STARTPTS,fps={fps:.6f},scale={w}:{h}:flags=fast_bilinear"

    def wall(graph: str) -> float:
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", graph, "-f", "null", "-"]
        started = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - started

    with_scdet = min(wall(base + ",scdet=threshold=10") for _ in range(3))
    without = min(wall(base) for _ in range(3))
    return max(0.0, with_scdet - without)


def score(found: list[float], truth: list[float], fps: float) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) at one frame of tolerance."""
    tol = 1.0 / fps + 1e-6
    matched = {t for t in truth if any(abs(f - t) <= tol for f in found)}
    false_pos = sum(not any(abs(f - t) <= tol for t in truth) for f in found)
    return len(matched), false_pos, len(truth) - len(matched)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "demo-out-corpus")
    parser.add_argument("--detect-width", type=int, default=AnalysisConfig().detect_width)
    args = parser.parse_args()
    corpus = build_corpus(args.corpus)
    videos = [(args.corpus / item["video"], item["cuts"]) for item in corpus["items"].values() if item.get("cuts")]
    totals = {name: {"tp": 0, "fp": 0, "fn": 0, "seconds": 0.0} for name in DETECTORS}
    frames_total, floor_s = 0, 0.0
    for path, truth in videos:
        media = probe(path)
        min_len = max(1, round(AnalysisConfig().min_shot_s * media.fps))
        started = time.perf_counter()
        frames = detection_frames(path, media.fps, args.detect_width)
        floor_s += time.perf_counter() - started
        frames_total += len(frames)
        for name in PIPED:
            found, seconds = run_piped(name, frames, media.fps, min_len)
            _add(totals[name], score(found, truth, media.fps), seconds)
        with tempfile.TemporaryDirectory() as work:
            result = analyze(path, media, Path(work), AnalysisConfig(detector="scdet", detect_width=args.detect_width))
        _add(totals["scdet"], score(list(result.cuts), truth, media.fps), scdet_cost(path, media.fps, args.detect_width))
    rows = {name: _row(t, frames_total) for name, t in totals.items()}
    print(json.dumps({"videos": len(videos), "frames": frames_total, "detect_width": args.detect_width,
                      "decode_and_scale_ms_per_frame": round(1000 * floor_s / frames_total, 4), "detectors": rows}, indent=2))
    print(f"\n{'detector':<10} {'recall':>7} {'precision':>9} {'ms/frame':>9} {'x fast':>7}")
    fast = rows["fast"]["ms_per_frame"] or 1e-9
    for name, row in rows.items():
        print(f"{name:<10} {row['recall']:>7.3f} {row['precision']:>9.3f} {row['ms_per_frame']:>9.4f} {row['ms_per_frame'] / fast:>7.1f}")
    return 0


def _add(total: dict, counts: tuple[int, int, int], seconds: float) -> None:
    total["tp"] += counts[0]
    total["fp"] += counts[1]
    total["fn"] += counts[2]
    total["seconds"] += seconds


def _row(total: dict, frames: int) -> dict:
    tp, fp, fn = total["tp"], total["fp"], total["fn"]
    return {
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "false_positives": fp,
        "missed": fn,
        "ms_per_frame": round(1000 * total["seconds"] / frames, 4),
    }


if __name__ == "__main__":
    sys.exit(main())
