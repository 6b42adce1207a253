"""Session-wide fixtures: the demo corpus (built once, cached between sessions) and its HTTP server.

The corpus takes ~25 s to encode on two cores, so it lives in pytest's cache directory and
``build_corpus`` (idempotent) only checks it on later sessions.  Tests must treat it as
read-only: copy a file into ``tmp_path`` before changing it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory


def _corpus_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$CURATE_DEMO_CORPUS`` if set, else pytest's cache (kept across sessions), else a temp dir."""
    if os.environ.get("CURATE_DEMO_CORPUS"):
        return Path(os.environ["CURATE_DEMO_CORPUS"])
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("demo_corpus"))
    return tmp_path_factory.mktemp("demo_corpus")


@pytest.fixture(scope="session")
def demo_corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(directory, corpus.json contents) of the demo corpus; see ``curate/demo/corpus.py``."""
    dest = _corpus_dir(request, tmp_path_factory)
    return dest, build_corpus(dest)


@pytest.fixture(scope="session")
def demo_server(demo_corpus: tuple[Path, dict]) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/``) of a loopback server over the demo corpus."""
    with serve_directory(demo_corpus[0]) as base_url:
        yield base_url
