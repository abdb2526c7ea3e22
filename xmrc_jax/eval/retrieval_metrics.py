"""Retrieval: a chunked top-k over query-candidate similarities, and Recall@k / MRR@k.

``top_k_chunked`` never builds the full ``[queries, pool]`` similarity matrix: a ``lax.scan``
walks the pool in chunks of ``chunk`` candidates and merges each chunk's top-k into a running
top-k, so temporary memory is ``O(queries * (chunk + k))`` whatever the pool size. Ties are broken
by the lower candidate index (the same order as a stable sort on descending score).

Metrics, per query with a set of relevant candidates (possibly empty, which is a miss):

* Recall@k: 1 if a relevant candidate is among the top k, else 0 (the paper's R@1, R@10: with
  one relevant candidate per query this is the usual recall; with several it is "success@k");
* MRR@k: 1 / rank of the first relevant candidate if it is within the top k, else 0.

Both are averaged over queries and reported as percentages.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

SIMILARITIES = ("dot", "cosine")


def normalize(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("k", "chunk", "similarity"))
def top_k_chunked(queries, pool, k: int, chunk: int = 4096, similarity: str = "dot",
                  pool_size=None):
    """Top-``k`` candidates of each query: ``(scores [Q, k], indices [Q, k])``, best first.

    ``queries [Q, D]``, ``pool [N, D]``; ``similarity`` "dot" or "cosine". ``pool_size`` (a
    traced scalar, default ``N``) marks rows at and beyond it as padding, so a caller can pad
    pools to a few fixed sizes without recompiling. Where fewer than ``k`` real candidates
    exist the rest have index -1 and score -inf.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity {similarity!r}: expected one of {SIMILARITIES}")
    q = queries.astype(jnp.float32)
    if similarity == "cosine":
        q = normalize(q)
    n = pool.shape[0]
    size = n if pool_size is None else pool_size
    chunk = max(1, min(chunk, n))
    num_chunks = -(-n // chunk)
    kk = min(k, chunk)

    def body(carry, i):
        best_s, best_i = carry
        # Slices of the pool itself (no padded or normalised copy of it): the last chunk is
        # shifted back to end at n, and rows an earlier chunk already scored are masked.
        begin = jnp.minimum(i * chunk, n - chunk)
        block = jax.lax.dynamic_slice_in_dim(pool, begin, chunk, axis=0).astype(jnp.float32)
        if similarity == "cosine":
            block = normalize(block)
        s = q @ block.T                                              # [Q, chunk]
        idx = begin + jnp.arange(chunk, dtype=jnp.int32)
        s = jnp.where(((idx >= i * chunk) & (idx < size))[None, :], s, -jnp.inf)
        cs, ci = jax.lax.top_k(s, kk)
        # Running best first: its indices are all lower, so top_k's lower-position-first rule
        # keeps the lower candidate index on ties.
        all_s = jnp.concatenate([best_s, cs], axis=1)
        all_i = jnp.concatenate([best_i, idx[ci]], axis=1)
        top_s, pos = jax.lax.top_k(all_s, k)
        return (top_s, jnp.take_along_axis(all_i, pos, axis=1)), None

    init = (jnp.full((q.shape[0], k), -jnp.inf, jnp.float32),
            jnp.full((q.shape[0], k), -1, jnp.int32))
    (scores, indices), _ = jax.lax.scan(body, init, jnp.arange(num_chunks, dtype=jnp.int32))
    indices = jnp.where(jnp.isneginf(scores), -1, indices)
    return scores, indices


def first_relevant_rank(ranked: np.ndarray, relevant: list) -> np.ndarray:
    """1-based rank of the first relevant candidate in each row of ``ranked [Q, k]`` (0 = none
    in the top k)."""
    ranks = np.zeros(len(ranked), np.int64)
    for i, (row, rel) in enumerate(zip(ranked, relevant)):
        hit = np.flatnonzero(np.isin(row, rel) & (row >= 0))
        ranks[i] = hit[0] + 1 if len(hit) else 0
    return ranks


def retrieval_metrics(ranked: np.ndarray, relevant: list, recall_at=(1, 10), mrr_at: int = 10):
    """``{"R@1": %, "R@10": %, "MRR@10": %, "queries": n, "no_relevant": m}`` from a ranking
    ``[Q, >= max k]`` and each query's relevant candidate indices."""
    ranked = np.asarray(ranked)
    need = max(max(recall_at), mrr_at)
    if ranked.shape[1] < need:
        raise ValueError(f"ranking has {ranked.shape[1]} columns; metrics need {need}")
    ranks = first_relevant_rank(ranked[:, :need], relevant)
    n = max(len(ranks), 1)
    out = {f"R@{k}": 100.0 * float(np.sum((ranks >= 1) & (ranks <= k))) / n for k in recall_at}
    rr = np.where((ranks >= 1) & (ranks <= mrr_at), 1.0 / np.maximum(ranks, 1), 0.0)
    out[f"MRR@{mrr_at}"] = 100.0 * float(rr.sum()) / n
    out["queries"] = int(len(ranks))
    out["no_relevant"] = int(sum(len(r) == 0 for r in relevant))
    return out


def micro_average(per_language: dict) -> dict:
    """Query-weighted average over languages (every query counts once)."""
    total = sum(m["queries"] for m in per_language.values())
    keys = [k for k in next(iter(per_language.values())) if k.startswith(("R@", "MRR@"))]
    out = {k: sum(m[k] * m["queries"] for m in per_language.values()) / max(total, 1) for k in keys}
    out["queries"] = total
    out["no_relevant"] = sum(m["no_relevant"] for m in per_language.values())
    return out
