"""Stages of a run: declared in ``REGISTRY``, selected by ``config.stages``, run by ``run_stages``.

A stage is a function ``fn(ctx: StageContext) -> None`` that reads its inputs and writes its
output (the folder ``<workdir>/<stage>/``) through ``ctx.workdir`` (``stages.artifacts``). Its
declaration says what it needs and what its output depends on:

* ``needs``: artefacts (stage outputs) that must exist: produced by an earlier stage of the
  run or already in the workdir, with the settings of this run;
* ``model_from``: where a scoring stage takes its model: the last of these stages earlier in
  the run, else the first finished one in the workdir, else ``config.model.name``;
* ``config``: the dotted config keys the output depends on (its fingerprint).

Before any work ``run_stages`` normalises and validates the config (each method's ``validate``),
checks every need, and plans each stage: skipped when its output exists with the same
fingerprint, redone (with the log saying why) when the fingerprint differs.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
from typing import Any, Optional

from xmrc_jax import distributed
from xmrc_jax.stages import artifacts

log = logging.getLogger("xmrc_jax")

# Config keys whose values decide an output, grouped by what they describe.
MODEL = ("seed", "model.name", "model.tokenizer", "model.arch", "model.pooling",
         "model.precision", "model.v100_precision", "model.kernels")
TRAIN = ("train.batch_size", "train.grad_accum_steps", "train.learning_rate",
         "train.weight_decay", "train.warmup_ratio", "train.max_grad_norm", "train.max_steps",
         "train.eval_every")
SPAN_TRAIN = TRAIN + ("train.group_by_length",)   # batch composition of the span stages
WINDOWS = ("data.max_seq_length", "data.doc_stride", "data.max_query_length")
TRAIN_DATA = ("data.train", "data.skip_bad_records", "data.limit_per_file") + WINDOWS
SPAN_DEV = ("data.dev", "eval.selection", "eval.n_best", "max_answer_length", "eval.track_every",
            "eval.track_questions")
RETRIEVAL_DATA = ("data.parallel", "data.skip_bad_records", "retrieval.languages",
                  "retrieval.include_english", "retrieval.split_fractions", "retrieval.split_seed",
                  "retrieval.max_query_length", "retrieval.max_passage_length",
                  "retrieval.max_sentence_length", "retrieval.query_prefix",
                  "retrieval.passage_prefix", "retrieval.similarity", "retrieval.recall_at",
                  "retrieval.mrr_at", "mccrolin.normalize")


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    fn: str                             # "module:function", imported when the stage runs
    task: str                           # "span_qa" | "retrieval_qa": whose validate() applies
    needs: tuple = ()
    model_from: tuple = ()
    config: tuple = ()
    results: bool = False               # writes a results table (printed again when skipped)

    def function(self):
        module, fn = self.fn.split(":")
        return getattr(importlib.import_module(module), fn)


REGISTRY = {s.name: s for s in (
    Stage("baseline", "xmrc_jax.stages.mrc:baseline", "span_qa",
          config=MODEL + SPAN_TRAIN + ("train.epochs",) + TRAIN_DATA + SPAN_DEV),
    Stage("mine", "xmrc_jax.stages.mrc:mine", "span_qa", needs=("baseline",),
          config=TRAIN_DATA + ("hl.num_candidates", "max_answer_length", "eval.use_best")),
    Stage("hl_aacl", "xmrc_jax.stages.mrc:hl_aacl", "span_qa", needs=("baseline", "mine"),
          config=MODEL + SPAN_TRAIN + ("hl",) + TRAIN_DATA + SPAN_DEV + ("eval.use_best",)),
    Stage("evaluate", "xmrc_jax.stages.mrc:evaluate", "span_qa",
          model_from=("hl_aacl", "baseline"), results=True,
          config=("data.eval", "data.skip_bad_records", "eval", "max_answer_length") + WINDOWS),
    Stage("mccrolin", "xmrc_jax.stages.mccrolin:mccrolin", "retrieval_qa",
          config=MODEL + TRAIN + ("train.epochs", "mccrolin", "retrieval.select_metric")
          + RETRIEVAL_DATA),
    Stage("retrieval", "xmrc_jax.stages.mccrolin:retrieval", "retrieval_qa",
          model_from=("mccrolin",), results=True,
          config=RETRIEVAL_DATA + ("retrieval.levels", "retrieval.sentence_context",
                                   "data.parallel_test")),
)}

# Tuple-of-names config values: a shell override such as --config.stages=(baseline,evaluate)
# arrives as one string; they are normalised to tuples of names once, here.
NAME_TUPLES = ("stages", "retrieval.languages", "retrieval.levels")


def names(value) -> tuple:
    """A tuple-of-names config value as a tuple; a string such as ``"(baseline,evaluate)"`` is
    split on commas."""
    text = value if isinstance(value, str) else ",".join(str(s) for s in value)
    return tuple(s.strip(" '\"()[]") for s in text.split(",") if s.strip(" '\"()[]"))


def normalize(config):
    """A resolved, unlocked copy of ``config`` with tuple-of-names values as tuples."""
    c = config.copy_and_resolve_references()
    c.unlock()
    for key in NAME_TUPLES:
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node.get(p) if node is not None else None
        if node is not None and leaf in node:
            with node.ignore_type():
                node[leaf] = names(node[leaf])
    for task in ("span_qa", "retrieval_qa"):
        module = importlib.import_module(f"xmrc_jax.tasks.{task}")
        if hasattr(module, "resolve"):
            module.resolve(c)
    return c


def validate(config):
    """Every check that can be made before any work: stage names, and the settings of each
    method whose stages the run has (``tasks.<task>.validate``)."""
    unknown = [n for n in config.stages if n not in REGISTRY]
    if unknown:
        raise ValueError(f"config.stages: unknown stage {unknown[0]!r}; known stages: "
                         f"{sorted(REGISTRY)}")
    for key in ("log_every", "checkpoint_every", "eval_every"):
        if config.train[key] < 0:
            raise ValueError(f"config.train.{key}: {config.train[key]} must be >= 0 (0 = only "
                             "at the end of training; for eval_every, no dev evaluation)")
    for task in dict.fromkeys(REGISTRY[n].task for n in config.stages):
        importlib.import_module(f"xmrc_jax.tasks.{task}").validate(config)


@dataclasses.dataclass
class StageContext:
    """What a stage function gets: the config, the runtime, the workdir and its plan entry."""

    config: Any
    runtime: Any
    workdir: artifacts.Workdir
    stage: Stage
    source: Optional[str] = None        # model_from stage chosen, or None (config.model.name)
    memo: dict = dataclasses.field(default_factory=dict)   # shared between stages of one run

    def cached(self, key, build):
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]


@dataclasses.dataclass
class Step:
    stage: Stage
    fingerprint: str
    config: dict
    inputs: dict
    action: str                         # "skip" | "run" | "resume" | "redo"
    reason: str = ""
    source: Optional[str] = None


def plan(config, wd: artifacts.Workdir) -> list:
    """Decides, before any work, what each stage of ``config.stages`` will do."""
    order = list(config.stages)
    expected, steps = {}, []

    def present(name, why):
        """Fingerprint of an artefact not produced in this run: it must be finished, and made
        with this run's settings."""
        rec = wd.record(name)
        if not rec or rec.get("status") != "done":
            raise ValueError(f"stage {why} needs {name!r}, which is neither produced by an "
                             f"earlier stage of config.stages {tuple(order)} nor finished in "
                             f"{wd.root}; add {name!r} to config.stages")
        now = artifacts.config_subset(config, REGISTRY[name].config)
        if rec["config"] != now:
            raise ValueError(f"{wd.stage_dir(name)} was made with other settings "
                             f"({artifacts.why_different(rec, now, rec['inputs'])}); add {name!r} "
                             "to config.stages to redo it, or restore those settings")
        return rec["fingerprint"]

    for i, name in enumerate(order):
        stage = REGISTRY[name]
        inputs = {n: expected[n] if n in expected else present(n, name) for n in stage.needs}
        source = None
        if stage.model_from:
            earlier = [n for n in order[:i] if n in stage.model_from]
            finished = [n for n in stage.model_from if wd.done_fingerprint(n)]
            if earlier:
                source = earlier[-1]
                inputs[source] = expected[source]
            elif finished:
                source = finished[0]
                inputs[source] = present(source, name)
            elif config.model.name:
                inputs["model.name"] = config.model.name
            else:
                raise ValueError(f"stage {name} has no model to score: none of "
                                 f"{stage.model_from} is in config.stages or finished in "
                                 f"{wd.root}, and config.model.name is empty")
        subset = artifacts.config_subset(config, stage.config)
        fp = artifacts.fingerprint(name, subset, inputs)
        expected[name] = fp
        rec = wd.record(name)
        if rec and rec.get("fingerprint") == fp:
            action = "skip" if rec.get("status") == "done" else "resume"
            reason = ""
        elif rec:
            action, reason = "redo", artifacts.why_different(rec, subset, inputs)
        elif os.path.exists(wd.stage_dir(name)):
            action, reason = "redo", "no artifact.json record (made by an older version?)"
        else:
            action, reason = "run", ""
        steps.append(Step(stage, fp, subset, inputs, action, reason, source))
    return steps


