"""The images' YouTube layer: yt-dlp in a fresh environment built from the images' pins finds deno.

No Docker daemon here, so the layer is rebuilt the way the Dockerfiles' pip step builds it, into
a new virtual environment (the pins of requirements-{cpu,gpu}.txt that concern YouTube, from the
package registry), and yt-dlp's own verbose report is read from it: the JS runtime must be deno
found in that environment, the solver scripts present, and the PO-token provider plugin loaded.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_checks import DEPLOY
from packaging.requirements import Requirement

YOUTUBE = ("yt-dlp", "yt-dlp-ejs", "deno", "bgutil-ytdlp-pot-provider")
pytestmark = pytest.mark.timeout(600)


def youtube_pins(kind: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in (DEPLOY / "docker" / f"requirements-{kind}.txt").read_text().splitlines()]
    return [line for line in lines if line and Requirement(line).name in YOUTUBE]


def test_both_images_pin_the_same_youtube_packages() -> None:
    assert sorted(Requirement(p).name for p in youtube_pins("cpu")) == sorted(YOUTUBE)
    assert youtube_pins("cpu") == youtube_pins("gpu")


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with only the images' YouTube pins (no dependencies beyond them)."""
    venv = tmp_path_factory.mktemp("youtube-layer") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *youtube_pins("cpu")],
                   check=True, capture_output=True, timeout=480)  # fmt: skip
    return python


def test_ytdlp_in_the_layer_reports_deno_and_the_po_token_plugin(layer: Path) -> None:
    done = subprocess.run([str(layer), "-m", "yt_dlp", "-v", "--ignore-config"], capture_output=True, text=True, timeout=120)
    report = done.stdout + done.stderr
    deno = next(p for p in youtube_pins("cpu") if p.startswith("deno=="))
    assert re.search(rf"\[debug\] JS runtimes: deno-{re.escape(deno.split('==')[1])}\b", report), report
    assert "yt_dlp_ejs-" in report
    plugins = re.search(r"\[debug\] Plugin directories: (.*)", report)
    assert plugins is not None and str(layer.parent.parent) in plugins[1]
