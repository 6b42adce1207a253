"""Run one download attempt in a child process whose limits hold whatever the server does.

Checks inside yt-dlp (progress hooks, socket timeouts) only run when yt-dlp gets control
back: a server that trickles one byte every half second, or a page that is read whole,
passes them. So each attempt runs in a child process of its own, in a process group of its
own:

* a wall-clock deadline: past it the parent kills the whole group (yt-dlp's ffmpeg merges
  included), and a watchdog thread in the child does the same should the parent be gone;
* ``RLIMIT_AS``: memory the attempt cannot exceed (Python raises MemoryError); the soft limit only,
  so the one program that must reserve more address space than it uses (deno, YouTube's
  JavaScript challenge solver, see :mod:`curate.jsruntime`) can be started above it;
* ``RLIMIT_FSIZE``: bytes one file may reach (writes fail with EFBIG).

Children are forked from a zygote (:mod:`curate.zygote`): a fresh interpreter started once
per worker process that has already imported the attempt module (yt-dlp and its extractors).
A fork of it costs milliseconds where a fresh ``python -m`` costs ~1 s of CPU per attempt,
and, like a fresh interpreter, brings nothing of the worker's threads, locks or main module
along (which matters in a Ray worker). A child that dies without an answer is classified by
how it died.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError, permanent, transient

_WATCHDOG_GRACE_S = 5.0
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE}


@dataclass(frozen=True)
class ChildLimits:
    """The limits of one attempt's process."""

    wall_s: float
    memory_bytes: int
    file_bytes: int


def run_limited(module: str, request: dict[str, Any], limits: ChildLimits) -> Any:
    """``module.handle_request(request)`` in a child forked from a warm zygote, under ``limits``; the value
    it answers, or the CurateError it raised (or its death means)."""
    if limits.wall_s <= 0:
        raise permanent("time_limit", "no time left for another attempt (download.total_time_limit_s)")
    return _zygote(module).run(request, limits)


class Zygote:
    """The caller's side of one :mod:`curate.zygote` process: one attempt at a time, restarted if it dies."""

    def __init__(self, module: str):
        self.module = module
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.lines: _Lines | None = None

    def _started(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "curate.zygote", self.module], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, bufsize=0, close_fds=True, env=_child_env(),
            )  # fmt: skip
            assert self.proc.stdout is not None
            self.lines = _Lines(self.proc.stdout.fileno())
        return self.proc

    def run(self, request: dict[str, Any], limits: ChildLimits) -> Any:
        with self.lock:
            proc = self._started()
            assert proc.stdin is not None and self.lines is not None
            try:
                proc.stdin.write(json.dumps({"limits": asdict(limits), "request": request}).encode() + b"\n")
                pid = json.loads(self.lines.read(None))["pid"]
                timed_out = not self.lines.wait(limits.wall_s)
                if timed_out:
                    _kill_group(pid)
                done = json.loads(self.lines.read(None))
            except (OSError, ValueError, KeyError) as exc:
                self.close()
                raise transient("internal_error", f"the download fork server is gone: {exc}") from exc
            global _ATTEMPTS_CPU_S
            _ATTEMPTS_CPU_S += float(done.get("cpu_s") or 0.0)
        if timed_out:
            raise permanent(
                "time_limit", f"the download attempt was still running after {limits.wall_s:.1f} s (download.time_limit_s)"
            )
        return _answer(done["answer"], _returncode(done["status"]))

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


_ZYGOTES: dict[str, Zygote] = {}
_ATTEMPTS_CPU_S = 0.0


def attempts_cpu_seconds() -> float:
    """CPU seconds used so far by this process's attempt children (forked by a zygote, so not in its rusage)."""
    return _ATTEMPTS_CPU_S


def prestart(module: str) -> None:
    """Start ``module``'s zygote now, without waiting for it: its warm-up (every yt-dlp extractor
    imported, ~1.5 CPU-s) then overlaps whatever the caller does next instead of delaying the first attempt."""
    zygote = _zygote(module)
    with zygote.lock:
        zygote._started()


def _zygote(module: str) -> Zygote:
    return _ZYGOTES.setdefault(module, Zygote(module))


class _Lines:
    """Whole lines from a pipe, with a deadline on the wait for the next one (no read-ahead is lost)."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, bytearray()

    def wait(self, timeout_s: float | None) -> bool:
        """Whether a whole line is here within ``timeout_s`` (None: however long it takes); EOF raises."""
        deadline = None if timeout_s is None else time.monotonic() + max(0.0, timeout_s)
        while b"\n" not in self.buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    raise OSError("the fork server closed its output")
                self.buffer += chunk
        return True

    def read(self, timeout_s: float | None) -> bytes:
        if not self.wait(timeout_s):
            raise TimeoutError("no answer in time")
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return line


def _returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _child_env() -> dict[str, str]:
    """The parent's environment, with this package importable whatever the child's working directory
    holds (``-P`` keeps the working directory off ``sys.path``)."""
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _kill_group(pid: int) -> None:
    """Kill the attempt and everything it started (its process group; the zygote reaps it only after
    this, so the group id cannot have been reused)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)  # not yet its own group leader
        except ProcessLookupError:
            pass


def _answer(out: str | None, returncode: int | None) -> Any:
    try:
        outcome = json.loads(out) if out else None
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict):
        raise _death(returncode or 0)
    if "error" in outcome:
        code, message, error_class = outcome["error"]
        error = CurateError(code, message, error_class)
        error.peak_rss_bytes = outcome.get("peak_rss_bytes")  # type: ignore[attr-defined]
        raise error
    return outcome["ok"]


def _death(returncode: int) -> CurateError:
    if returncode < 0:
        name = _signal_name(-returncode)
        if -returncode in _CRASH_SIGNALS:
            return permanent("download_crashed", f"the download process crashed ({name}); the input will crash it again")
        return transient("download_killed", f"the download process was killed ({name}), e.g. by the out-of-memory killer")
    return transient("internal_error", f"the download process exited with status {returncode} without an answer")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --------------------------------------------------------------------------- in the child


def child_outcome(handle: Callable[[dict[str, Any]], Any], request: dict[str, Any], limits: ChildLimits) -> dict[str, Any]:
    """Apply ``limits`` to this process and run ``handle(request)``: ``{"ok": value}`` or ``{"error": [...]}``."""
    _apply_limits(limits)
    try:
        outcome: dict[str, Any] = {"ok": handle(request)}
    except CurateError as error:
        outcome = {"error": [error.code, error.message, error.error_class]}
    except MemoryError:
        outcome = {"error": ["memory_limit", f"the attempt needed more than {limits.memory_bytes} bytes of memory", "permanent"]}
    except BaseException as error:  # noqa: BLE001 - a bug (or a library's sys.exit) costs this video, transiently
        detail = "".join(traceback.format_exception_only(error)).strip()
        outcome = {"error": ["internal_error", detail[:500], "transient"]}
    outcome["peak_rss_bytes"] = _peak_rss_bytes()
    return outcome


def _peak_rss_bytes() -> int:
    """This process's peak resident memory: what its limits held the attempt to. VmHWM belongs to the
    process image (ru_maxrss would also count the parent's memory at the fork before exec)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _apply_limits(limits: ChildLimits) -> None:
    _start_watchdog(limits.wall_s + _WATCHDOG_GRACE_S)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, resource.RLIM_INFINITY))


def _start_watchdog(seconds: float) -> None:
    """Kill this process group after ``seconds`` even if nobody else does (the parent may be gone)."""
    timer = threading.Timer(seconds, os.killpg, args=(0, signal.SIGKILL))
    timer.daemon = True
    timer.start()
