"""The two-stage xMRC pipeline: ``baseline`` -> ``mine`` -> ``hl_aacl`` -> ``evaluate``.

Each stage writes into ``<workdir>/<stage>/`` and is skipped when its output exists:
``baseline/hf`` and ``hl_aacl/hf`` (Hugging Face exports of the trained models),
``mine/candidates.npz``, ``evaluate/results.json``. A training stage that was interrupted
resumes from its newest checkpoint in ``<workdir>/<stage>/checkpoints``.
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

from xmrc_jax.data import TrainIterator, build_features, eval_batches, load_specs
from xmrc_jax.eval import postprocess, report, squad_metrics
from xmrc_jax.losses import DEFAULT_TYPE_LOGITS
from xmrc_jax.models import (EncoderConfig, build_model, load_pretrained, load_tokenizer,
                             save_pretrained)
from xmrc_jax.train import distributed, loop, sharding as sh, state as st, step as train_step

log = logging.getLogger("xmrc_jax")
TRAIN_KEYS = ("input_ids", "attention_mask", "token_type_ids", "context_mask", "question_mask",
              "start_positions", "end_positions", "answer_in_window")


# --------------------------------------------------------------------------- shared setup

def setup(config, workdir, ctx) -> dict:
    """Tokenizer, model description, mesh, precision and training features; built once."""
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
    if config.model.name:
        if not os.path.isdir(config.model.name) and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(
                f"config.model.name {config.model.name!r} is not a local folder and the hub is "
                "offline: download the checkpoint (huggingface-cli download "
                f"{config.model.name} --local-dir DIR) and pass --config.model.name=DIR")
        module, params = load_pretrained(config.model.name, head="span",
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
        module = build_model(arch, "span", dtype=st.DTYPES[precision], remat=config.model.remat)
    if config.data.max_seq_length > arch.max_tokens:
        raise ValueError(f"config.data.max_seq_length {config.data.max_seq_length} exceeds the "
                         f"model's {arch.max_tokens} positions")
    ctx.update(mesh=mesh, precision=precision, tokenizer=tokenizer, module=module,
               init_params=params, cache_dir=config.data.cache_dir or os.path.join(workdir, "cache"))
    return ctx


def _features(config, ctx, examples):
    return build_features(examples, ctx["tokenizer"], config.data.max_seq_length,
                          config.data.doc_stride, config.data.max_query_length,
                          use_token_types=ctx["module"].config.type_vocab_size > 1,
                          cache_dir=ctx["cache_dir"])


def train_features(config, ctx):
    if "train_features" not in ctx:
        loaded = load_specs(config.data.train, config.data.skip_bad_records, "config.data.train")
        examples = []
        for fs, ex, rep in loaded:
            log.info("%s", rep)
            if config.data.limit_per_file:
                ex = ex[:config.data.limit_per_file]
            examples.extend(ex)
        feats = _features(config, ctx, examples)
        log.info("training: %d examples -> %d windows (%d with the answer inside)", len(examples),
                 len(feats["input_ids"]), int(feats["answer_in_window"].sum()))
        ctx["train_examples"], ctx["train_features"] = examples, feats
    return ctx["train_features"]


def _replicated(params, mesh):
    return jax.device_put(params, NamedSharding(mesh, P()))


def _load_stage_model(ctx, folder, precision):
    module, params = load_pretrained(folder, head="span", dtype=st.DTYPES[precision],
                                     remat=ctx["module"].remat)
    return module, params


# --------------------------------------------------------------------------- training stages

def _exported(workdir, stage):
    """``<workdir>/<stage>/hf`` if that stage finished (its export exists), else ``None``."""
    folder = os.path.join(workdir, stage, "hf")
    return folder if os.path.exists(os.path.join(folder, "model.safetensors")) else None


def _skip_trained(workdir, stage) -> bool:
    folder = _exported(workdir, stage)
    if folder:
        log.info("%s: %s exists, skipping", stage, folder)
    return folder is not None


def _run_training(config, workdir, ctx, name, arrays, objective_fn, epochs, init_params,
                  extra_params=None):
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
        log.info("%s: %d windows per epoch left out of the last incomplete batch (reshuffled "
                 "every epoch)", name, iterator.dropped_per_epoch)
    tx, _ = st.make_optimizer(config.train.learning_rate, total, config.train.warmup_ratio,
                              config.train.weight_decay, config.train.max_grad_norm)
    state, shardings = st.create_state(module, tx, mesh, jax.random.PRNGKey(config.seed),
                                       init_params, extra_params, precision=ctx["precision"])
    fn = train_step.make_train_step(objective_fn(module), tx, accum)
    example = {k: v[:global_batch] for k, v in arrays.items()}
    compiled = train_step.compile_train_step(fn, state, shardings, example, mesh)
    writer = report.make_writer(out_dir, distributed.is_main_process())
    log.info("%s: %d steps of global batch %d (%d epochs' worth)", name, total, global_batch, epochs)
    state = loop.train(name, os.path.join(out_dir, "checkpoints"), state, compiled, iterator, mesh,
                       total, config.train.checkpoint_every, config.train.keep_checkpoints,
                       config.train.log_every, writer, global_batch)
    writer.flush()
    params = jax.device_get(state.params)
    if distributed.is_main_process():
        save_pretrained(module, params["model"], os.path.join(out_dir, "hf"), ctx["tokenizer"])
        if "hl" in params:
            with open(os.path.join(out_dir, "hl_type_weights.json"), "w") as f:
                w = np.asarray(jax.nn.softmax(jnp.asarray(params["hl"]["type_logits"])))
                json.dump({"gold": float(w[0]), "one_boundary": float(w[1]), "none": float(w[2])}, f)
    return params


def baseline(config, workdir, ctx):
    """Fine-tunes with L_mrc and exports ``baseline/hf``."""
    if _skip_trained(workdir, "baseline"):
        return
    setup(config, workdir, ctx)
    feats = train_features(config, ctx)
    arrays = {k: feats[k] for k in TRAIN_KEYS}
    _run_training(config, workdir, ctx, "baseline", arrays, train_step.mrc_objective,
                  config.train.epochs, ctx["init_params"])


def _predict_windows(module, params, feats, mesh, batch_size, k, max_answer_len):
    """Top-k spans of every window: ``(starts, ends, scores)`` ``[num_windows, k]``."""
    params = _replicated(params, mesh)
    n = len(feats["input_ids"])
    data_size = mesh.shape["data"] * mesh.shape["fsdp"]
    batch_size = max(data_size, batch_size - batch_size % data_size)
    out = [np.zeros((n, k), np.int32), np.zeros((n, k), np.int32), np.zeros((n, k), np.float32)]
    keys = ("input_ids", "attention_mask", "token_type_ids", "context_mask")
    for b in eval_batches({key: feats[key] for key in keys}, batch_size):
        valid, index = b.pop("valid"), b.pop("index")
        res = train_step.predict_top_k(module, params, sh.put_batch(b, mesh), k, max_answer_len)
        for dst, src in zip(out, res):
            dst[index[valid]] = np.asarray(jax.device_get(src))[valid]
    return out


def mine(config, workdir, ctx):
    """Top-|Z| spans of the baseline for every training window, gold in the last slot if absent."""
    path = os.path.join(workdir, "mine", "candidates.npz")
    if os.path.exists(path):
        log.info("mine: %s exists, skipping", path)
        return
    setup(config, workdir, ctx)
    feats = train_features(config, ctx)
    module, params = _load_stage_model(ctx, os.path.join(workdir, "baseline", "hf"), ctx["precision"])
    z = config.hl.num_candidates
    starts, ends, scores = _predict_windows(module, params, feats, ctx["mesh"],
                                            config.train.eval_batch_size, z, config.max_answer_length)
    gs, ge = feats["start_positions"], feats["end_positions"]
    has_gold = ((starts == gs[:, None]) & (ends == ge[:, None])).any(1)
    starts[~has_gold, -1], ends[~has_gold, -1] = gs[~has_gold], ge[~has_gold]
    valid = starts >= 0
    log.info("mine: %d windows; gold among the top-%d for %.1f%% (answer windows: %.1f%%)",
             len(starts), z, 100 * has_gold.mean(),
             100 * has_gold[feats["answer_in_window"]].mean() if feats["answer_in_window"].any() else 0)
    if distributed.is_main_process():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, cand_starts=starts, cand_ends=ends, cand_valid=valid,
                 input_ids=feats["input_ids"][:, :8], gold_in_top=has_gold)
        os.replace(tmp, path)


def hl_aacl(config, workdir, ctx):
    """Trains from the baseline with alpha L_contrast + (1 - alpha) L_hard; exports ``hl_aacl/hf``."""
    if _skip_trained(workdir, "hl_aacl"):
        return
    setup(config, workdir, ctx)
    feats = train_features(config, ctx)
    with np.load(os.path.join(workdir, "mine", "candidates.npz")) as c:
        if not np.array_equal(c["input_ids"], feats["input_ids"][:, :8]):
            raise ValueError(f"{workdir}/mine/candidates.npz was mined from other training windows; "
                             "delete it to mine again")
        cands = {k: c[k] for k in ("cand_starts", "cand_ends", "cand_valid")}
    _, params = _load_stage_model(ctx, os.path.join(workdir, "baseline", "hf"), ctx["precision"])
    arrays = {**{k: feats[k] for k in TRAIN_KEYS}, **cands}
    hl = config.hl
    extra = ({"hl": {"type_logits": jnp.asarray(DEFAULT_TYPE_LOGITS, jnp.float32)}}
             if hl.variant == "weighted_learned" else None)

    def objective(module):
        return train_step.hl_aacl_objective(module, hl.variant, hl.alpha, hl.tau, hl.num_contrast,
                                            config.max_answer_length, tuple(hl.type_weights))
    _run_training(config, workdir, ctx, "hl_aacl", arrays, objective, hl.epochs, params, extra)


# --------------------------------------------------------------------------- evaluation

def evaluate(config, workdir, ctx):
    """Per dataset and language: predictions, n-best, EM / F1, EM@k; tables and a plot."""
    out_dir = os.path.join(workdir, "evaluate")
    if os.path.exists(os.path.join(out_dir, "results.json")):
        log.info("evaluate: %s exists, skipping", os.path.join(out_dir, "results.json"))
        print(open(os.path.join(out_dir, "results.md"), encoding="utf-8").read())
        return
    setup(config, workdir, ctx)
    folder = _exported(workdir, "hl_aacl") or _exported(workdir, "baseline")
    if folder:
        module, params = _load_stage_model(ctx, folder, ctx["precision"])
        log.info("evaluate: model %s", folder)
    elif ctx["init_params"] is not None:
        module, params = ctx["module"], ctx["init_params"]
        log.info("evaluate: model %s (no trained stage in the workdir)", config.model.name)
    else:
        raise ValueError(f"evaluate: no trained model in {workdir} (run the baseline stage) and "
                         "config.model.name is empty")
    ks = tuple(int(k) for k in config.eval.em_at_k)
    n_best = max(config.eval.n_best, max(ks))
    results = {}
    for fs, examples, rep in load_specs(config.data.eval, config.data.skip_bad_records,
                                        "config.data.eval"):
        log.info("%s", rep)
        feats = _features(config, ctx, examples)
        starts, ends, scores = _predict_windows(module, params, feats, ctx["mesh"],
                                                config.train.eval_batch_size, n_best,
                                                config.max_answer_length)
        nbest = postprocess.nbest_per_example(examples, feats, starts, ends, scores, n_best)
        preds = postprocess.predictions_from_nbest(nbest)
        metric = squad_metrics.default_metric(fs.name)
        gold = {ex.id: [a.text for a in ex.answers] for ex in examples if ex.answers}
        res = squad_metrics.evaluate(gold, preds, fs.language, metric)
        em_at = {}
        for k in ks:
            hits = [max(squad_metrics.score_one(t, gold[q], fs.language, metric)[0]
                        for t, _, _ in nbest[q][:k]) if nbest[q] else 0.0 for q in gold]
            em_at[str(k)] = 100.0 * sum(hits) / max(len(hits), 1)
        results.setdefault(fs.name, {})[fs.language] = dict(
            f1=res["f1"], exact_match=res["exact_match"], total=res["total"], metric=metric,
            em_at=em_at)
        log.info("evaluate %s %s (%s metric): EM %.2f F1 %.2f on %d questions", fs.name,
                 fs.language, metric, res["exact_match"], res["f1"], res["total"])
        if distributed.is_main_process():
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, f"predictions_{fs.name}_{fs.language}.json"), "w",
                      encoding="utf-8") as f:
                json.dump(preds, f, ensure_ascii=False)
            with open(os.path.join(out_dir, f"nbest_{fs.name}_{fs.language}.json"), "w",
                      encoding="utf-8") as f:
                json.dump({q: [{"text": t, "score": s, "char_start": a} for t, s, a in c]
                           for q, c in nbest.items()}, f, ensure_ascii=False)
    table = report.results_markdown(results, ks)
    if distributed.is_main_process():
        with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
            f.write(table + "\n")
        report.plot_results(results, ks, os.path.join(out_dir, "results.png"))
        with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
            json.dump({"model": folder or config.model.name, "results": results}, f, indent=2)
    print(table)
