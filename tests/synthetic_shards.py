"""Small shards in the dataset format, written without the curation pipeline.

For the loader's tests and benchmark, and to try the trainer on a machine without a
curated corpus: each clip is a real H.264 ``mp4`` (encoded by ffmpeg from frames drawn
here), real JPEG training frames, the ``json`` record and ``txt``, written with
``webdataset.TarWriter`` under ``OUT/{short,medium,long}/shard-NNNNNN.tar``, each tar
followed by its ``.parquet`` index, then one commit manifest naming them all (the commit
rule of ``docs/dataset-format.md``).

The frames make decoding checkable: frame brightness rises linearly with time
(``40 + 150 * t / duration`` on average) over a texture that drifts, so a test can
tell which moment of a clip a decoded frame shows; each clip has its own texture and
tint, so a model can tell clips apart.

    python -m synthetic_shards OUT [--clips 24] [--size 456x256] [--stored-frames 16]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from webdataset import TarWriter

from vidla_format.commits import Manifest, next_commit_number, write_manifest
from vidla_format.layout import FORMAT_VERSION, SCALES, frame_member
from vidla_format.storage import Storage

FFMPEG = "/usr/bin/ffmpeg"


@dataclass(frozen=True)
class SyntheticClip:
    """What to write for one sample."""

    scale: str = "short"
    duration: float = 2.0
    stored_frames: int = 16
    split: str = "train"
    subtitle: str | None = "someone explains how the parts fit together"
    caption: str | None = "a bright pattern drifting to the right"
    summary: str | None = None


def clip_frames(
    duration: float, fps: float, size: tuple[int, int], phase: float, seed: int | None = None
) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 frames; mean brightness ``40 + 150 * t / duration`` at time ``t``.

    ``seed`` gives the clip its own look (texture direction, wavelength, a colour tint that
    leaves the mean brightness unchanged), so clips differ the way a model can learn;
    without it every clip shares one look.
    """
    width, height = size
    count = max(1, round(duration * fps))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed) if seed is not None else None
    angle = float(rng.uniform(0, np.pi)) if rng is not None else 0.6
    wavelength = float(rng.uniform(12, 40)) if rng is not None else 23.0
    tint = np.clip(rng.normal(0, 10, 3), -20, 20) if rng is not None else np.zeros(3)
    tint = tint - tint.mean()
    along = x * np.cos(angle) + y * np.sin(angle)
    frames = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        t = (i + 0.5) / fps
        texture = 18 * np.sin(2 * np.pi * ((along - 2.0 * i) / wavelength + phase))
        level = 40 + 150 * t / duration
        rgb = np.stack([texture, -texture, 0.5 * texture], axis=-1) + level + tint
        frames[i] = np.clip(rgb, 0, 255).astype(np.uint8)
    return frames


def encode_mp4(frames: np.ndarray, fps: float, gop: int = 8) -> bytes:
    """H.264 mp4 bytes of ``frames`` via ffmpeg (keyframe every ``gop`` frames, so seeking is exercised)."""
    count, height, width, _ = frames.shape
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        cmd = [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(gop), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(out),
        ]  # fmt: skip
        subprocess.run(cmd, input=frames.tobytes(), check=True)
        return out.read_bytes()


def jpeg(frame: np.ndarray, short_side: int) -> bytes:
    """One JPEG with the given short side (the contract stores 256, or the source's if smaller)."""
    image = Image.fromarray(frame)
    w, h = image.size
    scale = min(1.0, short_side / min(w, h))
    image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _record(
    clip: SyntheticClip,
    key: str,
    video_id: str,
    index: int,
    frame_times: list[float],
    size: tuple[int, int],
    fps: float,
) -> dict:
    start = 10.0 * index
    return {
        "format_version": FORMAT_VERSION,
        "key": key,
        "video_id": video_id,
        "url": f"https://example.invalid/{video_id}",
        "scale": clip.scale,
        "index": index,
        "start": start,
        "end": start + clip.duration,
        "duration": clip.duration,
        "parent": None,
        "children": [],
        "shots": [[0.0, clip.duration]],
        "subtitle": clip.subtitle,
        "subtitle_sentences": []
        if clip.subtitle is None
        else [{"start": start, "end": start + clip.duration, "text": clip.subtitle}],
        "subtitle_language": "en" if clip.subtitle is not None else None,
        "subtitle_kind": "manual" if clip.subtitle is not None else None,
        "caption": clip.caption,
        "summary": clip.summary,
        "caption_frames": [start],
        "frame_times": [start + t for t in frame_times],
        "split": clip.split,
        "fps": fps,
        "width": size[0],
        "height": size[1],
        "has_audio": False,
        "cut_mode": "reencode",
        "preroll_s": 0.0,
        "source": {"title": f"synthetic {video_id}", "duration": start + clip.duration},
    }


