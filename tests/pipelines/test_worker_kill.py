"""A stage worker (download, clip or shard writer) SIGKILLed at a random moment of a Ray run, then a rerun.

Workers now write the shards themselves, so a worker killed mid-write can leave a partial or a
complete-but-uncommitted shard behind, and Ray retries its task on a restarted actor. What must
hold afterwards, for any victim and moment: every clip exactly once (keys unique, no tar that no
manifest names), the ledger equal to what the shards hold, and every video of the list done.

The cluster is a one-node ``ray.cluster_utils.Cluster`` (its processes are this test's children,
so the victim is picked among them and teardown ends only them); the run is
``pipelines/build_dataset.py`` with ``RAY_ADDRESS``, one video per write batch so that writes
go on while other videos are still being cut.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from dataset_checks import committed_clips, shard_keys

from curate.demo.server import write_source_list
from curate.sources import read_sources
from vidla_format.layout import SCALES
from vidla_format.storage import Storage

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "build_dataset.py"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.delenv("RAY_ADDRESS", raising=False)
        ray_cluster = Cluster(shutdown_at_exit=True)
        try:
            ray_cluster.add_node(node_ip_address="127.0.0.1", num_cpus=2, object_store_memory=300 * 1024**2,
                                 include_dashboard=False, temp_dir=str(tmp_path_factory.mktemp("ray")))
            ray_cluster.wait_for_nodes()
            yield ray_cluster.address
        finally:
            ray_cluster.shutdown()


def stage_workers() -> list[psutil.Process]:
    """This test's Ray actor processes that run a pipeline stage (Ray Data's ``MapWorker`` actors)."""
    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "MapWorker" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def run_killing_a_worker(cmd: list[str], env: dict[str, str], out: Path, rng: random.Random) -> str:
    """Start the run; at a random moment after the first shard write began, SIGKILL a random stage worker
    (downloads, cutting and writing are all under way then); return the victim's process title."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("shards/*/*shard-*")):
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 3))
        victims = stage_workers()
        assert proc.poll() is None and victims, "the run was still going, with stage workers, at the kill"
        victim = rng.choice(victims)
        title = " ".join(victim.cmdline())
        victim.send_signal(signal.SIGKILL)
        proc.wait(timeout=400)  # Ray restarts the actor and retries its task; or the run fails: either is allowed
        return title
    finally:
        proc.kill()
        proc.wait()


def test_a_worker_killed_at_a_random_moment_then_a_rerun_gives_every_clip_exactly_once(
    cluster, demo_corpus, demo_server, tmp_path
):
    seed = random.randrange(1 << 30)
    sources = write_source_list(demo_corpus[1], demo_server, tmp_path / "sources.csv")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_ADDRESS=cluster, RAY_USAGE_STATS_ENABLED="0", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep the driver on loopback, where this cluster listens
    cmd = [sys.executable, str(SCRIPT), "--sources", str(sources), "--output", str(out), "--config", str(DEMO_CONFIG),
           "--quiet", "--shard-size", "3", "text.llm.backend=none", "text.vlm.backend=none", "ray.write.batch_size=1"]
    victim = run_killing_a_worker(cmd, env, out, random.Random(seed))
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
    why = f"seed {seed}, killed {victim!r}"
    assert done.returncode == 0, f"{why}: {done.stderr[-3000:]}"

    storage = Storage(str(out))
    indexed, in_tars = shard_keys(storage)
    assert indexed == in_tars and len(set(indexed)) == len(indexed) > 0, f"{why}: a clip twice, or an uncommitted tar left"
    held = committed_clips(storage)
    ledger = {r["video_id"]: r for r in pq.read_table(out / "videos.parquet").to_pylist()}
    assert sorted(ledger) == sorted(r.video_id for r in read_sources(sources)), why
    assert all(r["status"] == "ok" for r in ledger.values()), why
    assert {vid: {s: len(rows) for s, rows in scales.items()} for vid, scales in held.items()} == {
        vid: {s: r[f"clips_{s}"] for s in SCALES if r[f"clips_{s}"]} for vid, r in ledger.items()
    }, f"{why}: the ledger says what the shards hold"
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.is_file()], f"{why}: temporary files left"
