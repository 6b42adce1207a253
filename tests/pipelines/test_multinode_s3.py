"""A real multi-node run with its output on S3-compatible storage.

Two raylets on loopback (a head and a second node, one CPU each, the second with its own
``node2`` resource) and moto's S3 server; ``pipelines/build_dataset.py`` runs as a user
runs it against a cluster (``RAY_ADDRESS``) with ``--output s3://bucket/prefix`` and the
credentials and endpoint in the standard ``AWS_*`` variables (the driver's only: the nodes have
none, so the shard writers work with what the driver hands them). Checked: tasks ran on both
nodes (Ray's state API), shards were written by write tasks on both nodes (the commit manifests
in the bucket say which node wrote each batch), the dataset in the bucket is complete and
readable, a rerun adds and redoes nothing, and a driver killed mid-run then rerun gives every
clip exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dataset_checks import read_tar_samples, shard_keys
from s3_server import S3Server, moto_s3

from curate.demo.server import write_source_list
from curate.sources import read_sources
from vidla_format.commits import read_manifests
from vidla_format.layout import SCALES
from vidla_format.storage import Storage

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "build_dataset.py"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
BUCKET = "vidla"
# The corpus's text stages are exercised in test_build_dataset.py; here they would only add minutes.
NO_TEXT = ("text.llm.backend=none", "text.vlm.backend=none")
# A batch per video and one writer per node (each node has one `writer` slot): with Ray Data's actor
# locality, each node's clips are written by the writer beside them, so both nodes write.
WRITE = ("ray.write.batch_size=1", "ray.write.concurrency=2", "ray.write.resources={writer: 1}")
DATASET_FILE = re.compile(
    r"^(shards/(short|medium|long)/shard-[A-Za-z0-9_-]+\.(tar|parquet)|shards/commits/commit-\d{6}-[A-Za-z0-9_-]+\.json"
    r"|shards/commits/verified\.json"
    r"|videos\.parquet|clips\.parquet/part-(\d{6,}-\d{6,}|none)\.parquet|stats\.json"
    r"|report\.html|report/[A-Za-z0-9_-]+\.(jpg|png))$"
)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3() as server:
        server.make_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A head and a second node: separate raylets on loopback with their own resources.

    ``ray.cluster_utils.Cluster`` starts each node's processes as children of this process
    and ``shutdown`` ends exactly those, so teardown never touches another Ray on the machine.
    """
    from ray.cluster_utils import Cluster

    dashboard = free_port()
    common = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": 300 * 1024**2}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.delenv("RAY_ADDRESS", raising=False)
        ray_cluster = Cluster(shutdown_at_exit=True)
        try:
            ray_cluster.add_node(**common, resources={"writer": 1}, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=dashboard,
                                 temp_dir=str(tmp_path_factory.mktemp("ray")))
            ray_cluster.add_node(**common, resources={"node2": 1, "writer": 1})
            ray_cluster.wait_for_nodes()
            yield {"gcs": ray_cluster.address, "dashboard": f"http://127.0.0.1:{dashboard}"}
        finally:
            ray_cluster.shutdown()


@pytest.fixture(scope="module")
def sources(demo_corpus, demo_server, tmp_path_factory) -> Path:
    return write_source_list(demo_corpus[1], demo_server, tmp_path_factory.mktemp("sources") / "sources.csv")


