"""Extractive (span) question answering: the xMRC paper's objectives and top-k prediction.

Batch contract (arrays from ``data.build_features`` plus the mined candidates):

* ``TRAIN_KEYS``: what ``mrc`` reads (and ``hl_aacl`` besides ``CANDIDATE_KEYS``);
* ``CANDIDATE_KEYS``: the mined top-|Z| spans per window (``mine`` writes them);
* ``PREDICT_KEYS``: what ``predict_top_k`` reads (evaluation and mining);
* ``SEQUENCE_KEYS``: the token-aligned ones, which length-grouped batches cut.

To add an objective: a pure loss in ``losses/`` and an entry in ``OBJECTIVES`` here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from xmrc_jax.data import expand
from xmrc_jax.losses import DEFAULT_TYPE_LOGITS, HL_VARIANTS, aacl_loss, hard_learning_loss, \
    mrc_loss
from xmrc_jax.losses.contrastive import NEGATIVES
from xmrc_jax.losses.mrc import LEARNED_VARIANTS
from xmrc_jax.ops import top_k_spans

HEAD = "span"
SELECTIONS = ("english_dev", "target_dev", "last")
# hl.variant "mrc" puts L_mrc where L_hard would be: the paper's "- HL" ablation (L_mrc + AA-CL).
VARIANTS = HL_VARIANTS + ("mrc",)
# The paper's ablations (Table 6) by name: hl.ablation sets hl.variant / hl.alpha.
# ``control``: the second stage with L_mrc alone (no HL, no AA-CL): the same further steps as
# the method gets, the fair control for "HL + AA-CL beats extra training".
ABLATIONS = {"full": {}, "no_hl": {"variant": "mrc"}, "no_aacl": {"alpha": 0.0},
             "mml": {"variant": "mml"}, "control": {"variant": "mrc", "alpha": 0.0}}
INITS = ("baseline", "pretrained")
PREDICT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "context_mask")
TRAIN_KEYS = PREDICT_KEYS + ("question_mask", "start_positions", "end_positions",
                             "answer_in_window")
CANDIDATE_KEYS = ("cand_starts", "cand_ends", "cand_valid")
# [N, L] token-aligned: what length-grouped training batches cut (the rest index into them)
SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "context_mask", "question_mask")


def batch_keys(objective: str) -> tuple:
    """The arrays an objective reads."""
    return TRAIN_KEYS + (CANDIDATE_KEYS if objective == "hl_aacl" else ())


def _forward(module, params, batch, rng, deterministic=False):
    return module.apply({"params": params["model"]}, batch["input_ids"], batch["attention_mask"],
                        batch["token_type_ids"], deterministic=deterministic,
                        rngs=None if deterministic else {"dropout": rng})


def mrc_objective(module):
    """Baseline: L_mrc (paper Eq. 3)."""
    def objective(params, batch, rng):
        out = _forward(module, params, batch, rng)
        per = mrc_loss(out.start_logits, out.end_logits, batch["attention_mask"].astype(bool),
                       batch["start_positions"], batch["end_positions"])
        loss = jnp.mean(per)
        return loss, {"loss_mrc": loss}
    return objective


def hl_aacl_objective(module, variant: str, alpha: float, tau: float, num_contrast: int,
                      max_answer_len: int, type_weights=None, negative: str = "not_gold"):
    """L = alpha L_contrast + (1 - alpha) L_hard (paper Eq. 9); the top-|A| spans of AA-CL are
    recomputed from the step's own (stop-gradient) logits."""
    def objective(params, batch, rng):
        out = _forward(module, params, batch, rng)
        valid = batch["attention_mask"].astype(bool)
        aux, loss = {}, 0.0
        if alpha < 1.0 and variant == "mrc":
            hard = jnp.mean(mrc_loss(out.start_logits, out.end_logits, valid,
                                     batch["start_positions"], batch["end_positions"]))
            aux["loss_mrc"] = hard
            loss = loss + (1.0 - alpha) * hard
        elif alpha < 1.0:
            learned = variant in LEARNED_VARIANTS
            weights = params["hl"]["type_logits"] if learned else type_weights
            per = hard_learning_loss(out.start_logits, out.end_logits, valid, batch["cand_starts"],
                                     batch["cand_ends"], batch["cand_valid"],
                                     batch["start_positions"], batch["end_positions"], variant,
                                     weights)
            hard = jnp.mean(per)
            aux["loss_hard"] = hard
            loss = loss + (1.0 - alpha) * hard
            if learned:
                w = jax.nn.softmax(params["hl"]["type_logits"])
                aux.update(hl_w_gold=w[0], hl_w_one=w[1], hl_w_none=w[2])
        if alpha > 0.0:
            starts, ends, _ = top_k_spans(jax.lax.stop_gradient(out.start_logits),
                                          jax.lax.stop_gradient(out.end_logits),
                                          batch["context_mask"], num_contrast, max_answer_len)
            cl, cl_aux = aacl_loss(out.last_hidden_state, batch["question_mask"],
                                   batch["start_positions"], batch["end_positions"],
                                   batch["answer_in_window"], starts, ends, starts >= 0, tau,
                                   negative)
            aux.update(loss_contrast=cl, aacl_active=cl_aux["num_active"],
                       aacl_neg_similarity=cl_aux["neg_similarity"],
                       aacl_neg_overlap=cl_aux["neg_overlap"])
            loss = loss + alpha * cl
        return loss, aux
    return objective


