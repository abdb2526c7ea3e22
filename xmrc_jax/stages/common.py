"""What every stage shares: the one-time setup (mesh, precision, tokenizer, model), finding a
finished stage's export, and ``run_training`` (the single trainer both methods use).

A training stage named ``name`` writes ``<workdir>/<name>/checkpoints`` while it runs and
``<workdir>/<name>/hf`` (a Hugging Face export) when it finishes; the export marks it done.
"""

from __future__ import annotations

import json
import logging
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from xmrc_jax.data import TrainIterator
from xmrc_jax.eval import report
from xmrc_jax.models import EncoderConfig, build_model, load_pretrained, load_tokenizer, \
    save_pretrained
from xmrc_jax.train import distributed, loop, sharding as sh, state as st, step as train_step

log = logging.getLogger("xmrc_jax")


def setup(config, workdir, ctx, head: str = "span") -> dict:
    """Mesh, precision, tokenizer and model (``head`` "span" or "embed"); built once per run.

    ``ctx["init_params"]`` holds the pretrained weights of ``config.model.name``, or ``None``
    when the model is built from ``config.model.arch`` with random weights.
    """
    if "mesh" in ctx:
        return ctx
    precision = st.choose_precision(config.model.precision, config.model.v100_precision)
    mesh = sh.make_mesh(config.mesh.to_dict())
    log.info("devices: %d x %s; mesh %s; precision %s", jax.device_count(),
             jax.devices()[0].device_kind, dict(mesh.shape), precision)
    tok_path = config.model.tokenizer or config.model.name
    if not tok_path:
        raise ValueError("config.model.tokenizer (or config.model.name) must name a tokenizer "
                         "folder or hub id")
    pooling = config.model.pooling
    if config.model.name:
        if not os.path.isdir(config.model.name) and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(
                f"config.model.name {config.model.name!r} is not a local folder and the hub is "
                "offline: download the checkpoint (huggingface-cli download "
                f"{config.model.name} --local-dir DIR) and pass --config.model.name=DIR")
        module, params = load_pretrained(config.model.name, head=head, pooling=pooling,
                                         dtype=st.DTYPES[precision], remat=config.model.remat)
        arch = module.config
    else:
        params = None
        arch = None
    tokenizer = load_tokenizer(tok_path, arch.vocab_size if arch else None)
    if arch is None:
        a = config.model.arch.to_dict()
        if not a.get("vocab_size"):
            a["vocab_size"] = len(tokenizer)
        arch = EncoderConfig(**a)
        module = build_model(arch, head, pooling=pooling, dtype=st.DTYPES[precision],
                             remat=config.model.remat)
    ctx.update(mesh=mesh, precision=precision, tokenizer=tokenizer, module=module,
               init_params=params, cache_dir=config.data.cache_dir or os.path.join(workdir, "cache"))
    return ctx


def replicated(params, mesh):
    return jax.device_put(params, NamedSharding(mesh, P()))


def eval_batch_size(mesh, requested: int) -> int:
    """``requested`` rounded down to a multiple of the mesh's batch-sharding size (at least one
    row per data shard)."""
    data = mesh.shape["data"] * mesh.shape["fsdp"]
    return max(data, requested - requested % data)


def load_stage_model(ctx, folder):
    """``(module, params)`` of an exported stage, with the run's head, pooling and precision."""
    m = ctx["module"]
    return load_pretrained(folder, head=m.head, pooling=m.pooling,
                           dtype=st.DTYPES[ctx["precision"]], remat=m.remat)


def exported(workdir, stage):
    """``<workdir>/<stage>/hf`` if that stage finished (its export exists), else ``None``."""
    folder = os.path.join(workdir, stage, "hf")
    return folder if os.path.exists(os.path.join(folder, "model.safetensors")) else None


def skip_trained(workdir, stage) -> bool:
    folder = exported(workdir, stage)
    if folder:
        log.info("%s: %s exists, skipping", stage, folder)
    return folder is not None


def printed_if_done(out_dir, stage) -> bool:
    """True (after printing the stored table) when ``out_dir`` holds a finished report."""
    done = os.path.join(out_dir, "results.json")
    if not os.path.exists(done):
        return False
    log.info("%s: %s exists, skipping", stage, done)
    print(open(os.path.join(out_dir, "results.md"), encoding="utf-8").read())
    return True


def run_training(config, workdir, ctx, name, arrays, objective_fn, epochs, init_params,
                 extra_params=None, consts=(), evaluator=None):
    """Trains ``ctx["module"]`` on ``arrays`` (a dict of equally long numpy arrays) and exports it.

    ``objective_fn(module)`` gives ``objective(params, batch, rng, *consts)``. ``consts`` are
    parameter trees the step reads but never updates (McCrolin's frozen teacher): they are
    sharded like the model, passed to every step and neither donated nor optimised.
    ``evaluator`` (optional) scores the model every ``config.train.eval_every`` steps and keeps
    the best (``train.loop.train``). Checkpoints, resume, SIGTERM and the NaN guard are
    ``train.loop``'s. Returns the final parameters (host copies).
    """
    mesh, module = ctx["mesh"], ctx["module"]
    out_dir = os.path.join(workdir, name)
    global_batch = config.train.batch_size
    accum = config.train.grad_accum_steps
    if global_batch % accum:
        raise ValueError(f"config.train.batch_size {global_batch} is not divisible by "
                         f"grad_accum_steps {accum}")
    iterator = TrainIterator(arrays, global_batch, seed=config.seed,
                             process_index=jax.process_index(), process_count=jax.process_count())
    total = config.train.max_steps or max(1, math.ceil(epochs * iterator.batches_per_epoch))
    if iterator.dropped_per_epoch:
        log.info("%s: %d rows per epoch left out of the last incomplete batch (reshuffled "
                 "every epoch)", name, iterator.dropped_per_epoch)
    tx, _ = st.make_optimizer(config.train.learning_rate, total, config.train.warmup_ratio,
                              config.train.weight_decay, config.train.max_grad_norm)
    state, shardings = st.create_state(module, tx, mesh, jax.random.PRNGKey(config.seed),
                                       init_params, extra_params, precision=ctx["precision"])
    const_shardings = tuple(shardings.params["model"] for _ in consts)
    consts = tuple(jax.device_put(c, s) for c, s in zip(consts, const_shardings))
    fn = train_step.make_train_step(objective_fn(module), tx, accum)
    example = {k: v[:global_batch] for k, v in arrays.items()}
    compiled = train_step.compile_train_step(fn, state, shardings, example, mesh, consts,
                                             const_shardings)
    step_fn = (lambda s, b: compiled(s, b, *consts)) if consts else compiled
    writer = report.make_writer(out_dir, distributed.is_main_process())
    log.info("%s: %d steps of global batch %d (%g epochs' worth)", name, total, global_batch, epochs)
    state = loop.train(name, os.path.join(out_dir, "checkpoints"), state, step_fn, iterator, mesh,
                       total, config.train.checkpoint_every, config.train.keep_checkpoints,
                       config.train.log_every, writer, global_batch, evaluator,
                       config.train.eval_every)
    writer.flush()
    params = jax.device_get(state.params)
    if distributed.is_main_process():
        save_pretrained(module, params["model"], os.path.join(out_dir, "hf"), ctx["tokenizer"])
        if "hl" in params:
            with open(os.path.join(out_dir, "hl_type_weights.json"), "w") as f:
                w = np.asarray(jax.nn.softmax(jnp.asarray(params["hl"]["type_logits"])))
                json.dump({"gold": float(w[0]), "one_boundary": float(w[1]), "none": float(w[2])}, f)
    return params
