"""``make demo``: generate the demo corpus, serve it on loopback HTTP, build the dataset on a local Ray.

    python pipelines/demo.py [--output demo-out] [--corpus demo-out/corpus] [key.sub=value ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate.cli import format_summary
from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory, write_source_list
from pipelines.build_dataset import build
from pipelines.config import load_pipeline_config

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo-out", help="dataset directory")
    parser.add_argument("--corpus", type=Path, default=Path("demo-out-corpus"), help="where the demo videos are generated")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    args = parser.parse_args(argv)
    config = load_pipeline_config(args.config, args.overrides)
    corpus = build_corpus(args.corpus)
    with serve_directory(args.corpus) as base_url:
        sources = args.corpus / "sources.csv"
        write_source_list(corpus, base_url, sources)
        summary = build(sources, args.output, config)
    print(format_summary(summary))
    print(f"report: {Path(args.output).resolve() / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
