"""The replication report, from the committed results folder alone (``xmrc_jax.replication``).

Reads ``RESULTS/seed_<s>/<run>/`` as ``collect`` wrote it: each evaluated run's
``evaluate/results.json`` and per-question ``evaluate/scores_<dataset>_<lang>.json``
(``{id: [em, f1]}``, scored with the official scripts' rules), its ``config.json``, the stages'
``metrics.jsonl``; McCrolin's ``retrieval/results.json`` and ``ranks.json``. Writes
``RESULTS/README.md`` (the tables) and ``RESULTS/report.json`` (the same numbers).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np

from xmrc_jax.eval.report import PAPER_LANGS
from xmrc_jax.eval.significance import mcnemar, paired_bootstrap, seed_interval

LABELS = {"base": "(a) baseline", "control": "(b) control: baseline + L_mrc",
          "full": "(c) HL + AA-CL from the baseline",
          "best": "(c) HL + AA-CL at the dev-best setting",
          "pretrained": "(d) HL + AA-CL from e5-small",
          "no_hl": "(c) - HL (L_mrc + AA-CL)", "no_aacl": "(c) - AA-CL (HL alone)"}
PAIRS = (("full", "control"), ("full", "base"), ("control", "base"), ("best", "control"),
         ("best", "base"), ("best", "full"), ("best", "no_aacl"), ("pretrained", "base"),
         ("full", "no_hl"), ("full", "no_aacl"), ("no_aacl", "control"), ("no_hl", "control"))


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def scores_file(run_dir: str, dataset: str, lang: str) -> str:
    return os.path.join(run_dir, "evaluate", f"scores_{dataset}_{lang}.json")


def _ci(d, mean: str = "mean_diff") -> str:
    return f"{d[mean]:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def _paired(runs_a, runs_b, dataset: str, langs) -> dict:
    """B - A over the questions of ``langs`` together, pooled over seeds (``runs_a`` and
    ``runs_b``: one run folder per seed, in the same seed order): ``reproduce``'s paired
    bootstrap of the seed-mean F1 and EM per question and McNemar on EM over (seed, question)
    pairs, on the stored per-question scores; ``by_seed``: each seed's mean F1 difference."""
    from xmrc_jax.reproduce import _diff
    a, b = {}, {}
    for lang in langs:
        a[lang], b[lang] = [], []
        for ra, rb in zip(runs_a, runs_b):
            sa, sb = _read(scores_file(ra, dataset, lang)), _read(scores_file(rb, dataset, lang))
            if set(sa) != set(sb) or (a[lang] and set(sa) != set(a[lang][0])):
                raise ValueError(f"{dataset} {lang}: {ra} and {rb} scored different questions")
            a[lang].append(sa), b[lang].append(sb)
    by_seed = [float(np.mean(np.concatenate([[100 * (b[lang][i][q][1] - a[lang][i][q][1])
                                               for q in sorted(a[lang][i])] for lang in langs])))
               for i in range(len(runs_a))]
    return {**_diff(a, b, list(langs)), "questions": sum(len(a[lang][0]) for lang in langs),
            "seeds": len(runs_a), "by_seed": by_seed,
            "by_seed_interval": seed_interval(by_seed) if len(by_seed) > 1 else None}


def _groups(langs):
    six = [lang for lang in PAPER_LANGS if lang in langs]
    out = [(lang, [lang]) for lang in langs]
    if len(six) == len(PAPER_LANGS):
        out.append(("avg6", six))
    out.append(("avg", list(langs)))
    return out


def _avg(results, dataset, langs, key):
    return float(np.mean([results[dataset][lang][key] for lang in langs]))


def _step_time(run_dir: str, stage: str):
    """Median seconds per step over the logged intervals of ``stage`` (after the first)."""
    rates = []
    for path in glob.glob(os.path.join(run_dir, stage, "**", "metrics.jsonl"), recursive=True):
        with open(path, encoding="utf-8") as f:
            rates += [r["steps_per_s"] for r in map(json.loads, f) if r.get("steps_per_s")]
    return float(np.median([1 / r for r in rates[1:]])) if len(rates) > 1 else None


