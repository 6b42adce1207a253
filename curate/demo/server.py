"""Serve the demo corpus over loopback HTTP, and write the URL list that points at it.

A real HTTP server (not file:// URLs) is used so that yt-dlp runs exactly as it does on
the internet: the generic extractor reads the HTML page, finds the ``<video>`` and its
``<track>``, and downloads over HTTP.
"""

from __future__ import annotations

import csv
import functools
import http.server
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the content types yt-dlp relies on, and no request log on stderr."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES}

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: tests and the demo would otherwise print one line per request."""


class QuietServer(http.server.ThreadingHTTPServer):
    """Ignores clients that hang up early: yt-dlp reads only the first bytes of a media link to
    sniff it, which would otherwise print a BrokenPipeError traceback per request."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_directory(directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``directory`` from a daemon thread; yields the base URL (``http://HOST:PORT/``).

    ``port=0`` picks a free port, so parallel test sessions never collide.
    """
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = QuietServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
    thread.start()
    try:
        bound_host, bound_port = server.server_address[:2]
        yield f"http://{bound_host}:{bound_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def source_urls(corpus: dict, base_url: str) -> list[tuple[str, str]]:
    """(id, url) per corpus item: the HTML page when the item has one, else the mp4 itself."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    rows = []
    for name, item in corpus["items"].items():
        target = item["page"] if item["serve"] == "page" else item["video"]
        rows.append((name, base + target))
    return rows


def write_source_list(corpus: dict, base_url: str, path: Path) -> Path:
    """Write the source list the pipeline reads, in the format ``path``'s suffix names.

    ``.csv`` writes ``id,url`` rows with the corpus names as ids, so video ids, sample keys and
    train/val/test splits are the same on every run whatever port the server got; ``.txt``
    writes one URL a line, whose ids then hash the URL (port included).
    """
    rows = source_urls(corpus, base_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "url"])
            writer.writerows(rows)
    elif path.suffix == ".txt":
        path.write_text("".join(url + "\n" for _, url in rows), encoding="utf-8")
    else:
        raise ValueError(f"{path}: write a .csv (ids and URLs) or a .txt (URLs) source list")
    return path
