"""CPU seconds of the analysis decode pass against the decode floor, per video, in the same run.

The pipeline's wall depends on the machine's load; the CPU a decode costs mostly does not.
For every demo video this runs, back to back and ``--repeat`` times (best kept):

* ``decode``: ffmpeg decoding every frame, nothing else (what no curation can avoid);
* ``floor``: the benches' floor (:mod:`floor`): every frame decoded and scaled to 256 px;
* ``pass``: the analysis pass exactly as the clip stage runs it (:func:`curate.decode.build_command`:
  detection frames piped out, kept JPEGs written), with ffmpeg's own thread count and with one
  thread (what a clip actor uses when every core has its own decode).

and prints each one's CPU seconds summed over the corpus, and the pass's ratio to the floor.

    .venv/bin/python bench/decode_pass_cost.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from curate.config import load_config
from curate.decode import FRAMES_DIR, build_command
from curate.demo.corpus import build_corpus
from curate.probe import probe

ROOT = Path(__file__).resolve().parent.parent


def child_cpu(cmd: list[str]) -> float:
    """CPU seconds (user + system) of one child process run to the end, output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands(video: Path, workdir: Path) -> dict[str, list[str]]:
    """The four ways of decoding ``video`` that the bench compares."""
    plain = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(video)]
    media = probe(video)
    config = load_config(ROOT / "configs" / "demo.yaml")
    (workdir / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
    one_thread = config.analysis.model_copy(update={"threads": 1})
    return {
        "decode": [*plain, "-f", "null", "-"],
        "floor": [*plain, "-vf", "scale=-2:256", "-f", "null", "-"],
        "pass, auto threads": build_command(video, media, workdir, config.analysis, None),
        "pass, 1 thread": build_command(video, media, workdir, one_thread, None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT / "demo-out-corpus")
    args = parser.parse_args()
    build_corpus(args.corpus)
    totals: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for video in sorted(args.corpus.glob("*.mp4")):
            for name, cmd in commands(video, Path(tmp)).items():
                best = min(child_cpu(cmd) for _ in range(args.repeat))
                totals[name] = totals.get(name, 0.0) + best
    floor = totals["floor"]
    result = {name: {"cpu_s": round(cpu, 2), "x_floor": round(cpu / floor, 2)} for name, cpu in totals.items()}
    print(json.dumps(result, indent=2))
    print(f"analysis pass, 1 thread: {totals['pass, 1 thread'] / floor:.2f}x the floor's CPU "
          f"({totals['pass, auto threads'] / floor:.2f}x with ffmpeg's own thread count)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