def _settings(seed_dir: str, runs, seeds=(0,)) -> list:
    c = _read(os.path.join(seed_dir, "base", "config.json"))
    d, t, hl = c["data"], c["train"], c["hl"]
    for run in ("full", "control"):     # the second stage's settings are the second stage's run's
        if run in runs and os.path.exists(os.path.join(seed_dir, run, "config.json")):
            hl = _read(os.path.join(seed_dir, run, "config.json"))["hl"]
            break
    limits = sorted({int(s.get("limit", 0)) for s in d["eval"]})
    lines = ["## Settings", "",
             f"- encoder: `{c['model']['name']}` (`model.name`), fp32 on CPU; each run's whole "
             "config: `seed_<s>/<run>/config.json`",
             f"- training data: {', '.join(os.path.basename(s['path']) for s in d['train'])}; "
             f"English selection set: {', '.join(os.path.basename(s['path']) for s in d['dev'])} "
             f"(selection rule `{c['eval']['selection']}`)",
             f"- test sets: {len(d['eval'])} files (MLQA dev, XQuAD), "
             + (f"the first {limits[0]} questions of each file" if limits != [0] else "every question")
             + f" ({', '.join(str(x) for x in limits)})" * (len(limits) > 1),
             f"- sequence {d['max_seq_length']} (stride {d['doc_stride']}), batch "
             f"{t['batch_size']}, lr {t['learning_rate']}, warm-up {t['warmup_ratio']}, "
             f"{t['epochs']} epoch(s) baseline, {hl['epochs']} epoch(s) second stage, "
             + (f"seed {c['seed']}" if len(seeds) < 2 else
                f"seeds {', '.join(map(str, seeds))} (each its own baseline and Z)"),
             f"- second stage: HL `{hl['variant']}` with type weights (gold, one boundary, none) "
             f"{tuple(hl['type_weights'])}, |Z| = {hl['num_candidates']}, alpha {hl['alpha']}, "
             f"tau {hl['tau']}, |A| = {hl['num_contrast']}"]
    for run, stage in (("base", "baseline"), ("full", "hl_aacl"), ("control", "hl_aacl")):
        s = _step_time(os.path.join(seed_dir, run), stage) if run in runs else None
        if s:
            lines.append(f"- step time, {LABELS[run]}: {s:.2f} s (median of the logged intervals "
                         "of that run, on whatever else the machine was doing)")
    missing = [LABELS[r] for r in ("base", "control", "full") if r not in runs]
    if missing:
        lines.append(f"- not run yet (the same command resumes): {'; '.join(missing)}")
    return lines + [""]


def evaluated_seeds(results: str) -> list:
    """The seeds whose baseline has test results under ``results/seed_<s>/``."""
    found = glob.glob(os.path.join(results, "seed_*", "base", "evaluate", "results.json"))
    return sorted(int(p.split(os.sep)[-4][len("seed_"):]) for p in found)


def evaluated_runs(results: str, seed: int, names=None) -> list:
    """The runs of ``names`` (default: every xMRC run, in ``LABELS``' order) that have test
    results under ``results/seed_<seed>/``."""
    return [r for r in (names or LABELS) if os.path.exists(
        os.path.join(results, f"seed_{seed}", r, "evaluate", "results.json"))]


def pooled_seeds(results: str) -> tuple:
    """``(seeds, left_out)``: the evaluated seeds that have every run the first one has (a
    seed still under way is left out of the tables whole, rather than taking rows from them),
    and for each seed left out the runs it does not have yet."""
    seeds = evaluated_seeds(results)
    have = {s: set(evaluated_runs(results, s)) for s in seeds}
    first = have[seeds[0]] if seeds else set()
    left_out = {s: [r for r in LABELS if r in first - have[s]] for s in seeds}
    return [s for s in seeds if not left_out[s]], {s: m for s, m in left_out.items() if m}


