"""Session-wide fixtures: the demo corpus (built once, cached between sessions) and its HTTP server.

The corpus takes ~25 s to encode on two cores, so it lives in pytest's cache directory and
``build_corpus`` (idempotent) only checks it on later sessions.  Tests must treat it as
read-only: copy a file into ``tmp_path`` before changing it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataset_checks import shard_keys

from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory
from vidla_format.storage import Storage


def _corpus_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$CURATE_DEMO_CORPUS`` if set, else pytest's cache (kept across sessions), else a temp dir."""
    if os.environ.get("CURATE_DEMO_CORPUS"):
        return Path(os.environ["CURATE_DEMO_CORPUS"])
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("demo_corpus"))
    return tmp_path_factory.mktemp("demo_corpus")


@pytest.fixture(scope="session", autouse=True)
def model_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where dense copies of GGUF models go ($VIDLA_CACHE, for subprocesses and Ray workers too): pytest's
    cache, kept across sessions, so the summariser's ~25 s dequantisation is paid once, never in ~/.cache."""
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("vidla_models")) if cache is not None else tmp_path_factory.mktemp("vidla_models")
    os.environ["VIDLA_CACHE"] = str(root)
    return root


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


def _kill_then_rerun(cmd: list[str], out: Path, env: dict[str, str] | None = None, timeout_s: float = 420) -> None:
    """Start ``cmd``, SIGKILL it right after its first shard commit, then run it again to the end."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("shards/*/shard-*.parquet")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("shards/*/shard-*.parquet")), "the run was killed after its first commit"
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=timeout_s)


def _dataset_keys(out: Path) -> tuple[list[str], list[str], list[Path]]:
    """(keys in the shard indexes, keys in the tars, leftover temporary files) of a dataset."""
    indexed, in_tars = shard_keys(Storage(str(out)))
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") and p.is_file()]
    return indexed, in_tars, leftovers


@pytest.fixture(scope="session")
def kill_then_rerun():
    """SIGKILL a curation run after its first committed shard, rerun it; see :func:`_kill_then_rerun`."""
    return _kill_then_rerun


@pytest.fixture(scope="session")
def dataset_keys():
    """(indexed keys, keys found in the tars, leftover temporary files) of a dataset directory."""
    return _dataset_keys
