"""Ray wiring of the source planner: a list of any length becomes a stream of rows to download.

The plan is :mod:`curate.source_plan`'s, run batch by batch so that the first download starts
as soon as the first batch is planned and the driver never holds the list:

    read     SourceListDatasource: read tasks stream batches of rows (parquet: one task per range
             of row groups; the text formats: one task reading front to back), each row numbered
    plan     PlanStage (actor pool): classify, then list playlists on threads (curate.expand)
    dedupe   DedupeStage (one actor): in input-row order, against hash-sharded HashIndex actors
             (8 bytes a key, plus the first row), then the ledger's verdict (LedgerFilter); a
             planning task Ray retried delivers some input rows twice, and the second copy is
             dropped (logged, not a ``duplicate`` row: see curate.dedupe)
    split    one row per block, so every download actor gets work of its own, by tasks that
             reserve no CPU (split_to_rows: Ray has no public way, and a Ray that moves the
             private one fails the run at once instead of hanging it)

What the driver holds is the :class:`~curate.source_plan.LedgerFilter` (hashes of the videos
already finished, shipped once to the planners) and the plan itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, fields
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from curate.config import CurateConfig
from curate.dedupe import Deduper, HashIndex, sharded
from curate.shard_batch import storage_env
from curate.source_lists import BATCH_ROWS, ListRange, RawBatch, iter_batches, read_ranges
from curate.source_plan import LedgerFilter, expand_batch
from curate.sources import Rules, SourceRow, classify_batch
from vidla_format.storage import is_uri

RAW_SCHEMA = pa.schema([("row", pa.int64()), ("url", pa.string()), ("id", pa.string()), ("problem", pa.string())])
_TYPES = {"row": pa.int64(), "entries": pa.int64()}
ROW_SCHEMA = pa.schema([(f.name, _TYPES.get(f.name, pa.string())) for f in fields(SourceRow)])


class SourceListDatasource(Datasource):
    """A source list read by streaming read tasks; every row carries its 0-based input row.

    A list on object storage is read by tasks on any node: they get the driver's object-storage
    variables (``env``) with the task, as the write stage's actors do, not through a runtime env
    that the dashboard would display.
    """

    def __init__(self, path: str, batch_rows: int = BATCH_ROWS, env: dict[str, str] | None = None):
        self.path, self.batch_rows, self.env = str(path), batch_rows, dict(env or {})

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list[ReadTask]:
        return [
            ReadTask(partial(_read, share, self.batch_rows, self.env),
                     BlockMetadata(num_rows=share.num_rows, size_bytes=None, exec_stats=None, input_files=[self.path]),
                     schema=RAW_SCHEMA)  # fmt: skip
            for share in read_ranges(self.path, parallelism)
        ]


def _read(share: ListRange, batch_rows: int, env: dict[str, str]):
    os.environ.update(env)
    for batch in iter_batches(share, batch_rows):
        yield pa.table([batch.rows, batch.urls, batch.ids, batch.problems], schema=RAW_SCHEMA)


def _rows_table(rows: list[SourceRow]) -> pa.Table:
    return pa.Table.from_pylist([asdict(r) for r in rows], schema=ROW_SCHEMA)


def _source_rows(table: pa.Table) -> list[SourceRow]:
    return [SourceRow(**row) for row in table.to_pylist()]


class PlanStage:
    """``map_batches`` callable: raw rows -> classified rows, playlists expanded (listings on threads)."""

    def __init__(self, config: CurateConfig, rules: Rules, ledger: LedgerFilter, threads: int):
        self.config, self.rules, self.ledger, self.threads = config, rules, ledger, threads

    def __call__(self, table: pa.Table) -> pa.Table:
        raw = table.to_pydict()
        batch = RawBatch(raw["row"], raw["url"], raw["id"], raw["problem"])
        return _rows_table(expand_batch(classify_batch(batch, self.rules), self.config, self.ledger, self.threads))


@ray.remote(num_cpus=0)
class IndexShard:
    """One hash shard of the de-duplication index (a :class:`~curate.dedupe.HashIndex`)."""

    def __init__(self) -> None:
        self.index = HashIndex()

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        return self.index.lookup(keys)

    def insert(self, keys: np.ndarray, rows: np.ndarray) -> None:
        self.index.insert(keys, rows)

    def nbytes(self) -> int:
        return self.index.nbytes


class _Remote:
    """A shard actor with the local index's methods, returning object refs (gathered by ``ray.get``)."""

    def __init__(self, handle: Any):
        self.handle = handle

    def lookup(self, keys: np.ndarray) -> Any:
        return self.handle.lookup.remote(keys)

    def insert(self, keys: np.ndarray, rows: np.ndarray) -> Any:
        return self.handle.insert.remote(keys, rows)


class DedupeStage:
    """``map_batches`` callable (one actor): rows decided in input order, then the ledger's verdict.

    A generator: rows whose earlier input rows have not arrived yet are held and come out with
    the batch that completes them, so a batch may yield nothing and a later one more.
    """

    def __init__(self, ledger: LedgerFilter, shards: int):
        index = HashIndex() if shards <= 1 else sharded([_Remote(IndexShard.remote()) for _ in range(shards)], ray.get)
        self.deduper = Deduper(index)
        self.ledger = ledger

    def __call__(self, table: pa.Table):
        replayed = self.deduper.replayed
        pending, record = self.ledger.todo(self.deduper.push(_source_rows(table)))
        if self.deduper.replayed > replayed:
            _note_replays(self.deduper.replayed - replayed, self.deduper.replayed)
        if pending or record:
            yield _rows_table(record + pending)