def xmrc_tables(results: str, seeds=(0,)):
    """The xMRC tables over ``seeds``, for the runs evaluated in every one of them: F1 / EM per
    language and EM@k (means over seeds, with each seed's all-language F1 when there are
    several), the paired differences pooled over seeds (``_paired``) with each seed's."""
    dirs = lambda r: [os.path.join(results, f"seed_{s}", r) for s in seeds]  # noqa: E731
    runs = [r for r in LABELS if all(r in evaluated_runs(results, s) for s in seeds)]
    if "base" not in runs:
        return {}, []
    full = {r: [_read(os.path.join(d, "evaluate", "results.json")) for d in dirs(r)] for r in runs}
    res = {r: [x["results"] for x in full[r]] for r in runs}
    mean = lambda r, ds, members, key: float(np.mean([_avg(x, ds, members, key)  # noqa: E731
                                                      for x in res[r]]))
    many = len(seeds) > 1
    label = lambda r: LABELS[r] if r != "best" else \
        f"{LABELS[r]} `{setting_name(dirs(r)[0], dirs('full')[0])}`"  # noqa: E731
    seed_dir = os.path.join(results, f"seed_{seeds[0]}")
    out = {"runs": runs, "seeds": list(seeds), "datasets": {}}
    md = _settings(seed_dir, runs, seeds)
    md[-1:-1] = [f"- model scored by {label(r)}: {full[r][0]['model']}"
                 + (" (seed {})".format(seeds[0]) if many else "") for r in runs]
    for ds, per_lang in res["base"][0].items():
        langs = list(per_lang)
        groups = _groups(langs)
        table = {r: {g: (mean(r, ds, members, "f1"), mean(r, ds, members, "exact_match"))
                     for g, members in groups} for r in runs}
        by_seed = {r: [_avg(x, ds, langs, "f1") for x in res[r]] for r in runs}
        extra = " | avg F1 by seed" if many else ""
        md += [f"## {ds}: F1 / EM per language" + (f" (means over seeds {list(seeds)})" if many
                                                    else ""), "",
               "| model | " + " | ".join(g for g, _ in groups) + extra + " |",
               "|---" * (len(groups) + 1 + many) + "|"]
        md += [f"| {label(r)} | " + " | ".join(f"{table[r][g][0]:.1f} / {table[r][g][1]:.1f}"
                                               for g, _ in groups)
               + (" | " + ", ".join(f"{v:.1f}" for v in by_seed[r]) if many else "") + " |"
               for r in runs]
        ks = list(res["base"][0][ds][langs[0]]["em_at"])
        em_at = {r: {k: float(np.mean([np.mean([x[ds][lang]["em_at"][k] for lang in langs])
                                       for x in res[r]])) for k in ks} for r in runs}
        md += ["", f"### {ds}: EM@k, all-language average (Table 2: does the top-1 / top-k gap "
               "shrink?)", "",
               "| model | " + " | ".join(f"EM@{k}" for k in ks) + " | EM@max - EM@1 |",
               "|---" * (len(ks) + 2) + "|"]
        md += [f"| {label(r)} | " + " | ".join(f"{em_at[r][k]:.1f}" for k in ks)
               + f" | {em_at[r][ks[-1]] - em_at[r][ks[0]]:.1f} |" for r in runs]
        pairs = {}
        if not any(a in runs and b in runs for b, a in PAIRS):
            out["datasets"][ds] = dict(f1_em=table, em_at=em_at, paired=pairs, f1_by_seed=by_seed)
            md.append("")
            continue
        over = (f"pooled over {len(seeds)} seeds: bootstrap over questions of the seed means, "
                "McNemar on EM over (seed, question) pairs" if many else
                "95 % bootstrap interval over questions; McNemar on EM")
        md += ["", f"### {ds}: paired differences (B - A; {over})", "",
               "| B - A | questions | F1 (avg) | EM (avg) | McNemar p | F1 (avg6) |"
               + (" F1 (avg) by seed; t 95 % over seeds |" if many else ""),
               "|---" * (6 + many) + "|"]
        for b, a in PAIRS:
            if a not in runs or b not in runs:
                continue
            d = _paired(dirs(a), dirs(b), ds, langs)
            d6 = (_paired(dirs(a), dirs(b), ds, dict(groups)["avg6"])
                  if "avg6" in dict(groups) else None)
            pairs[f"{b}-{a}"] = dict(all=d, avg6=d6)
            md.append(f"| {b} - {a} | {d['questions']} | {_ci(d['f1'])} | {_ci(d['exact_match'])} | "
                      f"{d['mcnemar_em']['p_value']:.3g} | {_ci(d6['f1']) if d6 else '-'} |"
                      + (" " + ", ".join(f"{v:+.2f}" for v in d["by_seed"])
                         + f"; {_ci(d['by_seed_interval'], 'mean')} |" if many else ""))
        md.append("")
        out["datasets"][ds] = dict(f1_em=table, em_at=em_at, paired=pairs, f1_by_seed=by_seed)
    weights = {}
    for r in runs:
        for s, d in zip(seeds, dirs(r)):
            p = os.path.join(d, "hl_aacl", "hl_type_weights.json")
            if os.path.exists(p):
                weights[r if not many else f"{r}/seed_{s}"] = _read(p)
    if weights:
        md += ["HL weights learned (gold, one boundary, none): " + "; ".join(
            f"{k}: {w['gold']:.3f} / {w['one_boundary']:.3f} / {w['none']:.3f}"
            if many else f"{LABELS[k]}: {w['gold']:.3f} / {w['one_boundary']:.3f} / {w['none']:.3f}"
            for k, w in weights.items()), ""]
    out["learned_hl_weights"] = weights
    return out, md