def driver_env(cluster: dict[str, str], s3: S3Server, tmp: Path) -> dict[str, str]:
    """A user's shell: the cluster in RAY_ADDRESS, S3 credentials and endpoint in AWS_*, a private TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(s3.env, RAY_ADDRESS=cluster["gcs"], RAY_USAGE_STATS_ENABLED="0", TMPDIR=str(tmp),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    # Ray rewrites a loopback RAY_ADDRESS to the machine's routable IP (services.resolve_ip_for_localhost),
    # where this loopback-only cluster does not listen; this makes the driver take loopback as its node IP.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


def command(sources: str | Path, prefix: str, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--sources", str(sources), "--output", f"s3://{BUCKET}/{prefix}",
            "--config", str(DEMO_CONFIG), "--quiet", *NO_TEXT, *WRITE, *extra]


def run(cmd: list[str], env: dict[str, str], dashboard: str | None = None) -> str:
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"the run took over 240 s (it takes ~40 s); {waiting_for(dashboard)}; "
                             f"its stderr ends: {(hung.stderr or b'')[-2000:]!r}") from None  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def waiting_for(dashboard: str | None) -> str:
    """What the cluster's scheduler has not placed (actors and tasks waiting for resources): why a run hangs."""
    if dashboard is None:
        return "no cluster state"
    from ray.util.state import list_actors, list_tasks

    actors = list_actors(address=dashboard, filters=[("state", "=", "PENDING_CREATION")], raise_on_missing_output=False)
    tasks = list_tasks(address=dashboard, filters=[("state", "=", "PENDING_NODE_ASSIGNMENT")], raise_on_missing_output=False)
    return f"actors not placed: {sorted(a.class_name for a in actors)}, tasks not placed: {sorted(t.name for t in tasks)}"


def stray_objects(s3: S3Server, prefix: str) -> list[str]:
    """Objects that are neither dataset files nor the directory markers Arrow leaves on deletes
    (``PREFIX/`` itself once the lease ``.lock`` is deleted)."""
    rels = [k[len(prefix) + 1 :] for k in s3.keys(BUCKET, prefix + "/")]
    return [r for r in rels if not DATASET_FILE.match(r) and r not in ("", ".ledger/", "shards/short/", "shards/medium/", "shards/long/", "shards/commits/")]


def task_nodes(dashboard: str, timeout_s: float = 30) -> tuple[set[str], set[str]]:
    """(ids of the cluster's nodes, ids of the nodes that ran the pipeline's stage tasks), via Ray's state API."""
    from ray.util.state import list_nodes, list_tasks

    nodes = {n.node_id for n in list_nodes(address=dashboard)}
    deadline = time.monotonic() + timeout_s
    while True:  # task events reach the state API asynchronously
        tasks = list_tasks(address=dashboard, limit=10_000, raise_on_missing_output=False)
        used = {t.node_id for t in tasks if re.search(r"DownloadStage|ClipStage", t.name) and t.node_id}
        if used >= nodes or time.monotonic() > deadline:
            return nodes, used
        time.sleep(1)


@pytest.fixture(scope="module")
def built(cluster, s3, sources, tmp_path_factory) -> dict[str, Any]:
    """One complete run into s3://vidla/first, its URL list read from the bucket too (as a cluster job's is)."""
    env = driver_env(cluster, s3, tmp_path_factory.mktemp("driver-tmp"))
    s3.client().upload_file(str(sources), BUCKET, "lists/sources.csv")
    started = time.monotonic()
    stdout = run(command(f"s3://{BUCKET}/lists/sources.csv", "first"), env, cluster["dashboard"])
    return {"prefix": "first", "env": env, "stdout": stdout, "wall_s": time.monotonic() - started}


def test_stage_tasks_ran_on_both_nodes(built, cluster):
    nodes, used = task_nodes(cluster["dashboard"])
    assert len(nodes) == 2
    assert used == nodes, f"stage tasks ran on {len(used)} of the {len(nodes)} nodes"


def test_nothing_is_left_waiting_for_a_place_after_the_run(built, cluster):
    assert waiting_for(cluster["dashboard"]) == "actors not placed: [], tasks not placed: []"


def test_shards_were_written_by_write_tasks_on_both_nodes(built, cluster, s3):
    from ray.util.state import list_nodes

    nodes = {n.node_id for n in list_nodes(address=cluster["dashboard"])}
    manifests, bad = read_manifests(Storage(s3.uri(BUCKET, built["prefix"])), "shards")
    assert manifests and not bad
    writers = {m.writer.get("node") for m in manifests if m.shards}
    assert writers == nodes, f"the committed shards were written on {len(writers & nodes)} of the {len(nodes)} nodes"


