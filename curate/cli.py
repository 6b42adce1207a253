"""Command line: ``python -m curate run|demo``.

``run`` curates a user's URL list with the plain loop; ``demo`` builds the embedded demo
corpus, serves it on loopback and curates it (what ``make demo`` does).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from curate.config import load_config
from curate.lease import OutputLocked
from curate.run import RunSummary, run
from vidla_format.clips import read_clips
from vidla_format.layout import SCALES
from vidla_format.storage import Storage, redacted

EXIT_LOCKED = 2
"""Exit status when another run holds the output (the same as for unusable arguments)."""

DEFAULT_DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def _add_run_options(p: argparse.ArgumentParser, output_default: str | None) -> None:
    p.add_argument(
        "--output", required=output_default is None, default=output_default, help="output directory or URI (s3://...)"
    )
    p.add_argument("--config", type=Path, help="YAML config (defaults: curate/config.py)")
    p.add_argument("--workers", type=int, default=2, help="videos processed in parallel (processes)")
    p.add_argument("--retry-failed", action="store_true", help="also retry videos that failed permanently")
    p.add_argument("--keep-workdirs", action="store_true", help="keep each video's work directory (debugging)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, e.g. plan.short.min_s=4")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m curate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="curate a URL list (.txt/.csv/.jsonl/.parquet) into a dataset")
    p_run.add_argument("--sources", required=True, help="URL list: .txt, or .csv/.jsonl/.parquet with a url column; a path or a URI")
    _add_run_options(p_run, None)
    p_demo = sub.add_parser("demo", help="generate, serve on loopback and curate the embedded demo corpus")
    p_demo.add_argument("--corpus", type=Path, default=Path("demo-out/corpus"), help="where the demo videos are generated")
    _add_run_options(p_demo, "demo-out")
    return parser


def format_summary(summary: RunSummary) -> str:
    """A short human-readable account of what came out."""
    funnel = summary.stats.get("funnel", {})
    lines = [
        f"output: {redacted(str(summary.output))}",
        f"urls: {funnel.get('urls_in', 0)} in, {funnel.get('ok', 0)} ok, {funnel.get('failed', 0)} failed, "
        f"{funnel.get('skipped', 0)} skipped; {funnel.get('with_subtitles', 0)} with subtitles",
    ]
    storage = Storage(summary.output)
    durations: dict[str, list[float]] = defaultdict(list)
    for row in read_clips(storage, ["scale", "duration"]).to_pylist():
        durations[row["scale"]].append(row["duration"])
    for scale in SCALES:
        d = durations.get(scale, [])
        mean = f"mean {sum(d) / len(d):.1f} s" if d else "-"
        lines.append(f"  {scale:<6} clips: {len(d):4d}  {mean}")
    for code, n in funnel.get("failures", {}).items():
        lines.append(f"  failed {code}: {n}")
    run_stats = summary.stats.get("run", {})
    lines.append(
        f"this run: {run_stats.get('videos_processed', 0)} videos in {run_stats.get('wall_s', 0):.1f} s, "
        f"{run_stats.get('source_seconds', 0):.0f} s of video, "
        f"{run_stats.get('source_seconds_per_cpu_second') or 0:.1f} s of video per CPU-second of curation, "
        f"{run_stats.get('source_seconds_per_cpu_second_with_text') or 0:.1f} with captions and summaries"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config_path = args.config or (DEFAULT_DEMO_CONFIG if args.command == "demo" else None)
    config = load_config(config_path, args.overrides)
    if args.keep_workdirs:
        config.keep_workdirs = True
    options = dict(workers=args.workers, retry_failed=args.retry_failed, progress=not args.quiet)
    if args.command == "run":
        try:
            summary = run(args.sources, args.output, config, **options)
        except OutputLocked as exc:
            print(f"curate run: error: {exc}", file=sys.stderr)
            return EXIT_LOCKED
    else:
        from curate.demo.corpus import build_corpus
        from curate.demo.server import serve_directory, write_source_list

        corpus = build_corpus(args.corpus)
        with serve_directory(args.corpus) as base_url:
            sources = args.corpus / "sources.csv"
            write_source_list(corpus, base_url, sources)
            summary = run(sources, args.output, config, **options)
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
