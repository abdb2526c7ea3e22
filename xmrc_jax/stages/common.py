"""What the stages of both methods share: training a model and exporting it, loading the model
a stage hands on, and the dev evaluator's wiring."""

from __future__ import annotations

import logging

from xmrc_jax.eval.evaluator import Evaluator
from xmrc_jax.stages.artifacts import config_subset
from xmrc_jax.train.trainer import TrainJob, run_training

log = logging.getLogger("xmrc_jax")


def train_and_export(ctx, name: str, module, objective, arrays, epochs, init_params,
                     extra_params=None, consts=(), score=None, what="dev", learning_rates=None,
                     hooks=(), train_cfg=None, sequence_keys=()):
    """Trains ``module`` (``config.train``) and exports it to ``<name>/hf``; with ``score``
    (``params -> float``) and ``train.eval_every > 0`` the best dev model goes to
    ``<name>/best``; ``train_cfg`` replaces ``config.train`` (a stage's own settings);
    ``sequence_keys``: the arrays length-grouped batches cut (``TrainJob``). Returns the final
    parameters."""
    wd, rt = ctx.workdir, ctx.runtime
    evaluator = None
    if score is not None:
        evaluator = Evaluator(score, lambda params, meta: wd.save_model(
            wd.best(name), module, params, rt.tokenizer, meta, prompts=rt.prompts), what)
    job = TrainJob(name, module, rt.mesh, arrays, objective, epochs,
                   checkpoint_dir=wd.checkpoints(name), log_dir=wd.stage_dir(name),
                   init_params=init_params, extra_params=extra_params, consts=consts,
                   evaluator=evaluator, precision=rt.precision, seed=ctx.config.seed,
                   learning_rates=learning_rates or {}, hooks=tuple(hooks),
                   hparams=config_subset(ctx.config, ctx.stage.config),
                   sequence_keys=tuple(sequence_keys))
    params = run_training(train_cfg or ctx.config.train, job)
    wd.save_model(wd.export(name), module, params["model"], rt.tokenizer, prompts=rt.prompts)
    return params


def handed_on(ctx, name: str, head: str):
    """``(module, params, description)`` of the model training stage ``name`` hands on."""
    folder, what = ctx.workdir.trained_model(name, ctx.config.eval.use_best)
    if folder is None:
        raise ValueError(f"{ctx.stage.name}: {name} has no exported model in "
                         f"{ctx.workdir.stage_dir(name)}")
    module, params = ctx.runtime.load(folder, head)
    log.info("%s: model %s (%s)", ctx.stage.name, what, folder)
    return module, params, what
