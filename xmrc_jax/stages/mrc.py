"""The two-stage xMRC pipeline: ``baseline`` -> ``mine`` -> ``hl_aacl`` -> ``evaluate``.

Outputs (``stages.artifacts`` owns the paths): ``baseline/`` and ``hl_aacl/`` (``hf`` exports
of the trained models, ``best/`` with the best dev checkpoint, ``checkpoints/`` while
training), ``mine/candidates.npz``, ``evaluate/results.{md,json,png}`` with the predictions.
"""

from __future__ import annotations

import logging

import numpy as np

from xmrc_jax.data import build_features, load_specs
from xmrc_jax.eval import report, span_qa as span_eval
from xmrc_jax.stages.common import handed_on, train_and_export
from xmrc_jax.tasks import span_qa

log = logging.getLogger("xmrc_jax")


def _windows(ctx, examples):
    c, rt = ctx.config, ctx.runtime
    return build_features(examples, rt.tokenizer, c.data.max_seq_length, c.data.doc_stride,
                          c.data.max_query_length, use_token_types=rt.arch.type_vocab_size > 1,
                          cache_dir=rt.cache_dir)


def _files(ctx, key: str):
    """``[(FileSpec, examples, windows)]`` of ``config.data.<key>``."""
    out = []
    for fs, ex, rep in load_specs(ctx.config.data[key], ctx.config.data.skip_bad_records,
                                  f"config.data.{key}"):
        log.info("%s", rep)
        out.append((fs, ex, _windows(ctx, ex)))
    return out


def _train_windows(ctx):
    def build():
        c = ctx.config
        examples = []
        for fs, ex, rep in load_specs(c.data.train, c.data.skip_bad_records, "config.data.train"):
            log.info("%s", rep)
            examples.extend(ex[:c.data.limit_per_file] if c.data.limit_per_file else ex)
        feats = _windows(ctx, examples)
        log.info("training: %d examples -> %d windows (%d with the answer inside)",
                 len(examples), len(feats["input_ids"]), int(feats["answer_in_window"].sum()))
        return feats
    return ctx.cached("train_windows", build)


def _eval_kwargs(c, n_best=None):
    return dict(batch_size=c.train.eval_batch_size, n_best=n_best or c.eval.n_best,
                max_answer_len=c.max_answer_length)


def _train(ctx, name, objective, init_params, arrays, epochs):
    c, rt = ctx.config, ctx.runtime
    module = rt.module(span_qa.HEAD)
    score = None
    if c.data.dev and c.train.eval_every > 0:
        score = span_eval.dev_f1(module, _files(ctx, "dev"), rt.mesh, **_eval_kwargs(c))
    params = train_and_export(ctx, name, module, span_qa.objective(objective, module, c), arrays,
                              epochs, init_params, span_qa.extra_params(objective, c),
                              score=score, what="dev_f1")
    weights = span_qa.learned_type_weights(params)
    if weights:
        ctx.workdir.write_json(ctx.workdir.hl_weights(name), weights)


def baseline(ctx):
    """Fine-tunes with L_mrc from ``config.model.name`` (or a random initialisation)."""
    feats = _train_windows(ctx)
    _, init = ctx.runtime.initial(span_qa.HEAD)
    _train(ctx, "baseline", "mrc", init, {k: feats[k] for k in span_qa.batch_keys("mrc")},
           ctx.config.train.epochs)


def mine(ctx):
    """Top-|Z| spans of the baseline for every training window, gold in the last slot if absent."""
    c = ctx.config
    feats = _train_windows(ctx)
    module, params, _ = handed_on(ctx, "baseline", span_qa.HEAD)
    z = c.hl.num_candidates
    starts, ends, _ = span_eval.predict_windows(module, params, feats, ctx.runtime.mesh,
                                                c.train.eval_batch_size, z, c.max_answer_length,
                                                "mine")
    gs, ge = feats["start_positions"], feats["end_positions"]
    has_gold = ((starts == gs[:, None]) & (ends == ge[:, None])).any(1)
    starts[~has_gold, -1], ends[~has_gold, -1] = gs[~has_gold], ge[~has_gold]
    answer = feats["answer_in_window"]
    log.info("mine: %d windows; gold among the top-%d for %.1f%% (answer windows: %.1f%%)",
             len(starts), z, 100 * has_gold.mean(), 100 * has_gold[answer].mean() if answer.any() else 0)
    ctx.workdir.save_candidates(starts, ends, starts >= 0, has_gold)


def hl_aacl(ctx):
    """Trains from the baseline with alpha L_contrast + (1 - alpha) L_hard."""
    feats = _train_windows(ctx)
    cands = ctx.workdir.load_candidates(len(feats["input_ids"]))
    _, params, _ = handed_on(ctx, "baseline", span_qa.HEAD)
    arrays = {**{k: feats[k] for k in span_qa.TRAIN_KEYS}, **cands}
    _train(ctx, "hl_aacl", "hl_aacl", params, arrays, ctx.config.hl.epochs)


def evaluate(ctx):
    """Per dataset and language: predictions, n-best, EM / F1, EM@k; tables and a plot."""
    c, wd = ctx.config, ctx.workdir
    if ctx.source:
        module, params, what = handed_on(ctx, ctx.source, span_qa.HEAD)
    else:
        (module, params), what = ctx.runtime.initial(span_qa.HEAD), f"{c.model.name} (not fine-tuned)"
        log.info("evaluate: model %s", what)
    ks = tuple(int(k) for k in c.eval.em_at_k)
    results, outputs = span_eval.evaluate_files(module, params, _files(ctx, "eval"),
                                                ctx.runtime.mesh, ks=ks, **_eval_kwargs(c))
    for (ds, lang), (preds, nbest) in outputs.items():
        wd.write_json(wd.predictions("evaluate", ds, lang), preds, indent=None)
        wd.write_json(wd.predictions("evaluate", ds, lang, "nbest"), span_eval.nbest_json(nbest),
                      indent=None)
    table = f"Model: {what}\n\n" + report.results_markdown(results, ks)
    wd.write_results("evaluate", table, {"model": what, "results": results},
                     lambda path: report.plot_results(results, ks, path))
