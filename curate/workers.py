"""The plain loop's worker processes: one video at a time each, and a dead worker costs one video.

``multiprocessing.Pool.imap_unordered`` waits forever for a worker the OOM killer took, and
``ProcessPoolExecutor`` fails every pending video when one worker dies. Here each worker has
its own pipe and the parent knows which video each one holds: a worker that dies (any
signal, any exit) turns exactly that video into a failed status row (``worker_died``,
transient: a rerun tries it again), a fresh worker takes its place, and the run goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from curate.config import CurateConfig
from curate.download import warm_start
from curate.ledger import VideoStatus
from curate.one_video import VideoResult, curate_video
from curate.sources import SourceRow
from curate.workdir import remove_workdir


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    job: SourceRow | None = None


def _serve(conn: Connection, config: CurateConfig, work_root: Path) -> None:
    """A worker's loop: curate each row it is sent, reply with the result; None (or a parent gone) ends it."""
    warm_start()  # the download fork server warms up while the parent starts the other workers
    try:
        while (row := conn.recv()) is not None:
            conn.send(curate_video(row, config, work_root))
    except (EOFError, BrokenPipeError):
        pass


def _one_decode_per_core(config: CurateConfig, workers: int) -> CurateConfig:
    """With as many workers as cores, each decode gets one thread (frame threads would add ~20% CPU, no speed)."""
    cores = len(os.sched_getaffinity(0))
    if config.analysis.threads or workers < cores:
        return config
    return config.model_copy(update={"analysis": config.analysis.model_copy(update={"threads": 1})})


class WorkerPool:
    """``workers`` spawned processes curating videos; see the module doc for what a death costs."""

    def __init__(self, workers: int, config: CurateConfig, work_root: Path) -> None:
        self.context = mp.get_context("spawn")
        self.size, self.config, self.work_root = workers, _one_decode_per_core(config, workers), work_root
        self.workers: list[_Worker] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)  # a clean exit, so the worker's own children end with it
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(timeout=10 if worker.job is None else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=10)
            worker.conn.close()

    def imap_unordered(self, rows: list[SourceRow]) -> Iterator[VideoResult]:
        """A result (or a failed row) for every row, in the order they finish."""
        pending = list(reversed(rows))
        while pending or self._busy():
            yield from self._assign(pending)
            yield from self._collect()

    def _busy(self) -> list[_Worker]:
        return [w for w in self.workers if w.job is not None]

    def _assign(self, pending: list[SourceRow]) -> Iterator[VideoResult]:
        """Start workers up to what the pending rows need and hand each idle one a row."""
        while len(self.workers) < min(self.size, len(self._busy()) + len(pending)):
            self.workers.append(self._start())
        for worker in [w for w in self.workers if w.job is None]:
            if not pending:
                break
            worker.job = pending.pop()
            try:
                worker.conn.send(worker.job)
            except OSError:  # it died before it could take the row
                yield self._died(worker)

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child, self.config, self.work_root), name="vidla-curate")
        process.start()
        child.close()
        return _Worker(process, parent)

    def _collect(self) -> Iterator[VideoResult]:
        busy = self._busy()
        if not busy:
            return
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
        for worker in busy:
            if worker.conn in ready or worker.conn.poll():
                yield self._receive(worker)
            elif worker.process.sentinel in ready:
                yield self._died(worker)

    def _receive(self, worker: _Worker) -> VideoResult:
        try:
            result = worker.conn.recv()
        except (EOFError, OSError):
            return self._died(worker)
        worker.job = None
        return result

    def _died(self, worker: _Worker) -> VideoResult:
        """The failed row of the video a dead worker held; the worker and its work directory are dropped."""
        worker.process.join(timeout=10)
        worker.conn.close()
        self.workers.remove(worker)
        row, worker.job = worker.job, None
        assert row is not None
        code = worker.process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        remove_workdir(self.work_root / row.video_id)
        status = VideoStatus(url=row.url, video_id=row.video_id, status="failed", error_class="transient",
                             error_code="worker_died", error=f"the worker process died ({how}; SIGKILL is "
                             "usually the out-of-memory killer) while curating this video", input_row=row.row)  # fmt: skip
        return VideoResult(status, [], None)
