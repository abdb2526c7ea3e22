"""Span operations on start/end logits and hidden states: pure, jit-compilable, batch-first.

Used by candidate mining, answer-aware contrastive learning and evaluation alike.

A span ``(i, j)`` of a row is *valid* when ``mask[i]`` and ``mask[j]`` hold and
``i <= j < i + max_answer_len``; its score is ``start_logits[i] + end_logits[j]``. Spans whose
score is ``-inf`` count as absent.

``top_k_spans`` is exact over all valid spans and costs ``O(seq * max_answer_len)``:

1. ``m[i] = start[i] + max_{i <= j < i + L, mask[j]} end[j]`` (a sliding-window max) is the best
   score of any span starting at ``i``.
2. Keep the ``k`` starts with the largest ``m`` (ties: lower start first).
   *Exactness.* Let ``C`` be those starts and ``(i, j)`` a span with ``i`` not in ``C``. Every
   ``c`` in ``C`` has ``m[c] > m[i]``, or ``m[c] == m[i]`` and ``c < i``. Its best span
   ``(c, j_c)`` therefore either scores higher than ``(i, j)`` (score <= m[i]) or scores the same
   with a lower start. That gives ``k`` distinct spans ranked before ``(i, j)``, so ``(i, j)`` is
   not in the top ``k``: every top-``k`` span starts in ``C``.
3. Score the ``k x L`` band of those starts (ordered by start) and take the top ``k``; a flat
   index ordered by (start, end) makes ``lax.top_k``'s lower-index-first tie rule the
   (lower start, lower end) rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf

# Span types relative to the gold span (paper: types (1), (2), (3)).
GOLD, ONE_BOUNDARY, NO_BOUNDARY = 0, 1, 2


def _masked(x: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.where(mask, x.astype(jnp.float32), NEG_INF)


def top_k_spans(start_logits: jax.Array, end_logits: jax.Array, mask: jax.Array, k: int,
                max_answer_len: int):
    """The ``k`` best valid spans per row.

    Args:
      start_logits, end_logits: ``[batch, seq]`` float.
      mask: ``[batch, seq]`` bool, true on tokens that may start or end an answer (context).
      k, max_answer_len: static ints.
    Returns:
      ``(starts, ends, scores)``, each ``[batch, k]`` (int32, int32, float32), sorted by score
      descending, ties by lower start then lower end; missing spans have index -1, score -inf.
    """
    batch, seq = start_logits.shape
    L = int(max_answer_len)
    if L < 1 or k < 1:
        raise ValueError(f"k ({k}) and max_answer_len ({max_answer_len}) must be >= 1")
    mask = mask.astype(bool)
    s = _masked(start_logits, mask)
    e = _masked(end_logits, mask)
    # 1. best end score in the window [i, i + L) for every start i.
    e_pad = jnp.pad(e, ((0, 0), (0, L - 1)), constant_values=NEG_INF)
    best_end = jax.lax.reduce_window(e_pad, NEG_INF, jax.lax.max, (1, L), (1, 1), "VALID")
    m = s + best_end                                                     # [batch, seq]
    # 2. candidate starts, then put them in ascending order (see the module docstring).
    kc = min(k, seq)
    _, cand = jax.lax.top_k(m, kc)                                       # [batch, kc]
    cand = jnp.sort(cand, axis=-1)
    # 3. the band of each candidate start.
    offsets = jnp.arange(L, dtype=cand.dtype)
    ends = cand[..., None] + offsets                                     # [batch, kc, L]
    end_scores = jnp.take_along_axis(e_pad, ends.reshape(batch, -1), axis=1).reshape(ends.shape)
    start_scores = jnp.take_along_axis(s, cand, axis=1)[..., None]
    scores = (start_scores + end_scores).reshape(batch, kc * L)
    if kc * L < k:
        scores = jnp.pad(scores, ((0, 0), (0, k - kc * L)), constant_values=NEG_INF)
    top_scores, flat = jax.lax.top_k(scores, k)
    flat = jnp.minimum(flat, kc * L - 1)
    top_starts = jnp.take_along_axis(cand, flat // L, axis=1)
    top_ends = top_starts + flat % L
    present = top_scores > NEG_INF
    return (jnp.where(present, top_starts, -1).astype(jnp.int32),
            jnp.where(present, top_ends, -1).astype(jnp.int32),
            top_scores)


def log_softmax_masked(logits: jax.Array, valid: jax.Array) -> jax.Array:
    """``log_softmax`` over positions where ``valid [batch, seq]`` holds; -inf elsewhere."""
    return jax.nn.log_softmax(_masked(logits, valid), axis=-1)


def span_log_prob(start_logits: jax.Array, end_logits: jax.Array, valid: jax.Array,
                  starts: jax.Array, ends: jax.Array) -> jax.Array:
    """``log P(s=start) + log P(e=end)`` for spans ``[batch, k]``; -inf where an index is -1.

    The softmaxes run over the window's positions where ``valid [batch, seq]`` holds (the
    attention mask: question, context and the special token used as the no-answer label).
    """
    ls = log_softmax_masked(start_logits, valid)
    le = log_softmax_masked(end_logits, valid)
    present = (starts >= 0) & (ends >= 0)
    lp = (jnp.take_along_axis(ls, jnp.maximum(starts, 0), axis=1)
          + jnp.take_along_axis(le, jnp.maximum(ends, 0), axis=1))
    return jnp.where(present, lp, NEG_INF)


def span_types(starts: jax.Array, ends: jax.Array, gold_start: jax.Array,
               gold_end: jax.Array) -> jax.Array:
    """Type of each span ``[batch, k]`` against the gold span ``[batch]``.

    ``GOLD`` (0): both boundaries equal; ``ONE_BOUNDARY`` (1): exactly one equal;
    ``NO_BOUNDARY`` (2): neither.
    """
    same_s = starts == gold_start[:, None]
    same_e = ends == gold_end[:, None]
    return jnp.where(same_s & same_e, GOLD,
                     jnp.where(same_s | same_e, ONE_BOUNDARY, NO_BOUNDARY)).astype(jnp.int32)


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``hidden [batch, seq, dim]`` over positions where ``mask [batch, seq]`` holds.

    Rows with an empty mask give zeros (never NaN).
    """
    m = mask.astype(hidden.dtype)[..., None]
    return jnp.sum(hidden * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1)


def pool_spans(hidden: jax.Array, starts: jax.Array, ends: jax.Array) -> jax.Array:
    """Mean of ``hidden [batch, seq, dim]`` over each span's tokens -> ``[batch, k, dim]``.

    ``starts, ends: [batch, k]``, inclusive; a span with index -1 pools to zeros. Computed as a
    ``[batch, k, seq]`` 0/1 matrix times ``hidden`` (exact, no cumulative-sum cancellation).
    """
    pos = jnp.arange(hidden.shape[1])
    inside = (pos >= starts[..., None]) & (pos <= ends[..., None]) & (starts[..., None] >= 0)
    w = inside.astype(hidden.dtype)
    total = jnp.einsum("bks,bsd->bkd", w, hidden)
    return total / jnp.maximum(jnp.sum(w, axis=-1, keepdims=True), 1)


def cosine(a: jax.Array, b: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Cosine similarity along the last axis (broadcasting)."""
    num = jnp.sum(a * b, axis=-1)
    den = jnp.sqrt(jnp.sum(a * a, axis=-1) * jnp.sum(b * b, axis=-1))
    return num / jnp.maximum(den, eps)
