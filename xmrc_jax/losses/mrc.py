"""Span-extraction losses: the baseline cross-entropy L_mrc and hard learning over candidates.

All functions return per-example losses ``[batch]``; ``masked_mean`` reduces them over the
examples that take part (batch padding, windows without a usable label).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xmrc_jax.ops.spans import GOLD, span_log_prob, span_types

HL_VARIANTS = ("mml", "hard_em", "weighted", "weighted_learned", "weighted_mml",
               "weighted_mml_learned", "weighted_type_mean")
LEARNED_VARIANTS = ("weighted_learned", "weighted_mml_learned")
# Initial per-type logits for ``weighted_learned``: softmax -> about (0.95, 0.047, 0.0024),
# so the gold span dominates at the start, as METHODS.md asks.
DEFAULT_TYPE_LOGITS = (0.0, -3.0, -6.0)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``values [batch]`` over ``mask [batch]``; 0 when the mask is empty."""
    m = mask.astype(jnp.float32)
    v = jnp.where(mask, values, 0.0)
    return jnp.sum(v * m) / jnp.maximum(jnp.sum(m), 1.0)


def mrc_loss(start_logits, end_logits, valid, start_positions, end_positions):
    """L_mrc = -log P(s = a_s) - log P(e = a_e) per example (paper Eq. 3). ``[batch]``.

    ``valid [batch, seq]`` bounds the softmax (the attention mask); positions are ``[batch]``.
    """
    lp = span_log_prob(start_logits, end_logits, valid, start_positions[:, None],
                       end_positions[:, None])
    return -lp[:, 0]


def hard_learning_loss(start_logits, end_logits, valid, cand_starts, cand_ends, cand_valid,
                       gold_start, gold_end, variant: str = "weighted_learned",
                       type_weights=None):
    """Hard-learning loss over the candidate set Z, per example ``[batch]``.

    Args:
      start_logits, end_logits, valid: ``[batch, seq]``.
      cand_starts, cand_ends, cand_valid: ``[batch, |Z|]``; invalid candidates are ignored.
      gold_start, gold_end: ``[batch]``, used for the span types.
      variant: ``mml`` (-log sum_z P(z), Eq. 4); ``hard_em`` (-log max_z P(z)); and three
        readings of the garbled Eq. 5 (METHODS.md):

        * ``weighted`` / ``weighted_learned``: -sum_l w_type(l) log P(z_l), per-span weights
          (reading c; in effect label smoothing towards near-miss spans);
        * ``weighted_mml`` / ``weighted_mml_learned``: -log sum_z w_type(z) P(z), weighted MML
          (reading a): types with weight 0 get no credit, low weights little;
        * ``weighted_type_mean``: -sum_t w_t mean_{z of type t} log P(z), weights per type
          normalised by the type's size (reading b).
      type_weights: ``[3]`` weights per span type (gold, one boundary, none); for the
        ``*_learned`` variants the learnable logits theta, turned into weights by softmax.
    """
    lp = span_log_prob(start_logits, end_logits, valid, cand_starts, cand_ends)
    ok = cand_valid & (cand_starts >= 0)
    lp = jnp.where(ok, lp, -jnp.inf)
    any_ok = jnp.any(ok, axis=-1)
    if variant == "mml":
        safe = jnp.where(any_ok[:, None], lp, 0.0)     # keeps gradients finite on empty rows
        return jnp.where(any_ok, -jax.nn.logsumexp(safe, axis=-1, where=ok | ~any_ok[:, None]), 0.0)
    if variant == "hard_em":
        return jnp.where(any_ok, -jnp.max(lp, axis=-1), 0.0)
    if variant not in HL_VARIANTS:
        raise ValueError(f"unknown hard-learning variant {variant!r}; expected one of {HL_VARIANTS}")
    if type_weights is None:
        raise ValueError(f"variant {variant!r} needs type_weights")
    w = jnp.asarray(type_weights, jnp.float32)
    if variant in LEARNED_VARIANTS:
        w = jax.nn.softmax(w)
    types = span_types(cand_starts, cand_ends, gold_start, gold_end)
    lp0 = jnp.where(ok, lp, 0.0)
    if variant in ("weighted", "weighted_learned"):
        return -jnp.sum(jnp.where(ok, w[types] * lp0, 0.0), axis=-1)
    if variant == "weighted_type_mean":
        member = ok[..., None] & (types[..., None] == jnp.arange(3))          # [b, |Z|, 3]
        count = member.sum(1)
        mean = jnp.sum(jnp.where(member, lp0[..., None], 0.0), 1) / jnp.maximum(count, 1)
        return -jnp.sum(jnp.where(count > 0, w * mean, 0.0), axis=-1)
    # weighted MML: -log sum_z w_type(z) P(z) over the candidates with a positive weight
    wz = w[types]
    use = ok & (wz > 0)
    any_use = jnp.any(use, axis=-1)
    terms = jnp.where(use, lp0 + jnp.log(jnp.where(use, wz, 1.0)), 0.0)
    lse = jax.nn.logsumexp(terms, axis=-1, where=use | ~any_use[:, None])
    return jnp.where(any_use, -lse, 0.0)


def gold_in_candidates(cand_starts, cand_ends, cand_valid, gold_start, gold_end):
    """``[batch]`` bool: the gold span is among the valid candidates."""
    types = span_types(cand_starts, cand_ends, gold_start, gold_end)
    return jnp.any((types == GOLD) & cand_valid, axis=-1)
