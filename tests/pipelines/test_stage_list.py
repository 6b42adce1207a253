"""The stage pools' sizes at a run's start (``pipelines/stage_list.pool_args``).

Ray places a run's first actors and tasks in whatever order their requests reach it. When the
pools' first actors ask for every CPU, the source readers and planners can be left without one,
and the run waits for ever on a list it never reads: CI saw it on two 1-CPU nodes, both taken by
the two clip actors the pool started with. So every pool's first actors must fit beside the
planning, whatever the order; a pool that could use more grows once the planners are done.
The last test shows it on a real Ray in the worst order: every pool's first actors placed before
the list is read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

from curate.source_plan import LedgerFilter
from curate.sources import Rules
from pipelines.config import PipelineConfig, StageResources, load_pipeline_config
from pipelines.sources import planned_sources, planning_cpus
from pipelines.stage_list import pool_args

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo.yaml"
# tests/pipelines/test_multinode_s3.py's run: text off, a writer per node.
MULTINODE = ["text.llm.backend=none", "text.vlm.backend=none", "ray.write.batch_size=1", "ray.write.concurrency=2",
             "ray.write.resources={writer: 1}"]  # fmt: skip
CONFIGS = {
    "demo": (DEMO, []),
    "demo, text off, a writer per node": (DEMO, MULTINODE),
    "the defaults": (None, []),
    "the GPU cluster's": (ROOT / "configs" / "cluster-gpu.yaml", []),
}
NONE = np.array([], np.int64)
pytestmark = pytest.mark.timeout(300)


def start_cpus(args: dict[str, dict[str, Any]]) -> float:
    """The CPUs the pools' first actors ask for."""
    return sum(a["num_cpus"] * a["compute"].initial_size for a in args.values())


def least_cpus(args: dict[str, dict[str, Any]]) -> float:
    """The CPUs the pools ask for at their fewest actors."""
    return sum(a["num_cpus"] * a["compute"].min_size for a in args.values())


def test_a_pool_of_unset_size_starts_with_what_is_free_and_may_grow_to_the_cluster():
    clip = StageResources(num_cpus=1.0)
    assert clip.pool_bounds(cluster_cpus=8) == (1, 8)
    assert [clip.initial_size(8, free) for free in (9, 7, 6.5, 1, 0.5, 0, -3)] == [8, 8, 7, 2, 1, 1, 1], "free beyond the fewest"
    assert clip.initial_size(8) == 8, "with nothing else starting, the whole cluster"
    assert clip.initial_size(None, 4) == 1, "an autoscaling cluster (no bound): one, the autoscaler adds more"


def test_pools_of_a_set_size_start_whole():
    assert StageResources(num_cpus=0.25, concurrency=8).initial_size(2, free_cpus=0) == 8
    assert StageResources(num_cpus=0.0, concurrency=2).initial_size(2, free_cpus=0) == 2
    assert StageResources(num_cpus=1.0, concurrency=(2, 6)).initial_size(16, free_cpus=1.5) == 3


def test_planning_reserves_a_reader_and_a_planner_per_text_list_and_more_for_a_split_parquet_list():
    config = load_pipeline_config(None, [])
    assert planning_cpus(config, readers=1) == 0.25 + 0.25
    assert planning_cpus(config, readers=4) == 4 * 0.25 + 2 * 0.25, "two planners at most (ray.sources.plan)"


@pytest.mark.parametrize("name", CONFIGS)
def test_the_first_actors_of_every_pool_fit_beside_the_planning_on_any_cluster_that_holds_the_fewest(name):
    path, overrides = CONFIGS[name]
    config: PipelineConfig = load_pipeline_config(path, overrides)
    planning = planning_cpus(config, readers=1)
    for cpus in range(1, 513):
        args = pool_args(config, cpus, planning)
        needed = max(cpus, least_cpus(args) + planning)
        assert start_cpus(args) + planning <= needed, f"{cpus} CPUs: the first actors ask for more than the cluster has"
        clip = args["clip"]["compute"]
        assert clip.max_size == max(1, int(cpus // args["clip"]["num_cpus"])), "the clip pool may still grow to the cluster"
        if clip.initial_size < clip.max_size:
            assert start_cpus(args) + planning > cpus - args["clip"]["num_cpus"], f"{cpus} CPUs: a clip actor more would fit"


# --------------------------------------------------------------------------- on a real Ray, in the worst order


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote
class Seat:
    """Holds the resources of one of a pool's first actors."""

    def ready(self) -> bool:
        return True


def planned_rows(path: Path, config: PipelineConfig, timeout_s: float) -> int | None:
    """Rows the source plan of ``path`` yields (None if it did not finish in ``timeout_s``: a task waits for a CPU)."""
    ds = planned_sources(str(path), config, LedgerFilter(NONE, NONE, NONE, NONE), Rules())
    rows: list[int] = []
    batches = ds.iter_batches(batch_size=None, batch_format="pyarrow")
    worker = threading.Thread(target=lambda: rows.extend(batch.num_rows for batch in batches), daemon=True)
    worker.start()
    worker.join(timeout_s)
    return None if worker.is_alive() else sum(rows)


@pytest.mark.parametrize("name", ["demo", "demo, text off, a writer per node"])
def test_the_list_is_read_even_when_every_pools_first_actors_are_placed_before_it(local_ray, tmp_path, name):
    path, overrides = CONFIGS[name]
    config = load_pipeline_config(path, [*overrides, "ray.progress=false"])
    args = pool_args(config, ray.cluster_resources()["CPU"], planning_cpus(config, readers=1))
    seats = [Seat.options(num_cpus=a["num_cpus"]).remote() for a in args.values() for _ in range(a["compute"].initial_size)
             if a["num_cpus"] > 0]  # fmt: skip
    try:
        assert ray.get([seat.ready.remote() for seat in seats], timeout=60)
        (tmp_path / "urls.txt").write_text("".join(f"https://example.com/v/{i}.mp4\n" for i in range(20)))
        rows = planned_rows(tmp_path / "urls.txt", config, timeout_s=120)
    finally:
        for seat in seats:
            ray.kill(seat)
    assert rows == 20, "the list was not read: the pools' first actors hold the CPUs its readers and planners need"
