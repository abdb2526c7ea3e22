"""The small-scale replication of both papers on one encoder, from one command.

    python -m xmrc_jax.replication --config=configs/replication.py:root=DATA,model=E5 \\
        --workdir=runs/replication [--runs base,full,control] [--mccrolin] [--results results/replication]
    python -m xmrc_jax.replication --report-only --results results/replication

xMRC runs (``ROOT/seed_<s>/<run>``, sharing the baseline and the mining by fingerprinted links):

* ``base``: (a) the baseline fine-tune (L_mrc);
* ``control``: (b) the baseline trained on with L_mrc alone for as many further steps as the
  second stage takes (``hl.ablation=control``): what extra training alone gives;
* ``full``: (c) HL + AA-CL from the baseline with the paper preset's reading of Eq. 5;
* ``best``: (c) at the setting the dev-only diagnosis chose by dev F1 (``--diagnostics``,
  read from ``RESULTS/diagnostics/report.json``; nothing of the test sets chooses it);
* ``pretrained``: (d) HL + AA-CL from the pretrained encoder with Z mined by the baseline;
* ``no_hl`` / ``no_aacl``: the ablations, from the baseline.

``--diagnostics tau1,tau10,tau1+alpha0.3,...`` (or ``all``; ``diag_changes``) instead runs the
dev-only diagnosis of the second stage: tau, alpha, the rate, the hard-negative reading and (d),
each from the same baseline and Z, no test file scored; ``DIR/diagnostics/README.md`` tabulates
their dev curves and AA-CL terms beside the baseline's, the control's and ``full``'s. A baseline
trained again on another processor is not the committed one (float rounding: its training log
differs from the first steps on), so there the dev-only ``full`` and ``control`` run from it
first and the report reads each run against the control from its own baseline. A test-set run
with the settings of a finished dev-only run of its seed takes that run's trained second stage
(``dev_only_twin``) and only scores it.

McCrolin (``--mccrolin``; the config's ``mccrolin`` argument, ``ROOT/mccrolin/seed_<s>/<run>``):
``mc_full`` (three rounds, teacher updated) and ``mc_no_update``, which takes ``mc_full``'s
round 1 (``mccrolin.first_round_from``); each run's retrieval stage scores the starting
encoder too. Rounds of another length than the first runs' 0.25 epoch (the config's
``mc_epochs``) live in ``ROOT/mccrolin_<e>ep`` and ``RESULTS/mccrolin_<e>ep``
(``mccrolin_group``), each reported in a section of its own.

``--seeds 0,1,2`` gives each seed its own baseline and Z; the report then pools the paired
intervals over seeds and lists each seed's difference. Every stage resumes, so the command
continues a stopped replication. ``--results DIR`` copies
each run's small results (results.json, per-question predictions and ranks, the HL weights, the
selection record and the training log) into ``DIR`` (committed); the report (``DIR/README.md``
and ``report.json``) is written from those copies only, so ``--report-only`` regenerates it
without any run.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import shutil

from xmrc_jax.reproduce import Runs, load_config

log = logging.getLogger("xmrc_jax")

SECOND = ("mine", "hl_aacl", "evaluate")
XMRC_RUNS = {   # name: (label, links, changes)
    "base": ("(a) baseline", None, None),
    "control": ("(b) control: baseline + L_mrc", {"baseline": "base", "mine": "full"},
                {"hl.ablation": "control", "hl.init": "baseline"}),
    "full": ("(c) HL + AA-CL from the baseline", {"baseline": "base"},
             {"hl.ablation": "full", "hl.init": "baseline"}),
    "best": ("(c) HL + AA-CL at the dev-best setting", {"baseline": "base", "mine": "full"},
             None),             # the changes: the diagnosis's dev-best setting (``dev_best``)
    "pretrained": ("(d) HL + AA-CL from e5-small", {"baseline": "base", "mine": "full"},
                   {"hl.ablation": "full", "hl.init": "pretrained"}),
    "no_hl": ("(c) - HL (L_mrc + AA-CL)", {"baseline": "base", "mine": "full"},
              {"hl.ablation": "no_hl", "hl.init": "baseline"}),
    "no_aacl": ("(c) - AA-CL (HL alone)", {"baseline": "base", "mine": "full"},
                {"hl.ablation": "no_aacl", "hl.init": "baseline"}),
}
RUN_ORDER = ("base", "full", "control", "best", "pretrained", "no_hl", "no_aacl")
# Dev-only diagnosis of the second stage (no test file is scored): each from the same baseline
# and the same Z as ``full``, stages mine (linked) -> hl_aacl, the dev F1 curve and the AA-CL
# terms in its metrics.jsonl. A run's name is its changes to ``full``, joined by "+":
# ``tau<x>``, ``alpha<x>``, ``lr<x>`` (the second stage's rate), ``no_overlap`` (hard negatives
# sharing no token with gold) and ``pretrained`` ((d): from the pretrained encoder, as long as
# the baseline), e.g. ``tau1+alpha0.3`` or ``pretrained+tau1``.
DIAG_PARTS = {"tau": "hl.tau", "alpha": "hl.alpha", "lr": "hl.learning_rate"}
DIAG_FLAGS = {"no_overlap": {"hl.negative": "no_overlap"},
              "pretrained": {"hl.init": "pretrained", "hl.epochs": "train.epochs"}}
DIAG_ALL = ("tau1", "tau10", "alpha0.1", "alpha0.3", "no_overlap", "pretrained")
# The committed (b) and (c) again, dev-only, from this workdir's baseline: every row of the
# diagnosis must start from one baseline, and a baseline trained again on another processor is
# another baseline (its float rounding differs from the first step on). ``run_diagnostics``
# adds them when the workdir's baseline log is not the committed one.
DIAG_REFERENCES = {"full": {}, "control": {"hl.ablation": "control"}}


def diag_changes(name: str) -> dict:
    """The config changes to ``full`` that the diagnostic run ``name`` stands for (``full``:
    none)."""
    if name in DIAG_REFERENCES:
        return dict(DIAG_REFERENCES[name])
    changes = {}
    for part in name.split("+"):
        m = re.fullmatch(r"(tau|alpha|lr)(\d+(?:\.\d*)?(?:e-?\d+)?)", part)
        if part in DIAG_FLAGS:
            changes.update(DIAG_FLAGS[part])
        elif m:
            changes[DIAG_PARTS[m.group(1)]] = float(m.group(2))
        else:
            raise ValueError(f"--diagnostics: {part!r} in {name!r} is not tau<x>, alpha<x>, "
                             f"lr<x>, {', '.join(DIAG_FLAGS)} (or {' / '.join(DIAG_REFERENCES)} "
                             f"alone); e.g. {'+'.join(DIAG_ALL[:2])}")
    return changes


MC_RUNS = {"mc_full": ("McCrolin (3 rounds)", {}),
           "mc_no_update": ("McCrolin without teacher update", {"mccrolin.teacher_update": False})}
MC_FIRST_EPOCHS = 0.25      # epochs per round of the first McCrolin runs (``mccrolin``)


def mccrolin_group(epochs: float) -> str:
    """The folder of the McCrolin runs with ``epochs`` per round, in the workdir and under the
    results: ``mccrolin`` for the first runs' 0.25 (their results sit beside the xMRC runs,
    ``RESULTS/seed_<s>/mc_*``), ``mccrolin_<epochs>ep`` for any other length (results in
    ``RESULTS/mccrolin_<epochs>ep/seed_<s>/mc_*``), so that longer rounds never overwrite
    them."""
    return "mccrolin" if float(epochs) == MC_FIRST_EPOCHS else f"mccrolin_{float(epochs):g}ep"


def run_xmrc(runs: Runs, seeds, names, best: str | None = None, after=None,
             results: str | None = None):
    """The xMRC runs ``names`` (of ``RUN_ORDER``) for each seed; ``best`` is ``full`` at the
    dev-only diagnosis's best setting ``best`` (a ``diag_changes`` name). ``after()`` is called
    with the run's folder when it ends (``main``: its results files are copied then). With
    ``results``, a seed whose committed runs came from another baseline than this workdir's
    (``same_baseline_or_whole_seed``) is refused unless it is run again whole. Without
    ``full`` among ``names``, the second-stage runs still get its mining (only that stage)."""
    unknown = set(names) - set(XMRC_RUNS)
    if unknown:
        raise ValueError(f"--runs: unknown {sorted(unknown)}; known: {list(RUN_ORDER)}")
    if "best" in names and not best:
        raise ValueError("--runs best: no dev-best setting (run --diagnostics first; it is read "
                         "from RESULTS/diagnostics/report.json)")
    if not names:           # e.g. ``--runs "" --mccrolin``: no xMRC run, no baseline trained
        return
    best_changes = diag_settings(runs, best) if "best" in names else None
    if best == "full":
        log.info("--runs best: the dev-best setting is full's own; best is not run again")
        names = [n for n in names if n != "best"]
    for s in seeds:
        if results is not None:
            same_baseline_or_whole_seed(runs.run(s, "base", ("baseline",)), results, s, names)
        if set(names) - {"base", "full"} and "full" not in names:
            # the second-stage runs share full's Z: its mining alone (kept when done), so that
            # a run added to a seed (e.g. ``best`` after the diagnosis) leaves full as it is
            runs.run(s, "full", ("mine",), XMRC_RUNS["full"][1], **XMRC_RUNS["full"][2])
        for name in RUN_ORDER:
            if name not in names:
                continue
            _, links, changes = XMRC_RUNS[name]
            changes = best_changes if name == "best" else changes
            stages = ("baseline", "evaluate") if name == "base" else SECOND
            trained = dev_only_twin(runs, s, changes) if name != "base" else None
            if trained:
                log.info("seed %d, %s: its second stage is the dev-only %s's (same settings, "
                         "same baseline and Z): linked, only scored here", s, name, trained)
                links = {**(links or {}), "hl_aacl": trained}
            wd = runs.run(s, name, stages, links, **(changes or {}))
            if after:
                after(wd)


def dev_only_twin(runs: Runs, seed: int, changes: dict) -> str | None:
    """The finished dev-only run (``diag_<x>``) of ``seed`` whose second stage had exactly
    ``changes``, if there is one: a test run with these settings takes its trained stage (the
    plan still checks the fingerprint: baseline, Z and every setting; a link that differs is
    unlinked and trained again, never overwritten). The dev-only run chose nothing from the
    test sets, so scoring its model once is the same as training it again, less the time."""
    from xmrc_jax.stages.artifacts import Workdir
    for d in sorted(glob.glob(os.path.join(runs.dir(seed, "diag_*"), ""))):
        name = os.path.basename(os.path.dirname(d))[len("diag_"):]
        try:
            twin = diag_settings(runs, name)
        except ValueError as e:
            log.warning("%s: not a dev-only run's folder, not reused (%s)", d, e)
            continue
        rec = Workdir(d).record("hl_aacl")
        if twin == changes and rec and rec.get("status") == "done":
            return f"diag_{name}"
    return None


def _baseline_log(run_dir: str) -> str:
    """The training log of the baseline a run has (its own, or the one linked from ``base``)."""
    return os.path.join(run_dir, "baseline", "metrics.jsonl")


def _not_committed_baseline(run_dir: str, results: str, seed: int) -> str | None:
    """Why the baseline of ``run_dir`` is not the committed one of ``seed`` (None if it is)."""
    from xmrc_jax.replication_report import committed_baseline_difference
    return committed_baseline_difference(_baseline_log(run_dir), results, seed)


def same_baseline_or_whole_seed(base_dir: str, results: str, seed: int, names):
    """Refuses to add runs to a seed's committed ones from another baseline: when this
    workdir's baseline (``base_dir``) is not the committed one of ``seed`` (its training log
    differs: trained again on another processor, say), every committed evaluated run of the
    seed must be among ``names``, so that the seed's results are replaced whole and the report
    never pairs runs from two baselines."""
    from xmrc_jax.replication_report import evaluated_runs
    committed = evaluated_runs(results, seed, RUN_ORDER)
    if not committed:
        return
    why = _not_committed_baseline(base_dir, results, seed)
    if not why:
        return
    missing = [n for n in committed if n not in names]
    if missing:
        raise ValueError(f"seed {seed}: this workdir's baseline is not the one of the committed "
                         f"runs in {results} ({why}); their {missing} would be paired with runs "
                         f"from this one: add them to --runs (the seed's results are then "
                         f"replaced whole) or take a seed with no committed runs")
    log.warning("seed %d: this workdir's baseline is not the committed one (%s); the seed's "
                "committed runs %s are replaced by this workdir's", seed, why, committed)


def diag_settings(runs: Runs, name: str) -> dict:
    """The second-stage settings of the dev-only run ``name``: ``full``'s with its changes
    (``"train.epochs"`` as a value: the baseline's epochs, for (d))."""
    changes = {**XMRC_RUNS["full"][2], **diag_changes(name)}
    return {k: runs.config.train.epochs if v == "train.epochs" else v for k, v in changes.items()}


def dev_best(results: str, seed: int = 0) -> str | None:
    """The second-stage setting the dev-only diagnosis of ``seed`` chose (by dev F1 alone),
    from ``results/diagnostics/report.json``; None before the diagnosis."""
    path = os.path.join(results, "diagnostics", "report.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get(f"seed_{seed}", {}).get("dev_best")


def run_diagnostics(runs: Runs, seeds, names, after=None, results: str | None = None):
    """The dev-only runs ``names`` (see ``diag_changes``) in ``seed_<s>/diag_<name>``; the baseline
    and the mining are ``base``'s and ``full``'s (trained here when missing, never evaluated);
    ``after(run folder)`` is called when each dev-only run ends. With ``results`` (the committed
    results folder), a baseline whose training log differs from the committed one (or where
    none is committed) gets the dev-only references ``full`` and ``control`` first, so that the
    diagnosis never compares runs from two baselines."""
    for name in names:                                      # every name checked first
        diag_changes(name)
    for s in seeds:
        base = runs.run(s, "base", ("baseline",))
        runs.run(s, "full", ("mine",), {"baseline": "base"}, **XMRC_RUNS["full"][2])
        todo = list(names)
        missing = [n for n in DIAG_REFERENCES if n not in names]
        if results is not None and missing:
            why = _not_committed_baseline(base, results, s)
            if why:
                log.warning("seed %d: this workdir's baseline is not the committed one (%s); the "
                            "dev-only references %s run from it first", s, why, missing)
                todo = missing + todo
        for name in todo:
            wd = runs.run(s, f"diag_{name}", ("hl_aacl",), {"baseline": "base", "mine": "full"},
                          **diag_settings(runs, name))
            if after:
                after(wd)


def run_mccrolin(runs: Runs, seeds, after=None):
    """``mc_full``, then ``mc_no_update``, which takes ``mc_full``'s round 1 (the same
    computation: both rounds 1 learn from round 0) instead of training it again."""
    for s in seeds:
        for name, (_, changes) in MC_RUNS.items():
            if name != "mc_full":
                changes = {**changes, "mccrolin.first_round_from":
                           os.path.abspath(runs.dir(s, "mc_full"))}
            wd = runs.run(s, name, ("mccrolin", "retrieval"), **changes)
            if after:
                after(wd)


# --------------------------------------------------------------------------- results files

KEEP = {"evaluate": ("results.json", "predictions_*.json", "selection.json"),
        "baseline": ("selection.json", "artifact.json"),
        "hl_aacl": ("selection.json", "hl_type_weights.json", "artifact.json"),
        "mine": ("artifact.json",),
        "mccrolin": ("artifact.json", "selection.json", "rounds.json"),
        "retrieval": ("results.json", "ranks.json")}


def collect(run_dir: str, out_dir: str):
    """Copies the small result files of one run (see ``KEEP``) plus its ``config.json`` and
    each stage's ``metrics.jsonl`` into ``out_dir``; stages linked from another run are that
    run's to copy, except a second stage taken from a dev-only run (``dev_only_twin``), which
    is this run's as well."""
    copied = 0
    for stage, patterns in KEEP.items():
        src = os.path.join(run_dir, stage)
        owner = os.path.basename(os.path.dirname(os.path.realpath(src)))
        if not os.path.isdir(src) or (os.path.islink(src) and not owner.startswith("diag_")):
            continue                                        # a stage shared from another run
        files = [f for p in patterns + ("**/metrics.jsonl",)
                 for f in glob.glob(os.path.join(src, p), recursive=True)]
        for f in files:
            dst = os.path.join(out_dir, stage, os.path.relpath(f, src))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(f, dst)
            copied += 1
    if os.path.exists(os.path.join(run_dir, "config.json")):
        os.makedirs(out_dir, exist_ok=True)
        shutil.copyfile(os.path.join(run_dir, "config.json"), os.path.join(out_dir, "config.json"))
    return copied


def write_scores(run_dir: str, out_dir: str, specs=None):
    """Per-question ``[em, f1]`` of the run's evaluate predictions (official scoring rules)
    as ``out_dir/evaluate/scores_<dataset>_<lang>.json``: what the report's intervals need
    without the data files."""
    from xmrc_jax.compare import per_question
    from xmrc_jax.data import load_specs
    from xmrc_jax.replication_report import scores_file
    from xmrc_jax.stages.artifacts import Workdir, read_json, write_json
    wd = Workdir(run_dir)
    if not os.path.exists(wd.results("evaluate", "json")):
        return specs
    if specs is None:
        config = read_json(wd.resolved_config())
        specs = load_specs(config["data"]["eval"], config["data"]["skip_bad_records"])
    for fs, examples, _ in specs:
        scores = per_question(wd, fs, examples)
        write_json(scores_file(out_dir, fs.name, fs.language),
                   {q: [float(e), float(f)] for q, (e, f) in scores.items()})
    return specs


def collect_run(run_dir: str, results: str, specs=None):
    """Copies the results files of the one run in ``run_dir`` (``.../seed_<s>/<name>``: an
    xMRC run, a dev-only ``diag_<x>`` run or a McCrolin run) to its place under ``results``,
    with an evaluated xMRC run's per-question scores. Returns the evaluation files read
    (``specs``: every run evaluates the same ones, so they are read once)."""
    seed, name = os.path.basename(os.path.dirname(run_dir)), os.path.basename(run_dir)
    if name.startswith("diag_"):
        out = os.path.join(results, "diagnostics", seed, name[len("diag_"):])
        collect(run_dir, out)
        # The training log of the baseline it started from (a link to base's stage): the
        # report groups the dev-only runs by it.
        log_file = _baseline_log(run_dir)
        if os.path.exists(log_file):
            os.makedirs(os.path.join(out, "baseline"), exist_ok=True)
            shutil.copyfile(log_file, os.path.join(out, "baseline", "metrics.jsonl"))
        return specs
    group = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(run_dir))))
    if name in MC_RUNS and group.startswith("mccrolin_"):
        results = os.path.join(results, group)              # McCrolin at another round length
    out = os.path.join(results, seed, name)
    collect(run_dir, out)
    return write_scores(run_dir, out, specs) if name in XMRC_RUNS else specs


