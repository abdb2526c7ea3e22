"""The two-stage xMRC pipeline: ``baseline`` -> ``mine`` -> ``hl_aacl`` -> ``evaluate``.

Each stage writes into ``<workdir>/<stage>/`` and is skipped when its output exists:
``baseline/hf`` and ``hl_aacl/hf`` (Hugging Face exports of the trained models),
``mine/candidates.npz``, ``evaluate/results.json``. A training stage that was interrupted
resumes from its newest checkpoint in ``<workdir>/<stage>/checkpoints``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from xmrc_jax.data import build_features, eval_batches, load_specs
from xmrc_jax.eval import postprocess, report, squad_metrics
from xmrc_jax.losses import DEFAULT_TYPE_LOGITS
from xmrc_jax.models import save_pretrained
from xmrc_jax.stages import common
from xmrc_jax.train import distributed, sharding as sh, step as train_step

log = logging.getLogger("xmrc_jax")
TRAIN_KEYS = ("input_ids", "attention_mask", "token_type_ids", "context_mask", "question_mask",
              "start_positions", "end_positions", "answer_in_window")


# --------------------------------------------------------------------------- shared setup

def setup(config, workdir, ctx) -> dict:
    """The common setup with a span head, plus the check that windows fit the model."""
    common.setup(config, workdir, ctx, head="span")
    arch = ctx["module"].config
    if config.data.max_seq_length > arch.max_tokens:
        raise ValueError(f"config.data.max_seq_length {config.data.max_seq_length} exceeds the "
                         f"model's {arch.max_tokens} positions")
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



# --------------------------------------------------------------------------- training stages

def trained_model(config, workdir, stage):
    """The model a finished training stage hands on: ``<stage>/best/hf`` (best dev F1) when
    ``config.eval.use_best`` and it exists, else ``<stage>/hf``; ``None`` if the stage has not
    finished."""
    final = common.exported(workdir, stage)
    best = common.exported(workdir, os.path.join(stage, "best"))
    return best if (final and best and config.eval.use_best) else final


class DevF1:
    """Scores the model on ``config.data.dev`` (average F1 over its files) during training and
    exports the best one to ``<workdir>/<stage>/best/hf`` with ``best.json``."""

    def __init__(self, config, workdir, ctx, stage):
        self.config, self.ctx = config, ctx
        self.dir = os.path.join(workdir, stage, "best")
        # windows built once here, not at every evaluation
        self.dev = [(fs, ex, _features(config, ctx, ex)) for fs, ex, rep in load_specs(
            config.data.dev, config.data.skip_bad_records, "config.data.dev")]

    def __call__(self, state):
        params = state.params["model"]
        f1 = [score_file(self.config, self.ctx, self.ctx["module"], params, fs, ex,
                         feats=feats)[0]["f1"] for fs, ex, feats in self.dev]
        return sum(f1) / len(f1)

    def save_best(self, state, step, score):
        if distributed.is_main_process():
            tmp = self.dir + ".tmp"
            save_pretrained(self.ctx["module"], jax.device_get(state.params["model"]),
                            os.path.join(tmp, "hf"), self.ctx["tokenizer"])
            with open(os.path.join(tmp, "best.json"), "w") as f:
                json.dump({"step": step, "dev_f1": score}, f)
            shutil.rmtree(self.dir, ignore_errors=True)
            os.replace(tmp, self.dir)


def _dev_evaluator(config, workdir, ctx, stage):
    if not (config.data.dev and config.train.eval_every > 0):
        return None
    return DevF1(config, workdir, ctx, stage)


def baseline(config, workdir, ctx):
    """Fine-tunes with L_mrc and exports ``baseline/hf`` (and ``baseline/best/hf``)."""
    if common.skip_trained(workdir, "baseline"):
        return
    setup(config, workdir, ctx)
    feats = train_features(config, ctx)
    arrays = {k: feats[k] for k in TRAIN_KEYS}
    common.run_training(config, workdir, ctx, "baseline", arrays, train_step.mrc_objective,
                        config.train.epochs, ctx["init_params"],
                        evaluator=_dev_evaluator(config, workdir, ctx, "baseline"))


def _predict_windows(module, params, feats, mesh, batch_size, k, max_answer_len,
                     what="predict"):
    """Top-k spans of every window: ``(starts, ends, scores)`` ``[num_windows, k]``."""
    params = common.replicated(params, mesh)
    n = len(feats["input_ids"])
    batch_size = common.eval_batch_size(mesh, batch_size)
    out = [np.zeros((n, k), np.int32), np.zeros((n, k), np.int32), np.zeros((n, k), np.float32)]
    keys = ("input_ids", "attention_mask", "token_type_ids", "context_mask")
    batches = eval_batches({key: feats[key] for key in keys}, batch_size)
    for b in report.progress(batches, -(-n // batch_size), what):
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
    module, params = common.load_stage_model(ctx, trained_model(config, workdir, "baseline"))
    z = config.hl.num_candidates
    starts, ends, scores = _predict_windows(module, params, feats, ctx["mesh"],
                                            config.train.eval_batch_size, z, config.max_answer_length,
                                            "mine")
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
    if common.skip_trained(workdir, "hl_aacl"):
        return
    setup(config, workdir, ctx)
    feats = train_features(config, ctx)
    with np.load(os.path.join(workdir, "mine", "candidates.npz")) as c:
        if not np.array_equal(c["input_ids"], feats["input_ids"][:, :8]):
            raise ValueError(f"{workdir}/mine/candidates.npz was mined from other training windows; "
                             "delete it to mine again")
        cands = {k: c[k] for k in ("cand_starts", "cand_ends", "cand_valid")}
    _, params = common.load_stage_model(ctx, trained_model(config, workdir, "baseline"))
    arrays = {**{k: feats[k] for k in TRAIN_KEYS}, **cands}
    hl = config.hl
    extra = ({"hl": {"type_logits": jnp.asarray(DEFAULT_TYPE_LOGITS, jnp.float32)}}
             if hl.variant == "weighted_learned" else None)

    def objective(module):
        return train_step.hl_aacl_objective(module, hl.variant, hl.alpha, hl.tau, hl.num_contrast,
                                            config.max_answer_length, tuple(hl.type_weights))
    common.run_training(config, workdir, ctx, "hl_aacl", arrays, objective, hl.epochs, params, extra,
                        evaluator=_dev_evaluator(config, workdir, ctx, "hl_aacl"))


# --------------------------------------------------------------------------- evaluation

def score_file(config, ctx, module, params, fs, examples, n_best=None, feats=None):
    """EM / F1 of one evaluation file: ``(result, predictions, nbest)``; ``result`` holds
    ``exact_match``, ``f1``, ``total`` and the ``metric`` used (MLQA or SQuAD rules).
    ``feats`` are the examples' windows when the caller already has them."""
    n_best = n_best or config.eval.n_best
    if feats is None:
        feats = _features(config, ctx, examples)
    starts, ends, scores = _predict_windows(module, params, feats, ctx["mesh"],
                                            config.train.eval_batch_size, n_best,
                                            config.max_answer_length,
                                            f"evaluate {fs.name} {fs.language}")
    nbest = postprocess.nbest_per_example(examples, feats, starts, ends, scores, n_best)
    preds = postprocess.predictions_from_nbest(nbest)
    metric = squad_metrics.default_metric(fs.name)
    gold = {ex.id: [a.text for a in ex.answers] for ex in examples if ex.answers}
    res = squad_metrics.evaluate(gold, preds, fs.language, metric)
    return {**res, "metric": metric}, preds, nbest


def evaluate(config, workdir, ctx):
    """Per dataset and language: predictions, n-best, EM / F1, EM@k; tables and a plot."""
    out_dir = os.path.join(workdir, "evaluate")
    if common.printed_if_done(out_dir, "evaluate"):
        return
    setup(config, workdir, ctx)
    folder = trained_model(config, workdir, "hl_aacl") or trained_model(config, workdir, "baseline")
    if folder:
        module, params = common.load_stage_model(ctx, folder)
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
        res, preds, nbest = score_file(config, ctx, module, params, fs, examples, n_best)
        metric = res["metric"]
        gold = {ex.id: [a.text for a in ex.answers] for ex in examples if ex.answers}
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
