"""CPU seconds the Download stage spends per video, this tree against a baseline commit, in one run.

The download is the largest per-video cost after the decode pass (issue 11's breakdown: ~0.55 of
~3.2 CPU-s a video). This prices it alone: the demo corpus served on loopback (HTML pages with
subtitle tracks, which carry no duration, so the media's head is probed before the download,
and plain media links), each URL downloaded ``--rounds`` times by ``curate.download.download``
with a warm fork server, as a download actor does. CPU counts everything the video costs: the
caller (its post-download ffprobe included), the forked attempt and what it waited for.

The baseline is another commit of this repository, checked out in a temporary ``git worktree``
and run with the same interpreter and packages; the two sides alternate ``--repeat`` times and
the best of each is kept (these machines are noisy).

    .venv/bin/python bench/download_cost.py --baseline HEAD~1 [--rounds 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(root: Path, corpus_dir: Path, rounds: int) -> dict:
    """Run in a child whose ``PYTHONPATH`` is ``root``: CPU and wall per video of that tree's download."""
    import resource

    import curate
    from curate.config import DownloadConfig
    from curate.demo.corpus import build_corpus
    from curate.demo.server import serve_directory, source_urls
    from curate.download import download, warm_start
    from curate.download_limits import attempts_cpu_seconds

    assert Path(curate.__file__).resolve().is_relative_to(root.resolve()), curate.__file__
    corpus = build_corpus(corpus_dir)
    config = DownloadConfig(allow_hosts=["127.0.0.1"])
    warm_start()

    def cpu() -> float:
        own, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime + attempts_cpu_seconds()

    with serve_directory(corpus_dir) as base, tempfile.TemporaryDirectory() as scratch:
        rows = source_urls(corpus, base)
        kinds = {"page": [r for r in rows if r[1].endswith(".html")], "media link": [r for r in rows if not r[1].endswith(".html")]}
        download(rows[0][1], "warm", Path(scratch) / "warm", config)  # the fork server's warm-up is not per video
        result = {}
        for kind, urls in kinds.items():
            start_cpu, start_wall, count = cpu(), time.perf_counter(), 0
            for round_ in range(rounds):
                for vid, url in urls:
                    download(url, vid, Path(scratch) / f"{kind[0]}{round_}-{vid}", config)
                    count += 1
            result[kind] = {"cpu_s": (cpu() - start_cpu) / count, "wall_s": (time.perf_counter() - start_wall) / count,
                            "videos": count}  # fmt: skip
    return result


def run_side(root: Path, corpus_dir: Path, rounds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import download_cost, json; from pathlib import Path; "
            f"print(json.dumps(download_cost.measure(Path({str(root)!r}), Path({str(corpus_dir)!r}), {rounds})))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare with (e.g. HEAD~1)")
    parser.add_argument("--rounds", type=int, default=3, help="downloads of each URL per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="alternations of baseline and candidate; the best of each is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="download-cost-") as scratch:
        baseline = Path(scratch) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(baseline), args.baseline], check=True)
        try:
            corpus_dir = Path(scratch) / "corpus"
            best: dict[str, dict] = {}
            for _ in range(args.repeat):
                for side, root in (("baseline", baseline), ("candidate", ROOT)):
                    got = run_side(root, corpus_dir, args.rounds)
                    for kind, figures in got.items():
                        key = f"{side}/{kind}"
                        if key not in best or figures["cpu_s"] < best[key]["cpu_s"]:
                            best[key] = figures
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], check=False)
    print(f"baseline {args.baseline}; best of {args.repeat}, {args.rounds} rounds each; CPU-s per video (wall s)")
    for kind in ("page", "media link"):
        old, new = best[f"baseline/{kind}"], best[f"candidate/{kind}"]
        print(f"  {kind:11s} baseline {old['cpu_s']:.3f} ({old['wall_s']:.2f})  this tree {new['cpu_s']:.3f} ({new['wall_s']:.2f})"
              f"  ratio {new['cpu_s'] / old['cpu_s']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
