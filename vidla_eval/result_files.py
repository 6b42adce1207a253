"""Where evaluation results go: a local directory or a filesystem URI (``s3://bucket/eval``, ``memory://x``).

Results are small (``metrics.json``, ``retrieval.png``), so each is built in memory and
written whole: on a local disk under a temporary name and renamed, so a reader never sees
half a file; on an object store as one upload, which appears only once complete. A URI goes
to pyarrow's filesystem when pyarrow knows the scheme (``s3``, ``gs``, ``hdfs``: credentials
and endpoint from the ``AWS_*`` variables, ``~/.aws``, an instance role, or the URI itself,
``s3://KEY:SECRET@bucket/eval?endpoint_override=host:9000&scheme=http``), as the trainer
reads ``data.shards``; any other scheme goes through fsspec. Kept apart from the curation
package's storage on purpose: the model packages read and write the dataset format without
importing curation code.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    """Whether ``location`` names a filesystem by scheme (``s3://b/x``) rather than a local path."""
    return "://" in location


def redacted(location: str) -> str:
    """``location`` without the credentials a URI may carry (``s3://KEY:SECRET@bucket``), for messages."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", location)

#: pyarrow filesystems whose directories are only key prefixes (creating one writes a marker object).
_PREFIX_ONLY = ("s3", "gcs", "abfs")


class ResultDir:
    """A directory of result files, created on first write."""

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        if is_uri(self.location):
            self._fs, self._root = _uri_filesystem(self.location)
        else:
            self._fs, self._root = pafs.LocalFileSystem(), str(Path(self.location).resolve())

    def __str__(self) -> str:
        return redacted(self.location)

    def show(self, name: str) -> str:
        """Where ``name`` is written, for messages: the location as given (credentials hidden) plus the name."""
        return f"{str(self).rstrip('/')}/{name}"

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write file ``name`` whole, replacing any file of that name."""
        if isinstance(self._fs, pafs.LocalFileSystem):
            _write_local(Path(self._root), name, data)
            return
        if self._fs.type_name not in _PREFIX_ONLY:  # an object store has no directories to make, only keys
            self._fs.create_dir(self._root, recursive=True)
        with self._fs.open_output_stream(f"{self._root.rstrip('/')}/{name}") as out:
            out.write(data)


def _uri_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec  # a scheme pyarrow does not know natively

        fs, path = fsspec.core.url_to_fs(uri)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _write_local(directory: Path, name: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, directory / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