def collect_all(root: str, results: str, seeds, diagnostics_only: bool = False):
    """Copies every run's results files under ``root`` into ``results`` (``collect_run``);
    with ``diagnostics_only`` the xMRC runs' are left out (the dev-only runs' baseline and
    mining are not copied over the committed runs')."""
    specs = None
    for s in seeds:
        dirs = sorted(glob.glob(os.path.join(root, f"seed_{s}", "diag_*")))
        dirs += [] if diagnostics_only else [os.path.join(root, f"seed_{s}", n) for n in XMRC_RUNS]
        dirs += [os.path.join(g, f"seed_{s}", n) for g in sorted(glob.glob(os.path.join(
            root, "mccrolin*"))) for n in MC_RUNS]
        for d in dirs:
            if os.path.isdir(d):
                specs = collect_run(d, results, specs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="configs/replication.py:root=DATA,model=DIR")
    ap.add_argument("--workdir", help="where the runs live (resumable)")
    ap.add_argument("--seeds", default="0", type=lambda t: [int(x) for x in t.split(",") if x])
    ap.add_argument("--runs", default="base,full,control",
                    type=lambda t: [x for x in t.split(",") if x],
                    help=f"xMRC runs, of {','.join(RUN_ORDER)}")
    ap.add_argument("--mccrolin", action="store_true", help="also the McCrolin runs")
    ap.add_argument("--diagnostics", default="", type=lambda t: [x for x in t.split(",") if x],
                    help="dev-only second-stage runs: tau<x>, alpha<x>, lr<x>, no_overlap, "
                         f"pretrained, joined by '+' (or 'all' = {','.join(DIAG_ALL)}); "
                         "full and control: (c) and (b) again from this workdir's baseline")
    ap.add_argument("--results", default="", help="folder for the committed results files")
    ap.add_argument("--report-only", action="store_true", help="the report from --results only")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    from xmrc_jax.console import configure_logging
    configure_logging()
    try:
        if not args.report_only:
            if not (args.config and args.workdir):
                raise ValueError("--config and --workdir are required (or --report-only)")
            runs = Runs(args.workdir, load_config(args.config, args.set))
            # Each run's results files are copied as soon as it ends, so a long replication
            # stopped part-way leaves every finished run's files ready to commit.
            specs = {}      # the evaluation files, read by the first copy that scores a run

            def copy_results(run_dir):
                specs["eval"] = collect_run(run_dir, args.results, specs.get("eval"))
            after = copy_results if args.results else None
            if args.diagnostics:
                names = list(DIAG_ALL) if args.diagnostics == ["all"] else args.diagnostics
                run_diagnostics(runs, args.seeds, names, after, args.results or None)
            else:
                run_xmrc(runs, args.seeds, args.runs,
                         dev_best(args.results) if args.results else None, after,
                         args.results or None)
            if args.mccrolin:
                spec = args.config + ("," if ":" in args.config else ":") + "mccrolin"
                mc = load_config(spec, args.set)
                run_mccrolin(Runs(os.path.join(args.workdir, mccrolin_group(mc.train.epochs)),
                                  mc), args.seeds, after)
        if args.results:
            from xmrc_jax.replication_report import write_diagnostics_report, write_report
            write_report(args.results)
            write_diagnostics_report(args.results, args.seeds)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"xmrc_jax.replication: {e}") from None


if __name__ == "__main__":
    from xmrc_jax.hostmem import reexec_with_huge_pages
    reexec_with_huge_pages()
    main()
