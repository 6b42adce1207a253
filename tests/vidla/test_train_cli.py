"""The trainer end to end: the demo config trains on shards, and a killed run resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vidla.checkpoint import list_checkpoints, load_checkpoint
from vidla.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "train" / "demo.yaml"


def train_command(shards: Path, output: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vidla_train.train",
        "--config",
        str(DEMO),
        "--shards",
        str(shards),
        "--output",
        str(output),
        *overrides,
    ]


def run_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def metrics(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


def test_demo_config_names_the_make_demo_shards() -> None:
    cfg = load_config(DEMO)
    assert cfg.data.shards == "demo-out/shards"
    assert cfg.model.clip is None and cfg.model.tokenizer == "bytes"


def test_demo_config_trains_a_tiny_model_on_the_shards(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(
        train_command(shards, out, "train.steps=6", "train.log_every=2", "train.ckpt_every=4"),
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=240,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "samples/s" in done.stdout and "frames/s" in done.stdout
    logged = metrics(out)
    assert [m["step"] for m in logged] == [2, 4, 6]
    assert all(m["loss"] > 0 and m["frames_per_s"] == pytest.approx(m["samples_per_s"] * 8) for m in logged)
    assert [step for step, _ in list_checkpoints(out)] == [4, 6]
    assert list((out / "tb").glob("events.out.tfevents.*"))
    state = load_checkpoint(list_checkpoints(out)[-1][1])
    assert state["step"] == 6 and "video.blocks.0.temporal.qkv.weight" in state["model"]


def test_a_killed_run_resumes_at_the_same_step_with_the_same_loss(shards: Path, tmp_path: Path) -> None:
    settings = ("train.steps=14", "train.log_every=1", "train.ckpt_every=3", "data.num_workers=2")
    reference = tmp_path / "reference"
    subprocess.run(
        train_command(shards, reference, *settings),
        check=True,
        capture_output=True,
        env=run_env(),
        timeout=240,
        cwd=ROOT,
    )
    expected = {m["step"]: m["loss"] for m in metrics(reference)}
    assert sorted(expected) == list(range(1, 15))

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        train_command(shards, killed, *settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=run_env(),
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 200
    while not list_checkpoints(killed) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its loader workers, mid-run
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    saved = list_checkpoints(killed)[-1][0]
    assert 3 <= saved < 14

    resumed = subprocess.run(
        train_command(shards, killed, *settings),
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=240,
        cwd=ROOT,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"at step {saved}" in resumed.stdout
    after = [m for m in metrics(killed) if m["step"] > saved]
    after = after[
        -(14 - saved) :
    ]  # the resumed run's lines (the killed run may have logged past its checkpoint)
    assert [m["step"] for m in after] == list(range(saved + 1, 15))
    for m in after:
        assert m["loss"] == pytest.approx(expected[m["step"]], rel=1e-6, abs=1e-7), m["step"]
    final = {
        k: load_checkpoint(list_checkpoints(d)[-1][1])["model"]
        for k, d in (("ref", reference), ("res", killed))
    }
    for name, tensor in final["ref"].items():
        assert torch.allclose(tensor, final["res"][name], atol=1e-6), name
