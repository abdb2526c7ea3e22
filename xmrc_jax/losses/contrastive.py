"""Answer-aware contrastive learning (AA-CL, paper Eqs. 6-8) with cosine hard-negative mining."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xmrc_jax.ops.spans import cosine, mean_pool, pool_spans


NEGATIVES = ("not_gold", "no_overlap")


def hard_negatives(r_gold, r_cand, cand_starts, cand_ends, cand_valid, gold_start, gold_end,
                   negative: str = "not_gold"):
    """Index of the most gold-like candidate that may be a negative (Eq. 7).

    ``negative``: ``"not_gold"``: any candidate but the gold span itself (the paper's words,
    "other than the gold answer"); ``"no_overlap"``: only candidates that share no token with
    the gold span (a candidate that contains the answer or a part of it is no negative).

    Args:
      r_gold: ``[batch, dim]``; r_cand: ``[batch, A, dim]``.
      cand_starts, cand_ends, cand_valid: ``[batch, A]``; gold_start, gold_end: ``[batch]``.
    Returns:
      ``(index [batch], has_negative [batch], similarity [batch], overlaps [batch])``: the
      choice (made under ``stop_gradient``), whether there was one, its cosine to the gold
      span, and whether it shares a token with the gold span.
    """
    if negative not in NEGATIVES:
        raise ValueError(f"hard negative {negative!r}: expected one of {NEGATIVES}")
    sim = jax.lax.stop_gradient(cosine(r_gold[:, None, :], r_cand))          # [batch, A]
    is_gold = (cand_starts == gold_start[:, None]) & (cand_ends == gold_end[:, None])
    overlap = (cand_starts <= gold_end[:, None]) & (cand_ends >= gold_start[:, None])
    eligible = cand_valid & (cand_starts >= 0) & ~(overlap if negative == "no_overlap"
                                                   else is_gold)
    sim = jnp.where(eligible, sim, -jnp.inf)
    idx = jnp.argmax(sim, axis=-1)
    chosen_overlaps = jnp.take_along_axis(overlap, idx[:, None], axis=1)[:, 0]
    return idx, jnp.any(eligible, axis=-1), jnp.max(sim, axis=-1), chosen_overlaps


def info_nce_over_batch(r_q, r_pos, r_neg, active, tau: float):
    """Eq. 8: for each active row b, -log exp(cos(q_b, pos_b)/tau) / sum_n exp(cos(q_b, n)/tau),
    where n runs over the positives and hard negatives of all active rows. ``[batch]``."""
    cands = jnp.concatenate([r_pos, r_neg], axis=0)                            # [2B, dim]
    logits = cosine(r_q[:, None, :], cands[None, :, :]) / tau                  # [B, 2B]
    col_active = jnp.concatenate([active, active])
    logits = jnp.where(col_active[None, :], logits, -jnp.inf)
    batch = r_q.shape[0]
    pos_logit = logits[jnp.arange(batch), jnp.arange(batch)]
    lse = jax.nn.logsumexp(jnp.where(active[:, None], logits, 0.0), axis=-1)
    return jnp.where(active, lse - jnp.where(active, pos_logit, 0.0), 0.0)


def aacl_loss(hidden, question_mask, gold_start, gold_end, gold_valid, cand_starts, cand_ends,
              cand_valid, tau: float = 0.1, negative: str = "not_gold"):
    """Answer-aware contrastive loss. Returns ``(loss, aux)``.

    Args:
      hidden: last hidden states ``[batch, seq, dim]``.
      question_mask: ``[batch, seq]`` bool, the question's tokens (r_q is their mean).
      gold_start, gold_end, gold_valid: ``[batch]``; rows whose gold answer is not inside the
        window (``gold_valid`` false) take no part.
      cand_starts, cand_ends, cand_valid: ``[batch, A]``, the current top-|A| spans (selected by
        the caller from stop-gradient logits).
      tau: temperature of the cosine logits.
      negative: which candidates may be the hard negative (``hard_negatives``).
    aux: ``num_active`` (rows that took part), ``neg_similarity`` (mean cosine between gold and
    the chosen hard negatives), ``neg_overlap`` (share of those negatives that share a token
    with the gold span), ``pos_similarity`` (mean cos(r_q, r_pos)), ``per_example``.
    """
    hidden = hidden.astype(jnp.float32)
    r_q = mean_pool(hidden, question_mask)
    r_pos = pool_spans(hidden, gold_start[:, None], gold_end[:, None])[:, 0]
    r_cand = pool_spans(hidden, cand_starts, cand_ends)
    idx, has_neg, neg_sim, overlaps = hard_negatives(r_pos, r_cand, cand_starts, cand_ends,
                                                     cand_valid, gold_start, gold_end, negative)
    r_neg = jnp.take_along_axis(r_cand, idx[:, None, None], axis=1)[:, 0]
    active = gold_valid.astype(bool) & has_neg
    per = info_nce_over_batch(r_q, r_pos, r_neg, active, tau)
    n = jnp.sum(active.astype(jnp.float32))
    loss = jnp.sum(per) / jnp.maximum(n, 1.0)
    denom = jnp.maximum(n, 1.0)
    aux = dict(num_active=n,
               neg_similarity=jnp.sum(jnp.where(active, neg_sim, 0.0)) / denom,
               neg_overlap=jnp.sum((active & overlaps).astype(jnp.float32)) / denom,
               pos_similarity=jnp.sum(jnp.where(active, cosine(r_q, r_pos), 0.0)) / denom,
               per_example=per)
    return loss, aux