def _index(tar_path: Path, rows: list[dict]) -> None:
    """Write the shard's ``.parquet`` index (after the tar: the commit)."""
    offsets: dict[str, int] = {}
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            offsets.setdefault(member.name.split(".", 1)[0], member.offset)
    for row in rows:
        row["offset"] = offsets[row["key"]]
    pq.write_table(pa.Table.from_pylist(rows), tar_path.with_suffix(".parquet"))


def write_shards(
    out: Path,
    clips: list[SyntheticClip],
    *,
    samples_per_shard: int = 4,
    size: tuple[int, int] = (64, 48),
    fps: float = 8.0,
    frame_short_side: int = 256,
    gop: int = 8,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Write ``clips`` as committed shards under ``out/{scale}/``; returns the tars per scale.

    ``size`` is the video's (width, height), both even (H.264 4:2:0); ``gop`` the keyframe interval in frames.
    """
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"video size {size} must be even for H.264 4:2:0")
    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {s: [] for s in SCALES}
    for scale in SCALES:
        todo = [c for c in clips if c.scale == scale]
        (out / scale).mkdir(parents=True, exist_ok=True)
        for shard_no, first in enumerate(range(0, len(todo), samples_per_shard)):
            tar_path = out / scale / f"shard-{shard_no:06d}.tar"
            rows = []
            with TarWriter(str(tar_path), encoder=False) as writer:
                for offset, clip in enumerate(todo[first : first + samples_per_shard]):
                    index = first + offset
                    video_id = f"synth{seed:02d}-{scale}{index:03d}"
                    key = f"{video_id}_{scale}_{index:04d}"
                    frames = clip_frames(
                        clip.duration, fps, size, phase=float(rng.random()), seed=int(rng.integers(2**31))
                    )
                    count = len(frames)
                    picks = [
                        min(count - 1, int((k + 0.5) * count / clip.stored_frames))
                        for k in range(clip.stored_frames)
                    ]
                    frame_times = [(p + 0.5) / fps for p in picks]
                    record = _record(clip, key, video_id, index, frame_times, size, fps)
                    text = clip.summary or clip.caption or clip.subtitle or ""
                    sample = {
                        "__key__": key,
                        "mp4": encode_mp4(frames, fps, gop),
                        "json": json.dumps(record).encode(),
                        "txt": text.encode(),
                    }
                    for k, p in enumerate(picks):
                        sample[frame_member(k)] = jpeg(frames[p], frame_short_side)
                    writer.write(sample)
                    rows.append(
                        {
                            "key": key, "video_id": video_id, "scale": scale, "index": index,
                            "start": record["start"], "end": record["end"], "duration": clip.duration,
                            "parent": None, "split": clip.split, "has_subtitle": clip.subtitle is not None,
                            "has_caption": clip.caption is not None, "mp4_bytes": len(sample["mp4"]),
                            "sample_bytes": sum(len(v) for k, v in sample.items() if k != "__key__"),
                        }
                    )  # fmt: skip
            _index(tar_path, rows)
            written[scale].append(tar_path)
    _commit(out, written)
    return written


def _commit(out: Path, written: dict[str, list[Path]]) -> None:
    """Publish the shards with one commit manifest, as the curation sink does (docs/dataset-format.md)."""
    storage = Storage(str(out))
    number = next_commit_number(storage, "")
    shards = {scale: [p.stem for p in tars] for scale, tars in written.items() if tars}
    write_manifest(storage, "", number, "synthetic", Manifest("", shards, []))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="the shards/ directory to write")
    parser.add_argument("--clips", type=int, default=24, help="clips per scale")
    parser.add_argument("--size", default="456x256", help="video WIDTHxHEIGHT (even)")
    parser.add_argument("--stored-frames", type=int, default=16)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--samples-per-shard", type=int, default=8)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    clips = [
        SyntheticClip(
            scale=s,
            duration=args.duration,
            stored_frames=args.stored_frames,
            subtitle=f"the {s} part number {i} explains how the pieces fit",
            caption=f"a drifting pattern, {s} clip {i}",
        )
        for s in SCALES
        for i in range(args.clips)
    ]
    written = write_shards(args.out, clips, samples_per_shard=args.samples_per_shard, size=(width, height))
    print({s: len(p) for s, p in written.items()})


if __name__ == "__main__":
    main()
