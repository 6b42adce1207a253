"""A warm fork server: a fresh interpreter that has imported one module and forks a child per request.

Download attempts run in a child process each (:mod:`curate.download_limits`), and a fresh
``python -m`` per attempt costs ~1 s of CPU before any byte moves (the interpreter, yt-dlp
and its extractors). The zygote is started once per worker process with that module
imported, and forks a child for each request: milliseconds. It is itself a fresh
interpreter (``-P -m``), so a child brings nothing of the worker's threads, locks or main
module along, which matters in a Ray worker; and it stays single-threaded, so forking it
is safe.

Protocol (one JSON line each way, on the zygote's stdin and original stdout):
``{"limits", "request"}`` in; ``{"pid"}`` out as soon as the child is forked (the caller
kills the child's process group when its deadline passes); then ``{"answer", "status", "cpu_s"}``
when the child is gone, where ``answer`` is what it wrote (or null), ``status`` its
``waitpid`` status and ``cpu_s`` the CPU seconds it used (the caller's own resource usage
can't see a grandchild's). The zygote exits at end of input, when its caller goes away.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
from typing import Any, BinaryIO


def serve(module: str, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until ``requests`` ends; each in a child forked from this (warm) process."""
    loaded = importlib.import_module(module)
    handle = loaded.handle_request
    if hasattr(loaded, "warm_up"):
        loaded.warm_up()  # once, here: every fork inherits it
    gc.freeze()  # keep the collector off the inherited heap, so children don't copy pages it would touch
    for line in requests:
        message = json.loads(line)
        answer_r, answer_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(handle, message, answer_w, (answer_r, requests.fileno(), replies.fileno()))
        os.close(answer_w)
        _reply(replies, {"pid": pid})
        with os.fdopen(answer_r, "rb") as answer:
            data = answer.read()
        _, status, usage = os.wait4(pid, 0)
        cpu_s = usage.ru_utime + usage.ru_stime  # the child's, and that of the children it waited for
        _reply(replies, {"answer": data.decode("utf-8", "replace") or None, "status": status, "cpu_s": cpu_s,
                         "user_s": usage.ru_utime, "sys_s": usage.ru_stime})


def _child(handle: Any, message: dict[str, Any], answer_w: int, inherited: tuple[int, ...]) -> None:
    from curate.download_limits import ChildLimits, child_outcome

    code = 1
    try:
        os.setpgid(0, 0)  # its own process group: the caller kills the attempt with everything it started
        for fd in inherited:
            os.close(fd)
        outcome = child_outcome(handle, message["request"], ChildLimits(**message["limits"]))
        with os.fdopen(answer_w, "wb") as answer:
            answer.write(json.dumps(outcome).encode())
        code = 0
    finally:
        os._exit(code)


def _reply(replies: BinaryIO, message: dict[str, Any]) -> None:
    replies.write(json.dumps(message).encode() + b"\n")
    replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (ours, yt-dlp's, ffmpeg's) go to stderr, never into the protocol
    serve(sys.argv[1], sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