def objective(name: str, module, config):
    """The objective ``name`` (``mrc`` | ``hl_aacl``) with its settings from ``config``."""
    if name == "mrc":
        return mrc_objective(module)
    if name == "hl_aacl":
        hl = config.hl
        return hl_aacl_objective(module, hl.variant, hl.alpha, hl.tau, hl.num_contrast,
                                 config.max_answer_length, tuple(hl.type_weights), hl.negative)
    raise ValueError(f"span_qa: unknown objective {name!r}; known: ('mrc', 'hl_aacl')")


def extra_params(name: str, config):
    """Trainable parameters an objective adds beside the model (HL's learned type weights)."""
    if name == "hl_aacl" and config.hl.variant in LEARNED_VARIANTS:
        return {"hl": {"type_logits": jnp.asarray(DEFAULT_TYPE_LOGITS, jnp.float32)}}
    return None


def learning_rates(name: str, config) -> dict:
    """Peak learning rates of the extra parameters (``{"hl": hl.weights_lr}``; 0 = the
    model's ``train.learning_rate``)."""
    if name == "hl_aacl" and config.hl.variant in LEARNED_VARIANTS and config.hl.weights_lr > 0:
        return {"hl": float(config.hl.weights_lr)}
    return {}


def learned_type_weights(params) -> dict | None:
    """``{"gold", "one_boundary", "none"}`` softmax weights when the HL weights were learned."""
    if "hl" not in params:
        return None
    w = jax.device_get(jax.nn.softmax(jnp.asarray(params["hl"]["type_logits"])))
    return {"gold": float(w[0]), "one_boundary": float(w[1]), "none": float(w[2])}


@functools.partial(jax.jit, static_argnames=("module", "k", "max_answer_len"))
def predict_top_k(module, params, batch, k: int, max_answer_len: int):
    """Top-k spans of each window ``(starts, ends, scores)`` (evaluation and candidate mining)."""
    out = module.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                       batch["token_type_ids"], deterministic=True)
    return top_k_spans(out.start_logits, out.end_logits, batch["context_mask"], k, max_answer_len)


def resolve(config):
    """Applies ``hl.ablation`` (run once on the normalised config, before validation)."""
    if config.hl.ablation not in ABLATIONS:
        raise ValueError(f"config.hl.ablation: {config.hl.ablation!r} is not one of "
                         f"{list(ABLATIONS)}")
    config.hl.update(ABLATIONS[config.hl.ablation])


def validate(config):
    """Checks the span-QA settings (``hl``, ``max_answer_length``, ``eval``, data lengths)."""
    hl = config.hl
    if hl.variant not in VARIANTS:
        raise ValueError(f"config.hl.variant: {hl.variant!r} is not one of {list(VARIANTS)}")
    if hl.init not in INITS:
        raise ValueError(f"config.hl.init: {hl.init!r} is not one of {list(INITS)}")
    if not 0.0 <= hl.alpha <= 1.0:
        raise ValueError(f"config.hl.alpha: {hl.alpha} is not in [0, 1]")
    if len(tuple(hl.type_weights)) != 3:
        raise ValueError("config.hl.type_weights: expected 3 weights (gold, one boundary, none), "
                         f"got {tuple(hl.type_weights)}")
    for key in ("num_candidates", "num_contrast"):
        if int(hl[key]) < 1:
            raise ValueError(f"config.hl.{key}: {hl[key]} must be at least 1")
    if hl.tau <= 0:
        raise ValueError(f"config.hl.tau: {hl.tau} must be positive")
    if hl.negative not in NEGATIVES:
        raise ValueError(f"config.hl.negative: {hl.negative!r} is not one of {list(NEGATIVES)}")
    for key in ("learning_rate", "weights_lr"):
        if hl[key] < 0:
            raise ValueError(f"config.hl.{key}: {hl[key]} must be >= 0 (0 = train.learning_rate)")
    if config.max_answer_length < 1:
        raise ValueError(f"config.max_answer_length: {config.max_answer_length} must be >= 1")
    ks = tuple(config.eval.em_at_k)
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"config.eval.em_at_k: {ks} must be positive integers")
    if config.eval.selection not in SELECTIONS:
        raise ValueError(f"config.eval.selection: {config.eval.selection!r} is not one of "
                         f"{list(SELECTIONS)}")
    if config.eval.selection == "english_dev":
        langs = {fs.language for i, spec in enumerate(config.data.dev)
                 for fs in expand(spec, f"config.data.dev[{i}]")}
        if langs - {"en"}:
            raise ValueError(f"config.eval.selection is english_dev but config.data.dev holds "
                             f"{sorted(langs - {'en'})}: zero-shot selection uses English only "
                             "(set eval.selection=target_dev for translate-train)")
    from xmrc_jax.eval.squad_metrics import check_language
    for section in ("eval", "dev"):
        for i, spec in enumerate(config.data[section]):
            where = f"config.data.{section}[{i}]"
            for fs in expand(spec, where):
                try:
                    check_language(fs.metric, fs.language)
                except ValueError as e:
                    raise ValueError(f"{where} ({fs.path or fs.name}, {fs.language}): {e}") from None
    if config.train.group_by_length < 0:
        raise ValueError(f"config.train.group_by_length: {config.train.group_by_length} must be "
                         ">= 0 (0 = every batch at data.max_seq_length)")
    d = config.data
    if d.doc_stride >= d.max_seq_length or d.max_query_length >= d.max_seq_length:
        raise ValueError(f"config.data: doc_stride {d.doc_stride} and max_query_length "
                         f"{d.max_query_length} must be below max_seq_length {d.max_seq_length}")


def check_model(config, arch):
    """Checks that the windows fit the model's positions."""
    if config.data.max_seq_length > arch.max_tokens:
        raise ValueError(f"config.data.max_seq_length {config.data.max_seq_length} exceeds the "
                         f"model's {arch.max_tokens} positions")