SETTING_DEFAULTS = {"learning_rate": 0.0, "negative": "not_gold"}   # hl.* before they existed


def setting_name(run_dir: str, full_dir: str) -> str:
    """The second-stage setting of ``run_dir`` as its changes to ``full_dir``'s, in
    ``xmrc_jax.replication.diag_changes``'s names (``tau1+alpha0.3``; ``full`` when none)."""
    if not (os.path.exists(os.path.join(run_dir, "config.json"))
            and os.path.exists(os.path.join(full_dir, "config.json"))):
        return "?"
    # a config written before a setting existed has it at its default
    a, b = ({**SETTING_DEFAULTS, **{k: v for k, v in _read(os.path.join(d, "config.json"))[
        "hl"].items() if v is not None}} for d in (full_dir, run_dir))
    parts = [f"{name}{b[key]:g}" for name, key in (("tau", "tau"), ("alpha", "alpha"),
                                                    ("lr", "learning_rate"))
             if b.get(key) != a.get(key)]
    parts += ["no_overlap"] * (b["negative"] != a["negative"])
    parts = ["pretrained"] * (b["init"] != a["init"]) + parts
    return "+".join(parts) or "full"


def _rank_scores(ranks: dict, level: str, langs, mrr_at: int, recall_at: int = 1):
    """Per query (languages together, id order): hit@``recall_at`` and reciprocal rank within
    ``mrr_at``, in percent. A rank of 0 means no relevant candidate was retrieved."""
    r = np.concatenate([np.array([ranks[level][lang][q] for q in sorted(ranks[level][lang])])
                        for lang in langs])
    found = r >= 1
    return (100.0 * (found & (r <= recall_at)),
            np.where(found & (r <= mrr_at), 100.0 / np.maximum(r, 1), 0.0))


def _final(ranks: dict) -> str:
    return next(k for k in ranks if k != "initial")


def _mc_compare(ra: dict, rb: dict, level: str, langs, mrr: int, names=("a", "b")) -> dict:
    """B - A on the same queries: paired bootstrap of R@1 and MRR, McNemar on R@1; A's and B's
    (R@1, MRR) under ``names``."""
    h0, m0 = _rank_scores(ra, level, langs, mrr)
    h1, m1 = _rank_scores(rb, level, langs, mrr)
    return {"R@1": paired_bootstrap(h0, h1), f"MRR@{mrr}": paired_bootstrap(m0, m1),
            "mcnemar_r1": mcnemar(h0 > 0, h1 > 0), "queries": len(h0),
            names[0]: (float(h0.mean()), float(m0.mean())),
            names[1]: (float(h1.mean()), float(m1.mean()))}


def _mc_row(label: str, d: dict, mrr: int, names=("a", "b")) -> str:
    (a1, am), (b1, bm) = d[names[0]], d[names[1]]
    return (f"| {label} | {d['queries']} | {a1:.1f} / {am:.1f} | {b1:.1f} / {bm:.1f} | "
            f"{_ci(d['R@1'])} | {_ci(d[f'MRR@{mrr}'])} | {d['mcnemar_r1']['p_value']:.3g} |")


