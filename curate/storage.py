"""Where a dataset lives: a local directory or any pyarrow / fsspec filesystem URI.

Every write is all-or-nothing. On a local disk a file is written under a temporary
name (``.NAME.tmp-PID``) and renamed; on an object store (``s3://``, ``gs://``) an
upload only becomes visible once it completes, so the final name is written directly.
Either way a reader never sees a partial file under a final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec  # a scheme pyarrow does not know natively: go through fsspec

        fs, path = fsspec.core.url_to_fs(uri)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


class Storage:
    """A dataset root; every path argument is relative to it, with ``/`` separators."""

    def __init__(self, root: str | Path):
        self.uri = str(root)
        self.fs, self.base = _filesystem(self.uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

    def path(self, rel: str) -> str:
        return f"{self.base.rstrip('/')}/{rel}" if rel else self.base

    def local_path(self, rel: str) -> Path:
        """The local path of ``rel``; only for local storage."""
        if not self.local:
            raise ValueError(f"{self.uri} is not a local directory")
        return Path(self.path(rel))

    def mkdir(self, rel: str = "") -> None:
        self.fs.create_dir(self.path(rel), recursive=True)

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
            with self.fs.open_output_stream(self.path(rel)) as f:
                yield f
            return
        final = Path(self.path(rel))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                yield f
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)

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
