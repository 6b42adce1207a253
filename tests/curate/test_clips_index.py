"""``clips.parquet`` in parts, and a resume whose cost is the last run's, not the dataset's.

At 7.5M shards, reading every shard index back at each close takes ~42 h and parsing every
manifest at each resume ~2.5M reads: a close adds one part with only its own commits' clips, and
a resume parses only the commits a clean close did not verify.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from test_commit import clips, config, pending, status

from curate.clips_index import add_clips_part
from curate.sink import DatasetWriter
from vidla_format.clips import CLIPS_SCHEMA, read_clips
from vidla_format.storage import Storage


def write_video(out, video_id: str, row: int = 0, close: bool = True) -> DatasetWriter:
    sink = DatasetWriter(str(out), config())
    url = f"http://x/{video_id}"
    sink.write(status(video_id, url, "A", row), list(clips(video_id, url, "A")))
    if close:
        sink.close(1.0)
    else:
        sink.commit()
        sink.release()  # a run stopped before its end
    return sink


def part_names(out) -> list[str]:
    return sorted(p.name for p in (out / "clips.parquet").iterdir())


def keys(out) -> list[str]:
    return sorted(pq.read_table(out / "clips.parquet")["key"].to_pylist())


def test_each_clean_close_adds_a_part_with_its_own_commits_and_readers_see_one_table(tmp_path):
    out = tmp_path / "out"
    write_video(out, "a")
    (first,) = part_names(out)
    write_video(out, "b", 1)
    assert part_names(out)[0] == first and len(part_names(out)) == 2
    assert keys(out) == sorted(f"{v}_{s}_{i:04d}" for v in "ab" for s, n in (("short", 4), ("medium", 2)) for i in range(n))
    table = read_clips(Storage(str(out)))
    assert table.schema == CLIPS_SCHEMA and table.num_rows == 12
    assert all(row["shard"].endswith(".tar") and (out / row["shard"]).is_file() for row in table.to_pylist())


def test_a_close_reads_back_only_the_shards_of_commits_since_the_last_clean_close(tmp_path):
    out = tmp_path / "out"
    write_video(out, "a")
    for index in (out / "shards").glob("*/shard-*.parquet"):
        index.unlink()  # a's indexes unreadable: a close that read them again would fail
    write_video(out, "b", 1)
    assert sorted({k.split("_")[0] for k in keys(out)}) == ["a", "b"], "a's clips come from its part, not its indexes"


def test_a_resume_parses_only_unverified_commits_and_keeps_verified_runs_shards(tmp_path):
    out = tmp_path / "out"
    write_video(out, "a")
    commits = out / "shards" / "commits"
    (verified_commit,) = commits.glob("commit-*.json")
    verified_commit.write_bytes(b"{ not json")  # would be dropped, with a's shards, if it were parsed
    shards_before = sorted(p.name for p in (out / "shards").glob("*/shard-*"))
    write_video(out, "b", 1, close=False)
    resumed = DatasetWriter(str(out), config())
    assert verified_commit.exists(), "a verified commit is not parsed, so not judged, on resume"
    assert set(shards_before) <= {p.name for p in (out / "shards").glob("*/shard-*")}, "a's shards stay"
    todo = resumed.todo([pending("http://x/a", "a"), pending("http://x/b", "b", 1), pending("http://x/c", "c", 2)])
    assert [r.video_id for r in todo] == ["c"], "a from videos.parquet, b from its unverified commit"
    resumed.close(1.0)
    assert sorted({k.split("_")[0] for k in keys(out)}) == ["a", "b"]


def test_an_interrupted_runs_uncommitted_shards_are_removed_and_its_commits_join_the_next_part(tmp_path):
    out = tmp_path / "out"
    write_video(out, "a")
    write_video(out, "b", 1, close=False)
    stray = out / "shards" / "short" / "shard-29991231T000000-deadbeef-0123456789abcdef.tar"
    stray.write_bytes(b"an interrupted run's shard that no commit names")
    write_video(out, "c", 2)
    assert not stray.exists()
    assert len(part_names(out)) == 2, "b's commit (interrupted run) is in the resuming run's part"
    assert sorted({k.split("_")[0] for k in keys(out)}) == ["a", "b", "c"]
    verified = json.loads((out / "shards" / "commits" / "verified.json").read_text())
    assert len(verified["runs"]) == 3 and verified["through"] == 2


def test_a_part_left_by_a_close_that_crashed_before_verified_json_is_replaced_not_duplicated(tmp_path):
    out = tmp_path / "out"
    write_video(out, "a")
    write_video(out, "b", 1, close=False)
    storage = Storage(str(out))
    add_clips_part(storage, [(1, json.loads(next((out / "shards/commits").glob("commit-000001-*")).read_text())["shards"])], 0)
    assert len(part_names(out)) == 2  # the crashed close's part; verified.json still says 0
    write_video(out, "c", 2)
    assert len(keys(out)) == len(set(keys(out))) == 18


def test_a_format_5_output_gets_its_clips_file_rebuilt_as_parts(tmp_path):
    out = tmp_path / "out"
    write_video(out, "a")
    whole = pq.read_table(out / "clips.parquet")
    for part in (out / "clips.parquet").iterdir():
        part.unlink()
    (out / "clips.parquet").rmdir()
    pq.write_table(whole, out / "clips.parquet")  # format 5: one file, and verified.json without runs
    (out / "shards" / "commits" / "verified.json").write_text(json.dumps({"through": 0, "run_id": "x"}))
    assert read_clips(Storage(str(out))).num_rows == 6, "a format-5 file is still readable"
    write_video(out, "b", 1)
    assert (out / "clips.parquet").is_dir() and len(part_names(out)) == 1
    assert sorted({k.split("_")[0] for k in keys(out)}) == ["a", "b"]


def test_an_output_without_clips_still_has_a_readable_clips_table(tmp_path):
    out = tmp_path / "out"
    DatasetWriter(str(out), config()).close(1.0)
    assert part_names(out) == ["part-none.parquet"]
    assert pq.read_table(out / "clips.parquet").schema == CLIPS_SCHEMA
    write_video(out, "a")
    assert part_names(out) == ["part-000000-000000.parquet"]


def test_reads_are_streamed_into_row_groups_in_commit_order(tmp_path):
    storage = Storage(str(tmp_path))
    for n in range(5):
        table = pa.table({name: pa.nulls(2, CLIPS_SCHEMA.field(name).type) for name in CLIPS_SCHEMA.names if name != "shard"})
        storage.write_parquet(f"shards/short/shard-r-{n}.parquet", table.set_column(0, "key", pa.array([f"k{n}a", f"k{n}b"])))
    add_clips_part(storage, [(n, {"short": [f"shard-r-{n}"]}) for n in range(5)], -1, threads=3)
    assert read_clips(storage, ["key"])["key"].to_pylist() == [f"k{n}{s}" for n in range(5) for s in "ab"]


def test_the_trainer_finds_verified_shards_in_clips_parquet_and_reads_only_later_commits(tmp_path):
    from vidla.shard_sources import split_shards
    from vidla_format.commits import committed_shards
    from vidla_format.layout import SCALES, shard_run

    out = tmp_path / "out"
    write_video(out, "a")  # verified: in clips.parquet
    write_video(out, "b", 1, close=False)  # an interrupted run: only its manifest says so
    shards = Storage(str(out / "shards"))
    by_rule = {s: [shards.path(f"{s}/{stem}.tar") for stem in committed_shards(shards, s)] for s in SCALES}
    assert split_shards(shards, "train") == by_rule and by_rule["short"]
    (verified_run,) = json.loads((out / "shards" / "commits" / "verified.json").read_text())["runs"]
    for index in (out / "shards").glob("*/shard-*.parquet"):
        if shard_run(index.stem) == verified_run:
            index.unlink()  # a's indexes gone: the trainer must not need them
    next((out / "shards" / "commits").glob("commit-000000-*")).write_bytes(b"garbage")  # nor a's manifest
    assert split_shards(shards, "train") == by_rule
    assert split_shards(shards, "test") == dict.fromkeys(SCALES, [])
