"""The one train step, and the objectives that plug into it.

An objective is ``objective(params, batch, rng, *consts) -> (loss, aux)`` with the model closed
over; ``consts`` are trees the step reads but never updates (McCrolin's frozen teacher).
``make_train_step`` wraps it into a pure ``(state, batch, *consts) -> (state, metrics)`` with gradient
accumulation (a ``lax.scan`` over micro-batches), dynamic loss scaling for fp16 and the
optimizer update. ``compile_train_step`` jits it over the mesh with the state donated and
returns the compiled executable (compile time and ``memory_analysis()`` are logged).
"""

from __future__ import annotations

import functools
import logging
import time

import jax
import jax.numpy as jnp
import optax

from xmrc_jax.losses import aacl_loss, hard_learning_loss, mccrolin_loss, mrc_loss
from xmrc_jax.ops import top_k_spans
from xmrc_jax.train import sharding as sh

log = logging.getLogger("xmrc_jax")


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
                      max_answer_len: int, type_weights=None):
    """L = alpha L_contrast + (1 - alpha) L_hard (paper Eq. 9); the top-|A| spans of AA-CL are
    recomputed from the step's own (stop-gradient) logits."""
    def objective(params, batch, rng):
        out = _forward(module, params, batch, rng)
        valid = batch["attention_mask"].astype(bool)
        aux, loss = {}, 0.0
        if alpha < 1.0:
            weights = params["hl"]["type_logits"] if variant == "weighted_learned" else type_weights
            per = hard_learning_loss(out.start_logits, out.end_logits, valid, batch["cand_starts"],
                                     batch["cand_ends"], batch["cand_valid"],
                                     batch["start_positions"], batch["end_positions"], variant,
                                     weights)
            hard = jnp.mean(per)
            aux["loss_hard"] = hard
            loss = loss + (1.0 - alpha) * hard
            if variant == "weighted_learned":
                w = jax.nn.softmax(params["hl"]["type_logits"])
                aux.update(hl_w_gold=w[0], hl_w_one=w[1], hl_w_none=w[2])
        if alpha > 0.0:
            starts, ends, _ = top_k_spans(jax.lax.stop_gradient(out.start_logits),
                                          jax.lax.stop_gradient(out.end_logits),
                                          batch["context_mask"], num_contrast, max_answer_len)
            cl, cl_aux = aacl_loss(out.last_hidden_state, batch["question_mask"],
                                   batch["start_positions"], batch["end_positions"],
                                   batch["answer_in_window"], starts, ends, starts >= 0, tau)
            aux.update(loss_contrast=cl, aacl_active=cl_aux["num_active"],
                       aacl_neg_similarity=cl_aux["neg_similarity"])
            loss = loss + alpha * cl
        return loss, aux
    return objective


