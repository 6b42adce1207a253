"""The commit protocol of the sink: video identity, all-or-nothing videos, one writer per output.

Real processes and SIGKILL: a crash is a killed process, a second writer is another process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dataset_checks import committed_clips, shard_keys

from curate.config import load_config
from curate.lease import OutputLocked
from curate.ledger import ID_CONFLICT, VideoStatus
from curate.records import Sample
from curate.sink import DatasetWriter
from curate.sources import SourceRow
from vidla_format.storage import Storage

ROOT = Path(__file__).resolve().parents[2]
PLANS = {"A": {"short": 4, "medium": 2}, "B": {"short": 3, "medium": 1}}
"""Two plans of the same video, as a changed ``plan.short.target_s`` would give: other clips, same keys."""


def config():
    return load_config(None, ["shards.max_samples=3"])


def clips(video_id: str, url: str, plan: str) -> Iterator[Sample]:
    """The samples of one video under ``plan`` (``caption`` says which plan made the clip)."""
    for scale, count in PLANS[plan].items():
        for i in range(count):
            key = f"{video_id}_{scale}_{i:04d}"
            record = {"key": key, "video_id": video_id, "url": url, "scale": scale, "index": i,
                      "start": float(i), "end": i + 1.0, "duration": 1.0, "caption": f"plan {plan}", "split": "train"}
            yield Sample(key, scale, record, f"mp4 of {key}".encode(), [b"jpeg"])


def status(video_id: str, url: str, plan: str, row: int = 0) -> VideoStatus:
    counts = PLANS[plan]
    return VideoStatus(url, video_id, clips_short=counts["short"], clips_medium=counts["medium"], input_row=row)


def pending(url: str, video_id: str, row: int = 0) -> SourceRow:
    return SourceRow(url, video_id, "pending", None, None, row)


def crash_mid_video(out: str) -> None:
    """In a child process: commit video ``a``, then die by SIGKILL inside video ``b`` right after its
    short shard was closed (tar and index on disk) and before the commit naming it."""
    sink = DatasetWriter(out, config())
    sink.write(status("a", "http://x/a", "A"), list(clips("a", "http://x/a", "A")))

    def then_die() -> Iterator[Sample]:
        for sample in clips("b", "http://x/b", "A"):
            yield sample
            if sink.writers["short"].closed:
                os.kill(os.getpid(), signal.SIGKILL)

    sink.write(status("b", "http://x/b", "A"), then_die())  # type: ignore[arg-type]


def child(code: str, **kwargs) -> subprocess.Popen:
    script = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(Path(__file__).parent)!r}, {str(ROOT / 'tests')!r}]; {code}"
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, **kwargs)


def assert_consistent(out: Path) -> dict[str, dict[str, list[dict]]]:
    """Keys unique, no orphan tar, the ledger equal to what the shards hold, one plan per video."""
    indexed, in_tars = shard_keys(Storage(str(out)))
    assert indexed == in_tars and len(set(indexed)) == len(indexed)
    held = committed_clips(Storage(str(out)))
    ledger = {r["video_id"]: r for r in pq.read_table(out / "videos.parquet").to_pylist() if r["status"] == "ok"}
    assert set(ledger) == set(held)
    for vid, scales in held.items():
        assert {s: len(rows) for s, rows in scales.items()} == {
            s: ledger[vid][f"clips_{s}"] for s in ("short", "medium", "long") if ledger[vid][f"clips_{s}"]
        }
        assert len({r["caption"] for rows in scales.values() for r in rows}) == 1, f"{vid} mixes two plans"
    return held


def test_crash_between_scales_then_a_rerun_with_another_plan_never_mixes_plans(tmp_path):
    out = tmp_path / "out"
    proc = child(f"from test_commit import crash_mid_video; crash_mid_video({str(out)!r})")
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert list((out / "shards" / "short").glob("shard-*.parquet"))[1:], "b's short shard was closed before the kill"
    sink = DatasetWriter(str(out), config())  # the dead writer's lease is stale: taken over
    todo = sink.todo([pending("http://x/a", "a", 0), pending("http://x/b", "b", 1)])
    assert [r.video_id for r in todo] == ["b"], "a was committed, b was not"
    sink.write(status("b", "http://x/b", "B", 1), list(clips("b", "http://x/b", "B")))
    sink.close(1.0)
    held = assert_consistent(out)
    assert {vid: {r["caption"] for rows in s.values() for r in rows} for vid, s in held.items()} == {
        "a": {"plan A"}, "b": {"plan B"}}
    assert not (out / ".lock").exists()


def test_an_id_committed_for_another_url_is_a_permanent_id_conflict(tmp_path):
    out = tmp_path / "out"
    first = DatasetWriter(str(out), config())
    assert first.todo([pending("http://x/one", "clip")])
    first.write(status("clip", "http://x/one", "A"), list(clips("clip", "http://x/one", "A")))
    first.close(1.0)
    for _ in range(2):  # and a further rerun records nothing new
        again = DatasetWriter(str(out), config())
        assert again.todo([pending("http://x/other", "clip", 3)]) == []
        again.close(1.0)
    rows = pq.read_table(out / "videos.parquet").to_pylist()
    conflict = [r for r in rows if r["error_code"] == ID_CONFLICT]
    assert len(rows) == 2 and len(conflict) == 1
    assert conflict[0]["status"] == "failed" and conflict[0]["error_class"] == "permanent"
    assert "already committed" in conflict[0]["error"] and conflict[0]["url"] == "http://x/other"
    held = assert_consistent(out)
    assert {r["url"] for rows in held["clip"].values() for r in rows} == {"http://x/one"}


def test_an_unreadable_commit_is_uncommitted_and_redone(tmp_path):
    out = tmp_path / "out"
    first = DatasetWriter(str(out), config())
    first.write(status("v", "http://x/v", "A"), list(clips("v", "http://x/v", "A")))
    first.commit()
    first.release()  # a run that stopped before its end; then a power loss empties the commit
    (manifest,) = (out / "shards" / "commits").iterdir()
    manifest.write_bytes(b"")
    second = DatasetWriter(str(out), config())
    assert [r.video_id for r in second.todo([pending("http://x/v", "v")])] == ["v"]
    assert not list((out / "shards" / "short").iterdir()), "the shards only that commit named are gone"
    second.write(status("v", "http://x/v", "B"), list(clips("v", "http://x/v", "B")))
    second.close(1.0)
    assert set(assert_consistent(out)) == {"v"}


def test_a_resume_checks_only_the_commits_after_the_last_clean_close(tmp_path):
    """At millions of shards, reading every shard back on each resume would take days: a clean close
    records the commits it verified, and a resume checks only those after them."""
    out = tmp_path / "out"
    first = DatasetWriter(str(out), config())
    first.write(status("a", "http://x/a", "A"), list(clips("a", "http://x/a", "A")))
    first.close(1.0)
    commits = out / "shards" / "commits"
    numbers = sorted(int(p.name.split("-")[1]) for p in commits.glob("commit-*.json"))
    assert json.loads((commits / "verified.json").read_text())["through"] == numbers[-1]
    second = DatasetWriter(str(out), config())
    second.write(status("b", "http://x/b", "A", 1), list(clips("b", "http://x/b", "A")))
    second.commit()
    second.release()  # stopped before its end: b's commit is not verified
    for index in (out / "shards").glob("*/shard-*.parquet"):
        index.unlink()  # every shard index now unreadable, a's and b's alike
    third = DatasetWriter(str(out), config())
    todo = third.todo([pending("http://x/a", "a"), pending("http://x/b", "b", 1)])
    assert [r.video_id for r in todo] == ["b"], "a's verified commit is not looked at again; b's is, and is dropped"
    third.release()


def test_a_second_writer_fails_fast_and_a_dead_writers_lease_is_taken_over(tmp_path):
    out = tmp_path / "out"
    holder = child(
        f"from test_commit import DatasetWriter, config; s = DatasetWriter({str(out)!r}, config()); "
        "print('held', flush=True); sys.stdin.read()",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(OutputLocked, match=f"pid {holder.pid} on"):
        DatasetWriter(str(out), config())
    sources = tmp_path / "urls.txt"
    sources.write_text("http://127.0.0.1:9/v.mp4\n")
    for cmd in (["-m", "curate", "run"], [str(ROOT / "pipelines" / "build_dataset.py")]):
        done = subprocess.run([sys.executable, *cmd, "--sources", str(sources), "--output", str(out), "--quiet"],
                              cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 2, done.stderr
        assert "is being written by run" in done.stderr and "two writers" in done.stderr
    assert json.loads((out / ".lock").read_text())["pid"] == holder.pid
    holder.kill()
    holder.wait()
    DatasetWriter(str(out), config()).close(0.0)  # the dead holder's lease is stale
    assert not (out / ".lock").exists()
