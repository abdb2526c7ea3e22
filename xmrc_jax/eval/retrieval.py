"""Retrieval evaluation: embedding texts with an encoder and scoring Recall@k / MRR@k per
language and level (passage, sentence) against an English candidate pool."""

from __future__ import annotations

import logging

import numpy as np

from xmrc_jax import mesh as sh
from xmrc_jax.data.pipeline import eval_batches
from xmrc_jax.data.retrieval import retrieval_sets
from xmrc_jax.data.text import encode_texts
from xmrc_jax.eval.retrieval_metrics import first_relevant_rank, micro_average, retrieval_metrics, \
    top_k_chunked
from xmrc_jax.tasks import retrieval_qa
from xmrc_jax.utils import progress

log = logging.getLogger("xmrc_jax")


def embed_texts(module, params, tokenizer, mesh, texts, kind: str, r, normalize: bool):
    """Embeddings ``[N, hidden]`` (fp32, L2-normalised when ``normalize``) of ``kind`` texts
    (query / passage / sentence: their length and prefix come from ``r = config.retrieval``).

    Texts go longest first and each batch is cut to a multiple of 32 tokens
    (``data.eval_batches``), so short queries do not pay for the longest passage; a handful of
    shapes are compiled."""
    if not texts:
        return np.zeros((0, module.config.hidden_size), np.float32)
    ids, mask = encode_texts(tokenizer, texts, retrieval_qa.max_length(r, kind),
                             retrieval_qa.prefix(r, kind), f"{kind} texts")
    bs = sh.eval_batch_size(mesh, r.eval_batch_size)
    out = np.zeros((len(texts), module.config.hidden_size), np.float32)
    params = sh.replicated(params, mesh)
    batches = eval_batches({"ids": ids, "mask": mask}, bs, length_multiple=32, mask_key="mask")
    for batch in progress(batches, -(-len(texts) // bs), f"embed {kind}s"):
        valid = batch.pop("valid")
        rows = batch.pop("index")[valid]
        batch["ids"][~valid] = tokenizer.pad_token_id
        batch["mask"][~valid, 0] = 1                  # padding rows: one token, discarded
        batch = sh.put_batch(batch, mesh)
        e = retrieval_qa.embed_jit(module, params, batch["ids"], batch["mask"], normalize)
        out[rows] = sh.local_rows(e, mesh)[:len(rows)]
    return out


def score_model(module, params, tokenizer, mesh, questions, levels, r, normalize: bool,
                ranks_out: dict = None) -> dict:
    """``{level: {lang: metrics, "avg": micro average over non-English languages}}`` with
    ``r = config.retrieval`` (languages, cut-offs, similarity, chunking). ``ranks_out``, when
    given, receives ``[level][lang]`` = each query's 1-based rank of its first relevant
    candidate (0: not in the top k), for paired tests between models."""
    k = max(max(r.recall_at), r.mrr_at)
    out, query_emb = {}, {}
    embed = lambda texts, kind: embed_texts(module, params, tokenizer, mesh, texts, kind, r,  # noqa: E731
                                            normalize)
    for level in levels:
        rs = retrieval_sets(questions, tuple(r.languages), level, r.include_english,
                            bool(r.sentence_context))
        pool = embed(rs.pool, "sentence" if level == "sentence" and not r.sentence_context
                     else "passage")
        per_lang = {}
        for lang, texts in rs.queries.items():
            if lang not in query_emb:      # the same queries at every level: embed them once
                query_emb[lang] = embed(texts, "query")
            q = query_emb[lang]
            ranked = []
            for b in range(0, len(q), r.query_block):
                _, idx = top_k_chunked(q[b:b + r.query_block], pool, k=k, chunk=r.chunk_size,
                                       similarity=r.similarity)
                ranked.append(np.asarray(idx))
            ranked = np.concatenate(ranked)
            per_lang[lang] = retrieval_metrics(ranked, rs.relevant[lang], tuple(r.recall_at),
                                               r.mrr_at)
            if ranks_out is not None:
                ranks_out.setdefault(level, {})[lang] = dict(zip(
                    rs.ids[lang], first_relevant_rank(ranked, rs.relevant[lang]).tolist()))
        non_en = {lang: m for lang, m in per_lang.items() if lang != "en"}
        per_lang["avg"] = micro_average(non_en or per_lang)
        out[level] = per_lang
        log.info("%s-level retrieval over %d candidates: %s", level, len(rs.pool),
                 "  ".join(f"{lang} R@1 {m['R@1']:.1f}" for lang, m in per_lang.items()))
    return out


def dev_score(module, tokenizer, mesh, questions, r, normalize: bool):
    """``score(params) -> r.select_metric`` at passage level (micro average) on ``questions``:
    the dev scorer McCrolin uses to pick rounds and, with ``train.eval_every``, within a round."""
    def score(params):
        res = score_model(module, params, tokenizer, mesh, questions, ("passage",), r, normalize)
        return res["passage"]["avg"][r.select_metric]
    return score
