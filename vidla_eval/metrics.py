"""Retrieval metrics (R@1/5/10, MdR, MnR) computed exactly, in chunks, with optional dual softmax.

The numbers are only comparable with the literature if three things are right, and public
codebases often get them wrong:

* **Ties count against the query.** The rank of a query is the number of candidates scoring
  *at least as high* as its ground truth (the ground truth included). Sorting-based code
  (``argsort`` then "where is the ground truth") gives tied candidates an arbitrary order,
  so a constant similarity matrix can score R@1 = 100; here it scores the worst rank, as a
  model that cannot tell candidates apart should.
* **Several texts per video.** ``text_to_video[t]`` is the video of text ``t``; several texts
  may share one video. Text->video has one ground truth per query. A video->text query is
  answered by the best-scored of its texts: its rank is ``1 + #{texts of other videos
  scoring >= that best score}`` (its own other texts are not competitors). Videos without
  any text are not queries. Diagonal-only code silently assumes one text per video.
* **Dual softmax (DSL) is a re-scoring, not the metric.** It uses the whole test set as a
  prior (softmax over the *other* axis), which a deployed retrieval system does not have;
  the field reports it, so we do too, but always next to the plain numbers. Its scores are
  ranked in float64 log space (:mod:`vidla_eval.dsl`): at ``T = 0.01`` a float32 prior
  underflows to 0 for most pairs, and the resulting tied zeros count against the query.

Chunked computation: queries are processed ``chunk`` text rows at a time, and only counts
are kept (``>=`` comparisons against the ground truth's score), so a 100,000 x 100,000
evaluation never holds the full matrix. Blocks come from a matrix, a callable
``sim_fn(row_slice) -> block`` or two embedding matrices (dot product). Passes over the rows:

1. text->video ranks; best ground-truth score of each video; for DSL the column maxima and
   the per-row log-sum-exp (normaliser of the video->text prior);
2. video->text counts; for DSL the per-column sum of exponentials (normaliser of the
   text->video prior) and the best DSL ground-truth score of each video;
3. DSL only: text->video DSL ranks and video->text DSL counts.

The results do not depend on ``chunk``: comparisons and counts are exact, maxima are exact,
and the floating-point sums of the DSL normalisers are accumulated row by row in a fixed
order (never as per-chunk partial sums), so the chunked path equals the dense path bit for bit.

Peak memory, with ``c = chunk``, ``n_t``/``n_v`` texts/videos, ``d`` the embedding width and
``b`` bytes per score (4 for float32): the inputs (``(n_t + n_v) * d * b`` for embeddings,
``n_t * n_v * b`` for a matrix, which the caller already holds), plus
``c * n_v * (2 * b + 1)`` bytes of working blocks (the block, one scratch block, one boolean
comparison), plus about ``120 * (n_t + n_v)`` bytes of per-query vectors (ranks, best
scores, normalisers: ~15 of 8 bytes). For 100,000 x 100,000 float32 embeddings with
``d = 512`` and ``c = 1024``: 410 MB + 1024 * 100,000 * 9 B = 922 MB + 24 MB, about 1.36 GB,
under 2 GiB (the full matrix alone would be 40 GB). Halve ``chunk`` to halve the working part.
Only the block part is allocated here; a caller's matrix is sliced, never copied. DSL work is
float64 (~35 bytes per score with its temporaries), so it runs on sixteenths of a block and
stays inside the same bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidla_eval.dsl import dsl_gather_best, dsl_keys, dsl_t2v_ranks, dsl_v2t_count, new_best
from vidla_eval.dsl import dual_softmax as _dual_softmax

#: The DSL temperature: scores are divided by it inside the prior's softmax. 0.01 is the
#: usual "multiply cosine similarities by 100" of CAMoE / CLIP2Video style implementations.
DEFAULT_DSL_TEMPERATURE = 0.01

#: Metric names in table order.
METRIC_NAMES = ("R@1", "R@5", "R@10", "MdR", "MnR")

SimFn = Callable[[slice], Any]


def _to_numpy(x: Any) -> np.ndarray:
    """Tensors and arrays to a float numpy array; half precisions widen to float32 (numpy has no bf16)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        return x.numpy()
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32 if a.dtype == np.float16 else np.float64)
    return a


