"""The one generic train step: ``make_train_step`` and ``compile_train_step``.

It knows nothing of tasks: objectives come from ``xmrc_jax.tasks``. An objective is
``objective(params, batch, rng, *consts) -> (loss, aux)`` with the model closed over; ``consts`` are trees the step reads but never updates (McCrolin's frozen teacher).
``make_train_step`` wraps it into a pure ``(state, batch, *consts) -> (state, metrics)`` with gradient
accumulation (a ``lax.scan`` over micro-batches), dynamic loss scaling for fp16 and the
optimizer update. ``compile_train_step`` jits it over the mesh with the state donated and
returns a ``CompiledStep``: compiled ahead of time once per batch shape (compile time and
``memory_analysis()`` logged for each).
"""

from __future__ import annotations

import logging
import time

import jax
import jax.numpy as jnp
import optax

from xmrc_jax import mesh as sh

log = logging.getLogger("xmrc_jax")


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


class CompiledStep:
    """``step(state, batch) -> (state, metrics)``: the jitted step with its ``consts`` bound,
    compiled ahead of time once per batch shape: one shape with padded batches, one per length
    with length-grouped batches (``data.TrainIterator``). Each compile is logged with its time
    and ``memory_analysis()``; ``compilations`` counts them."""

    def __init__(self, jitted, batch_shardings, consts=()):
        self._jitted, self._batch_sh, self._consts = jitted, batch_shardings, tuple(consts)
        self._compiled = {}

    @staticmethod
    def _key(batch) -> tuple:
        return tuple(sorted((k, tuple(v.shape), str(v.dtype)) for k, v in batch.items()))

    def compile(self, state, batch):
        """The executable for ``batch``'s shapes (arrays or ``ShapeDtypeStruct``s)."""
        key = self._key(batch)
        if key not in self._compiled:
            abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self._batch_sh[k])
                        for k, v in batch.items()}
            t0 = time.time()
            compiled = self._jitted.lower(state, abstract, *self._consts).compile()
            length = next((v.shape[1] for v in batch.values() if len(v.shape) >= 2), None)
            log.info("train step compiled in %.1fs (shape %d%s); memory: %s", time.time() - t0,
                     len(self._compiled) + 1, f", length {length}" if length else "",
                     _memory_summary(compiled.memory_analysis()))
            self._compiled[key] = compiled
        return self._compiled[key]

    def __call__(self, state, batch):
        return self.compile(state, batch)(state, batch, *self._consts)

    @property
    def compilations(self) -> int:
        return len(self._compiled)

    def _first(self):
        return next(iter(self._compiled.values()))

    def memory_analysis(self):
        """Of the first shape compiled (the example batch: the longest)."""
        return self._first().memory_analysis()

    def cost_analysis(self):
        return self._first().cost_analysis()


def compile_train_step(train_step, state, shardings, example_batch, mesh, consts=(),
                       const_shardings=()):
    """``jax.jit`` over the mesh (the state donated; ``consts`` not), compiled for
    ``example_batch``'s shapes now and for any other batch shape when it first comes. Returns
    the ``CompiledStep`` ``(state, batch) -> (state, metrics)`` (``consts`` bound)."""
    batch_sh = {k: sh.batch_sharding(mesh, v.ndim) for k, v in example_batch.items()}
    jitted = jax.jit(train_step, in_shardings=(shardings, batch_sh, *const_shardings),
                     out_shardings=(shardings, None), donate_argnums=(0,))
    step = CompiledStep(jitted, batch_sh, consts)
    step.compile(state, example_batch)
    return step


def _memory_summary(mem) -> str:
    if mem is None:
        return "n/a"
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
              "generated_code_size_in_bytes")
    return ", ".join(f"{f.replace('_size_in_bytes', '')} {getattr(mem, f, 0) / 2**20:.1f} MiB"
                     for f in fields if hasattr(mem, f))
