"""McCrolin: teacher-student rounds (``mccrolin``) and retrieval evaluation (``retrieval``).

``mccrolin`` writes ``mccrolin/round_0/hf`` (the initial model, the first teacher),
``mccrolin/round_<r>/`` for r = 1..rounds (round r trains a student that starts from round
r-1's model against a frozen teacher equal to round r-1's model, so teacher <- student between
rounds, then scores it on the dev split), ``mccrolin/best/hf`` and ``mccrolin/rounds.json``
(the round with the best dev score). An interrupted run resumes within its round. With
``mccrolin.first_round_from`` round 0 and round 1 are taken from another run that differs only
in what round 1 does not depend on (``ROUND1_FREE``) instead of being trained again.
``retrieval`` scores the initial and the best model (or ``config.model.name``) on the test
split: ``retrieval/results.{md,json,png}``.
"""

from __future__ import annotations

import logging
import os
import shutil

import jax
import numpy as np

from xmrc_jax import distributed
from xmrc_jax.data import DataError, load_specs
from xmrc_jax.data.retrieval import join_parallel, split_by_article, training_tuples
from xmrc_jax.data.text import encode_columns
from xmrc_jax.eval import report, retrieval as retrieval_eval
from xmrc_jax.models import init_params
from xmrc_jax.stages.artifacts import Workdir, atomic_dir, why_different, write_json
from xmrc_jax.stages.common import train_and_export
from xmrc_jax.tasks import retrieval_qa
from xmrc_jax.utils import MetricsWriter

log = logging.getLogger("xmrc_jax")


def _parallel_questions(c, key: str) -> list:
    """The parallel questions of ``config.data.<key>`` joined on question id."""
    by_dataset = {}
    for fs, examples, rep in load_specs(c.data[key], c.data.skip_bad_records, f"config.data.{key}"):
        log.info("%s", rep)
        # Several files of one dataset and language (e.g. dev + test) are concatenated;
        # join_parallel rejects a question id that then occurs twice.
        by_dataset.setdefault(fs.name, {}).setdefault(fs.language, []).extend(examples)
    questions = []
    for name, langs in by_dataset.items():
        if "en" not in langs:
            raise DataError(f"config.data.{key}: {name} has no English file; McCrolin needs the "
                            "English passages and questions (language 'en')")
        qs, rep = join_parallel(name, langs.pop("en"), langs)
        log.info("%s", rep)
        questions.extend(qs)
    return questions


def parallel_splits(ctx) -> dict:
    """``{"train" | "dev" | "test": [ParallelQuestion]}``: ``config.data.parallel`` split by
    article; with ``config.data.parallel_test`` (out of domain) the test split is all of those
    instead and the in-domain test articles are not used."""
    def build():
        c = ctx.config
        splits = split_by_article(_parallel_questions(c, "parallel"),
                                  tuple(c.retrieval.split_fractions), c.retrieval.split_seed)
        if c.data.parallel_test:
            splits["test"] = _parallel_questions(c, "parallel_test")
        log.info("article split: %s questions (%s articles)%s",
                 {k: len(v) for k, v in splits.items()},
                 {k: len({(q.dataset, q.title) for q in v}) for k, v in splits.items()},
                 "; test: config.data.parallel_test" if c.data.parallel_test else "")
        return splits
    return ctx.cached("parallel_splits", build)


def _tuple_arrays(ctx, questions) -> dict:
    """Tokenized training tuples ``{q_en,q_ne,d,pr}_{ids,mask}`` (``retrieval_qa.FIELDS``)."""
    r = ctx.config.retrieval
    cols = training_tuples(questions, r.languages)
    if not cols:
        raise DataError(f"no training tuples: the train split has no question in {r.languages}")
    settings = {f: (retrieval_qa.max_length(r, kind), retrieval_qa.prefix(r, kind))
                for f, kind in retrieval_qa.FIELDS.items()}
    arrays = encode_columns(ctx.runtime.tokenizer, cols, settings, "training")
    for key, column in (("q_group", cols["id"]), ("d_group", cols["d"])):
        ids = {v: i for i, v in enumerate(dict.fromkeys(column))}
        arrays[key] = np.array([ids[v] for v in column], np.int32)
    log.info("McCrolin training tuples: %d (%s)", len(cols["q_en"]),
             {lang: cols["language"].count(lang) for lang in dict.fromkeys(cols["language"])})
    return arrays


def _score(ctx, module, params, questions, levels, ranks_out=None):
    r = ctx.config.retrieval
    return retrieval_eval.score_model(module, params, ctx.runtime.tokenizer, ctx.runtime.mesh,
                                      questions, levels, r, bool(ctx.config.mccrolin.normalize),
                                      ranks_out)


