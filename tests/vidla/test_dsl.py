"""Dual softmax ranks equal the float64 definition in every input dtype, at the usual T = 0.01:
no underflow to tied zeros, no reordering by float32 rounding, ties still against the query."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidla_eval.dsl import dsl_keys
from vidla_eval.metrics import dual_softmax, retrieval_ranks


def reference_ranks(sim64: np.ndarray, labels: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Ranks by the definition, in float64, one query at a time (ties against the query)."""
    t2v_scores, v2t_scores = dual_softmax(sim64, temperature)
    rows = np.arange(len(labels))
    t2v = np.count_nonzero(t2v_scores >= t2v_scores[rows, labels][:, None], axis=1)
    v2t = []
    for v in np.unique(labels):
        own = labels == v
        best = v2t_scores[own, v].max()
        v2t.append(1 + np.count_nonzero(v2t_scores[~own, v] >= best))
    return t2v, np.asarray(v2t)


def wide_problem(seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """N(0, 0.3) similarities: at T = 0.01 the prior's exponents reach below -200."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(n)
    labels[: n // 4] = labels[n // 4 : n // 2]  # some videos with two texts, some with none
    return 0.3 * rng.standard_normal((n, n)), labels


@pytest.mark.parametrize("dtype", [np.float32, np.float16, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("chunk", [7, 1024])
def test_dsl_ranks_at_t_001_equal_the_float64_definition(dtype, chunk: int) -> None:
    sim, labels = wide_problem()
    if isinstance(dtype, torch.dtype):
        given = torch.from_numpy(sim).to(dtype)
        sim64 = given.double().numpy()  # the values the input holds, exactly
    else:
        given = sim.astype(dtype)
        sim64 = given.astype(np.float64)
    t2v_scores, _ = dual_softmax(sim64, 0.01)
    assert (t2v_scores != 0).all()  # the reference itself does not underflow here
    want_t2v, want_v2t = reference_ranks(sim64, labels, 0.01)
    _, dsl = retrieval_ranks(given, labels, dsl=True, chunk=chunk, temperature=0.01)
    np.testing.assert_array_equal(dsl.t2v, want_t2v)
    np.testing.assert_array_equal(dsl.v2t, want_v2t)


def test_log_space_keys_order_scores_of_every_sign_and_keep_exact_ties() -> None:
    sim = np.array([[0.5, -0.5, 0.0, 0.5, -0.9]])
    sign, key = dsl_keys(sim, np.zeros((1, 1)), 1.0)
    # score = s * exp(s): 0.824, -0.303, 0, 0.824, -0.366
    order = sorted(range(5), key=lambda i: (sign[0, i], key[0, i]))
    assert order == [4, 1, 2, 0, 3] or order == [4, 1, 2, 3, 0]
    assert (sign[0, 0], key[0, 0]) == (sign[0, 3], key[0, 3])  # equal scores stay equal: a tie
    _, dsl = retrieval_ranks(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0, 1]), dsl=True)
    assert dsl.t2v.tolist() == [2, 2] and dsl.v2t.tolist() == [2, 2]  # ties count against the query