def mccrolin_tables(seed_dir: str):
    """The McCrolin part of the report: a summary per level (non-English averages of the
    starting encoder and of each run's selected round), each round's dev score, each run
    against the starting encoder per language, and the teacher-update ablation (``mc_full``
    against ``mc_no_update`` on the same queries)."""
    runs = [r for r in ("mc_full", "mc_no_update")
            if os.path.exists(os.path.join(seed_dir, r, "retrieval", "ranks.json"))]
    if "mc_full" not in runs:
        return {}, []
    config = _read(os.path.join(seed_dir, "mc_full", "config.json"))
    mrr = int(config["retrieval"]["mrr_at"])
    recall = max(int(k) for k in config["retrieval"]["recall_at"])
    rounds, epochs = int(config["mccrolin"]["rounds"]), float(config["train"]["epochs"])
    length = (f"{rounds} round{'s' * (rounds != 1)} of {epochs:g} epoch{'s' * (epochs != 1)}"
              + " each" * (rounds != 1))
    ranks = {run: _read(os.path.join(seed_dir, run, "retrieval", "ranks.json")) for run in runs}
    levels = list(ranks["mc_full"]["initial"])
    langs = [lang for lang in ranks["mc_full"]["initial"][levels[0]] if lang != "en"]
    for run in runs[1:]:
        if ranks[run]["initial"] != ranks["mc_full"]["initial"]:
            raise ValueError(f"{run}: its starting encoder ranks differently from mc_full's; "
                             "the runs do not start from the same model or test split")
    out = {"summary": {}, "rounds": {}, "rounds_of": length}
    md = [f"## McCrolin ({length}): the starting encoder (e5-small) against the trained one", "",
          f"Retrieval of the English candidates for non-English questions ({len(langs)} "
          f"languages: {', '.join(langs)}), test split; R@1, R@{recall} and MRR@{mrr} in percent "
          "from the per-query ranks, averaged over the non-English queries. Each run's model is "
          "its round selected on the dev split (passage level).", "",
          f"| level | model | R@1 | R@{recall} | MRR@{mrr} |", "|---|---|---|---|---|"]
    for level in levels:
        rows = [("e5-small (start)", ranks["mc_full"]["initial"])] + [
            (f"{run}: {_final(ranks[run])}", ranks[run][_final(ranks[run])]) for run in runs]
        for label, rk in rows:
            h1, m = _rank_scores(rk, level, langs, mrr)
            hk, _ = _rank_scores(rk, level, langs, mrr, recall)
            out["summary"][f"{level}/{label}"] = {"R@1": float(h1.mean()),
                                                  f"R@{recall}": float(hk.mean()),
                                                  f"MRR@{mrr}": float(m.mean())}
            md.append(f"| {level} | {label} | {h1.mean():.2f} | {hk.mean():.2f} | {m.mean():.2f} |")
    md.append("")
    dev_rows = []
    for run in runs:
        p = os.path.join(seed_dir, run, "mccrolin", "rounds.json")
        if os.path.exists(p):
            rounds = _read(p)
            sel = rounds["select_metric"]
            avg = {r: s["passage"]["avg"][sel] for r, s in rounds["dev"].items() if s}
            out["rounds"][run] = {"select_metric": sel, "best_round": rounds["best_round"],
                                  "dev": avg}
            dev_rows.append(f"| {run} | " + " | ".join(f"{avg[r]:.2f}" for r in sorted(avg, key=int))
                            + f" | {rounds['best_round']} |")
    if dev_rows:
        n = max(len(v["dev"]) for v in out["rounds"].values())
        md += [f"Dev split, passage level, average {sel} per round (round 0 = e5-small; what "
               "selects the round):", "",
               "| run | " + " | ".join(f"round {r}" for r in range(n)) + " | selected |",
               "|---|" + "---|" * (n + 1)] + dev_rows + [""]
    for run in runs:
        final = _final(ranks[run])
        for level in levels:
            md += [f"### {run}: {final} against e5-small, {level} level", "",
                   "Difference to the starting encoder with its paired 95 % bootstrap interval "
                   "over queries; McNemar's test on R@1.", "",
                   f"| lang | queries | e5-small R@1 / MRR | {final} R@1 / MRR | R@1 diff | MRR diff | McNemar p |",
                   "|---|---|---|---|---|---|---|"]
            rows = {}
            for label, g in [(lang, [lang]) for lang in langs] + [("avg", langs)]:
                names = ("initial", "final")
                rows[label] = d = _mc_compare(ranks[run]["initial"], ranks[run][final], level,
                                              g, mrr, names)
                md.append(_mc_row(label, d, mrr, names))
            md.append("")
            out[f"{run}/{level}"] = rows
    if "mc_no_update" in runs:
        a, b = ranks["mc_no_update"], ranks["mc_full"]
        md += ["### Teacher update: mc_full - mc_no_update (the paper's Table 10 ablation)", "",
               f"mc_no_update ({_final(a)}) against mc_full ({_final(b)}), non-English queries "
               "together; paired 95 % bootstrap interval, McNemar on R@1.", "",
               "| level | queries | no update R@1 / MRR | with update R@1 / MRR | R@1 diff | MRR diff | McNemar p |",
               "|---|---|---|---|---|---|---|"]
        for level in levels:
            d = _mc_compare(a[_final(a)], b[_final(b)], level, langs, mrr)
            out[f"teacher_update/{level}"] = d
            md.append(_mc_row(level, d, mrr))
        md.append("")
    return out, md