def make_train_step(objective, tx, grad_accum_steps: int = 1):
    def train_step(state, batch, *consts):
        rng = jax.random.fold_in(state.rng, state.step)
        k = grad_accum_steps

        def grads_of(params, mb, r):
            if state.dynamic_scale is not None:
                fn = state.dynamic_scale.value_and_grad(objective, has_aux=True)
                ds, finite, (loss, aux), g = fn(params, mb, r, *consts)
                return (loss, aux), g, ds, finite
            (loss, aux), g = jax.value_and_grad(objective, has_aux=True)(params, mb, r, *consts)
            return (loss, aux), g, None, jnp.array(True)

        def body(carry, xs):
            g_sum, loss_sum, aux_sum, fin, ds = carry
            i, mb = xs
            (loss, aux), g, ds2, finite = grads_of(state.params, mb, jax.random.fold_in(rng, i))
            g_sum = jax.tree_util.tree_map(jnp.add, g_sum, g)
            aux_sum = jax.tree_util.tree_map(jnp.add, aux_sum, aux)
            return (g_sum, loss_sum + loss, aux_sum, fin & finite, ds2 if ds2 is not None else ds), None

        if k == 1:     # no accumulation: no scan, no zero-filled gradient buffer
            (loss, aux), g, ds, finite = grads_of(state.params, batch, jax.random.fold_in(rng, 0))
            ds = ds if ds is not None else state.dynamic_scale
        else:
            micro = jax.tree_util.tree_map(
                lambda x: x.reshape((k, x.shape[0] // k) + x.shape[1:]), batch)
            zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
            aux_shape = jax.eval_shape(lambda: objective(state.params, jax.tree_util.tree_map(
                lambda x: x[0], micro), rng, *consts)[1])
            aux0 = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shape)
            carry = (zeros, jnp.zeros((), jnp.float32), aux0, jnp.array(True), state.dynamic_scale)
            (g, loss, aux, finite, ds), _ = jax.lax.scan(body, carry, (jnp.arange(k), micro))
            g = jax.tree_util.tree_map(lambda x: x / k, g)
            loss, aux = loss / k, jax.tree_util.tree_map(lambda x: x / k, aux)
        updates, new_opt = tx.update(g, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        if state.dynamic_scale is not None:   # skip the update on overflow, as DynamicScale intends
            keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
                lambda a, b: jnp.where(finite, a, b), new, old)
            new_params, new_opt = keep(new_params, state.params), keep(new_opt, state.opt_state)
        metrics = dict(loss=loss, grad_norm=optax.tree.norm(g),
                       param_norm=optax.tree.norm(new_params), **aux)
        return state.replace(step=state.step + 1, params=new_params, opt_state=new_opt,
                             dynamic_scale=ds), metrics
    return train_step


def compile_train_step(train_step, state, shardings, example_batch, mesh, consts=(),
                       const_shardings=()):
    """``jax.jit`` over the mesh (the state donated; ``consts`` not), lowered and compiled once;
    logs compile time and ``memory_analysis()``. Returns the compiled callable
    ``(state, batch, *consts) -> (state, metrics)``."""
    batch_sh = {k: sh.batch_sharding(mesh, v.ndim) for k, v in example_batch.items()}
    jitted = jax.jit(train_step, in_shardings=(shardings, batch_sh, *const_shardings),
                     out_shardings=(shardings, None), donate_argnums=(0,))
    abstract_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sh[k])
                      for k, v in example_batch.items()}
    t0 = time.time()
    compiled = jitted.lower(state, abstract_batch, *consts).compile()
    mem = compiled.memory_analysis()
    log.info("train step compiled in %.1fs; memory: %s", time.time() - t0, _memory_summary(mem))
    return compiled


def _memory_summary(mem) -> str:
    if mem is None:
        return "n/a"
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
              "generated_code_size_in_bytes")
    return ", ".join(f"{f.replace('_size_in_bytes', '')} {getattr(mem, f, 0) / 2**20:.1f} MiB"
                     for f in fields if hasattr(mem, f))


@functools.partial(jax.jit, static_argnames=("module", "k", "max_answer_len"))
def predict_top_k(module, params, batch, k: int, max_answer_len: int):
    """Top-k spans of each window (evaluation and candidate mining)."""
    out = module.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                       batch["token_type_ids"], deterministic=True)
    return top_k_spans(out.start_logits, out.end_logits, batch["context_mask"], k, max_answer_len)


MCCROLIN_TEXTS = ("q_en", "q_ne", "d", "pr")


def embed(module, params, ids, mask, normalize: bool, rng=None):
    """Sentence embeddings ``[batch, hidden]`` (fp32) from an ``embed``-head module; dropout
    when ``rng`` is given, L2-normalised when ``normalize``."""
    out = module.apply({"params": params}, ids, mask, None, deterministic=rng is None,
                       rngs=None if rng is None else {"dropout": rng})
    e = out.embeddings.astype(jnp.float32)
    if normalize:
        e = e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    return e


def mccrolin_objective(module, gammas, betas, lambdas, omegas, tau: float, normalize: bool):
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
                      jax.random.fold_in(rng, i)) for i, k in enumerate(MCCROLIN_TEXTS)}
        return mccrolin_loss(t, s, gammas, betas, lambdas, omegas, tau)
    return objective