def test_the_dataset_is_complete_and_readable_in_the_bucket(built, s3, sources):
    storage = Storage(s3.uri(BUCKET, built["prefix"]))
    videos = storage.read_parquet("videos.parquet").to_pylist()
    assert sorted(v["video_id"] for v in videos) == sorted(r.video_id for r in read_sources(sources))
    assert all(v["status"] == "ok" for v in videos)
    indexed, in_tars = shard_keys(storage)
    clips = storage.read_parquet("clips.parquet").to_pylist()
    assert indexed == in_tars == sorted(c["key"] for c in clips), "the indexes, the tars and clips.parquet agree"
    assert len(set(indexed)) == len(indexed) == sum(v[f"clips_{s}"] for v in videos for s in SCALES) > 0
    for scale in SCALES:
        names = storage.list(f"shards/{scale}")
        tars = {n[:-4] for n in names if n.endswith(".tar")}
        assert tars and tars == {n[:-8] for n in names if n.endswith(".parquet")}, f"{scale}: every tar has its index"
    stats = json.loads(storage.read_bytes("stats.json"))
    assert stats["funnel"]["ok"] == len(videos) and stats["run"]["videos_processed"] == len(videos)
    assert storage.is_file("report.html") and storage.size("report/lengths.png") > 1000
    assert stray_objects(s3, built["prefix"]) == [] and s3.pending_uploads(BUCKET) == []
    assert list(Path(built["env"]["TMPDIR"]).iterdir()) == [], "no local temporary file left by the driver"


def test_samples_stream_from_the_bucket_with_every_member(built, s3):
    storage = Storage(s3.uri(BUCKET, built["prefix"]))
    first = next(n for n in storage.list("shards/medium") if n.endswith(".tar"))
    for sample in read_tar_samples(storage, f"shards/medium/{first}"):
        record = json.loads(sample["json"])
        assert record["key"] == sample["__key__"] and record["scale"] == "medium"
        assert sample["mp4"][4:8] == b"ftyp" and sample["f00.jpg"][:2] == b"\xff\xd8"


def test_a_rerun_on_the_bucket_adds_and_redoes_nothing(built, cluster, s3, sources):
    def shard_objects() -> dict[str, tuple[str, Any]]:
        listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{built['prefix']}/shards/")["Contents"]
        return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}

    before = shard_objects()
    run(command(sources, built["prefix"]), built["env"], cluster["dashboard"])
    assert shard_objects() == before
    stats = json.loads(Storage(s3.uri(BUCKET, built["prefix"])).read_bytes("stats.json"))
    assert stats["run"]["videos_processed"] == 0 and stats["run"]["samples_written"] == dict.fromkeys(SCALES, 0)


def test_a_driver_killed_mid_run_then_rerun_gives_every_clip_exactly_once(built, cluster, s3, sources, tmp_path):
    expected, _ = shard_keys(Storage(s3.uri(BUCKET, built["prefix"])))
    cmd = command(sources, "killed", "--shard-size", "3")
    proc = subprocess.Popen(cmd, env=built["env"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and not any(
            k.endswith(".parquet") for k in s3.keys(BUCKET, "killed/shards/")
        ):
            time.sleep(0.1)
        assert proc.poll() is None, "the run was still going when the first shard committed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run(cmd, built["env"], cluster["dashboard"])
    storage = Storage(s3.uri(BUCKET, "killed"))
    indexed, in_tars = shard_keys(storage)
    assert indexed == in_tars == expected
    assert sorted(storage.read_parquet("clips.parquet")["key"].to_pylist()) == expected
    assert stray_objects(s3, "killed") == []
    assert list(Path(built["env"]["TMPDIR"]).iterdir()) == []