def write_report(results: str, seeds=None) -> str:
    """``results/README.md`` and ``report.json``: the xMRC tables over ``seeds`` (default: the
    evaluated seeds that have every run of the first, ``pooled_seeds``) and McCrolin's of the
    first seed."""
    left_out = {}
    if seeds is None:
        seeds, left_out = pooled_seeds(results)
    seeds = list(seeds or [0])
    x, xmd = xmrc_tables(results, seeds)
    if left_out:
        x["seeds_left_out"] = {f"seed_{s}": m for s, m in left_out.items()}
    m, mmd = mccrolin_tables(os.path.join(results, f"seed_{seeds[0]}"))
    groups = {}             # McCrolin at other round lengths (``replication.mccrolin_group``)
    for g in sorted(glob.glob(os.path.join(results, "mccrolin_*", ""))):
        name = os.path.basename(os.path.dirname(g))
        groups[name], gmd = mccrolin_tables(os.path.join(g, f"seed_{seeds[0]}"))
        if gmd:             # its heading names the round length; the files are in ``name/``
            gmd[0] += f" (`{name}/`)"
            mmd += gmd
    over = ("one seed: the intervals are over questions" if len(seeds) < 2 else
            f"seeds {', '.join(map(str, seeds))}: the intervals are over questions, of each "
            "question's mean over seeds")
    md = ["# Replication on multilingual-e5-small: results", "",
          "Generated by `python -m xmrc_jax.replication --report-only --results "
          f"{results}` from the files in this folder ({over})."
          + "".join(f" Seed {s} is left out until it has {', '.join(m)} (not evaluated yet)."
                    for s, m in left_out.items()), ""] + xmd + mmd
    text = "\n".join(md) + "\n"
    with open(os.path.join(results, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(results, "report.json"), "w", encoding="utf-8") as f:
        json.dump({"xmrc": x, "mccrolin": m, **groups}, f, indent=2)
    print(text)
    return text


# --------------------------------------------------------------------------- diagnostics

DIAG_COLUMNS = ("loss_hard", "loss_contrast", "aacl_neg_similarity", "aacl_neg_overlap")
# The committed runs each diagnostic is read beside: (run, stage, label)
DIAG_REFERENCES = (("base", "baseline", "(a) baseline (where every second stage starts)"),
                   ("control", "hl_aacl", "(b) control: baseline + L_mrc"),
                   ("no_aacl", "hl_aacl", "(c) - AA-CL: HL alone (alpha 0)"),
                   ("full", "hl_aacl", "(c) HL + AA-CL = tau 0.1, alpha 0.5"))
TIMING_KEYS = ("steps_per_s", "examples_per_s")       # what differs between two equal runs


def training_log(path: str) -> list:
    """A stage's ``metrics.jsonl`` as its training computed it: the step records (losses,
    norms, learning rate, dev scores) in order, without the wall-clock rates and the
    hyper-parameter text (written again at each resume)."""
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    return [{k: v for k, v in d.items() if k not in TIMING_KEYS} for d in lines if "tag" not in d]


def log_difference(a: list, b: list) -> str | None:
    """None when two training logs agree record for record (to the bit), else where they
    first part."""
    for x, y in zip(a, b):
        if x != y:
            key = next(k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k))
            return f"step {x.get('step')}: {key} {x.get(key)!r} against {y.get(key)!r}"
    return None if len(a) == len(b) else f"{len(a)} logged records against {len(b)}"


def committed_baseline_difference(log_path: str, results: str, seed: int) -> str | None:
    """None when the baseline training log ``log_path`` is the committed baseline's of
    ``seed`` (``results/seed_<s>/base/baseline/metrics.jsonl``), else why not. A baseline
    trained again on another processor differs from the first logged step on (float rounding),
    and every run from it with it."""
    committed = os.path.join(results, f"seed_{seed}", "base", "baseline", "metrics.jsonl")
    if not os.path.exists(committed):
        return f"no committed baseline log {committed}"
    if not os.path.exists(log_path):
        return f"no training log {log_path}"
    why = log_difference(training_log(log_path), training_log(committed))
    return why and f"{why} (committed)"


