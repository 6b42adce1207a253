"""Training frames/s of the VidLA video tower vs. the plain CLIP image tower on the same frames.

    python bench/train_throughput.py --preset b32 --device cuda --batch 128 --precision bf16 [--compile]
    python bench/train_throughput.py --preset tiny            # CPU smoke run

Both towers train (forward, backward, AdamW step) on identical pixels: VidLA on
``batch`` clips of ``frames`` frames; the image tower on the same ``batch x frames``
frames as independent images. The FLOP-ideal ratio comes from counting both models'
training FLOPs (``torch.utils.flop_counter`` on the meta device: exact matmul and
attention FLOPs, no compute); it is printed for the chosen preset and for the real
B/32 and B/16 shapes, next to the measured ratio. The temporal attention adds its own
Q/K/V/O projections (4D^2 on top of a layer's 12D^2 per patch token), so the ideal is
about 0.75; the target is a measured ratio of at least 0.9 x the ideal.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPVisionConfig

from vidla.video_tower import ClipImageTower, VidLAVideoTower

PRESETS: dict[str, dict[str, Any]] = {
    "b32": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"},
    "b16": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "image_size": 224, "patch_size": 16, "hidden_act": "quick_gelu"},
    # B/32's token counts (7x7 patches, 12 frames) at a CPU-sized width and depth.
    "tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512,
             "image_size": 112, "patch_size": 16, "hidden_act": "quick_gelu"},
}  # fmt: skip
PROJECTION = 512


def build(preset: str, grad_checkpointing: bool = False) -> tuple[VidLAVideoTower, ClipImageTower]:
    config = CLIPVisionConfig(**PRESETS[preset])
    vidla = VidLAVideoTower(config, PROJECTION)
    plain = ClipImageTower(config, PROJECTION)
    vidla.grad_checkpointing = plain.grad_checkpointing = grad_checkpointing
    return vidla, plain


def contrastive(embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A CLIP-style loss against fixed targets, so the backward pass is the real one."""
    logits = 100.0 * F.normalize(embeddings.float(), dim=-1) @ targets.t()
    return F.cross_entropy(logits, torch.arange(len(targets), device=targets.device))


def train_flops(preset: str, batch: int, frames: int) -> tuple[float, float]:
    """Forward + backward FLOPs of one step of (VidLA, plain tower), counted on the meta device."""
    with torch.device("meta"):
        vidla, plain = build(preset)
        size = PRESETS[preset]["image_size"]
        video = torch.randn(batch, frames, 3, size, size)
        counts = []
        for model, inputs, n in ((vidla, video, batch), (plain, video.flatten(0, 1), batch * frames)):
            targets = torch.randn(n, PROJECTION)
            with FlopCounterMode(display=False) as counter:
                contrastive(model(inputs), targets).backward()
            counts.append(float(counter.get_total_flops()))
    return counts[0], counts[1]


class Trainer:
    """One model's training step (forward, backward, AdamW) on fixed inputs."""

    def __init__(self, model: torch.nn.Module, inputs: torch.Tensor, precision: str) -> None:
        self.model, self.inputs = model, inputs
        device = inputs.device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
        self.targets = F.normalize(torch.randn(inputs.shape[0], PROJECTION, device=device), dim=-1)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(self) -> None:
        with self.autocast:
            loss = contrastive(self.model(self.inputs), self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def time(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps."""
        sync = torch.cuda.synchronize if self.inputs.device.type == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync()
        return (time.perf_counter() - start) / steps


def measure(trainers: list[Trainer], steps: int, warmup: int, rounds: int) -> list[float]:
    """Best seconds per step of each trainer over ``rounds`` alternating rounds.

    Alternating the models and keeping each one's best round makes the ratio robust to
    anything else the machine is doing (a shared CPU, clock changes).
    """
    for trainer in trainers:
        for _ in range(warmup):
            trainer.step()
    best = [float("inf")] * len(trainers)
    for _ in range(rounds):
        for i, trainer in enumerate(trainers):
            best[i] = min(best[i], trainer.time(steps))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--batch", type=int, default=None, help="clips per step (default: 128 on GPU, 2 on CPU)"
    )
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: bf16 on GPU")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per round (default: 10 GPU, 2 CPU)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating timing rounds; each model's best counts"
    )
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile each transformer block")
    parser.add_argument("--grad-checkpointing", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (128 if gpu else 2)
    precision = args.precision or ("bf16" if gpu else "fp32")
    steps = args.steps or (10 if gpu else 2)
    warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True

    torch.manual_seed(0)
    vidla, plain = build(args.preset, args.grad_checkpointing)
    vidla, plain = vidla.to(device), plain.to(device)
    if args.compile:
        vidla.compile_blocks()
        plain.compile_blocks()
    size = PRESETS[args.preset]["image_size"]
    video = torch.randn(batch, args.frames, 3, size, size, device=device)
    frames_per_step = batch * args.frames

    vidla_s, plain_s = measure(
        [Trainer(vidla, video, precision), Trainer(plain, video.flatten(0, 1), precision)],
        steps,
        warmup,
        args.rounds,
    )
    vidla_fps, plain_fps = frames_per_step / vidla_s, frames_per_step / plain_s
    measured = vidla_fps / plain_fps

    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(f"{args.preset}: {batch} clips x {args.frames} frames per step, {precision}, "
          f"{'compiled' if args.compile else 'eager'}, {name}")  # fmt: skip
    print(
        f"  VidLA video tower : {vidla_fps:10.1f} frames/s ({vidla_s * 1e3:.1f} ms/step, best of {args.rounds})"
    )
    print(
        f"  CLIP image tower  : {plain_fps:10.1f} frames/s ({plain_s * 1e3:.1f} ms/step, best of {args.rounds})"
    )
    for preset in dict.fromkeys([args.preset, "b32", "b16"]):
        vidla_flops, plain_flops = train_flops(preset, 1, args.frames)
        ideal = plain_flops / vidla_flops
        line = f"  FLOP-ideal ratio {preset:4s}: {ideal:.3f} ({vidla_flops / 1e9:.1f} vs {plain_flops / 1e9:.1f} GFLOP per clip)"
        if preset == args.preset:
            line += f"; measured {measured:.3f} = {measured / ideal:.2f} x ideal (target >= 0.90)"
        print(line)


if __name__ == "__main__":
    main()
