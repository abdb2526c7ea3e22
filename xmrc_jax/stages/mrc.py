"""The two-stage xMRC pipeline: ``baseline`` -> ``mine`` -> ``hl_aacl`` -> ``evaluate``.

Outputs (``stages.artifacts`` owns the paths): ``baseline/`` and ``hl_aacl/`` (``hf`` exports
of the trained models, ``best/`` with the best dev checkpoint, ``checkpoints/`` while
training), ``mine/candidates.npz``, ``evaluate/results.{md,json,png}`` with the predictions.
"""

from __future__ import annotations

import logging
import os


from xmrc_jax.data import build_features, load_specs, remove_overlap
from xmrc_jax.data.features import dominant_contexts
from xmrc_jax.eval import report, span_qa as span_eval
from xmrc_jax.stages.common import handed_on, train_and_export
from xmrc_jax.tasks import span_qa
from xmrc_jax.train.loop import Hook

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
        for ex, n, share in dominant_contexts(examples, feats):
            log.warning("training: the context of question %r (%d characters, title %r) alone "
                        "makes %d windows, %.0f%% of all; check that input", ex.id,
                        len(ex.context), ex.title, n, 100 * share)
        return feats
    return ctx.cached("train_windows", build)


def _selection_files(ctx, name):
    """The dev files that select ``name``'s checkpoint (``config.eval.selection``), with every
    question or passage that occurs in ``config.data.eval`` removed; what was used is written
    to ``<name>/selection.json``. ``[]`` when nothing selects (``last``, no dev data)."""
    c, wd = ctx.config, ctx.workdir
    if c.eval.selection == "last" or not c.data.dev or c.train.eval_every <= 0:
        wd.write_json(wd.selection(name), {"rule": "last", "dev": []})
        return []
    held_out = [ex for _, exs, _ in load_specs(c.data.eval, c.data.skip_bad_records,
                                               "config.data.eval") for ex in exs]
    files, used = [], []
    for fs, ex, rep in load_specs(c.data.dev, c.data.skip_bad_records, "config.data.dev"):
        kept, removed = remove_overlap(ex, held_out)
        log.info("%s; %d questions left out of selection: they or their passage occur in "
                 "config.data.eval", rep, removed)
        if not kept:
            raise ValueError(f"config.data.dev {fs.path or fs.tfds}: no question is left once "
                             "those that occur in config.data.eval are removed")
        files.append((fs, kept, _windows(ctx, kept)))
        used.append(dict(name=fs.name, language=fs.language, questions=len(kept),
                         removed_overlap=removed))
    wd.write_json(wd.selection(name), {"rule": c.eval.selection, "dev": used})
    return files


def _eval_kwargs(c, n_best=None):
    return dict(batch_size=c.train.eval_batch_size, n_best=n_best or c.eval.n_best,
                max_answer_len=c.max_answer_length)


class TrackPredictions(Hook):
    """Every ``every`` steps (and at the end), the top-k answers of a few chosen questions with
    their scores, appended to ``<stage>/tracked.json`` (the paper's Figure 3)."""

    key = "tracked"

    def __init__(self, ctx, name, module, files, every: int, k: int = 5):
        self.ctx, self.name, self.module, self.files, self.every, self.k = (
            ctx, name, module, files, every, k)
        self.steps = []

    def restore(self, value):
        self.steps = list(value or [])

    def state_dict(self):
        return self.steps

    def after_step(self, info):
        if not (info.step % self.every == 0 or info.last):
            return
        c, record = self.ctx.config, {"step": info.step, "questions": {}}
        for fs, examples, feats in self.files:
            _, _, nbest = span_eval.score_file(
                self.module, info.state.params["model"], fs, examples, feats, self.ctx.runtime.mesh,
                batch_size=c.train.eval_batch_size, n_best=self.k, max_answer_len=c.max_answer_length)
            for ex in examples:
                record["questions"][ex.id] = {
                    "question": ex.question, "gold": [a.text for a in ex.answers],
                    "top": [{"text": t, "score": float(sc)} for t, sc, _ in nbest[ex.id][:self.k]]}
        self.steps.append(record)
        self.ctx.workdir.write_json(self.ctx.workdir.tracked(self.name), self.steps)


def _tracked_files(ctx):
    """The first ``eval.track_questions`` questions of the first evaluation file."""
    c = ctx.config
    if c.eval.track_every <= 0 or c.eval.track_questions <= 0 or not c.data.eval:
        return []
    fs, ex, _ = load_specs(c.data.eval[:1], c.data.skip_bad_records, "config.data.eval")[0]
    ex = [e for e in ex if e.answers][:c.eval.track_questions]
    return [(fs, ex, _windows(ctx, ex))]


def _train_settings(c, learning_rate=0.0):
    """``config.train``, with ``learning_rate`` (when not 0) as the peak rate instead."""
    if not learning_rate:
        return c.train
    t = c.train.copy_and_resolve_references()
    t.learning_rate = float(learning_rate)
    return t


def _train(ctx, name, objective, init_params, arrays, epochs, learning_rate=0.0):
    c, rt = ctx.config, ctx.runtime
    module = rt.module(span_qa.HEAD)
    tracked = _tracked_files(ctx)
    hooks = [TrackPredictions(ctx, name, module, tracked, c.eval.track_every)] if tracked else []
    files = _selection_files(ctx, name)
    score = span_eval.dev_f1(module, files, rt.mesh, **_eval_kwargs(c)) if files else None
    params = train_and_export(ctx, name, module, span_qa.objective(objective, module, c), arrays,
                              epochs, init_params, span_qa.extra_params(objective, c),
                              score=score, what="dev_f1",
                              learning_rates=span_qa.learning_rates(objective, c), hooks=hooks,
                              train_cfg=_train_settings(c, learning_rate),
                              sequence_keys=span_qa.SEQUENCE_KEYS)
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
    """Trains alpha L_contrast + (1 - alpha) L_hard from the baseline (``hl.init``) or from the
    initial weights, with the candidates the baseline mined."""
    feats = _train_windows(ctx)
    cands = ctx.workdir.load_candidates(len(feats["input_ids"]))
    if ctx.config.hl.init == "pretrained":     # Z mined by the baseline, training from scratch
        _, params = ctx.runtime.initial(span_qa.HEAD)
        log.info("hl_aacl: starts from %s", ctx.config.model.name or "a random initialisation")
    else:
        _, params, _ = handed_on(ctx, "baseline", span_qa.HEAD)
    arrays = {**{k: feats[k] for k in span_qa.TRAIN_KEYS}, **cands}
    _train(ctx, "hl_aacl", "hl_aacl", params, arrays, ctx.config.hl.epochs,
           learning_rate=ctx.config.hl.learning_rate)


def evaluate(ctx):
    """Per dataset and language: predictions, n-best, EM / F1, EM@k; tables and a plot."""
    c, wd = ctx.config, ctx.workdir
    selection = {"rule": "none (not fine-tuned)", "dev": []}
    if ctx.source:
        module, params, what = handed_on(ctx, ctx.source, span_qa.HEAD)
        if os.path.exists(wd.selection(ctx.source)):
            selection = wd.read_json(wd.selection(ctx.source))
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
    table = (f"Model: {what}\nSelection: {report.selection_line(selection)}\n\n"
             + report.results_markdown(results, ks))
    wd.write_results("evaluate", table, {"model": what, "selection": selection,
                                         "averages": report.averages(results),
                                         "results": results},
                     lambda path: report.plot_results(
                         results, ks, path, f"run {os.path.basename(os.path.abspath(wd.root))}: {what}"))
