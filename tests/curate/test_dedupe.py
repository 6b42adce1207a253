"""Specification of de-duplication when Ray delivers planned rows more than once.

Ray retries a planning task whose actor died, so the rows of some input rows reach the
:class:`~curate.dedupe.Deduper` twice, whole or in part. A second copy of an input row is not a
second listing of its URL: it is dropped and counted (``replayed``), never a ``duplicate`` row,
while a URL or id on two different input rows (or twice among playlist entries) stays one.
"""

from __future__ import annotations

import random

import pytest

from curate.dedupe import Deduper, dedupe
from curate.sources import SourceRow


def video(row: int, name: str, status: str = "pending") -> SourceRow:
    """An input row listing one video (``name`` is its id; its URL is made from it)."""
    error = None if status == "pending" else f"row {row}: broken"
    return SourceRow(f"https://x/{name}.mp4", name, status, None if status == "pending" else "invalid_url", error, row)  # type: ignore[arg-type]


def playlist(row: int, name: str, entries: list[str]) -> list[SourceRow]:
    """An expanded input row and its entries, as the planner emits them (entries carry the source's row)."""
    source = SourceRow(f"https://x/list/{name}", name, "expanded", None, f"{len(entries)} entries", row, entries=len(entries))
    return [source, *(SourceRow(f"https://x/{e}.mp4", e, "pending", None, None, row, expanded_from=name) for e in entries)]


def verdicts(rows: list[SourceRow]) -> list[tuple[int, str, str]]:
    return [(r.row, r.video_id, r.error_code or r.status) for r in rows]


# --------------------------------------------------------------------------- replays


def test_a_block_replayed_after_it_was_decided_is_dropped_and_counted():
    block = [video(0, "a"), video(1, "b"), video(2, "c")]
    deduper = Deduper()
    first = deduper.push(block)
    assert deduper.push(block) == []
    assert verdicts(first) == [(0, "a", "pending"), (1, "b", "pending"), (2, "c", "pending")]
    assert (deduper.replayed, deduper.held) == (3, 0)


def test_a_block_replayed_while_its_rows_are_held_is_dropped_and_counted():
    later = [video(1, "b"), video(2, "a")]  # row 2 is a genuine duplicate of row 0's URL
    deduper = Deduper()
    assert deduper.push(later) == [] and deduper.push(later) == []
    assert (deduper.replayed, deduper.held) == (2, 2)
    out = deduper.push([video(0, "a")])
    assert verdicts(out) == [(0, "a", "pending"), (1, "b", "pending"), (2, "a", "duplicate")]
    assert out[2].error == "row 2: duplicate of row 0 (same URL)"
    assert (deduper.replayed, deduper.held) == (2, 0)


@pytest.mark.parametrize("decided", [True, False], ids=["after-decided", "while-held"])
def test_a_replayed_playlist_gives_each_entry_once(decided: bool):
    block = [*playlist(1, "feed", ["e1", "e2", "e3"]), video(2, "v")]
    deduper = Deduper()
    out = deduper.push([video(0, "a")]) if decided else []
    out += deduper.push(block) + deduper.push(block)
    out += [] if decided else deduper.push([video(0, "a")])
    assert verdicts(out) == [(0, "a", "pending"), (1, "feed", "expanded"), (1, "e1", "pending"),
                             (1, "e2", "pending"), (1, "e3", "pending"), (2, "v", "pending")]  # fmt: skip
    assert deduper.replayed == len(block)


def test_a_playlist_cut_into_two_blocks_is_decided_once_all_its_entries_are_in():
    """Ray cuts a planner's output at its block size, which can fall among one playlist's entries."""
    rows = [*playlist(0, "feed", ["e1", "e2", "e3"]), video(1, "v")]
    deduper = Deduper()
    assert deduper.push(rows[:2]) == [] and deduper.held == 1
    assert verdicts(deduper.push(rows[2:])) == verdicts(rows)
    assert (deduper.replayed, deduper.held) == (0, 0)


def test_a_replay_of_a_task_cut_into_blocks_gives_every_row_once():
    rows = [*playlist(0, "feed", ["e1", "e2", "e3"]), video(1, "v")]
    head, tail = rows[:2], rows[2:]
    for delivered in ([head], [head, tail]):  # the first attempt died after one block, or after both
        deduper = Deduper()
        out = [r for block in [*delivered, head, tail] for r in deduper.push(block)]
        assert verdicts(out) == verdicts(rows)
        assert (deduper.replayed, deduper.held) == (sum(map(len, delivered)), 0)