def _baseline_group(diag_dir: str, committed: list | None) -> tuple:
    """``(group, why)``: ``"committed"`` when the dev-only run in ``diag_dir`` started from the
    committed baseline (its copied ``baseline/metrics.jsonl`` is the committed log
    ``committed``; a run copied before these logs were, without one, was trained beside the
    committed runs), else the first 8 hex digits of its baseline log's SHA-256 and how that log
    differs."""
    path = os.path.join(diag_dir, "baseline", "metrics.jsonl")
    if not os.path.exists(path):
        return "committed", None
    mine = training_log(path)
    why = "no committed baseline log" if committed is None else log_difference(mine, committed)
    if why is None:
        return "committed", None
    digest = hashlib.sha256(json.dumps(mine, sort_keys=True).encode())
    return digest.hexdigest()[:8], why if committed is None else f"{why} (committed)"


def _dev_run(run_dir: str, stage: str, label: str) -> dict | None:
    """One run's dev record from its copied ``config.json`` and ``<stage>/metrics.jsonl``: the
    dev F1 / EM curve, the best dev F1 and its step, the second stage's settings and the mean
    of each AA-CL term over the last quarter of the logged steps."""
    path = os.path.join(run_dir, stage, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    lines = training_log(path)
    dev = [d for d in lines if "dev_score" in d]
    em = lambda d: next((v for k, v in d.items() if k.endswith("/exact_match")), None)  # noqa: E731
    train = [d for d in lines if "loss" in d]
    tail = train[-max(1, len(train) // 4):]
    terms = {k: float(np.mean([d[k] for d in tail if k in d])) if any(k in d for d in tail)
             else None for k in DIAG_COLUMNS}
    best = max(dev, key=lambda d: d["dev_score"]) if dev else None
    config = _read(os.path.join(run_dir, "config.json"))
    hl, second = config["hl"], stage == "hl_aacl"
    aacl = second and hl["ablation"] in ("full", "no_hl")
    setting = dict(ablation=hl["ablation"] if second else None,
                   init=hl["init"] if second else None,
                   tau=hl["tau"] if aacl else None, alpha=hl["alpha"] if aacl else None,
                   negative=hl.get("negative", "not_gold") if aacl else None,
                   lr=(second and hl.get("learning_rate")) or config["train"]["learning_rate"],
                   steps=train[-1]["step"] if train else None)
    return dict(label=label, **setting,
                dev_curve=[(d["step"], d["dev_score"], em(d)) for d in dev],
                best_step=best["step"] if best else None,
                best_dev_f1=best["dev_score"] if best else None,
                best_dev_em=em(best) if best else None, **terms)


def diagnostics_table(results: str, seed: int) -> tuple:
    """``(rows, markdown lines)``: the committed reference runs of ``seed``
    (``DIAG_REFERENCES``) and every dev-only run under ``results/diagnostics/seed_<seed>/``,
    grouped by the baseline they start from (``_baseline_group``). A group other than the
    committed one opens with its baseline's row and is read against its own dev-only ``full``
    and ``control``; each run's best dev F1 is set against the control from its own baseline
    (``-`` where that baseline has none). Row keys: the run's name, ``name@group`` outside
    the committed group."""
    rows, why = {}, {"committed": None}
    committed_log = os.path.join(results, f"seed_{seed}", "base", "baseline", "metrics.jsonl")
    committed_log = training_log(committed_log) if os.path.exists(committed_log) else None
    for name, stage, label in DIAG_REFERENCES:
        r = _dev_run(os.path.join(results, f"seed_{seed}", name), stage, label)
        if r:
            rows[name] = dict(r, reference=True, setting=name, baseline="committed")
    for d in sorted(glob.glob(os.path.join(results, "diagnostics", f"seed_{seed}", "*"))):
        r = _dev_run(d, "hl_aacl", "dev-only diagnostic")
        if not r:
            continue
        name = os.path.basename(d)
        group, why[group] = _baseline_group(d, committed_log)
        if group != "committed" and f"base@{group}" not in rows:
            rows[f"base@{group}"] = dict(
                _dev_run(d, "baseline", "(a) baseline, trained again (where this group starts)"),
                reference=True, setting="base", baseline=group)
        key = name if group == "committed" and name not in rows else f"{name}@{group}"
        rows[key] = dict(r, reference=False, setting=name, baseline=group)
    controls = {r["baseline"]: r["best_dev_f1"] for r in rows.values()
                if r["setting"] == "control"}
    md = []
    for group in why:
        members = {k: r for k, r in rows.items() if r["baseline"] == group}
        if not members:
            continue
        if len(why) > 1:
            md += ["", "### From the committed baseline" if group == "committed" else
                   f"### From baseline `{group}`, trained again (its log differs from the "
                   f"committed one at {why[group]})", ""]
        md += ["| run | start | tau | alpha | negative | lr | steps | best dev F1 / EM (step) | "
               "F1 - control | dev F1 by step | L_hard | L_contrast | neg. cosine | "
               "neg. overlaps gold |", "|" + "---|" * 14]
        for key, r in members.items():
            control = controls.get(group)
            r["minus_control"] = None if control is None or r["best_dev_f1"] is None \
                else r["best_dev_f1"] - control
            md.append("| " + " | ".join(_diag_cells(key, r)) + " |")
    return rows, md[1:] if md and md[0] == "" else md


def _diag_cells(name: str, r: dict) -> list:
    num = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    best = "-" if r["best_dev_f1"] is None else \
        f"{r['best_dev_f1']:.1f} / {num(r['best_dev_em'], '.1f')} ({r['best_step']})"
    return [f"{name}: {r['label']}" if r["reference"] else f"**{name}**",
            r["init"] or "-", num(r["tau"], "g"), num(r["alpha"], "g"), r["negative"] or "-",
            num(r["lr"], "g"), num(r["steps"], "d"), best, num(r["minus_control"], "+.1f"),
            ", ".join(f"{s}: {v:.1f}" for s, v, _ in r["dev_curve"]) or "-",
            num(r["loss_hard"], ".3f"), num(r["loss_contrast"], ".3f"),
            num(r["aacl_neg_similarity"], ".3f"), num(r["aacl_neg_overlap"], ".2f")]


def dev_best(rows: dict) -> str | None:
    """The HL + AA-CL setting (``full`` or a dev-only run of it) with the highest best dev F1;
    the control and HL alone are Part 2's comparisons anyway. Runs from more than one baseline
    are ranked by their best dev F1 less the control's from the same baseline (the same order
    within one baseline), leaving out those whose baseline has no control."""
    cands = {k: r for k, r in rows.items()
             if r["ablation"] == "full" and r["best_dev_f1"] is not None}
    if len({r["baseline"] for r in cands.values()}) > 1:
        cands = {k: r for k, r in cands.items() if r["minus_control"] is not None}
        score = "minus_control"
    else:
        score = "best_dev_f1"
    return cands[max(cands, key=lambda k: cands[k][score])]["setting"] if cands else None


def write_diagnostics_report(results: str, seeds=(0,)):
    """``results/diagnostics/README.md`` (and ``report.json``) from the copied metrics files of
    the dev-only runs and of the committed runs they are read beside, then the hand-written
    ``results/diagnostics/reading.md`` when there is one; nothing is written without a
    dev-only run."""
    out, md = {}, ["# Second-stage diagnosis on the held-out English dev articles", "",
                   "Generated by `python -m xmrc_jax.replication --report-only --results "
                   f"{results}` from the metrics files here and the committed runs' under "
                   f"`seed_<s>/`. Dev data only: no test file was scored by these runs. Each "
                   "dev-only run (bold) changes only what its name says of (c) `full`: the "
                   "same baseline, the same Z (|Z| = 20), |A| = 50, type weights (1, 0.1, 0), "
                   "the replication's second-stage length unless `pretrained` ((d): from "
                   "e5-small, as long as the baseline). Runs are grouped by the baseline they "
                   "start from: one trained again on another processor is another baseline "
                   "(float rounding parts the two from the first steps), so its group has "
                   "its own dev-only `full` and `control`. F1 - control: best dev F1 against "
                   "the best of the control from the same baseline. The AA-CL terms are means "
                   "over the last quarter of the logged steps; the hard negatives' overlap "
                   "with gold was first logged for these runs (`-` in the earlier ones).", ""]
    for s in seeds:
        rows, table = diagnostics_table(results, s)
        if not any(not r["reference"] for r in rows.values()):
            continue
        out[f"seed_{s}"] = dict(runs=rows, dev_best=dev_best(rows))
        md += [f"## Seed {s}", ""] + table + ["", f"Best HL + AA-CL setting by dev F1: "
                                             f"`{out[f'seed_{s}']['dev_best']}`.", ""]
    if not out:
        return None
    reading = os.path.join(results, "diagnostics", "reading.md")
    if os.path.exists(reading):
        with open(reading, encoding="utf-8") as f:
            md += ["## Reading", "", f.read().strip()]
    text = "\n".join(md) + "\n"
    with open(os.path.join(results, "diagnostics", "README.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(results, "diagnostics", "report.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    return text