def run_stages(config, workdir: str, runtime=None) -> dict:
    """Normalises, validates and plans ``config``, then runs its stages in order. Returns the
    memo the stages shared (tests look into it)."""
    from xmrc_jax import runtime as rt
    config = normalize(config)
    if not config.stages:
        raise ValueError("config.stages is empty: name the stages to run, e.g. "
                         "--config.stages=(baseline,evaluate)")
    validate(config)
    wd = artifacts.Workdir(workdir)
    steps = plan(config, wd)
    resolved = json.loads(config.to_json_best_effort())
    log.info("config%s (also in %s):\n%s", f" (preset {config.preset})" if config.preset else "",
             wd.resolved_config(), json.dumps(resolved, indent=1, sort_keys=True))
    if distributed.is_main_process():
        artifacts.write_json(wd.resolved_config(), resolved)
    runtime = runtime or rt.build(config, config.data.cache_dir or wd.cache())
    for task in dict.fromkeys(s.stage.task for s in steps):
        importlib.import_module(f"xmrc_jax.tasks.{task}").check_model(config, runtime.arch)
    memo = {}
    for s in steps:
        name = s.stage.name
        log.info("=== stage %s (fingerprint %s)", name, s.fingerprint)
        if s.action == "skip":
            log.info("%s: done with these settings (%s), skipping", name,
                     wd.record_path(name))
            if s.stage.results:
                wd.print_results(name)
            continue
        if s.action == "redo":
            log.warning("%s: redoing it: %s", name, s.reason)
            wd.clear(name)
        elif s.action == "resume":
            log.info("%s: resuming the unfinished run with these settings", name)
        distributed.sync(f"before {name}")
        wd.write_record(name, "running", s.fingerprint, s.config, s.inputs)
        ctx = StageContext(config, runtime, wd, s.stage, s.source, memo)
        s.stage.function()(ctx)
        distributed.sync(f"after {name}")
        wd.write_record(name, "done", s.fingerprint, s.config, s.inputs)
    return memo

