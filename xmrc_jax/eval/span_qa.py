"""Span-QA evaluation: top-k spans of every window, official EM / F1 per file, EM@k, and the
dev-F1 scorer used during training. No paths: callers write what these functions return."""

from __future__ import annotations

import logging

import numpy as np

from xmrc_jax import mesh as sh
from xmrc_jax.data import eval_batches
from xmrc_jax.eval import postprocess, squad_metrics
from xmrc_jax.tasks import span_qa
from xmrc_jax.utils import progress

log = logging.getLogger("xmrc_jax")


def predict_windows(module, params, feats, mesh, batch_size, k, max_answer_len,
                    what="predict", length_multiple: int = 32):
    """Top-k spans of every window: ``(starts, ends, scores)`` ``[num_windows, k]``. Batches
    are cut to their longest window (a multiple of ``length_multiple``; 0: full length), which
    leaves the spans unchanged: padding is masked out of attention and of the span search."""
    params = sh.replicated(params, mesh)
    n = len(feats["input_ids"])
    batch_size = sh.eval_batch_size(mesh, batch_size)
    out = [np.zeros((n, k), np.int32), np.zeros((n, k), np.int32), np.zeros((n, k), np.float32)]
    batches = eval_batches({key: feats[key] for key in span_qa.PREDICT_KEYS}, batch_size,
                           length_multiple)
    for b in progress(batches, -(-n // batch_size), what):
        valid, index = b.pop("valid"), b.pop("index")
        res = span_qa.predict_top_k(module, params, sh.put_batch(b, mesh), k, max_answer_len)
        for dst, src in zip(out, res):
            dst[index[valid]] = sh.local_rows(src, mesh)[valid]
    return out


def gold_answers(examples) -> dict:
    return {ex.id: [a.text for a in ex.answers] for ex in examples if ex.answers}


def score_file(module, params, fs, examples, feats, mesh, *, batch_size: int, n_best: int,
               max_answer_len: int):
    """EM / F1 of one evaluation file: ``(result, predictions, nbest)``; ``result`` holds
    ``exact_match``, ``f1``, ``total`` and the ``metric`` used (the dataset's official script,
    ``fs.metric``)."""
    starts, ends, scores = predict_windows(module, params, feats, mesh, batch_size, n_best,
                                           max_answer_len, f"evaluate {fs.name} {fs.language}")
    nbest = postprocess.nbest_per_example(examples, feats, starts, ends, scores, n_best)
    preds = postprocess.predictions_from_nbest(nbest)
    res = squad_metrics.evaluate(gold_answers(examples), preds, fs.language, fs.metric)
    return {**res, "metric": fs.metric}, preds, nbest


def em_at_k(nbest, gold, lang: str, metric: str, ks) -> dict:
    """``{str(k): EM}``: the share of questions with a gold answer among the top k."""
    em_at = {}
    for k in ks:
        hits = [max(squad_metrics.score_one(t, gold[q], lang, metric)[0]
                    for t, _, _ in nbest[q][:k]) if nbest[q] else 0.0 for q in gold]
        em_at[str(k)] = 100.0 * sum(hits) / max(len(hits), 1)
    return em_at


def evaluate_files(module, params, files, mesh, *, batch_size: int, n_best: int,
                   max_answer_len: int, ks):
    """``files = [(FileSpec, examples, windows)]`` -> ``(results, outputs)``:
    ``results[dataset][lang] = {f1, exact_match, total, metric, em_at}`` and
    ``outputs[(dataset, lang)] = (predictions, nbest)``."""
    n_best = max(n_best, max(ks))
    results, outputs = {}, {}
    for fs, examples, feats in files:
        res, preds, nbest = score_file(module, params, fs, examples, feats, mesh,
                                       batch_size=batch_size, n_best=n_best,
                                       max_answer_len=max_answer_len)
        em_at = em_at_k(nbest, gold_answers(examples), fs.language, fs.metric, ks)
        results.setdefault(fs.name, {})[fs.language] = dict(
            f1=res["f1"], exact_match=res["exact_match"], total=res["total"], metric=fs.metric,
            em_at=em_at)
        outputs[(fs.name, fs.language)] = (preds, nbest)
        log.info("evaluate %s %s (%s metric): EM %.2f F1 %.2f on %d questions", fs.name,
                 fs.language, fs.metric, res["exact_match"], res["f1"], res["total"])
    return results, outputs


def dev_f1(module, files, mesh, *, batch_size: int, n_best: int, max_answer_len: int):
    """``score(params) -> (average F1, {"<dataset>_<lang>/f1" | "/exact_match": value})`` over
    ``files = [(FileSpec, examples, windows)]`` (the windows are built once by the caller, not
    at every evaluation)."""
    def score(params):
        details, f1 = {}, []
        for fs, ex, feats in files:
            res = score_file(module, params, fs, ex, feats, mesh, batch_size=batch_size,
                             n_best=n_best, max_answer_len=max_answer_len)[0]
            f1.append(res["f1"])
            details[f"{fs.name}_{fs.language}/f1"] = res["f1"]
            details[f"{fs.name}_{fs.language}/exact_match"] = res["exact_match"]
        return sum(f1) / len(f1), details
    return score


def nbest_json(nbest) -> dict:
    return {q: [{"text": t, "score": s, "char_start": a} for t, s, a in c]
            for q, c in nbest.items()}
