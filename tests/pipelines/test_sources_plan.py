"""The Ray source planner's split (one row per block, no CPU reserved) and its note on replayed rows.

The split is Ray 2.60's ``repartition(target_num_rows_per_block=1)`` with ``num_cpus=0`` set on
its private logical operator: Ray has no public way to split to rows without asking for a CPU,
and a task that asks for one never starts while the clip pool holds every CPU. These tests build
the plan on a local Ray so that a Ray upgrade that moves that operator fails here, not a run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import ray

from curate.source_plan import LedgerFilter
from curate.sources import Rules, SourceRow
from pipelines.config import load_pipeline_config
from pipelines.sources import DedupeStage, _rows_table, planned_sources, reserve_no_cpu

pytestmark = pytest.mark.timeout(300)
NONE = np.array([], np.int64)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray of this module's own (as ``test_expand_pipeline.py``'s, started once for the module)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote(num_cpus=1.5)
class BusyClipPool:
    """Holds all but the readers' and planner's share of the CPUs, as a busy clip pool does."""

    def ready(self) -> bool:
        return True


def plan(path: Path) -> ray.data.Dataset:
    config = load_pipeline_config(None, ["ray.progress=false"])
    return planned_sources(str(path), config, LedgerFilter(NONE, NONE, NONE, NONE), Rules())


def block_rows(ds: ray.data.Dataset, timeout_s: float) -> list[int] | None:
    """Rows of each block of ``ds`` (None if it did not finish in ``timeout_s``: a task waits for a CPU)."""
    sizes: list[int] = []

    def consume() -> None:
        sizes.extend(batch.num_rows for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"))

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return None if worker.is_alive() else sizes


def test_the_split_ends_the_plan_and_reserves_no_cpu(local_ray, tmp_path):
    (tmp_path / "urls.txt").write_text("https://example.com/v/1.mp4\n")
    op = plan(tmp_path / "urls.txt")._logical_plan.dag
    assert type(op).__name__ == "StreamingRepartition"
    assert (op.target_num_rows_per_block, op.ray_remote_args["num_cpus"]) == (1, 0)


def test_rows_leave_one_per_block_while_the_clip_pool_holds_the_cpus(local_ray, tmp_path):
    (tmp_path / "urls.txt").write_text("".join(f"https://example.com/v/{i % 40}.mp4\n" for i in range(60)))
    pool = BusyClipPool.remote()
    try:
        assert ray.get(pool.ready.remote())
        sizes = block_rows(plan(tmp_path / "urls.txt"), timeout_s=120)
    finally:
        ray.kill(pool)
    assert sizes is not None, "the plan did not finish: a task of it waits for a CPU the clip pool holds"
    assert (set(sizes), len(sizes)) == ({1}, 60)


def test_a_ray_that_moved_the_repartition_fails_loudly_naming_its_version(local_ray):
    not_a_split = ray.data.range(3).map_batches(lambda batch: batch, num_cpus=0)
    with pytest.raises(RuntimeError, match=rf"Ray {ray.__version__}: the last operator .* is MapBatches"):
        reserve_no_cpu(not_a_split)
    with pytest.raises(RuntimeError, match=rf"Ray {ray.__version__}: Dataset._logical_plan.dag is gone"):
        reserve_no_cpu(SimpleNamespace())  # type: ignore[arg-type]


def test_the_dedupe_stage_drops_a_replayed_block_and_says_so(capsys):
    rows = [SourceRow(f"https://x/{n}.mp4", n, "pending", None, None, i) for i, n in enumerate("aba")]
    stage = DedupeStage(LedgerFilter(NONE, NONE, NONE, NONE), shards=1)
    first = pa.concat_tables(stage(_rows_table(rows))).to_pylist()
    assert list(stage(_rows_table(rows))) == []
    assert sorted((r["row"], r["error_code"]) for r in first) == [(0, None), (1, None), (2, "duplicate")]
    assert "dropped 3 replayed planned rows" in capsys.readouterr().err
