"""Dual softmax (DSL) re-scoring, exact in any input dtype: normalisers in float64, scores in log space.

A DSL score is ``s * exp(s / T - log_norm)``: the similarity times its softmax prior over the
other axis of the test set. At the usual ``T = 0.01`` the exponent spans hundreds (cosine
similarities differ by up to 2, so up to -200), and ``exp`` of that underflows to 0 in float32
below about -104 (float16 at -17): many candidates then score exactly 0 (or ``-0``), tie with
the ground truth and, ties counting against the query, push its rank down. Rounding the
exponent in float32 (``s / T`` near 100 has an ulp of ~1e-5) reorders close candidates too.

So the score is never formed. It is kept as ``(sign, key)`` with ``sign = sign(s)`` and
``key = sign * (log|s| + s / T - log_norm)`` (0 where ``s == 0``), computed in float64 from the
(exactly widened) input. The score's order is the order of ``sign`` first, then ``key``: a
larger positive score has a larger ``log|s| + prior``, a larger (less negative) negative score
a smaller one. Nothing underflows, whatever ``T``, and the ranks equal those of the float64
definition :func:`dual_softmax` wherever that does not underflow itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Below every real sign: the "no ground truth seen yet" of a running lexicographic maximum.
NO_SIGN = -2


def dsl_keys(block: np.ndarray, log_norm: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """``(sign int8, key float64)`` of ``block * exp(block / T - log_norm)``, ordered lexicographically.

    ``log_norm`` broadcasts against ``block`` (a row of column normalisers for text->video, a
    column of row normalisers for video->text). The same function computes the keys in every
    pass, so a ground truth gathered in one pass is bit-identical to its value in a later one."""
    s = block.astype(np.float64)
    sign = np.sign(s).astype(np.int8)
    with np.errstate(divide="ignore"):
        key = np.log(np.abs(s))  # -inf where s == 0, replaced below
    key += s / temperature
    key -= log_norm
    np.negative(key, out=key, where=sign < 0)
    key[sign == 0] = 0.0
    return sign, key


def dsl_at_least(sign: np.ndarray, key: np.ndarray, ref_sign: np.ndarray, ref_key: np.ndarray) -> np.ndarray:
    """Where the score ``(sign, key)`` is >= the reference score (broadcasting): the tie rule in log space."""
    return (sign > ref_sign) | ((sign == ref_sign) & (key >= ref_key))


def dsl_t2v_ranks(sign: np.ndarray, key: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per text row: the videos whose DSL score is >= the ground truth's (the ground truth included)."""
    rows = np.arange(sign.shape[0])
    gs, gk = sign[rows, labels][:, None], key[rows, labels][:, None]
    return np.count_nonzero(dsl_at_least(sign, key, gs, gk), axis=1)


def dsl_v2t_count(
    sign: np.ndarray, key: np.ndarray, labels: np.ndarray, best: tuple[np.ndarray, np.ndarray], counts: np.ndarray
) -> None:
    """Add, per video column, the texts of this block whose DSL score is >= the video's best ground
    truth, minus its own texts (not competitors)."""
    best_sign, best_key = best
    counts += np.count_nonzero(dsl_at_least(sign, key, best_sign[None, :], best_key[None, :]), axis=0)
    rows = np.arange(sign.shape[0])
    own = dsl_at_least(sign[rows, labels], key[rows, labels], best_sign[labels], best_key[labels])
    np.subtract.at(counts, labels[own], 1)


def dsl_gather_best(sign: np.ndarray, key: np.ndarray, labels: np.ndarray, best: tuple[np.ndarray, np.ndarray]) -> None:
    """Raise each video's running best ground-truth DSL score to its texts' in this block (lexicographic max)."""
    best_sign, best_key = best
    rows = np.arange(sign.shape[0])
    gs, gk = sign[rows, labels], key[rows, labels]
    order = np.lexsort((gk, gs, labels))  # by video, then by score: each video's best text is its last
    last = np.append(labels[order][1:] != labels[order][:-1], True)
    top = order[last]
    video, ts, tk = labels[top], gs[top], gk[top]
    better = (ts > best_sign[video]) | ((ts == best_sign[video]) & (tk > best_key[video]))
    best_sign[video[better]] = ts[better]
    best_key[video[better]] = tk[better]


def new_best(n_videos: int) -> tuple[np.ndarray, np.ndarray]:
    """A running best DSL score per video, below every real score."""
    return np.full(n_videos, NO_SIGN, dtype=np.int8), np.full(n_videos, -np.inf)


def dual_softmax(sim: Any, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Dense DSL re-scoring of a whole ``[n_texts, n_videos]`` matrix in float64: the definition.

    Returns ``(t2v_scores, v2t_scores)``: ``sim * softmax(sim / T, over texts)`` ranks videos for
    each text (how much a video prefers this text over the other texts of the test set), and
    ``sim * softmax(sim / T, over videos)`` ranks texts for each video. For inspection, small
    sets and as the tests' reference; its ``exp`` underflows only where an exponent is below
    about -745 (similarities ``745 * T`` apart). :mod:`vidla_eval.metrics` ranks the same scores
    chunked and in log space, where nothing underflows."""
    if not temperature > 0:
        raise ValueError(f"DSL temperature must be > 0, got {temperature}")
    s = np.asarray(sim, dtype=np.float64)
    z = s / temperature

    def softmax(axis: int) -> np.ndarray:
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    return s * softmax(0), s * softmax(1)
