"""Build a multi-scale video-text dataset with Ray Data.

    python pipelines/build_dataset.py --sources urls.txt --output OUT [--config C.yaml] [key.sub=value ...]
    ray job submit --working-dir . -- python pipelines/build_dataset.py --sources ... --output s3://bucket/ds

The data flow, one Ray Data stage per line, each an actor pool with the resources its
config declares (actor pools are never fused, so no stage runs inside another's actors);
the stages after ``sources`` are the list in pipelines/stage_list.py:

    sources            read the list in streaming batches, validate, expand playlists, de-duplicate in
                       input order, skip what the ledger says is done (pipelines/sources.py)
      -> download        yt-dlp, I/O bound: many concurrent actors at a fraction of a CPU
      -> clip            the one decode pass, planning, stream-copy cutting: one CPU each
      -> vlm             short-clip captions (an actor pool, GPUs on a cluster), when text.vlm is configured
      -> llm             subtitle summaries and medium/long captions (its own pool), when text.llm is configured
      -> write           shards per scale, written by the workers straight to the output; only their names go on
      -> commit (driver) one manifest per written batch, the ledger, clips.parquet, stats.json, report.html

The output is the format in docs/dataset-format.md. A rerun on the same output resumes:
committed samples are never written twice and finished videos are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pydantic

REPO = Path(__file__).resolve().parent.parent
"""The checkout: ``pipelines/`` is run from it (``ray job submit --working-dir .`` ships it), not installed."""
if __package__ in (None, ""):  # run as a script (ray job submit -- python pipelines/build_dataset.py)
    sys.path.insert(0, str(REPO))

from curate.cli import format_summary
from curate.lease import OutputLocked
from curate.report import write_report
from curate.run import RunSummary, source_rules
from curate.sink import DatasetWriter
from curate.source_lists import check_source_list
from curate.source_plan import LedgerFilter
from curate.sources import source_list_exists
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.stage_list import STAGES, RunContext, add_stage, pool_args
from pipelines.stages import from_row
from vidla_format.storage import Storage, redacted

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_dataset.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sources",
        required=True,
        help="URL list: .txt, or .csv/.jsonl/.parquet with a url column; a local path or a URI (s3://bucket/urls.parquet)",
    )
    parser.add_argument("--output", required=True, help="dataset root: a directory or a filesystem URI (s3://...)")
    parser.add_argument("--config", type=Path, help="YAML config; every option is documented in curate/config.py and pipelines/config.py")
    parser.add_argument("--retry-failed", action="store_true", help="also retry videos that failed permanently")
    parser.add_argument("--shard-size", type=int, help="samples per shard (shards.max_samples)")
    parser.add_argument("--shard-bytes", type=int, help="bytes per shard (shards.max_bytes)")
    parser.add_argument("--address", help="Ray address (ray.address); default: $RAY_ADDRESS, else a local Ray")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, e.g. ray.clip.num_cpus=2")
    return parser


def resolve_config(args: argparse.Namespace) -> PipelineConfig:
    overrides = list(args.overrides)
    if args.shard_size is not None:
        overrides.append(f"shards.max_samples={args.shard_size}")
    if args.shard_bytes is not None:
        overrides.append(f"shards.max_bytes={args.shard_bytes}")
    if args.address:
        overrides.append(f"ray.address={args.address}")
    if args.quiet:
        overrides.append("ray.progress=false")
    return load_pipeline_config(args.config, overrides)


def init_ray(config: PipelineConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {"log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        # "local": a Ray of its own even when another one (e.g. from `ray start`) runs on this machine,
        # which a bare ray.init() would join, ignoring num_cpus. Its workers inherit this environment:
        # they find `pipelines` (the repository's Ray folder, not an installed package) from any cwd.
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=config.ray.dashboard,
                 object_store_memory=config.ray.object_store_memory_bytes, **kwargs)  # fmt: skip


def cluster_cpus() -> float | None:
    """The CPUs of the Ray cluster as it is now (bounds pools whose concurrency is unset)."""
    import ray

    return ray.cluster_resources().get("CPU")


def add_stages(ds, config: PipelineConfig, sink: DatasetWriter, reserved_cpus: float = 0.0):
    """Every stage of ``pipelines/stage_list.py`` that this config runs, in order, each its own actor pool,
    their first actors fitting beside the ``reserved_cpus`` of the source planning."""
    from curate.caption import startup_notes
    from curate.shard_batch import storage_env

    for note in startup_notes(config.text):
        print(note, file=sys.stderr)
    run = RunContext(output_location(sink), sink.run_id, storage_env())
    args = pool_args(config, cluster_cpus(), reserved_cpus)
    for spec in STAGES:
        if spec.when(config):
            ds = add_stage(ds, spec, config, run, args[spec.name])
    return ds


def output_location(sink: DatasetWriter) -> str:
    """Where the writers write: the output as a local path (made absolute) or a URI; warns when a local
    path is written by several nodes, which only works on a shared filesystem."""
    import ray

    output = sink.storage.base if sink.storage.local else sink.storage.uri
    if sink.storage.local and sum(n["Alive"] for n in ray.nodes()) > 1:
        print(f"build_dataset.py: warning: {output} is a local path and the cluster has several nodes: every node "
              "writes its shards there, so it must be a shared filesystem (else use object storage)", file=sys.stderr)
    return output


def build(sources: str | Path, output: str, config: PipelineConfig, retry_failed: bool = False) -> RunSummary:
    """Run the pipeline to completion and return what it did."""
    import ray.data

    from pipelines.sources import planned_sources, planning_cpus, source_readers

    started = time.monotonic()
    sink = DatasetWriter(output, config)  # takes the output's lease, or raises OutputLocked
    try:
        init_ray(config)
        ray.data.DataContext.get_current().enable_progress_bars = config.ray.progress
        # the list is read, planned and filtered by Ray as it streams (pipelines/sources.py)
        readers = source_readers(str(sources), config)
        ds = planned_sources(str(sources), config, LedgerFilter.of(sink.ledger, retry_failed), source_rules(config), readers)
        ds = add_stages(ds, config, sink, planning_cpus(config, readers))
        for row in ds.iter_rows():  # one small row per written batch: shard names and ledger rows
            sink.publish(from_row(row))
    except BaseException:
        sink.release()  # what was committed stays; the next run on this output resumes it
        raise
    wall = time.monotonic() - started
    stats = sink.close(wall)
    write_report(sink.storage, stats)
    return RunSummary(output, sink.tally.videos, sink.tally.samples_written, wall, stats)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
        if not source_list_exists(args.sources):
            raise ValueError(f"--sources {redacted(args.sources)}: no such file")
        check_source_list(args.sources)  # unusable lists fail here, before Ray starts (a header, not the list)
        source_rules(config)  # and so does an unreadable opt-out list
        Storage(args.output).mkdir()  # so does an unreachable output (e.g. a missing bucket)
    except (ValueError, OSError, pydantic.ValidationError) as exc:
        print(f"build_dataset.py: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = build(args.sources, args.output, config, args.retry_failed)
    except OutputLocked as exc:
        print(f"build_dataset.py: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    print(format_summary(summary))
    print(json.dumps({"funnel": summary.stats.get("funnel", {})}))
    return 0


def _one_line(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        return f"config {'.'.join(str(p) for p in first['loc'])}: {first['msg']} ({exc.error_count()} problem(s))"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
