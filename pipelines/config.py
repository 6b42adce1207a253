"""The pipeline's config: the curation stages' config plus how Ray runs each stage.

Each stage declares its resources here (CPUs, GPUs, concurrency), so the same
``build_dataset.py`` runs on a laptop and on a cluster with GPU workers by changing
only the YAML (see ``configs/demo.yaml`` and ``configs/cluster-gpu.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from curate.config import CurateConfig, _Section
from vidla_format.config_files import config_data, with_defaults


class StageResources(_Section):
    """Ray resources of one stage; see Ray Data's ``map``/``map_batches`` arguments of the same names."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    concurrency: int | tuple[int, int] | None = Field(
        None, description="Parallel tasks (or actors): a number, or (min, max) for autoscaling; None lets Ray decide."
    )
    batch_size: int | None = Field(None, ge=1, description="Videos per call, for batched (GPU) stages.")
    memory_bytes: int | None = Field(None, ge=1, description="Memory Ray reserves per task, to bound packing.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per actor, e.g. {writer: 1} with `ray start --resources '{\"writer\": 1}'` on "
        "each node that should write (one writer per such node).",
    )

    def pool_bounds(self, cluster_cpus: float | None = None) -> tuple[int, int | None]:
        """(fewest, most) actors; an unset concurrency scales from one up to what the cluster's CPUs allow.

        ``cluster_cpus`` (known once Ray is up) bounds an unset concurrency, so a local run
        starts its pool at what is free (:meth:`initial_size`) instead of one actor; None
        leaves the top open (a cluster that autoscales nodes).
        """
        if isinstance(self.concurrency, tuple):
            return self.concurrency
        if self.concurrency is not None:
            return self.concurrency, self.concurrency
        if cluster_cpus and self.num_cpus > 0:
            return 1, max(1, int(cluster_cpus // self.num_cpus))
        return 1, None

    def initial_size(self, cluster_cpus: float | None = None, free_cpus: float | None = None) -> int:
        """The actors the pool starts with: its fewest, and as many more as ``free_cpus`` holds, up to its most.

        ``free_cpus`` is what the cluster has left once every actor and task that starts with this
        pool has the CPUs of its fewest. Ray places a run's first actors and tasks in whatever order
        their requests arrive, so a pool started at a size the rest does not leave room for can
        take CPUs that the source readers and planners need first: on two 1-CPU nodes, two clip
        actors placed before the planner leave the run waiting for ever on a list it never reads.
        A pool that starts at what is free can still grow to its most: Ray Data's autoscaler adds
        actors within the operator's budget once the planners are done. ``None``: the pool's most.
        """
        low, high = self.pool_bounds(cluster_cpus)
        if high is None:
            return low
        if free_cpus is None or self.num_cpus == 0 or low == high:
            return high
        return max(low, min(high, low + int(free_cpus // self.num_cpus)))

    def ray_args(self, cluster_cpus: float | None = None, free_cpus: float | None = None) -> dict[str, Any]:
        """Keyword arguments for ``Dataset.map``/``map_batches`` of a callable class: a long-lived actor pool,
        started at :meth:`initial_size`.

        Actor pools are never fused into a neighbouring operator, so each stage keeps its own
        resources (a CPU stage never runs inside a GPU or model actor).
        """
        from ray.data import ActorPoolStrategy

        args: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            args["num_gpus"] = self.num_gpus
        if self.memory_bytes:
            args["memory"] = self.memory_bytes
        if self.resources:
            args["resources"] = dict(self.resources)
        low, high = self.pool_bounds(cluster_cpus)
        args["compute"] = ActorPoolStrategy(min_size=low, max_size=high, initial_size=self.initial_size(cluster_cpus, free_cpus))
        return args


class SourcePlanning(_Section):
    """How the Ray pipeline reads and plans the source list (``pipelines/sources.py``)."""

    batch_rows: int = Field(1024, ge=1, description="Rows per batch read from the list and planned together.")
    read_tasks: int = Field(
        4, ge=1, description="Readers of a parquet list (ranges of its row groups); the text formats are read by one."
    )
    block_bytes: int = Field(
        1 << 16, ge=1 << 12, description="Ray Data's target block size for this run: small, so planned rows stream."
    )
    read_cpus: float = Field(0.25, ge=0, description="CPUs a reader reserves (it parses; the planners validate).")
    listing_threads: int = Field(4, ge=1, description="Playlist listings (curate.expand) run at once per planning actor.")
    dedupe_shards: int = Field(
        1, ge=1, description="Hash shards of the de-duplication index (actors, 16 bytes per distinct URL or id); "
        "more spread a long list's index over nodes (~640 MB for 20M URLs with ids).",
    )
    plan: StageResources = Field(
        StageResources(num_cpus=0.25, concurrency=2), description="Planning actors: validate, normalise, list playlists."
    )


class RayConfig(_Section):
    address: str | None = Field(
        None, description="Ray cluster address; None uses $RAY_ADDRESS (ray job submit sets it) or starts a local Ray."
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray started by the script (None: all).")
    object_store_memory_bytes: int | None = Field(None, ge=75 * 1024**2, description="Object store of a local Ray.")
    dashboard: bool = Field(
        False, description="Start Ray's dashboard with a local Ray (it costs ~3 CPU-seconds a run); a cluster's is its own."
    )
    work_root: str | None = Field(None, description="Node-local scratch for work directories (None: the system temp dir).")
    download: StageResources = Field(
        StageResources(num_cpus=0.25, concurrency=8), description="yt-dlp actors: I/O bound, many per core."
    )
    clip: StageResources = Field(
        StageResources(num_cpus=1.0),
        description="The one decode, planning and cutting: one CPU per actor, as many actors as CPUs allow.",
    )
    vlm: StageResources = Field(
        StageResources(num_cpus=1.0, concurrency=1, batch_size=8),
        description="Short-clip captioning actors (text.vlm); give them GPUs on a cluster.",
    )
    llm: StageResources = Field(
        StageResources(num_cpus=1.0, concurrency=1, batch_size=8),
        description="Summarisation actors (text.llm): subtitle summaries, medium/long captions.",
    )
    write: StageResources = Field(
        StageResources(num_cpus=0.0, concurrency=2, batch_size=8),
        description="Shard writers: each call writes batch_size videos into shards on the output and hands the driver "
        "only their names. ~2 ms CPU per sample, so they reserve none; one writer keeps up with ~60 samples/s "
        "on a slow disk (docs/deploy.md sizes a cluster's).",
    )
    sources: SourcePlanning = Field(SourcePlanning(), description="Reading, planning and de-duplicating the source list.")
    progress: bool = Field(True, description="Ray Data progress bars.")


class PipelineConfig(CurateConfig):
    ray: RayConfig = RayConfig()

    def for_clip_actors(self) -> PipelineConfig:
        """The config the clip actors run with: an unset decoder thread count becomes the CPUs an actor reserves.

        The pool runs one actor per reserved CPU share, so every core already has a decode of its
        own; ffmpeg's default frame threads would only add synchronisation (~20% more CPU for the
        same wall, measured on the demo corpus).
        """
        if self.analysis.threads:
            return self
        threads = max(1, round(self.ray.clip.num_cpus))
        return self.model_copy(update={"analysis": self.analysis.model_copy(update={"threads": threads})})


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """YAML file (or defaults) plus ``key.sub=value`` overrides, validated; errors name the bad key."""
    return PipelineConfig.model_validate(with_defaults(PipelineConfig(), config_data(path, overrides)))
