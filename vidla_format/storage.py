"""Where a dataset lives: a local directory or any pyarrow / fsspec filesystem URI.

Every write is all-or-nothing. On a local disk a file is written under a temporary
name (``.NAME.tmp-PID``) and renamed. On any other filesystem (``s3://``, ``gs://``) the
bytes are first spooled to memory or an *anonymous* local temporary file (no name, so
even a killed process leaves nothing behind) and uploaded under the final name only
once the block that writes them has succeeded: an object store publishes an object
whole when its upload completes, and Arrow's S3 stream cannot abort an upload (closing
it, even from an exception or at interpreter exit, completes it), so streaming straight
to the final name could publish a partial file. Either way a reader never sees a partial
file under a final name, and nothing temporary is ever created in a bucket.

Object stores have no directories: :meth:`Storage.mkdir` creates nothing there (only
checks that the bucket exists), so the store holds only dataset files, plus the empty
``DIR/`` marker objects that Arrow's S3 filesystem itself adds when a delete empties a
"directory" (e.g. ``.ledger/`` after the ledger parts are folded into ``videos.parquet``).

S3 credentials and endpoint come from the usual AWS sources — ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for an S3-compatible server, ``~/.aws``,
instance roles — or from the URI itself, as pyarrow parses it:
``s3://KEY:SECRET@bucket/prefix?endpoint_override=host:9000&scheme=http&region=us-east-1``.
"""

from __future__ import annotations

import copy
import os
import posixpath
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

OBJECT_STORES = ("s3", "gcs", "abfs")
READ_THREADS = 16
"""Small reads in flight at once (manifests, shard indexes): an S3 GET takes ~20 ms of latency, not CPU."""
In, Out = TypeVar("In"), TypeVar("Out")
"""pyarrow filesystem types whose directories are only key prefixes."""
SPOOL_MEMORY_BYTES = 16 * 1024**2
"""Writes to a remote filesystem stay in memory up to this size, then spill to an anonymous temp file."""
UPLOAD_CHUNK_BYTES = 8 * 1024**2


def redacted(uri: str) -> str:
    """``uri`` without the credentials a URI may carry (``s3://KEY:SECRET@bucket``), for messages and logs."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", uri)


def is_uri(location: str | Path) -> bool:
    """Whether ``location`` is a filesystem URI (``s3://bucket/prefix``) rather than a local path."""
    return "://" in str(location)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem behind a local path or a URI, and the path inside it (pyarrow's, else fsspec's)."""
    if not is_uri(uri):
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec  # a scheme pyarrow does not know natively: go through fsspec

        fs, path = fsspec.core.url_to_fs(uri)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable: a commit must not vanish with a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Storage:
    """A dataset root; every path argument is relative to it, with ``/`` separators."""

    def __init__(self, root: str | Path):
        self.uri = str(root)
        self.fs, self.base = filesystem(self.uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.object_store = self.fs.type_name in OBJECT_STORES

    def __repr__(self) -> str:
        return f"Storage({redacted(self.uri)!r})"

    def parent(self) -> Storage:
        """The directory above this root, on the same filesystem (``OUTPUT`` of ``OUTPUT/shards``)."""
        other = copy.copy(self)
        other.base = posixpath.dirname(self.base.rstrip("/"))
        other.uri = f"{self.uri.rstrip('/')}/.."
        return other

    def path(self, rel: str) -> str:
        return f"{self.base.rstrip('/')}/{rel}" if rel else self.base

    def local_path(self, rel: str) -> Path:
        """The local path of ``rel``; only for local storage."""
        if not self.local:
            raise ValueError(f"{self.uri} is not a local directory")
        return Path(self.path(rel))

    def mkdir(self, rel: str = "") -> None:
        """Create ``rel`` as a directory; on an object store only check that the bucket exists.

        Object stores need no directories, and Arrow's ``create_dir`` there would add an empty
        marker object per path level, which is not part of the dataset.
        """
        if not self.object_store:
            self.fs.create_dir(self.path(rel), recursive=True)
            return
        bucket = self.base.split("/", 1)[0]
        if self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{redacted(self.uri)}: bucket {bucket!r} does not exist or is not visible with these credentials")

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def is_file(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File

    def list(self, rel: str) -> list[str]:
        """Names of the files directly under ``rel`` (empty when it does not exist)."""
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True, recursive=False)
        return sorted(info.base_name for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File)

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

    def size(self, rel: str) -> int:
        return int(self.fs.get_file_info(self.path(rel)).size or 0)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(rel), filesystem=self.fs, columns=columns)

    @contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary stream that lands at ``rel`` only if the block completes without error."""
        if not self.local:
            with tempfile.SpooledTemporaryFile(SPOOL_MEMORY_BYTES) as spool:
                yield spool
                self._upload(rel, spool)
            return
        final = Path(self.path(rel))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())  # the bytes are durable before the rename publishes them
            tmp.replace(final)
            _fsync_dir(final.parent)  # and the rename itself survives a power loss
        finally:
            tmp.unlink(missing_ok=True)

    def _upload(self, rel: str, spool: IO[bytes]) -> None:
        """Copy the finished spool to ``rel`` in one upload, which the store publishes whole when it completes."""
        spool.seek(0)
        with self.fs.open_output_stream(self.path(rel)) as out:
            shutil.copyfileobj(spool, out, UPLOAD_CHUNK_BYTES)

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as f:
            f.write(data)

    def write_parquet(self, rel: str, table: pa.Table) -> None:
        with self.open_write(rel) as f:
            pq.write_table(table, f)

    def remove_temporaries(self, rel: str) -> None:
        """Delete the ``.NAME.tmp-*`` leftovers of a killed writer under ``rel``."""
        for name in self.list(rel):
            if name.startswith("."):
                self.delete(f"{rel}/{name}" if rel else name)


def ordered_map(fn: Callable[[In], Out], items: Iterable[In], threads: int = READ_THREADS) -> Iterator[Out]:
    """``fn`` over ``items`` on ``threads`` threads, results in order, at most ``4 × threads`` in flight or
    unread: millions of small reads at the latency of a sixteenth, in bounded memory (``pool.map`` would
    submit every item at once and keep every result until it is consumed)."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
