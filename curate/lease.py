"""An exclusive lease on a dataset output: one writer at a time.

Two runs writing one output would delete each other's uncommitted shards (a writer's
recovery removes shards no commit names) and interleave ledger parts, so a writer takes
the lease first and a second one fails at once with a message naming the holder.

Locally the lease is ``OUTPUT/.lock``, created with ``O_CREAT | O_EXCL`` (atomic on a
POSIX filesystem) and holding the holder's pid, host and run id. A lock left by a
process that died on the same host (SIGKILL, power loss) is stale: the next writer sees
that the pid is gone, removes it and takes the lease. A lock held from another host is
never taken over automatically; the message says which file to delete once that run is
known to be dead.

On an object store pyarrow has no conditional create (``If-None-Match``), so the lease
there is check-then-put followed by a read-back of the run id: it catches a second run
started while the first is running, not two runs started in the same instant. A stale
lock (dead pid, same host) is taken over there too.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

from vidla_format.layout import LOCK_FILE
from vidla_format.storage import Storage, redacted

UNWRITTEN_GRACE_S = 10.0
"""A lock file still empty this long after its creation is from a holder that died while writing it."""


class OutputLocked(RuntimeError):
    """Another run holds the output's lease."""


def new_run_id() -> str:
    """A short id, unique per run, used in the lease and in commit names."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def _holder(run_id: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id, "since": time.time()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_here(holder: dict) -> bool:
    """Whether ``holder`` was a process on this host that no longer runs."""
    return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))


def _is_stale(path: Path) -> bool:
    """Whether the lock at ``path`` was left by a dead process on this host (or never got its content)."""
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return True
    except (ValueError, UnicodeDecodeError):
        return time.time() - path.stat().st_mtime > UNWRITTEN_GRACE_S
    return _dead_here(holder)


class Lease:
    """Holds ``OUTPUT/.lock`` from :meth:`acquire` until :meth:`release`."""

    def __init__(self, storage: Storage, run_id: str):
        self.storage = storage
        self.run_id = run_id
        self.held = False

    def acquire(self) -> None:
        """Take the lease or raise :class:`OutputLocked`."""
        body = json.dumps(_holder(self.run_id)).encode()
        if self.storage.local:
            self._acquire_local(body)
        else:
            self._acquire_remote(body)
        self.held = True

    def _acquire_local(self, body: bytes) -> None:
        path = self.storage.local_path(LOCK_FILE)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not _is_stale(path):
                    raise OutputLocked(self._message()) from None
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            return
        raise OutputLocked(self._message())

    def _acquire_remote(self, body: bytes) -> None:
        if self.storage.exists(LOCK_FILE):
            try:
                stale = _dead_here(json.loads(self.storage.read_bytes(LOCK_FILE)))
            except (OSError, ValueError):
                stale = False
            if not stale:
                raise OutputLocked(self._message())
        self.storage.write_bytes(LOCK_FILE, body)
        if json.loads(self.storage.read_bytes(LOCK_FILE)).get("run_id") != self.run_id:
            raise OutputLocked(self._message())

    def _message(self) -> str:
        try:
            holder = json.loads(self.storage.read_bytes(LOCK_FILE))
            who = f"run {holder.get('run_id')} (pid {holder.get('pid')} on {holder.get('host')})"
        except (OSError, ValueError):
            who = "another run"
        where = redacted(self.storage.uri)
        return (
            f"output {where} is being written by {who}; two writers would corrupt it. Wait for that run, "
            f"or delete {where}/{LOCK_FILE} if it is known to be dead"
        )

    def release(self) -> None:
        """Give the lease back, if this run still holds it."""
        if not self.held:
            return
        self.held = False
        try:
            if json.loads(self.storage.read_bytes(LOCK_FILE)).get("run_id") == self.run_id:
                self.storage.delete(LOCK_FILE)
        except (OSError, ValueError):
            pass