def _labels(text_to_video: Any, n_texts: int | None, n_videos: int) -> np.ndarray:
    if isinstance(text_to_video, torch.Tensor):
        text_to_video = text_to_video.detach().cpu().numpy()
    labels = np.asarray(text_to_video)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"text_to_video must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"text_to_video must hold integer video indices, got {labels.dtype}")
    if n_texts is not None and labels.shape[0] != n_texts:
        raise ValueError(f"text_to_video has {labels.shape[0]} entries for {n_texts} texts")
    if labels.min() < 0 or labels.max() >= n_videos:
        raise ValueError(
            f"text_to_video must index videos in [0, {n_videos}), got {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int64)


@dataclass(frozen=True)
class RetrievalRanks:
    """Ranks (1 = best) of every query, before summarising: kept so callers can slice them
    (per scale, per benchmark subset) without recomputing the similarities.

    ``t2v[t]`` is the rank of text ``t``; ``v2t[i]`` the rank of video ``v2t_videos[i]``
    (only videos that have at least one text)."""

    t2v: np.ndarray
    v2t: np.ndarray
    v2t_videos: np.ndarray
    n_videos: int
    n_texts: int


def summarize(ranks: np.ndarray) -> dict[str, float]:
    """R@K in percent, median and mean rank, and the query count of one direction."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no queries to summarise")
    out = {f"R@{k}": float(100.0 * np.mean(ranks <= k)) for k in (1, 5, 10)}
    out["MdR"] = float(np.median(ranks))
    out["MnR"] = float(np.mean(ranks))
    out["queries"] = int(ranks.size)
    return out


def _summary(ranks: RetrievalRanks) -> dict[str, dict[str, float]]:
    return {"t2v": summarize(ranks.t2v), "v2t": summarize(ranks.v2t)}


def _checked_block(block: Any, rows: int, n_videos: int) -> np.ndarray:
    """A similarity block as numpy; non-finite scores are refused because a NaN ground-truth
    score compares false against everything and would silently earn rank 1."""
    b = _to_numpy(block)
    if b.shape != (rows, n_videos):
        raise ValueError(f"similarity block has shape {b.shape}, expected {(rows, n_videos)}")
    if not np.isfinite(b).all():
        raise ValueError("similarity scores must be finite (found NaN or inf)")
    return b


def _t2v_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per text row: the number of videos scoring >= its ground truth (the ground truth included)."""
    gt = scores[np.arange(scores.shape[0]), labels]
    return np.count_nonzero(scores >= gt[:, None], axis=1)


def _v2t_count(scores: np.ndarray, labels: np.ndarray, best: np.ndarray, counts: np.ndarray) -> None:
    """Add, per video column, the texts of this block scoring >= the video's best ground-truth
    score, minus its own texts (they are not competitors)."""
    counts += np.count_nonzero(scores >= best[None, :], axis=0)
    own = scores[np.arange(scores.shape[0]), labels] >= best[labels]
    np.subtract.at(counts, labels[own], 1)


def _accumulate_rows(rows: np.ndarray, acc: np.ndarray) -> None:
    """``acc += rows.sum(axis=0)``, one row at a time: a fixed summation order whatever the
    chunk size, which a per-chunk partial sum would not give."""
    for row in rows:
        np.add(acc, row, out=acc)


def _gather_best(scores: np.ndarray, labels: np.ndarray, best: np.ndarray) -> None:
    np.maximum.at(best, labels, scores[np.arange(scores.shape[0]), labels])


def _ranks_chunked(
    sim_fn: SimFn,
    labels: np.ndarray,
    n_videos: int,
    *,
    dsl: bool,
    chunk: int,
    temperature: float,
) -> tuple[RetrievalRanks, RetrievalRanks | None]:
    """The passes described in the module docstring; returns plain and (if ``dsl``) DSL ranks."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if dsl and not temperature > 0:
        raise ValueError(f"DSL temperature must be > 0, got {temperature}")
    n_texts = labels.shape[0]
    slices = [slice(s, min(s + chunk, n_texts)) for s in range(0, n_texts, chunk)]

    def blocks() -> Iterator[tuple[slice, np.ndarray]]:
        # Yields each block once and holds no reference to it afterwards; the loops below
        # ``del`` theirs before asking for the next, so two blocks never coexist.
        for sl in slices:
            yield sl, _checked_block(sim_fn(sl), sl.stop - sl.start, n_videos)

    t2v = np.empty(n_texts, dtype=np.int64)
    best = np.full(n_videos, -np.inf)
    col_max = np.full(n_videos, -np.inf)
    row_lse = np.empty(n_texts)

    # Pass 1: plain text->video, plain best ground truths, DSL maxima and row normalisers.
    for sl, block in blocks():
        lab = labels[sl]
        t2v[sl] = _t2v_ranks(block, lab)
        _gather_best(block, lab, best)
        if dsl:
            for piece in _pieces(sl, chunk):
                row_lse[piece] = _row_lse(block[piece.start - sl.start : piece.stop - sl.start], temperature, col_max)
        del block

    has_text = np.zeros(n_videos, dtype=bool)
    has_text[labels] = True
    videos = np.flatnonzero(has_text)
    counts = np.zeros(n_videos, dtype=np.int64)
    col_sum = np.zeros(n_videos)
    best_dsl = new_best(n_videos)

    # Pass 2: plain video->text counts, DSL column normalisers, best DSL (video->text) ground truths.
    for sl, block in blocks():
        lab = labels[sl]
        _v2t_count(block, lab, best.astype(block.dtype), counts)
        if dsl:
            for piece in _pieces(sl, chunk):
                rows = block[piece.start - sl.start : piece.stop - sl.start]
                scratch = np.divide(rows, temperature, dtype=np.float64)
                scratch -= col_max
                np.exp(scratch, out=scratch)
                _accumulate_rows(scratch, col_sum)
                del scratch
                dsl_gather_best(*dsl_keys(rows, row_lse[piece, None], temperature), labels[piece], best_dsl)
        del block

    plain = RetrievalRanks(t2v, 1 + counts[videos], videos, n_videos, n_texts)
    if not dsl:
        return plain, None

    col_lse = col_max + np.log(col_sum)
    t2v_dsl = np.empty(n_texts, dtype=np.int64)
    counts_dsl = np.zeros(n_videos, dtype=np.int64)
    # Pass 3: DSL text->video ranks (prior over texts) and video->text counts (prior over videos).
    for sl, block in blocks():
        for piece in _pieces(sl, chunk):
            rows, lab = block[piece.start - sl.start : piece.stop - sl.start], labels[piece]
            t2v_dsl[piece] = dsl_t2v_ranks(*dsl_keys(rows, col_lse[None, :], temperature), lab)
            dsl_v2t_count(*dsl_keys(rows, row_lse[piece, None], temperature), lab, best_dsl, counts_dsl)
        del block
    return plain, RetrievalRanks(t2v_dsl, 1 + counts_dsl[videos], videos, n_videos, n_texts)


def _pieces(sl: slice, chunk: int) -> Iterator[slice]:
    """``sl`` in pieces of ``chunk // 16`` rows: DSL works in float64 with a few temporaries
    (~35 bytes per score), so a sixteenth of the block keeps it under the block's own bytes
    and the documented bound holds for DSL too. Exact: ranks are per row, counts add up, the
    normalisers accumulate row by row."""
    step = max(1, chunk // 16)
    for start in range(sl.start, sl.stop, step):
        yield slice(start, min(start + step, sl.stop))


def _row_lse(block: np.ndarray, temperature: float, col_max: np.ndarray) -> np.ndarray:
    """Per row ``log sum exp(block / T)`` in float64 (one reduction per row: the same whatever the
    chunk), raising ``col_max`` to the block's column maxima of ``block / T`` on the way."""
    z = np.divide(block, temperature, dtype=np.float64)
    np.maximum(col_max, z.max(axis=0), out=col_max)
    m = z.max(axis=1)
    z -= m[:, None]
    np.exp(z, out=z)
    return m + np.log(np.array([np.add.reduce(row) for row in z]))


def retrieval_ranks(
    sim: Any,
    text_to_video: Any,
    *,
    n_videos: int | None = None,
    dsl: bool = False,
    chunk: int = 1024,
    temperature: float = DEFAULT_DSL_TEMPERATURE,
) -> tuple[RetrievalRanks, RetrievalRanks | None]:
    """Per-query ranks (plain, and DSL or ``None``) from a matrix ``[n_texts, n_videos]`` or a
    callable ``sim(row_slice) -> block`` (then ``n_videos`` is required)."""
    if callable(sim) and not isinstance(sim, np.ndarray | torch.Tensor):
        if n_videos is None:
            raise ValueError("n_videos is required when the similarities come from a callable")
        labels = _labels(text_to_video, None, n_videos)
        return _ranks_chunked(sim, labels, n_videos, dsl=dsl, chunk=chunk, temperature=temperature)
    matrix = _to_numpy(sim)
    if matrix.ndim != 2:
        raise ValueError(f"sim must be [n_texts, n_videos], got shape {matrix.shape}")
    labels = _labels(text_to_video, matrix.shape[0], matrix.shape[1])
    return _ranks_chunked(
        lambda sl: matrix[sl], labels, matrix.shape[1], dsl=dsl, chunk=chunk, temperature=temperature
    )


def summarize_ranks(plain: RetrievalRanks, dsl_ranks: RetrievalRanks | None, temperature: float) -> dict[str, Any]:
    """:func:`retrieval_metrics`' result from ranks already computed (plain, and DSL or ``None``)."""
    out: dict[str, Any] = {"plain": _summary(plain)}
    if dsl_ranks is not None:
        out["dsl"] = {**_summary(dsl_ranks), "temperature": temperature}
    return out


def retrieval_metrics(
    sim: Any,
    text_to_video: Any,
    *,
    n_videos: int | None = None,
    dsl: bool = False,
    chunk: int = 1024,
    temperature: float = DEFAULT_DSL_TEMPERATURE,
) -> dict[str, Any]:
    """Text->video and video->text R@1/5/10 (percent), MdR, MnR and query counts.

    ``sim`` is a ``[n_texts, n_videos]`` array/tensor, or a callable ``sim(row_slice) -> block``
    of rows (give ``n_videos``), so the full matrix need not exist. ``text_to_video[t]`` is the
    ground-truth video of text ``t``. Returns ``{"plain": {"t2v": {...}, "v2t": {...}}}`` and,
    with ``dsl=True``, also ``"dsl"`` (same shape plus ``"temperature"``): DSL is always
    reported beside the plain numbers, never instead."""
    plain, dsl_ranks = retrieval_ranks(
        sim, text_to_video, n_videos=n_videos, dsl=dsl, chunk=chunk, temperature=temperature
    )
    return summarize_ranks(plain, dsl_ranks, temperature)


def embedding_ranks(
    text_emb: Any,
    video_emb: Any,
    text_to_video: Any,
    *,
    dsl: bool = False,
    chunk: int = 1024,
    temperature: float = DEFAULT_DSL_TEMPERATURE,
) -> tuple[RetrievalRanks, RetrievalRanks | None]:
    """:func:`retrieval_ranks` with dot-product similarities built ``chunk`` rows at a time from
    ``text_emb [n_texts, d]`` and ``video_emb [n_videos, d]`` (normalise them first for cosine
    similarity); the ``n_texts x n_videos`` matrix is never materialised."""
    t = _to_numpy(text_emb)
    v = _to_numpy(video_emb)
    if t.ndim != 2 or v.ndim != 2 or t.shape[1] != v.shape[1]:
        raise ValueError(f"embeddings must be [n, d] with the same d, got {t.shape} and {v.shape}")
    dtype = np.result_type(t.dtype, v.dtype)
    t, vt = t.astype(dtype, copy=False), v.astype(dtype, copy=False).T
    labels = _labels(text_to_video, t.shape[0], v.shape[0])
    return _ranks_chunked(lambda sl: t[sl] @ vt, labels, v.shape[0], dsl=dsl, chunk=chunk, temperature=temperature)


def retrieval_metrics_from_embeddings(
    text_emb: Any,
    video_emb: Any,
    text_to_video: Any,
    *,
    dsl: bool = False,
    chunk: int = 1024,
    temperature: float = DEFAULT_DSL_TEMPERATURE,
) -> dict[str, Any]:
    """:func:`retrieval_metrics` from embeddings, through :func:`embedding_ranks` (no full matrix)."""
    plain, dsl_ranks = embedding_ranks(
        text_emb, video_emb, text_to_video, dsl=dsl, chunk=chunk, temperature=temperature
    )
    return summarize_ranks(plain, dsl_ranks, temperature)


def dual_softmax(sim: Any, temperature: float = DEFAULT_DSL_TEMPERATURE) -> tuple[np.ndarray, np.ndarray]:
    """:func:`vidla_eval.dsl.dual_softmax` (the float64 definition) of a matrix or tensor of any dtype."""
    return _dual_softmax(_to_numpy(sim), temperature)


def format_table(metrics: dict[str, Any]) -> str:
    """A fixed-width table of :func:`retrieval_metrics`' result: one line per direction and
    scoring, plain first, so DSL numbers are never read without the plain ones beside them."""
    header = (
        f"{'direction':<10}{'scoring':<13}" + "".join(f"{m:>8}" for m in METRIC_NAMES) + f"{'queries':>9}"
    )
    lines = [header, "-" * len(header)]
    for direction in ("t2v", "v2t"):
        for scoring in ("plain", "dsl"):
            if scoring not in metrics:
                continue
            row = metrics[scoring][direction]
            label = scoring if scoring == "plain" else f"dsl T={metrics[scoring].get('temperature', '?')}"
            cells = "".join(
                f"{row[m]:>8.2f}" if m.startswith("R@") else f"{row[m]:>8.1f}" for m in METRIC_NAMES
            )
            lines.append(f"{direction:<10}{label:<13}{cells}{row['queries']:>9d}")
    return "\n".join(lines)
