"""The trainer every stage uses: ``build_step`` (state + compiled step) and ``run_training``.

``build_step`` is the one place the training wiring lives (optimizer state created sharded,
frozen ``consts`` placed like the model, the step jitted and compiled); stages, benchmarks and
tests share it. ``run_training(train_cfg, job)`` takes the ``config.train`` section and a
``TrainJob`` (what to train, on what, with which objective) and runs ``loop.train`` with the
standard hooks: NaN guard, metrics (log lines, ``metrics.jsonl``, TensorBoard) and, when the job
has an evaluator and ``train_cfg.eval_every > 0``, dev evaluation keeping the best model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable, Optional

import jax

from xmrc_jax import distributed
from xmrc_jax.data import TrainIterator
from xmrc_jax.utils import MetricsWriter
from xmrc_jax.train import loop, state as st
from xmrc_jax.train.step import compile_train_step, make_train_step

log = logging.getLogger("xmrc_jax")


def build_step(module, tx, mesh, objective: Callable, example_batch: dict, *, rng,
               init_params=None, extra_params=None, consts=(), precision: str = "fp32",
               grad_accum_steps: int = 1):
    """``(state, shardings, step_fn)``: a sharded ``TrainState`` (from ``init_params`` or a random
    initialisation, plus ``extra_params``) and the compiled ``step_fn(state, batch)``.

    ``consts`` (trees the step reads but never updates, e.g. a frozen teacher) are sharded like
    the model and bound into ``step_fn``; they are neither donated nor optimised.
    """
    state, shardings = st.create_state(module, tx, mesh, rng, init_params, extra_params,
                                       precision=precision)
    const_shardings = tuple(shardings.params["model"] for _ in consts)
    consts = tuple(jax.device_put(c, s) for c, s in zip(consts, const_shardings))
    fn = make_train_step(objective, tx, grad_accum_steps)
    step_fn = compile_train_step(fn, state, shardings, example_batch, mesh, consts,
                                 const_shardings)
    return state, shardings, step_fn


@dataclasses.dataclass
class TrainJob:
    """One training run: the module, its data (a dict of equally long numpy arrays), the
    objective (``objective(params, batch, rng, *consts)``), where checkpoints and metrics go,
    and how it starts."""

    name: str
    module: Any
    mesh: Any
    arrays: dict
    objective: Callable
    epochs: float
    checkpoint_dir: str
    log_dir: str
    init_params: Any = None
    extra_params: Any = None
    consts: tuple = ()
    evaluator: Optional[Any] = None     # eval.evaluator.Evaluator: score(state), save_best(...)
    precision: str = "fp32"
    seed: int = 0
    learning_rates: dict = dataclasses.field(default_factory=dict)   # extra params' own rates
    hooks: tuple = ()                   # further loop hooks (train.loop.Hook), run after the rest
    hparams: dict = dataclasses.field(default_factory=dict)   # settings shown in TensorBoard
    # [N, L] token-aligned arrays: with train_cfg.group_by_length > 0, batches are grouped by
    # the length of ``attention_mask`` and these are cut (data.TrainIterator); () = never
    sequence_keys: tuple = ()


def total_steps(train_cfg, batches_per_epoch: int, epochs: float) -> int:
    return train_cfg.max_steps or max(1, math.ceil(epochs * batches_per_epoch))


def run_training(train_cfg, job: TrainJob):
    """Trains ``job`` under ``train_cfg`` (``config.train``); returns the final parameters
    (host copies: ``{"model": ..., **extra}``). Checkpoints, exact resume, SIGTERM and the
    hooks are ``train.loop``'s; the metrics writer is closed however the run ends."""
    global_batch, accum = train_cfg.batch_size, train_cfg.grad_accum_steps
    if global_batch % accum:
        raise ValueError(f"config.train.batch_size {global_batch} is not divisible by "
                         f"grad_accum_steps {accum}")
    multiple = train_cfg.get("group_by_length", 0)
    iterator = TrainIterator(job.arrays, global_batch, seed=job.seed,
                             process_index=jax.process_index(), process_count=jax.process_count(),
                             length_multiple=multiple, sequence_keys=job.sequence_keys)
    total = total_steps(train_cfg, iterator.batches_per_epoch, job.epochs)
    if iterator.dropped_per_epoch:
        log.info("%s: %d rows per epoch left out of the last incomplete batch (reshuffled "
                 "every epoch)", job.name, iterator.dropped_per_epoch)
    if iterator.grouped:
        full, cut = iterator.padded_fraction()
        log.info("%s: length-grouped batches (multiples of %d tokens): padding %.0f %% of the "
                 "token positions at full length, %.0f %% as cut (epoch 1)", job.name, multiple,
                 100 * full, 100 * cut)
    tx, schedule = st.make_optimizer(train_cfg.learning_rate, total, train_cfg.warmup_ratio,
                              train_cfg.weight_decay, train_cfg.max_grad_norm,
                              job.learning_rates)
    example = {k: v[:global_batch] for k, v in job.arrays.items()}
    state, _, step_fn = build_step(job.module, tx, job.mesh, job.objective, example,
                                   rng=jax.random.PRNGKey(job.seed), init_params=job.init_params,
                                   extra_params=job.extra_params, consts=job.consts,
                                   precision=job.precision, grad_accum_steps=accum)
    writer = MetricsWriter(job.log_dir, enabled=distributed.is_main_process())
    hparams = {**job.hparams, **{f"train.{k}": v for k, v in train_cfg.items()},
               "total_steps": total}
    writer.write_text("hparams", "| setting | value |\n|---|---|\n" + "\n".join(
        f"| {k} | {v} |" for k, v in sorted(hparams.items())))
    hooks = [loop.NanGuard(), loop.LogMetrics(train_cfg.log_every, writer, global_batch, schedule)]
    if job.evaluator is not None and train_cfg.eval_every > 0:
        hooks.append(loop.DevEvaluation(job.evaluator, train_cfg.eval_every, writer))
    hooks += list(job.hooks)
    log.info("%s: %d steps of global batch %d (%g epochs' worth)", job.name, total, global_batch,
             job.epochs)
    cfg = loop.LoopConfig(job.name, job.checkpoint_dir, total, train_cfg.checkpoint_every,
                          train_cfg.keep_checkpoints)
    try:
        state = loop.train(cfg, state, step_fn, iterator, job.mesh, hooks)
    finally:
        writer.close()
    log.info("%s: the train step was compiled for %d batch shape(s)", job.name,
             step_fn.compilations)
    return jax.device_get(state.params)
