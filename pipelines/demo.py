"""``make demo``: generate the demo corpus, serve it on loopback HTTP, build the dataset on a local Ray.

    python pipelines/demo.py [--output demo-out] [--corpus demo-out-corpus] [--port 8741] [key.sub=value ...]

The corpus is served on a fixed port, so a second ``make demo`` lists the same URLs and resumes
the first (every video done, nothing redone). On any other port the same ids would come with
other URLs, which the ledger refuses (``id_conflict``: one id, one video).
"""

from __future__ import annotations

import argparse
import contextlib
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
DEMO_PORT = 8741


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo-out", help="dataset directory")
    parser.add_argument("--corpus", type=Path, default=Path("demo-out-corpus"), help="where the demo videos are generated")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    parser.add_argument("--port", type=int, default=DEMO_PORT, help="loopback port of the corpus server (fixed, so reruns resume)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    args = parser.parse_args(argv)
    config = load_pipeline_config(args.config, args.overrides)
    corpus = build_corpus(args.corpus)
    with contextlib.ExitStack() as stack:
        base_url = serve_corpus(stack, args.corpus, args.port)
        sources = args.corpus / "sources.csv"
        write_source_list(corpus, base_url, sources)
        summary = build(sources, args.output, config)
    print(format_summary(summary))
    print(f"report: {Path(args.output).resolve() / 'report.html'}")
    return 0


def serve_corpus(stack: contextlib.ExitStack, corpus: Path, port: int) -> str:
    """Serve ``corpus`` on ``port`` until ``stack`` closes; on a free port, with a note, when ``port`` is taken."""
    try:
        return stack.enter_context(serve_directory(corpus, port=port))
    except OSError as exc:
        print(f"demo: loopback port {port} is taken ({exc.strerror}); serving on another, so an output of an earlier "
              "demo will refuse this run's videos as id_conflict (same ids, other URLs): use a new --output, or --port",
              file=sys.stderr)  # fmt: skip
        return stack.enter_context(serve_directory(corpus))


if __name__ == "__main__":
    sys.exit(main())
