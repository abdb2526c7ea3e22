"""Train state, optimizer and precision policy.

* AdamW with linear warm-up then linear decay, weight decay on kernels and embeddings only
  (LayerNorm parameters, biases and the hard-learning type logits are excluded), gradient
  clipping by global norm.
* Precision: bf16 compute on TPU and on GPUs of compute capability >= 8.0; on older GPUs
  (V100: 7.0) fp16 with dynamic loss scaling, or fp32 (``model.v100_precision``); fp32 on CPU.
  Parameters and optimizer state stay fp32.
* The state is created directly sharded: ``eval_shape`` of the init gives the logical axes,
  ``train.sharding`` turns them into shardings, and a jitted init writes each shard in place.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.dynamic_scale import DynamicScale

from xmrc_jax import mesh as sh

log = logging.getLogger("xmrc_jax")

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}


def choose_precision(requested: str = "auto", v100_choice: str = "fp16", devices=None) -> str:
    if requested not in ("auto",) + tuple(DTYPES):
        raise ValueError(f"config.model.precision {requested!r}: expected auto, fp32, bf16 or fp16")
    if requested != "auto":
        return requested
    dev = (devices or jax.devices())[0]
    if dev.platform == "tpu":
        return "bf16"
    if dev.platform == "gpu":
        cc = float(getattr(dev, "compute_capability", "0") or 0)
        return "bf16" if cc >= 8.0 else v100_choice
    return "fp32"


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any                     # {"model": ..., optional "hl": {"type_logits": [3]}}
    opt_state: Any
    rng: jax.Array
    dynamic_scale: Optional[DynamicScale] = None


def decay_mask(params):
    """True for parameters that get weight decay: kernels and embedding tables."""
    def rule(path, _):
        last = path[-1].key if hasattr(path[-1], "key") else str(path[-1])
        return last in ("kernel", "embedding")
    return jax.tree_util.tree_map_with_path(rule, params)


def make_optimizer(learning_rate: float, total_steps: int, warmup_ratio: float = 0.1,
                   weight_decay: float = 0.01, max_grad_norm: float = 1.0,
                   learning_rates: Optional[dict] = None):
    """AdamW with linear warm-up and decay, global-norm clipping. ``learning_rates`` gives
    top-level parameter groups other than ``model`` their own peak rate (same schedule shape,
    no weight decay), e.g. ``{"hl": 1e-2}`` for HL's learned type weights."""
    warmup = max(1, int(round(total_steps * warmup_ratio)))

    def schedule_for(peak):
        return optax.join_schedules([
            optax.linear_schedule(0.0, peak, warmup),
            optax.linear_schedule(peak, 0.0, max(1, total_steps - warmup)),
        ], [warmup])
    schedule = schedule_for(learning_rate)
    parts = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm > 0 else []
    adamw = optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay,
                        mask=decay_mask)
    if learning_rates:
        groups = {"default": adamw, **{k: optax.adam(schedule_for(v), b1=0.9, b2=0.999, eps=1e-8)
                                       for k, v in learning_rates.items()}}
        labels = lambda params: {k: jax.tree_util.tree_map(  # noqa: E731
            lambda _, k=k: k if k in learning_rates else "default", v) for k, v in params.items()}
        parts.append(optax.multi_transform(groups, labels))
    else:
        parts.append(adamw)
    return optax.chain(*parts), schedule


def create_state(module, tx, mesh, rng, model_params=None, extra_params=None, seq_len: int = 8,
                 precision: str = "fp32"):
    """A ``TrainState`` sharded over ``mesh``; returns ``(state, shardings)``.

    ``model_params`` (e.g. loaded from a checkpoint) replace the random initialisation.
    """
    extra_params = extra_params or {}

    def init(rng, given):
        ids = jnp.zeros((1, seq_len), jnp.int32)
        variables = module.init(rng, ids, jnp.ones_like(ids))
        model = variables["params"] if given is None else given
        params = {"model": model, **extra_params}
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                          rng=jax.random.fold_in(rng, 1),
                          dynamic_scale=DynamicScale() if precision == "fp16" else None)

    abstract = jax.eval_shape(lambda r: init(r, None), rng)
    shardings = sh.logical_shardings(abstract, mesh)
    if model_params is None:
        state = jax.jit(lambda r: nn.meta.unbox(init(r, None)), out_shardings=shardings)(rng)
    else:
        model_params = jax.device_put(model_params, shardings.params["model"])
        state = jax.jit(lambda r, p: nn.meta.unbox(init(r, p)), out_shardings=shardings)(
            rng, model_params)
    return state, shardings
