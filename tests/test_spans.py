"""xmrc_jax.ops.spans against brute-force numpy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from references import brute_top_k_spans, host_nbest, pool_spans_np, span_types_np
from xmrc_jax.ops import (mean_pool, pool_spans, span_log_prob, span_types, top_k_spans)


def _random(rng, batch, seq, p_mask=0.7, integer=False):
    if integer:   # small integers make many exact ties
        s = rng.integers(-3, 3, size=(batch, seq)).astype(np.float32)
        e = rng.integers(-3, 3, size=(batch, seq)).astype(np.float32)
    else:
        s = rng.normal(size=(batch, seq)).astype(np.float32)
        e = rng.normal(size=(batch, seq)).astype(np.float32)
    mask = rng.random((batch, seq)) < p_mask
    return s, e, mask


def _check(s, e, mask, k, L):
    fn = jax.jit(functools.partial(top_k_spans, k=k, max_answer_len=L))
    got = [np.asarray(x) for x in fn(jnp.asarray(s), jnp.asarray(e), jnp.asarray(mask))]
    want = brute_top_k_spans(s, e, mask, k, L)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.parametrize("batch,seq,k,L", [(1, 1, 1, 1), (3, 17, 5, 4), (4, 40, 20, 30),
                                           (2, 64, 50, 30), (5, 23, 7, 1), (2, 9, 60, 3)])
@pytest.mark.parametrize("integer", [False, True])
def test_top_k_spans_matches_brute_force(batch, seq, k, L, integer):
    rng = np.random.default_rng(batch * 1000 + seq + k + L + integer)
    for _ in range(3):
        _check(*_random(rng, batch, seq, integer=integer), k, L)


def test_top_k_spans_edge_cases():
    rng = np.random.default_rng(0)
    s, e, mask = _random(rng, 4, 12)
    mask[0] = False                          # an all-masked row
    mask[1] = False
    mask[1, 5] = True                        # a single valid token: one span
    s[2, 3] = -np.inf                        # -inf logits count as absent
    e[3, :] = -np.inf
    _check(s, e, mask, 6, 4)
    starts, ends, scores = top_k_spans(jnp.asarray(s), jnp.asarray(e), jnp.asarray(mask), 6, 4)
    assert (np.asarray(starts[0]) == -1).all() and np.isneginf(np.asarray(scores[0])).all()
    assert np.asarray(starts[1]).tolist() == [5, -1, -1, -1, -1, -1]
    assert (np.asarray(starts[3]) == -1).all()


def test_top_k_spans_all_equal_scores_ordered_by_start_then_end():
    s = np.zeros((1, 6), np.float32)
    e = np.zeros((1, 6), np.float32)
    mask = np.ones((1, 6), bool)
    starts, ends, _ = top_k_spans(jnp.asarray(s), jnp.asarray(e), jnp.asarray(mask), 5, 2)
    assert list(zip(np.asarray(starts[0]), np.asarray(ends[0]))) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]


def test_agrees_with_host_side_nbest_when_true_spans_lie_in_its_grid():
    rng = np.random.default_rng(1)
    s, e, mask = _random(rng, 64, 60, p_mask=0.8)
    k, L = 5, 10
    starts, ends, scores = [np.asarray(x) for x in top_k_spans(jnp.asarray(s), jnp.asarray(e),
                                                               jnp.asarray(mask), k, L)]
    host = host_nbest(s, e, mask, k, L, n_best=20)
    compared = 0
    for b in range(s.shape[0]):
        top_s = set(np.argsort(s[b])[::-1][:20])
        top_e = set(np.argsort(e[b])[::-1][:20])
        if not all(i in top_s and j in top_e for i, j in zip(starts[b], ends[b]) if i >= 0):
            continue
        compared += 1
        assert [(i, j) for i, j, _ in host[b]] == [(i, j) for i, j in zip(starts[b], ends[b]) if i >= 0]
        np.testing.assert_allclose([v for _, _, v in host[b]], scores[b][scores[b] > -np.inf])
    assert compared > 20


def test_span_log_prob_and_types():
    rng = np.random.default_rng(2)
    s, e, valid = _random(rng, 3, 10, p_mask=0.8)
    valid[:, 0] = True
    starts = np.array([[0, 2, 3, -1], [1, 1, 4, 4], [5, 0, 0, 2]])
    ends = np.array([[0, 4, 3, -1], [1, 2, 4, 6], [5, 0, 9, 2]])
    got = np.asarray(span_log_prob(jnp.asarray(s), jnp.asarray(e), jnp.asarray(valid),
                                   jnp.asarray(starts), jnp.asarray(ends)))
    from references import log_softmax_np
    for b in range(3):
        ls, le = log_softmax_np(s[b], valid[b]), log_softmax_np(e[b], valid[b])
        for z in range(4):
            want = -np.inf if starts[b, z] < 0 else ls[starts[b, z]] + le[ends[b, z]]
            np.testing.assert_allclose(got[b, z], want, rtol=1e-5)
    gs, ge = np.array([2, 1, 0]), np.array([4, 2, 9])
    np.testing.assert_array_equal(span_types(jnp.asarray(starts), jnp.asarray(ends), jnp.asarray(gs),
                                             jnp.asarray(ge)), span_types_np(starts, ends, gs, ge))


def test_pooling():
    rng = np.random.default_rng(3)
    h = rng.normal(size=(2, 9, 5)).astype(np.float32)
    starts = np.array([[0, 3, -1], [8, 2, 2]])
    ends = np.array([[0, 7, -1], [8, 5, 2]])
    np.testing.assert_allclose(pool_spans(jnp.asarray(h), jnp.asarray(starts), jnp.asarray(ends)),
                               pool_spans_np(h, starts, ends), atol=1e-6)
    mask = np.zeros((2, 9), bool)
    mask[0, 2:5] = True
    got = np.asarray(mean_pool(jnp.asarray(h), jnp.asarray(mask)))
    np.testing.assert_allclose(got[0], h[0, 2:5].mean(0), atol=1e-6)
    np.testing.assert_array_equal(got[1], 0.0)   # empty mask -> zeros, not NaN
