"""Run one download attempt in a child process whose limits hold whatever the server does.

Checks inside yt-dlp (progress hooks, socket timeouts) only run when yt-dlp gets control
back: a server that trickles one byte every half second, or a page that is read whole,
passes them. So each attempt runs in a fresh interpreter (``python -m MODULE``: nothing of
the parent's threads, locks or main module comes along, which matters in a Ray worker), in
a process group of its own:

* a wall-clock deadline: past it the parent kills the whole group (yt-dlp's ffmpeg merges
  included), and a watchdog thread in the child does the same should the parent be gone;
* ``RLIMIT_AS``: memory the attempt cannot exceed (Python raises MemoryError); the soft limit only,
  so the one program that must reserve more address space than it uses (deno, YouTube's
  JavaScript challenge solver, see :mod:`curate.jsruntime`) can be started above it;
* ``RLIMIT_FSIZE``: bytes one file may reach (writes fail with EFBIG).

Request and answer are JSON (stdin, and the child's original stdout; anything else the child
prints goes to stderr). A child that dies without an answer is classified by how it died.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError, permanent, transient

_WATCHDOG_GRACE_S = 5.0
_STDERR_TAIL = 1000
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE}


@dataclass(frozen=True)
class ChildLimits:
    """The limits of one attempt's process."""

    wall_s: float
    memory_bytes: int
    file_bytes: int


def run_limited(module: str, request: dict[str, Any], limits: ChildLimits) -> Any:
    """``python -m module`` under ``limits`` with ``request``; the value it answers, or the CurateError
    it raised (or its death means)."""
    if limits.wall_s <= 0:
        raise permanent("time_limit", "no time left for another attempt (download.total_time_limit_s)")
    payload = json.dumps({"limits": asdict(limits), "request": request}).encode()
    proc = subprocess.Popen([sys.executable, "-P", "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, process_group=0, close_fds=True, env=_child_env())  # fmt: skip
    try:
        out, err = proc.communicate(payload, timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise permanent(
            "time_limit", f"the download attempt was still running after {limits.wall_s:.1f} s (download.time_limit_s)"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    return _answer(out, err, proc.returncode)


def _child_env() -> dict[str, str]:
    """The parent's environment, with this package importable whatever the child's working directory
    holds (``-P`` keeps the working directory off ``sys.path``)."""
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child and everything it started (its process group); the group id cannot have been
    reused, since the child is not reaped yet. Then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()


def _answer(out: bytes, err: bytes, returncode: int) -> Any:
    try:
        outcome = json.loads(out) if out else None
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict):
        raise _death(returncode, err.decode("utf-8", "replace")[-_STDERR_TAIL:])
    if "error" in outcome:
        code, message, error_class = outcome["error"]
        error = CurateError(code, message, error_class)
        error.peak_rss_bytes = outcome.get("peak_rss_bytes")  # type: ignore[attr-defined]
        raise error
    return outcome["ok"]


def _death(returncode: int, stderr: str) -> CurateError:
    if returncode < 0:
        name = _signal_name(-returncode)
        if -returncode in _CRASH_SIGNALS:
            return permanent("download_crashed", f"the download process crashed ({name}); the input will crash it again")
        return transient("download_killed", f"the download process was killed ({name}), e.g. by the out-of-memory killer")
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    return transient("internal_error", f"the download process exited with status {returncode} without an answer: {detail}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --------------------------------------------------------------------------- in the child


def child_main(handle: Callable[[dict[str, Any]], Any]) -> None:
    """The child's side: apply the limits, answer ``handle(request)`` (or the error it raised) as JSON."""
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints (ours, yt-dlp's, ffmpeg's) must not corrupt the answer
    message = json.load(sys.stdin)
    limits = ChildLimits(**message["limits"])
    _apply_limits(limits)
    try:
        outcome: dict[str, Any] = {"ok": handle(message["request"])}
    except CurateError as error:
        outcome = {"error": [error.code, error.message, error.error_class]}
    except MemoryError:
        outcome = {"error": ["memory_limit", f"the attempt needed more than {limits.memory_bytes} bytes of memory", "permanent"]}
    except Exception as error:  # noqa: BLE001 - a bug costs this video (transient), as in curate.video
        detail = "".join(traceback.format_exception_only(error)).strip()
        outcome = {"error": ["internal_error", detail[:500], "transient"]}
    outcome["peak_rss_bytes"] = _peak_rss_bytes()
    with answer:
        json.dump(outcome, answer)


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
