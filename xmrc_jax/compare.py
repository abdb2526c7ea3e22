"""Compares two evaluated runs question by question: per dataset and language, the mean F1 / EM
difference (B - A) with its paired 95 % bootstrap interval, and McNemar's test on EM.

    python -m xmrc_jax.compare WORKDIR_A WORKDIR_B [--resamples 10000] [--out FILE.json]

Each workdir is one that ran the ``evaluate`` stage on the same evaluation files; the gold
answers come from the files named in ``WORKDIR_A/config.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from xmrc_jax.data import DataError, load_specs
from xmrc_jax.eval.significance import mcnemar, paired_bootstrap
from xmrc_jax.eval.squad_metrics import score_one
from xmrc_jax.stages.artifacts import Workdir, read_json


def per_question(wd: Workdir, fs, examples) -> dict:
    """``{id: (em, f1)}`` of one evaluated file (0 for a question without a prediction)."""
    path = wd.predictions("evaluate", fs.name, fs.language)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no predictions (run the evaluate stage in {wd.root})")
    preds = read_json(path)
    return {ex.id: score_one(preds.get(ex.id, ""), [a.text for a in ex.answers], fs.language,
                             fs.metric) for ex in examples if ex.answers}


def compare(dir_a: str, dir_b: str, resamples: int = 10_000, seed: int = 0) -> dict:
    a, b = Workdir(dir_a), Workdir(dir_b)
    config = read_json(a.resolved_config())
    out = {"a": read_json(a.results("evaluate", "json"))["model"],
           "b": read_json(b.results("evaluate", "json"))["model"], "results": {}}
    for fs, examples, _ in load_specs(config["data"]["eval"], config["data"]["skip_bad_records"]):
        sa, sb = per_question(a, fs, examples), per_question(b, fs, examples)
        ids = sorted(sa)
        ea, fa = (np.array([sa[q][i] for q in ids], float) * 100 for i in (0, 1))
        eb, fb = (np.array([sb[q][i] for q in ids], float) * 100 for i in (0, 1))
        out["results"].setdefault(fs.name, {})[fs.language] = dict(
            f1=paired_bootstrap(fa, fb, resamples, seed=seed),
            exact_match=paired_bootstrap(ea, eb, resamples, seed=seed),
            mcnemar_em=mcnemar(ea > 0, eb > 0), questions=len(ids))
    return out


def markdown(out: dict) -> str:
    lines = [f"A: {out['a']}", f"B: {out['b']}", "",
             "| dataset | lang | F1 B - A [95 % CI] | EM B - A [95 % CI] | McNemar EM p (b01 / b10) |",
             "|---|---|---|---|---|"]
    for ds, per in out["results"].items():
        for lang, r in per.items():
            f, e, m = r["f1"], r["exact_match"], r["mcnemar_em"]
            lines.append(f"| {ds} | {lang} | {f['mean_diff']:+.2f} [{f['low']:+.2f}, {f['high']:+.2f}] "
                         f"| {e['mean_diff']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}] "
                         f"| {m['p_value']:.3g} ({m['b01']} / {m['b10']}) |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    try:
        out = compare(args.a, args.b, args.resamples, args.seed)
    except (OSError, DataError, KeyError) as e:
        sys.exit(f"xmrc_jax.compare: {e}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    print(markdown(out))


if __name__ == "__main__":
    main()
