"""Commits: the manifests that make shards and their videos' ledger rows visible, all at once.

A shard's tar and index are written (and fsynced) before anything refers to them, but a
shard is *committed* only once a manifest ``shards/commits/commit-NNNNNN-RUN.json``
names it. One manifest names every shard of a batch of videos at every scale together
with those videos' ledger rows, and is written last, in one all-or-nothing write: so a
video's clips at all scales and its ``ok`` row become visible together, or not at all,
and a crash followed by a rerun with another plan can never leave clips of two plans.

The shards are written by the write stage's tasks (any node) and the manifest by the driver,
which only ever sees their names: ``writer`` records which process wrote them (Ray node id,
host, pid), for audits and for the multi-node test.

A manifest that cannot be parsed (e.g. emptied by a power loss) is not a commit: readers
ignore it and the next writer removes it with the shards only it named.

This is the format's one commit rule: the writer (``curate``) and the reader (``vidla``) both
call :func:`committed_shards`, so they cannot disagree on which shards exist.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass, field
from functools import partial

from vidla_format.layout import COMMIT_RE, COMMITS_DIR, FORMAT_VERSION, SHARD_RE, SHARD_STEM_RE
from vidla_format.storage import Storage, ordered_map

log = logging.getLogger(__name__)


@dataclass
class Manifest:
    """One commit: the shard stems it publishes per scale and the ledger rows of its videos."""

    name: str
    shards: dict[str, list[str]] = field(default_factory=dict)
    videos: list[dict] = field(default_factory=list)
    writer: dict = field(default_factory=dict)
    """Who wrote the shards: ``node`` (Ray node id, when written by a Ray task), ``host``, ``pid``."""


def commits_dir(shards_root: str) -> str:
    """Where the manifests of the shard directories under ``shards_root`` live."""
    return posixpath.join(shards_root, COMMITS_DIR) if shards_root else COMMITS_DIR


def _parse(name: str, data: bytes) -> Manifest:
    body = json.loads(data)
    shards = {str(scale): [str(s) for s in stems] for scale, stems in body["shards"].items()}
    if any(not SHARD_STEM_RE.match(s) for stems in shards.values() for s in stems):
        raise ValueError(f"{name}: a shard name is not shard-[A-Za-z0-9_-]+")
    return Manifest(name, shards, [dict(v) for v in body["videos"]], dict(body.get("writer") or {}))


def read_manifests(storage: Storage, shards_root: str, after: int = -1) -> tuple[list[Manifest], list[str]]:
    """(the readable manifests numbered above ``after``, in commit order; the names of unreadable ones)
    under ``shards_root``. A writer's resume passes the verified commit number (:func:`read_verified`)
    so that it parses only the commits of runs that did not close cleanly."""
    where = commits_dir(shards_root)
    numbered = sorted((commit_number(n), n) for n in storage.list(where))
    names = [name for number, name in numbered if number > after]
    good, bad = [], []
    for name, manifest in zip(names, ordered_map(partial(_read_one, storage, where), names), strict=True):
        if manifest:
            good.append(manifest)
        else:
            bad.append(name)
    return good, bad


def _read_one(storage: Storage, where: str, name: str) -> Manifest | None:
    try:
        return _parse(name, storage.read_bytes(f"{where}/{name}"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("commit %s is unreadable (%s): treated as uncommitted", name, exc)
        return None


def next_commit_number(storage: Storage, shards_root: str) -> int:
    """The number after the highest commit present (readable or not), so names never repeat."""
    numbers = [int(m.group(1)) for n in storage.list(commits_dir(shards_root)) if (m := COMMIT_RE.match(n))]
    return max(numbers) + 1 if numbers else 0


def write_manifest(storage: Storage, shards_root: str, number: int, run_id: str, manifest: Manifest) -> str:
    """Write (and so commit) ``manifest`` as commit ``number`` of ``run_id``; returns its name."""
    name = f"commit-{number:06d}-{run_id}.json"
    body = {"format_version": FORMAT_VERSION, "run_id": run_id, "shards": manifest.shards, "videos": manifest.videos,
            "writer": manifest.writer}
    storage.write_bytes(f"{commits_dir(shards_root)}/{name}", json.dumps(body, ensure_ascii=False).encode())
    return name


VERIFIED_FILE = "verified.json"
"""In the commits directory: ``{"through": N, "runs": [...], "run_id"}``: a writer's clean close found the
commits up to N complete (it read their shard indexes back into ``clips.parquet``), and ``runs`` are the
runs whose shards those commits name (format 6)."""


@dataclass(frozen=True)
class Verified:
    """What the last clean close verified: commits up to ``through`` (-1: none), written by ``runs``.

    That close also deleted every shard no commit named, so a shard file of one of ``runs`` is committed;
    only shards of later runs (an interrupted one) need a manifest to say so.
    """

    through: int = -1
    runs: frozenset[str] = frozenset()


def commit_number(name: str) -> int:
    """N of ``commit-NNNNNN-RUN.json`` (-1 for any other name)."""
    match = COMMIT_RE.match(name)
    return int(match.group(1)) if match else -1


def read_verified(storage: Storage, shards_root: str) -> Verified:
    """What the last clean close verified; nothing when absent, unreadable, or of format 5 (no ``runs``).

    A resume checks only the commits after it, so resuming a dataset of millions of shards costs the
    commits of the last, interrupted run, not two requests per shard ever written.
    """
    try:
        body = json.loads(storage.read_bytes(f"{commits_dir(shards_root)}/{VERIFIED_FILE}"))
        return Verified(int(body["through"]), frozenset(str(r) for r in body["runs"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Verified()


def write_verified(storage: Storage, shards_root: str, verified: Verified, run_id: str) -> None:
    """Record ``verified`` (call only once the commits' shards were read back and every uncommitted shard deleted)."""
    body = {"through": verified.through, "runs": sorted(verified.runs), "run_id": run_id}
    storage.write_bytes(f"{commits_dir(shards_root)}/{VERIFIED_FILE}", json.dumps(body).encode())


def committed_stems(storage: Storage, shards_root: str, scale: str) -> set[str]:
    """Stems (``shard-RUN-HASH``) of the shards of ``scale`` that a readable manifest names."""
    manifests, _ = read_manifests(storage, shards_root)
    return {stem for m in manifests for stem in m.shards.get(scale, [])}


def split_rel(rel_dir: str) -> tuple[str, str]:
    """(the shards root, the scale) of a scale directory: ``shards/short`` -> (``shards``, ``short``)."""
    root, _, scale = rel_dir.rstrip("/").rpartition("/")
    return root, scale


def committed_shards(storage: Storage, rel_dir: str) -> list[str]:
    """Stems of the shards in ``rel_dir`` that a readable commit manifest names, sorted."""
    root, scale = split_rel(rel_dir)
    return sorted(committed_stems(storage, root, scale))


def remove_uncommitted(storage: Storage, rel_dir: str, committed: set[str]) -> None:
    """Delete temporaries and every shard file of ``rel_dir`` whose stem is not in ``committed``
    (written by a task or run that died, or whose batch was never committed)."""
    storage.mkdir(rel_dir)
    storage.remove_temporaries(rel_dir)
    for name in storage.list(rel_dir):
        if (m := SHARD_RE.match(name)) and m.group(1) not in committed:
            storage.delete(f"{rel_dir}/{name}")


def recover(storage: Storage, rel_dir: str, committed: set[str]) -> set[str]:
    """:func:`remove_uncommitted`, then return the keys of the committed samples (reads every index:
    for tools and tests; the sink itself relies on whole videos being committed, see :mod:`curate.sink`)."""
    remove_uncommitted(storage, rel_dir, committed)
    keys: set[str] = set()
    for stem in committed:
        keys.update(storage.read_parquet(f"{rel_dir}/{stem}.parquet", ["key"])["key"].to_pylist())
    return keys