def _round_dev(ctx, r: int, folder: str):
    """Round ``r``'s dev scores (passage level), computed once and kept in its ``dev.json``."""
    wd, dev = ctx.workdir, parallel_splits(ctx)["dev"]
    if os.path.exists(wd.round_dev(r)):
        return wd.read_json(wd.round_dev(r))
    if not dev:
        return None
    module, params = ctx.runtime.load(folder, retrieval_qa.HEAD)
    res = _score(ctx, module, params, dev, ("passage",))
    wd.write_json(wd.round_dev(r), res)
    return res


def _initial(ctx, module) -> str:
    """``round_0/hf``: the first teacher, written once so that every round and the final
    comparison read the same weights."""
    wd = ctx.workdir
    if wd.exported(wd.round_name(0)) is None:
        _, params = ctx.runtime.initial(retrieval_qa.HEAD)
        if params is None:
            params = init_params(module, jax.random.PRNGKey(ctx.config.seed))
            log.info("mccrolin: no config.model.name; the first teacher is a random "
                     "initialisation (seed %d)", ctx.config.seed)
        wd.save_model(wd.export(wd.round_name(0)), module, params, ctx.runtime.tokenizer,
                      prompts=ctx.runtime.prompts)
    return wd.export(wd.round_name(0))


# Settings round 1 does not depend on: its student starts from round 0 and its teacher is
# round 0 whether or not the teacher is updated later, and each round has its own schedule.
ROUND1_FREE = ("mccrolin.teacher_update", "mccrolin.rounds")
TAKEN = "taken_from.json"         # in round_1/ when it was taken from another run


def _first_round_from(ctx):
    """Takes round 0 and round 1 (exports, dev scores, training log; no checkpoints) from the
    run ``config.mccrolin.first_round_from`` instead of training round 1 again, after checking
    that its mccrolin stage was made from the same inputs with the same settings but
    ``ROUND1_FREE``; ``round_1/taken_from.json`` names the source."""
    wd, source = ctx.workdir, ctx.config.mccrolin.first_round_from
    if not source or wd.exported(wd.round_name(1)) is not None:
        return
    key = "config.mccrolin.first_round_from"
    src = Workdir(source)
    theirs, mine = src.record("mccrolin"), wd.record("mccrolin")
    if not theirs or src.exported(src.round_name(1)) is None:
        raise DataError(f"{key}: {source} has no finished McCrolin round 1 "
                        f"({src.export(src.round_name(1))} missing)")
    theirs, mine = ({"config": {k: v for k, v in rec["config"].items() if k not in ROUND1_FREE},
                     "inputs": rec["inputs"]} for rec in (theirs, mine))
    if theirs != mine:
        raise DataError(f"{key}: {source} was made with other settings than this run "
                        f"({why_different(theirs, mine['config'], mine['inputs'])}); round 1 "
                        f"can be taken only from a run that differs in "
                        f"{', '.join(ROUND1_FREE)} alone")
    if distributed.is_main_process():
        for r in (0, 1):
            with atomic_dir(wd.stage_dir(wd.round_name(r))) as tmp:
                shutil.copytree(src.stage_dir(src.round_name(r)), tmp, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("checkpoints"),
                                copy_function=_link_or_copy)
                if r == 1:
                    write_json(os.path.join(tmp, TAKEN), {"source": source})
    distributed.sync("mccrolin first round copied")
    log.info("mccrolin: round 0 and round 1 taken from %s (its settings differ only in %s, "
             "which round 1 does not depend on)", source, ", ".join(ROUND1_FREE))