def _note_replays(now: int, total: int) -> None:
    """Say on the run's log (Ray forwards an actor's stderr to the driver) that rows came twice: a
    planning task was retried. Nothing is lost or counted twice, but a run's operator should know."""
    print(f"pipelines/sources.py: dropped {now} replayed planned rows (a planning task was retried; "
          f"{total} in this run); each input row is decided once", file=sys.stderr)  # fmt: skip


def _this_node():
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def _at_most(args: dict[str, Any], actors: int) -> dict[str, Any]:
    """``args`` with its actor pool capped at ``actors``: a planner gets whole read blocks, so one beyond
    the readers never gets work, and its start-up (~1 CPU-s of imports) is pure cost on a laptop."""
    pool = args["compute"]
    low, high = min(pool.min_size, actors), min(pool.max_size or actors, actors)
    return args | {"compute": ray.data.ActorPoolStrategy(min_size=low, max_size=high, initial_size=high)}


def source_readers(path: str, config: Any) -> int:
    """How many read tasks the list gets (parquet: ranges of row groups; the text formats: one)."""
    return len(read_ranges(path, config.ray.sources.read_tasks))


def planning_cpus(config: Any, readers: int) -> float:
    """The CPUs the readers and planners of a list read by ``readers`` tasks reserve while they run,
    which is from the run's start: the pools after them must leave these free (pipelines/stage_list.py)."""
    settings = config.ray.sources
    planners = _at_most(settings.plan.ray_args(), readers)["compute"].max_size
    return readers * settings.read_cpus + planners * settings.plan.num_cpus


def planned_sources(path: str, config: Any, ledger: LedgerFilter, rules: Rules, readers: int | None = None):
    """The dataset of rows to hand to the download stage: every input row's verdict, one row per block.
    ``readers``: :func:`source_readers`, when the caller already has it."""
    settings = config.ray.sources
    readers = readers or source_readers(path, config)  # as many blocks as readers: Ray must not split them
    datasource = SourceListDatasource(path, settings.batch_rows, storage_env())
    where = {} if is_uri(path) else {"scheduling_strategy": _this_node()}  # a local list is on this machine only
    ds = ray.data.read_datasource(datasource, override_num_blocks=readers, num_cpus=settings.read_cpus, **where)
    # A reader emits a block once it holds target_max_block_size bytes (128 MiB by default: the whole
    # list, for most lists); small blocks let the first batch reach the downloads while the rest is read.
    # Rows downstream carry whole videos and are one per block whatever this is.
    ds.context.target_max_block_size = settings.block_bytes
    ds = ds.map_batches(
        PlanStage,
        fn_constructor_kwargs={"config": config, "rules": rules, "ledger": ledger, "threads": settings.listing_threads},
        batch_size=None, batch_format="pyarrow", **_at_most(settings.plan.ray_args(), readers),
    )  # fmt: skip
    ds = ds.map_batches(
        DedupeStage,
        fn_constructor_kwargs={"ledger": ledger, "shards": settings.dedupe_shards},
        batch_size=None, batch_format="pyarrow", num_cpus=0, compute=ray.data.ActorPoolStrategy(size=1),
    )  # fmt: skip
    return split_to_rows(ds)


def split_to_rows(ds: ray.data.Dataset) -> ray.data.Dataset:
    """``ds`` with one row per block, split by tasks that reserve no CPU.

    Ray 2.60's ``repartition`` takes no resource arguments and its tasks ask for a CPU, which a busy
    clip pool never gives back: the pipeline would wait forever. Ray has no public way to do this
    split otherwise: ``map_batches(num_cpus=0)`` gathers its output rows into blocks of up to
    ``target_max_block_size`` bytes (a setting of the whole dataset: the readers' too), and only the
    repartition's ``target_num_rows_per_block`` cuts blocks by rows. So this sets the repartition
    operator's remote arguments, and fails loudly where a Ray keeps them elsewhere.
    """
    ds = ds.repartition(target_num_rows_per_block=1)
    reserve_no_cpu(ds)
    return ds


def reserve_no_cpu(ds: ray.data.Dataset) -> None:
    """Make the repartition that ends ``ds`` reserve no CPU; raises RuntimeError (naming the Ray version)
    if the operator or its remote arguments are not where Ray 2.60 keeps them, rather than run a
    pipeline that would hang on the first busy clip pool."""
    op = _last_operator(ds)
    args = getattr(op, "ray_remote_args", None)
    if type(op).__name__ != "StreamingRepartition" or not isinstance(args, dict):
        raise RuntimeError(
            f"Ray {ray.__version__}: the last operator of the source plan is {type(op).__name__} with ray_remote_args "
            f"{args!r}, not a StreamingRepartition with a dict (Ray 2.60); pipelines/sources.py must set num_cpus=0 "
            "on the repartition another way, or downloads wait forever for a CPU the clip pool holds"
        )
    args["num_cpus"] = 0


def _last_operator(ds: ray.data.Dataset) -> Any:
    """The logical operator that ends ``ds`` (Ray's private plan: checked by :func:`reserve_no_cpu`)."""
    try:
        return ds._logical_plan.dag
    except AttributeError as error:
        raise RuntimeError(
            f"Ray {ray.__version__}: Dataset._logical_plan.dag is gone (Ray 2.60 has it); pipelines/sources.py "
            "must find the repartition operator another way to give it num_cpus=0"
        ) from error
