"""What a reader sees in a clip, measured with ffmpeg itself (edit lists honoured)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def frame_digests(path: Path, stream: str = "v:0") -> list[str]:
    """MD5 of every frame ffmpeg presents, in order: equal lists mean bit-identical frames."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]