def _link_or_copy(src: str, dst: str):
    """A hard link where the file system allows one (the files are never rewritten in place),
    else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _best_round(ctx, scores) -> int:
    rounds, select = ctx.config.mccrolin.rounds, ctx.config.retrieval.select_metric
    if scores[1] is None:
        log.info("mccrolin: the dev split is empty; keeping the last round")
        return rounds
    avg = {r: s["passage"]["avg"][select] for r, s in scores.items()}
    best = max(range(1, rounds + 1), key=lambda r: (avg[r], -r))
    log.info("mccrolin: dev %s (passage level, avg): %s; best round %d", select,
             ", ".join(f"round {r} {v:.2f}" for r, v in avg.items()), best)
    if avg[0] > avg[best]:
        log.warning("mccrolin: the initial model scores higher on dev than every trained round")
    return best


def mccrolin(ctx):
    """Rounds of teacher-student training; the best round by dev goes to ``mccrolin/best``."""
    c, wd, rt = ctx.config, ctx.workdir, ctx.runtime
    splits = parallel_splits(ctx)
    arrays = _tuple_arrays(ctx, splits["train"])
    module = rt.module(retrieval_qa.HEAD)
    objective = retrieval_qa.objective("mccrolin", module, c)
    _first_round_from(ctx)
    previous = _initial(ctx, module)
    scores = {0: _round_dev(ctx, 0, previous)}
    score = None
    if splits["dev"] and c.train.eval_every > 0:
        score = retrieval_eval.dev_score(module, rt.tokenizer, rt.mesh, splits["dev"],
                                         c.retrieval, bool(c.mccrolin.normalize))
    for r in range(1, c.mccrolin.rounds + 1):
        name = wd.round_name(r)
        if wd.exported(name) is None:
            # teacher <- student: round r's teacher and its student's start are round r-1's model
            # (mccrolin.teacher_update=false, the paper's ablation: the teacher stays round 0)
            _, student = rt.load(previous, retrieval_qa.HEAD)
            teacher_dir = previous if c.mccrolin.teacher_update else wd.export(wd.round_name(0))
            teacher = student if teacher_dir == previous else rt.load(teacher_dir,
                                                                      retrieval_qa.HEAD)[1]
            log.info("mccrolin round %d/%d: student starts from %s, teacher is %s", r,
                     c.mccrolin.rounds, previous, teacher_dir)
            train_and_export(ctx, name, module, objective, arrays, c.train.epochs, student,
                             consts=(teacher,), score=score, what=c.retrieval.select_metric)
        previous, _ = wd.trained_model(name, c.eval.use_best)
        scores[r] = _round_dev(ctx, r, previous)
    best = _best_round(ctx, scores)
    if scores[0] is not None:           # each round's dev scores on one TensorBoard curve
        writer = MetricsWriter(wd.stage_dir("mccrolin"), enabled=distributed.is_main_process())
        try:
            for r, s in scores.items():
                writer.write_scalars(r, {f"round_dev/{lang}/{m}": v
                                         for lang, per in s["passage"].items()
                                         for m, v in per.items() if m.startswith(("R@", "MRR@"))})
        finally:
            writer.close()
    taken = os.path.join(wd.stage_dir(wd.round_name(1)), TAKEN)
    first = wd.read_json(taken)["source"] if os.path.exists(taken) else None
    wd.write_json(wd.rounds(), {"select_metric": c.retrieval.select_metric, "best_round": best,
                                "dev": {str(r): s for r, s in scores.items()},
                                **({"first_round_from": first} if first else {})})
    wd.copy_model(wd.trained_model(wd.round_name(best), c.eval.use_best)[0],
                  wd.best_round_name())


def retrieval(ctx):
    """Recall@k and MRR@k per language on the test split, for the initial and best models."""
    c, wd = ctx.config, ctx.workdir
    if ctx.source == "mccrolin":
        rounds = wd.read_json(wd.rounds())
        best = rounds["best_round"]
        models = {"initial": wd.export(wd.round_name(0)),
                  f"McCrolin (round {best})": wd.export(wd.best_round_name())}
        selection = (f"round {best} of {len(rounds['dev']) - 1} by dev {rounds['select_metric']} "
                     f"(passage level; {os.path.relpath(wd.rounds(), wd.root)})")
    else:
        models = {os.path.basename(c.model.name.rstrip("/")): None}
        selection = "none (not trained)"
    test = parallel_splits(ctx)["test"]
    if not test:
        raise DataError("retrieval: the test split is empty (config.retrieval.split_fractions)")
    results, ranks = {}, {}
    for label, folder in models.items():
        module, params = (ctx.runtime.initial(retrieval_qa.HEAD) if folder is None else
                          ctx.runtime.load(folder, retrieval_qa.HEAD))
        results[label] = _score(ctx, module, params, test, c.retrieval.levels,
                                ranks.setdefault(label, {}))
    wd.write_json(wd.ranks("retrieval"), ranks, indent=None)
    named = {k: os.path.relpath(v, wd.root) if v else c.model.name for k, v in models.items()}
    table = ("Models: " + "; ".join(f"{k} = {v}" for k, v in named.items())
             + f"\nSelection: {selection}\n\n" + report.retrieval_markdown(results))
    wd.write_results("retrieval", table, {"models": named, "selection": selection,
                                          "results": results},
                     lambda path: report.plot_retrieval(
                         results, path, ("R@1", f"MRR@{c.retrieval.mrr_at}"),
                         f"run {os.path.basename(os.path.abspath(wd.root))}: "
                         + "; ".join(f"{k} = {v}" for k, v in named.items())))
