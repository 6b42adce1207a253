"""A self-contained demo corpus (generated and real footage) and a loopback server for it.

The pipeline downloads through yt-dlp; serving the corpus over real HTTP lets the demo and
the tests exercise the same code path as a real run, without internet access.
"""

from curate.demo.corpus import build_corpus
from curate.demo.server import serve_directory, write_source_list

__all__ = ["build_corpus", "serve_directory", "write_source_list"]
