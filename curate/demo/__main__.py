"""``python -m curate.demo build DEST`` | ``python -m curate.demo serve DEST [--port P]``.

``serve`` builds the corpus if needed, writes ``DEST/sources.csv`` pointing at the server and
serves until Ctrl-C, so a user can run the pipeline on it from another terminal.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory, write_source_list


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m curate.demo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="generate the demo corpus into DEST")
    build.add_argument("dest", type=Path)
    serve = commands.add_parser("serve", help="serve DEST over loopback HTTP and write DEST/sources.csv")
    serve.add_argument("dest", type=Path)
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--host", default="127.0.0.1")
    return parser


def _build(dest: Path) -> int:
    corpus = build_corpus(dest)
    for name, item in corpus["items"].items():
        subtitle = item["subtitle"]["file"] if item["subtitle"] else "no subtitles"
        print(f"{name:14s} {item['duration']:7.2f} s  {len(item['cuts'])} cuts  {subtitle}")
    print(f"ground truth: {dest / 'corpus.json'}")
    return 0


def _serve(dest: Path, host: str, port: int) -> int:
    corpus = build_corpus(dest)
    with serve_directory(dest, host=host, port=port) as base_url:
        sources = write_source_list(corpus, base_url, dest / "sources.csv")
        print(f"serving {dest} at {base_url}")
        print(f"sources: {sources}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "build":
        return _build(args.dest)
    return _serve(args.dest, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
