"""McCrolin: teacher-student rounds (``mccrolin``) and retrieval evaluation (``retrieval``).

``mccrolin`` writes

* ``mccrolin/round_0/hf``: the initial model (the first teacher; the pretrained encoder, or the
  seeded random initialisation when ``config.model.name`` is empty);
* ``mccrolin/round_<r>/{checkpoints,hf,dev.json}`` for r = 1..rounds: round r trains a student
  that starts from round r-1's model against a frozen teacher equal to round r-1's model (so
  teacher <- student between rounds), then scores it on the dev split;
* ``mccrolin/best/hf`` and ``mccrolin/rounds.json``: the round with the best dev score.

``retrieval`` scores the initial and the best model on the test split at passage and sentence
level: ``retrieval/results.{md,json,png}``. Both stages skip what already exists and resume an
interrupted round from its checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import numpy as np

from xmrc_jax.data import load_specs
from xmrc_jax.data.retrieval import (join_parallel, retrieval_sets, split_by_article,
                                     training_tuples)
from xmrc_jax.data.squad_format import DataError
from xmrc_jax.eval import report
from xmrc_jax.eval.retrieval_metrics import (SIMILARITIES, micro_average, retrieval_metrics,
                                             top_k_chunked)
from xmrc_jax.models import init_params, save_pretrained
from xmrc_jax.stages import common, names
from xmrc_jax.train import distributed, sharding as sh, step as train_step

log = logging.getLogger("xmrc_jax")
FIELDS = {"q_en": "query", "q_ne": "query", "d": "passage", "pr": "sentence"}


def setup(config, workdir, ctx):
    common.setup(config, workdir, ctx, head="embed")
    r = config.retrieval
    metrics = [f"R@{k}" for k in r.recall_at] + [f"MRR@{r.mrr_at}"]
    checks = [("similarity", r.similarity, SIMILARITIES), ("select_metric", r.select_metric, metrics)]
    checks += [("levels", lv, ("passage", "sentence")) for lv in names(r.levels)]
    for key, value, allowed in checks:
        if value not in allowed:
            raise ValueError(f"config.retrieval.{key}: {value!r} is not one of {list(allowed)}")
    longest = max(r.max_query_length, r.max_passage_length, r.max_sentence_length)
    if longest > ctx["module"].config.max_tokens:
        raise ValueError(f"config.retrieval max lengths ({longest}) exceed the model's "
                         f"{ctx['module'].config.max_tokens} positions")
    return ctx


# --------------------------------------------------------------------------- data

def parallel_splits(config, ctx) -> dict:
    """``{"train" | "dev" | "test": [ParallelQuestion]}`` from ``config.data.parallel``."""
    if "splits" in ctx:
        return ctx["splits"]
    by_dataset = {}
    for fs, examples, rep in load_specs(config.data.parallel, config.data.skip_bad_records,
                                        "config.data.parallel"):
        log.info("%s", rep)
        # Several files of one dataset and language (e.g. dev + test) are concatenated;
        # join_parallel rejects a question id that then occurs twice.
        by_dataset.setdefault(fs.name, {}).setdefault(fs.language, []).extend(examples)
    questions = []
    for name, langs in by_dataset.items():
        if "en" not in langs:
            raise DataError(f"config.data.parallel: {name} has no English file; McCrolin needs "
                            "the English passages and questions (language 'en')")
        english = langs.pop("en")
        qs, rep = join_parallel(name, english, langs)
        log.info("%s", rep)
        questions.extend(qs)
    splits = split_by_article(questions, tuple(config.retrieval.split_fractions),
                              config.retrieval.split_seed)
    log.info("article split: %s questions (%s articles)",
             {k: len(v) for k, v in splits.items()},
             {k: len({(q.dataset, q.title) for q in v}) for k, v in splits.items()})
    ctx["splits"] = splits
    return splits


def _lengths(config, kind):
    r = config.retrieval
    return {"query": r.max_query_length, "passage": r.max_passage_length,
            "sentence": r.max_sentence_length}[kind]


def _prefix(config, kind):
    return config.retrieval.query_prefix if kind == "query" else config.retrieval.passage_prefix


def encode_texts(tokenizer, texts, max_length: int, prefix: str = "", what: str = "texts"):
    """Token ids ``[N, max_length]`` (int32) and attention mask, padded with the tokenizer's pad
    id. Longer texts keep their first ``max_length - 1`` tokens and the closing special token;
    how many were cut is logged."""
    enc = tokenizer([prefix + t for t in texts], add_special_tokens=True)["input_ids"]
    ids = np.full((len(enc), max_length), tokenizer.pad_token_id, np.int32)
    mask = np.zeros((len(enc), max_length), np.int32)
    cut = 0
    for i, row in enumerate(enc):
        if len(row) > max_length:
            row = row[:max_length - 1] + row[-1:]
            cut += 1
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    if cut:
        log.info("%d of %d %s are longer than %d tokens and were truncated", cut, len(enc), what,
                 max_length)
    return ids, mask


def tuple_arrays(config, ctx, questions) -> dict:
    """Tokenized training tuples: ``{q_en,q_ne,d,pr}_{ids,mask}`` (each distinct text once)."""
    cols = training_tuples(questions, names(config.retrieval.languages))
    if not cols:
        raise DataError("no training tuples: the train split has no question in "
                        f"{names(config.retrieval.languages)}")
    arrays = {}
    for field, kind in FIELDS.items():
        unique = list(dict.fromkeys(cols[field]))
        where = {t: i for i, t in enumerate(unique)}
        ids, mask = encode_texts(ctx["tokenizer"], unique, _lengths(config, kind),
                                 _prefix(config, kind), f"training {field} texts")
        rows = np.array([where[t] for t in cols[field]])
        arrays[f"{field}_ids"], arrays[f"{field}_mask"] = ids[rows], mask[rows]
    log.info("McCrolin training tuples: %d (%s)", len(cols["q_en"]),
             {lang: cols["language"].count(lang) for lang in dict.fromkeys(cols["language"])})
    return arrays


# --------------------------------------------------------------------------- embedding, scoring

def embed_texts(config, ctx, module, params, texts, kind: str) -> np.ndarray:
    """Embeddings ``[N, hidden]`` (fp32, L2-normalised when ``config.mccrolin.normalize``).

    Texts are sorted by length and each batch is padded only to a multiple of 32 tokens, so
    short queries do not pay for the longest passage; a handful of shapes are compiled."""
    if not texts:
        return np.zeros((0, module.config.hidden_size), np.float32)
    ids, mask = encode_texts(ctx["tokenizer"], texts, _lengths(config, kind),
                             _prefix(config, kind), f"{kind} texts")
    mesh = ctx["mesh"]
    bs = common.eval_batch_size(mesh, config.retrieval.eval_batch_size)
    lengths = mask.sum(1)
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros((len(texts), module.config.hidden_size), np.float32)
    params = common.replicated(params, mesh)
    for b in report.progress(range(0, len(order), bs), -(-len(order) // bs), f"embed {kind}s"):
        rows = order[b:b + bs]
        width = min(ids.shape[1], int(-(-lengths[rows].max() // 32) * 32))
        bi = np.full((bs, width), ctx["tokenizer"].pad_token_id, np.int32)
        bm = np.zeros((bs, width), np.int32)
        bi[:len(rows)], bm[:len(rows)] = ids[rows, :width], mask[rows, :width]
        bm[len(rows):, 0] = 1                         # padding rows: one token, discarded
        batch = sh.put_batch({"ids": bi, "mask": bm}, mesh)
        e = _embed(module, params, batch["ids"], batch["mask"], bool(config.mccrolin.normalize))
        out[rows] = np.asarray(jax.device_get(e))[:len(rows)]
    return out


_embed = jax.jit(train_step.embed, static_argnames=("module", "normalize"))


def score_model(config, ctx, module, params, questions, levels) -> dict:
    """``{level: {lang: metrics, "avg": micro average over non-English languages}}``."""
    r = config.retrieval
    k = max(max(r.recall_at), r.mrr_at)
    out, query_emb = {}, {}
    for level in levels:
        rs = retrieval_sets(questions, names(r.languages), level, r.include_english)
        pool = embed_texts(config, ctx, module, params, rs.pool,
                           "passage" if level == "passage" else "sentence")
        per_lang = {}
        for lang, texts in rs.queries.items():
            if lang not in query_emb:      # the same queries at every level: embed them once
                query_emb[lang] = embed_texts(config, ctx, module, params, texts, "query")
            q = query_emb[lang]
            ranked = []
            for b in range(0, len(q), r.query_block):
                _, idx = top_k_chunked(q[b:b + r.query_block], pool, k=k, chunk=r.chunk_size,
                                       similarity=r.similarity)
                ranked.append(np.asarray(idx))
            per_lang[lang] = retrieval_metrics(np.concatenate(ranked), rs.relevant[lang],
                                               tuple(r.recall_at), r.mrr_at)
        non_en = {lang: m for lang, m in per_lang.items() if lang != "en"}
        per_lang["avg"] = micro_average(non_en or per_lang)
        out[level] = per_lang
        log.info("%s-level retrieval over %d candidates: %s", level, len(rs.pool),
                 "  ".join(f"{lang} R@1 {m['R@1']:.1f}" for lang, m in per_lang.items()))
    return out


# --------------------------------------------------------------------------- stages

def _round_dir(r):
    return os.path.join("mccrolin", f"round_{r}")


def initial_model(config, workdir, ctx):
    """``mccrolin/round_0/hf``: the first teacher, written once so every round and the final
    comparison read the same weights."""
    folder = common.exported(workdir, _round_dir(0))
    if folder is None:
        params = ctx["init_params"]
        if params is None:
            params = init_params(ctx["module"], jax.random.PRNGKey(config.seed))
            log.info("mccrolin: no config.model.name; the first teacher is a random "
                     "initialisation (seed %d)", config.seed)
        folder = os.path.join(workdir, _round_dir(0), "hf")
        if distributed.is_main_process():
            save_pretrained(ctx["module"], jax.device_get(params), folder, ctx["tokenizer"])
    return folder


def _dev_score(config, ctx, workdir, r, folder):
    path = os.path.join(workdir, _round_dir(r), "dev.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    dev = parallel_splits(config, ctx)["dev"]
    if not dev:
        return None
    module, params = common.load_stage_model(ctx, folder)
    res = score_model(config, ctx, module, params, dev, ("passage",))
    if distributed.is_main_process():
        with open(path, "w") as f:
            json.dump(res, f, indent=2)
    return res


def mccrolin(config, workdir, ctx):
    """Rounds of teacher-student training; exports the best round to ``mccrolin/best/hf``."""
    best_dir = os.path.join(workdir, "mccrolin", "best")
    if common.skip_trained(workdir, os.path.join("mccrolin", "best")):
        return
    setup(config, workdir, ctx)
    splits = parallel_splits(config, ctx)
    arrays = tuple_arrays(config, ctx, splits["train"])
    m = config.mccrolin
    previous = initial_model(config, workdir, ctx)
    select = config.retrieval.select_metric
    scores = {0: _dev_score(config, ctx, workdir, 0, previous)}

    def objective(module):
        return train_step.mccrolin_objective(module, tuple(m.gammas), tuple(m.betas),
                                             tuple(m.lambdas), tuple(m.omegas), m.tau, m.normalize)
    for r in range(1, m.rounds + 1):
        name = _round_dir(r)
        if not common.skip_trained(workdir, name):
            # teacher <- student: round r's teacher and its student's start are round r-1's model.
            _, teacher = common.load_stage_model(ctx, previous)
            log.info("mccrolin round %d/%d: teacher and student start from %s", r, m.rounds, previous)
            common.run_training(config, workdir, ctx, name, arrays, objective, config.train.epochs,
                                teacher, consts=(teacher,))
        previous = common.exported(workdir, name)
        scores[r] = _dev_score(config, ctx, workdir, r, previous)
    if scores[1] is None:
        best = m.rounds
        log.info("mccrolin: the dev split is empty; keeping the last round")
    else:
        best = max(range(1, m.rounds + 1), key=lambda r: (scores[r]["passage"]["avg"][select], -r))
        summary = ", ".join(f"round {r} {s['passage']['avg'][select]:.2f}" for r, s in scores.items())
        log.info("mccrolin: dev %s (passage level, avg): %s; best round %d", select, summary, best)
        if scores[0]["passage"]["avg"][select] > scores[best]["passage"]["avg"][select]:
            log.warning("mccrolin: the initial model scores higher on dev than every trained round")
    if distributed.is_main_process():
        with open(os.path.join(workdir, "mccrolin", "rounds.json"), "w") as f:
            json.dump({"select_metric": select, "best_round": best,
                       "dev": {str(r): s for r, s in scores.items()}}, f, indent=2)
        tmp = best_dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(os.path.join(workdir, _round_dir(best), "hf"),
                        os.path.join(tmp, "hf"))
        shutil.rmtree(best_dir, ignore_errors=True)
        os.replace(tmp, best_dir)


def retrieval(config, workdir, ctx):
    """Recall@1/10 and MRR@10 per language on the test split, for the initial and best models."""
    out_dir = os.path.join(workdir, "retrieval")
    if common.printed_if_done(out_dir, "retrieval"):
        return
    setup(config, workdir, ctx)
    models = {}
    if common.exported(workdir, _round_dir(0)):
        models["initial"] = common.exported(workdir, _round_dir(0))
    if common.exported(workdir, os.path.join("mccrolin", "best")):
        with open(os.path.join(workdir, "mccrolin", "rounds.json")) as f:
            best = json.load(f)["best_round"]
        models[f"McCrolin (round {best})"] = common.exported(workdir, os.path.join("mccrolin", "best"))
    if not models:
        if ctx["init_params"] is None:
            raise ValueError(f"retrieval: no McCrolin model in {workdir} (run the mccrolin stage) "
                             "and config.model.name is empty")
        models[os.path.basename(config.model.name.rstrip("/"))] = None
    test = parallel_splits(config, ctx)["test"]
    if not test:
        raise DataError("retrieval: the test split is empty (config.retrieval.split_fractions)")
    results = {}
    for label, folder in models.items():
        if folder is None:
            module, params = ctx["module"], ctx["init_params"]
        else:
            module, params = common.load_stage_model(ctx, folder)
        results[label] = score_model(config, ctx, module, params, test,
                                     tuple(names(config.retrieval.levels)))
    table = report.retrieval_markdown(results)
    if distributed.is_main_process():
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
            f.write(table + "\n")
        report.plot_retrieval(results, os.path.join(out_dir, "results.png"))
        with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
            json.dump({"models": models, "results": results}, f, indent=2)
    print(table)
