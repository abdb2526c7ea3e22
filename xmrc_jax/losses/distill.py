"""McCrolin losses (Findings of EMNLP 2024): cross-lingual consistency (MSE), in-batch ranking
(InfoNCE) and hierarchical alignment, on teacher and student embeddings ``[batch, dim]``.

The teacher's embeddings are wrapped in ``stop_gradient`` here too, so a caller that forgets to
freeze the teacher still sends it no gradient. ``example_mask [batch]`` marks real rows (batch
padding is ignored, also as an in-batch negative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xmrc_jax.losses.mrc import masked_mean


def _mask(x, example_mask):
    return jnp.ones(x.shape[0], bool) if example_mask is None else example_mask.astype(bool)


def squared_distance(a, b):
    """``||a - b||^2`` per row ``[batch]``."""
    return jnp.sum(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)), axis=-1)


def in_batch_info_nce(anchors, positives, tau: float, example_mask=None, groups=None):
    """CL(anchors, positives): row b's positive is ``positives[b]``, its negatives the other rows'
    positives; dot-product similarity over ``tau``. Per-example loss ``[batch]``.

    ``groups [batch]`` (optional int ids, e.g. of the passage or the English question): another
    row of the same group is a false negative (the same passage, the same question in another
    language) and is left out of row b's denominator."""
    m = _mask(anchors, example_mask)
    logits = (anchors.astype(jnp.float32) @ positives.astype(jnp.float32).T) / tau
    keep = m[None, :]
    if groups is not None:
        n = anchors.shape[0]
        keep = keep & ((groups[:, None] != groups[None, :]) | jnp.eye(n, dtype=bool))
    logits = jnp.where(keep, logits, -jnp.inf)
    lse = jax.nn.logsumexp(jnp.where(m[:, None], logits, 0.0), axis=-1)
    return jnp.where(m, lse - jnp.where(m, jnp.diagonal(logits), 0.0), 0.0)


def xlc_loss(t_q_en, t_d, s_q_ne, s_d, s_q_en, betas=(1.0, 1.0, 1.0, 1.0), example_mask=None):
    """L_XLC (Eq. 2): b1|T(q_en)-S(q_ne)|^2 + b2|T(d)-S(d)|^2 + b3|T(d)-S(q_ne)|^2
    + b4|T(q_en)-S(q_en)|^2, mean over the batch. Returns ``(loss, aux)``."""
    t_q_en, t_d = jax.lax.stop_gradient(t_q_en), jax.lax.stop_gradient(t_d)
    m = _mask(t_q_en, example_mask)
    terms = dict(xlc_qen_qne=squared_distance(t_q_en, s_q_ne), xlc_d_d=squared_distance(t_d, s_d),
                 xlc_d_qne=squared_distance(t_d, s_q_ne), xlc_qen_qen=squared_distance(t_q_en, s_q_en))
    aux = {k: masked_mean(v, m) for k, v in terms.items()}
    loss = sum(b * aux[k] for b, k in zip(betas, terms))
    return loss, aux


def rank_loss(t_q_en, t_d, s_q_ne, lambdas=(1.0, 1.0), tau: float = 0.05, example_mask=None,
              q_groups=None, d_groups=None):
    """L_rank (Eqs. 3-4): l1 CL(T(q_en), S(q_ne)) + l2 CL(T(d), S(q_ne)). ``(loss, aux)``.
    ``q_groups`` / ``d_groups`` (question and passage ids) mask in-batch false negatives: the
    same question in another language for the first term, a question of the same passage for
    the second."""
    t_q_en, t_d = jax.lax.stop_gradient(t_q_en), jax.lax.stop_gradient(t_d)
    m = _mask(t_q_en, example_mask)
    aux = dict(rank_qen_qne=masked_mean(in_batch_info_nce(t_q_en, s_q_ne, tau, m, q_groups), m),
               rank_d_qne=masked_mean(in_batch_info_nce(t_d, s_q_ne, tau, m, d_groups), m))
    return lambdas[0] * aux["rank_qen_qne"] + lambdas[1] * aux["rank_d_qne"], aux


def ha_loss(t_pr, s_pr, s_q_ne, omegas=(1.0, 1.0), example_mask=None):
    """L_HA (Eq. 5): w1|T(PR)-S(PR)|^2 + w2|T(PR)-S(q_ne)|^2. ``(loss, aux)``."""
    t_pr = jax.lax.stop_gradient(t_pr)
    m = _mask(t_pr, example_mask)
    aux = dict(ha_pr_pr=masked_mean(squared_distance(t_pr, s_pr), m),
               ha_pr_qne=masked_mean(squared_distance(t_pr, s_q_ne), m))
    return omegas[0] * aux["ha_pr_pr"] + omegas[1] * aux["ha_pr_qne"], aux


def mccrolin_loss(teacher: dict, student: dict, gammas=(1.0, 1.0, 1.0), betas=(1.0, 1.0, 1.0, 1.0),
                  lambdas=(1.0, 1.0), omegas=(1.0, 1.0), tau: float = 0.05, example_mask=None,
                  q_groups=None, d_groups=None):
    """Total (Eq. 1): g1 L_XLC + g2 L_rank + g3 L_HA.

    ``teacher`` holds ``q_en``, ``d``, ``pr``; ``student`` holds ``q_en``, ``q_ne``, ``d``, ``pr``
    (each ``[batch, dim]``); ``q_groups`` / ``d_groups`` mask L_rank's false negatives.
    Returns ``(loss, aux)`` with every term.
    """
    xlc, a1 = xlc_loss(teacher["q_en"], teacher["d"], student["q_ne"], student["d"],
                       student["q_en"], betas, example_mask)
    rank, a2 = rank_loss(teacher["q_en"], teacher["d"], student["q_ne"], lambdas, tau, example_mask,
                         q_groups, d_groups)
    ha, a3 = ha_loss(teacher["pr"], student["pr"], student["q_ne"], omegas, example_mask)
    aux = {**a1, **a2, **a3, "xlc": xlc, "rank": rank, "ha": ha}
    return gammas[0] * xlc + gammas[1] * rank + gammas[2] * ha, aux