def test_a_new_copy_of_an_input_row_replaces_one_cut_short():
    """The retry may list the playlist differently (here: the listing failed); its copy is the one kept,
    and what the dead attempt had sent of that row is dropped, as is any of its blocks arriving late."""
    first_attempt = playlist(0, "feed", ["e1", "e2", "e3"])
    deduper = Deduper()
    assert deduper.push(first_attempt[:2]) == []
    out = deduper.push([video(0, "feed", status="failed")])
    assert verdicts(out) == [(0, "feed", "invalid_url")]
    assert deduper.push(first_attempt[2:]) == []
    assert (deduper.replayed, deduper.held) == (4, 0)


# --------------------------------------------------------------------------- genuine duplicates


def test_the_same_url_on_two_input_rows_is_still_a_duplicate_row():
    out = dedupe([video(0, "a"), video(1, "b"), video(2, "a")])
    assert verdicts(out) == [(0, "a", "pending"), (1, "b", "pending"), (2, "a", "duplicate")]


def test_the_same_video_in_two_playlists_or_twice_in_one_is_still_a_duplicate_row():
    rows = [*playlist(0, "p", ["v", "w", "v"]), *playlist(1, "q", ["w"]), video(2, "v")]
    out = dedupe(rows)
    assert verdicts(out) == [(0, "p", "expanded"), (0, "v", "pending"), (0, "w", "pending"), (0, "v", "duplicate"),
                             (1, "q", "expanded"), (1, "w", "duplicate"), (2, "v", "duplicate")]  # fmt: skip
    assert [r.error for r in out if r.error_code] == [
        "row 0, entry of p: duplicate of row 0 (same URL)", "row 1, entry of q: duplicate of row 0 (same URL)",
        "row 2: duplicate of row 0 (same URL)"]  # fmt: skip


def test_a_playlist_listed_on_two_input_rows_keeps_its_first_listing():
    out = dedupe([*playlist(0, "p", ["v"]), *playlist(1, "p", ["v"])])
    assert verdicts(out) == [(0, "p", "expanded"), (0, "v", "pending"), (1, "p", "duplicate")]


# --------------------------------------------------------------------------- any delivery


def a_list(rng: random.Random, rows: int) -> list[list[SourceRow]]:
    """Each input row's rows: videos and playlists drawn from a few names, so that duplicates abound."""
    names = [f"n{i}" for i in range(rows // 2)]
    out = []
    for row in range(rows):
        kind = rng.random()
        if kind < 0.3:
            out.append(playlist(row, rng.choice(names), [rng.choice(names) for _ in range(rng.randrange(4))]))
        else:
            out.append([video(row, rng.choice(names), "pending" if kind < 0.9 else "failed")])
    return out


def a_task(rows: list[SourceRow], rng: random.Random) -> list[list[SourceRow]]:
    """One planning task's output, cut into blocks anywhere (Ray's block size can fall inside a playlist)."""
    cuts = sorted(rng.sample(range(1, len(rows)), k=min(len(rows) - 1, rng.randrange(3))))
    return [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]


def deliveries(listing: list[list[SourceRow]], rng: random.Random) -> list[list[list[SourceRow]]]:
    """Per planning task, the blocks the Deduper gets: some tasks die after a few blocks and run again
    (cut anew); the tasks' block sequences are then interleaved in any order, each kept in order."""
    starts = sorted(rng.sample(range(1, len(listing)), k=4))
    tasks = [[r for rows in listing[a:b] for r in rows] for a, b in zip([0, *starts], [*starts, len(listing)], strict=True)]
    out = []
    for rows in tasks:
        blocks = a_task(rows, rng)
        if rng.random() < 0.5:
            blocks = blocks[: rng.randrange(len(blocks) + 1)] + a_task(rows, rng)
        out.append(blocks)
    return out


def interleaved(tasks: list[list[list[SourceRow]]], rng: random.Random) -> list[list[SourceRow]]:
    queues = [list(blocks) for blocks in tasks if blocks]
    order = []
    while queues:
        queue = rng.choice(queues)
        order.append(queue.pop(0))
        queues = [q for q in queues if q]
    return order


@pytest.mark.parametrize("seed", range(40))
def test_replayed_blocks_in_any_order_give_the_verdicts_of_reading_the_list_once(seed: int):
    rng = random.Random(seed)
    listing = a_list(rng, 30)
    whole = dedupe([r for rows in listing for r in rows])
    blocks = interleaved(deliveries(listing, rng), rng)
    deduper = Deduper()
    out = [r for block in blocks for r in deduper.push(block)]
    assert out == whole
    assert deduper.held == 0
    assert deduper.replayed == sum(map(len, blocks)) - sum(map(len, listing))
