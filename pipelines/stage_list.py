"""The pipeline's stages after source planning, in order: the one list ``build_dataset.py`` loops over.

Each entry names a stage, the callable class its Ray actors run (``pipelines/stages.py``, around
the plain stages of ``curate/``), the key under ``ray.`` in the config that declares its pool
(CPUs, GPUs, concurrency, batch size: ``pipelines/config.py``), and when it runs. Adding a stage
is one entry here plus its callable; the Ray wiring is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines.config import PipelineConfig
from pipelines.stages import ClipStage, DownloadStage, TextStage, WriteStage


@dataclass(frozen=True)
class RunContext:
    """What a stage's constructor may need beyond the config: where this run writes, and as which run."""

    output: str
    run_id: str
    env: dict[str, str]


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline.

    ``batched`` stages take a batch of whole videos per call (``map_batches``; a text batch holds
    parents with their children); the others one video per call (``map``). ``bounded_by_cpus``
    caps an unset concurrency at what the cluster's CPUs allow (CPU stages; a pool starts with
    what the other stages leave, see :func:`pool_args`); GPU and fixed pools are left to their
    config. ``ray_options`` are further Ray arguments of the stage.
    """

    name: str
    callable: type
    resources: str
    constructor: Callable[[PipelineConfig, RunContext], dict[str, Any]]
    batched: bool = False
    when: Callable[[PipelineConfig], bool] = lambda config: True
    bounded_by_cpus: bool = False
    ray_options: dict[str, Any] = field(default_factory=dict)


def _text_enabled(stage: str) -> Callable[[PipelineConfig], bool]:
    return lambda config: getattr(config.text, stage).backend != "none"


STAGES: tuple[StageSpec, ...] = (
    # yt-dlp, I/O bound: many concurrent actors at a fraction of a CPU.
    StageSpec("download", DownloadStage, "download", bounded_by_cpus=True,
              constructor=lambda c, run: {"config": c, "work_root": c.ray.work_root}),
    # The one decode pass, planning, stream-copy cutting: one CPU each.
    StageSpec("clip", ClipStage, "clip", bounded_by_cpus=True,
              constructor=lambda c, run: {"config": c.for_clip_actors(), "work_root": c.ray.work_root}),
    # Short-clip captions, then summaries and medium/long captions: two pools, GPUs on a cluster.
    StageSpec("vlm", TextStage, "vlm", batched=True, when=_text_enabled("vlm"),
              constructor=lambda c, run: {"config": c, "stage": "vlm"}),
    StageSpec("llm", TextStage, "llm", batched=True, when=_text_enabled("llm"),
              constructor=lambda c, run: {"config": c, "stage": "llm"}),
    # Shards written by the workers that hold the clips; only their names go on to the driver.
    # Writers on different nodes (best effort): with actor locality each node's clips are then
    # written by the writer beside them, and no node's uplink carries the whole run's bytes.
    StageSpec("write", WriteStage, "write", batched=True, ray_options={"scheduling_strategy": "SPREAD"},
              constructor=lambda c, run: {"config": c, "output": run.output, "run_id": run.run_id, "env": run.env}),
)  # fmt: skip


def pool_args(config: PipelineConfig, cluster_cpus: float | None, reserved_cpus: float = 0.0) -> dict[str, dict[str, Any]]:
    """The Ray arguments of every stage this config runs, by name, with every pool's first actors fitting the cluster.

    ``reserved_cpus`` is what starts beside the pools (the source readers and planners). Every pool
    gets its fewest actors (a pool of a set size: all of them); the CPUs left then go, in stage order,
    to pools that may grow (:meth:`pipelines.config.StageResources.initial_size`). So the first actors
    and tasks of a run never ask for more CPUs than the cluster has (unless the pools' fewest already
    do), and the order in which Ray places them cannot leave the readers and planners without one.
    """
    specs = [spec for spec in STAGES if spec.when(config)]
    bounds = {spec.name: cluster_cpus if spec.bounded_by_cpus else None for spec in specs}
    pools = {spec.name: getattr(config.ray, spec.resources) for spec in specs}
    fewest = {name: pool.initial_size(bounds[name], free_cpus=0) for name, pool in pools.items()}
    free = None
    if cluster_cpus is not None:
        free = cluster_cpus - reserved_cpus - sum(pools[name].num_cpus * fewest[name] for name in pools)
    args = {}
    for spec in specs:
        pool = pools[spec.name]
        args[spec.name] = pool.ray_args(bounds[spec.name], free) | spec.ray_options
        if free is not None:
            free -= pool.num_cpus * (args[spec.name]["compute"].initial_size - fewest[spec.name])
    return args


def add_stage(ds: Any, spec: StageSpec, config: PipelineConfig, run: RunContext, args: dict[str, Any]) -> Any:
    """``ds`` followed by the stage's actor pool, with the Ray arguments :func:`pool_args` gave it."""
    resources = getattr(config.ray, spec.resources)
    kwargs = spec.constructor(config, run)
    if spec.batched:
        return ds.map_batches(spec.callable, fn_constructor_kwargs=kwargs, batch_size=resources.batch_size,
                              batch_format="numpy", **args)  # fmt: skip
    return ds.map(spec.callable, fn_constructor_kwargs=kwargs, **args)
