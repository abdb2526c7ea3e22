"""Retrieval QA with a sentence encoder: McCrolin's teacher-student objective and ``embed``.

Batch contract: one training tuple is four texts, ``FIELDS`` (English question ``q_en``, the
question in another language ``q_ne``, the passage ``d`` and the answer sentence(s) ``pr``),
each tokenized to ``<field>_ids`` / ``<field>_mask``; ``FIELDS`` also names the kind of text
(query / passage / sentence), which picks its maximum length and prefix.

To add an objective: a pure loss in ``losses/`` and a function here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xmrc_jax.losses import mccrolin_loss

HEAD = "embed"
FIELDS = {"q_en": "query", "q_ne": "query", "d": "passage", "pr": "sentence"}
# plus the ids of each tuple's English question and passage, so that L_rank can leave in-batch
# false negatives (the same question in another language, a question of the same passage) out
GROUP_KEYS = ("q_group", "d_group")
BATCH_KEYS = tuple(f"{f}_{part}" for f in FIELDS for part in ("ids", "mask")) + GROUP_KEYS
LEVELS = ("document", "passage", "sentence")
SIMILARITIES = ("cosine", "dot")


def batch_keys(objective: str = "mccrolin") -> tuple:
    return BATCH_KEYS


def max_length(retrieval_cfg, kind: str) -> int:
    return {"query": retrieval_cfg.max_query_length, "passage": retrieval_cfg.max_passage_length,
            "sentence": retrieval_cfg.max_sentence_length}[kind]


def prefix(retrieval_cfg, kind: str) -> str:
    return retrieval_cfg.query_prefix if kind == "query" else retrieval_cfg.passage_prefix


def embed(module, params, ids, mask, normalize: bool, rng=None):
    """Sentence embeddings ``[batch, hidden]`` (fp32) from an ``embed``-head module; dropout
    when ``rng`` is given, L2-normalised when ``normalize``."""
    out = module.apply({"params": params}, ids, mask, None, deterministic=rng is None,
                       rngs=None if rng is None else {"dropout": rng})
    e = out.embeddings.astype(jnp.float32)
    if normalize:
        e = e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    return e


embed_jit = jax.jit(embed, static_argnames=("module", "normalize"))


def mccrolin_objective(module, gammas, betas, lambdas, omegas, tau: float, normalize: bool,
                       mask_false_negatives: bool = True):
    """McCrolin (Eq. 1) over a batch of tuples ``{q_en, q_ne, d, pr}_{ids,mask}``.

    The teacher is the extra step argument: a frozen tree, embedded without dropout and under
    ``stop_gradient`` (it gets no gradient and is not in the optimizer). The student is
    ``params["model"]``, embedded with dropout.
    """
    def objective(params, batch, rng, teacher):
        teacher = jax.lax.stop_gradient(teacher)
        t = {k: embed(module, teacher, batch[f"{k}_ids"], batch[f"{k}_mask"], normalize)
             for k in ("q_en", "d", "pr")}
        s = {k: embed(module, params["model"], batch[f"{k}_ids"], batch[f"{k}_mask"], normalize,
                      jax.random.fold_in(rng, i)) for i, k in enumerate(FIELDS)}
        groups = ((batch.get("q_group"), batch.get("d_group")) if mask_false_negatives
                  else (None, None))
        return mccrolin_loss(t, s, gammas, betas, lambdas, omegas, tau, None, *groups)
    return objective


def objective(name: str, module, config):
    if name != "mccrolin":
        raise ValueError(f"retrieval_qa: unknown objective {name!r}; known: ('mccrolin',)")
    m = config.mccrolin
    return mccrolin_objective(module, tuple(m.gammas), tuple(m.betas), tuple(m.lambdas),
                              tuple(m.omegas), m.tau, bool(m.normalize),
                              bool(m.mask_false_negatives))


def metric_names(retrieval_cfg) -> list:
    return [f"R@{k}" for k in retrieval_cfg.recall_at] + [f"MRR@{retrieval_cfg.mrr_at}"]


def validate(config):
    """Checks ``config.retrieval`` and ``config.mccrolin`` (choices, weight counts, lengths)."""
    r, m = config.retrieval, config.mccrolin
    checks = [("similarity", r.similarity, SIMILARITIES),
              ("select_metric", r.select_metric, metric_names(r))]
    checks += [("levels", lv, LEVELS) for lv in r.levels]
    for key, value, allowed in checks:
        if value not in allowed:
            raise ValueError(f"config.retrieval.{key}: {value!r} is not one of {list(allowed)}")
    for key, n in (("gammas", 3), ("betas", 4), ("lambdas", 2), ("omegas", 2)):
        if len(tuple(m[key])) != n:
            raise ValueError(f"config.mccrolin.{key}: expected {n} weights, got {tuple(m[key])}")
    if m.rounds < 1:
        raise ValueError(f"config.mccrolin.rounds: {m.rounds} must be at least 1")
    if m.tau <= 0:
        raise ValueError(f"config.mccrolin.tau: {m.tau} must be positive")
    fr = tuple(r.split_fractions)
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"config.retrieval.split_fractions: {fr} must be 3 non-negative "
                         "fractions (train, dev, test) summing to 1")


def check_model(config, arch):
    """Checks that queries, passages and sentences fit the model's positions."""
    r = config.retrieval
    longest = max(r.max_query_length, r.max_passage_length, r.max_sentence_length)
    if longest > arch.max_tokens:
        raise ValueError(f"config.retrieval max lengths ({longest}) exceed the model's "
                         f"{arch.max_tokens} positions")
