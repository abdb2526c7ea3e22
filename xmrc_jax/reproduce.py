"""The papers' tables and figures from one command, over runs that share what they can.

    python -m xmrc_jax.reproduce xmrc --config=configs/mlqa.py:root=DATA --workdir=ROOT \\
        [--seeds 0,1,2] [--z 1,5,10,20,50] [--alphas 0.1,0.3,0.5,0.7,0.9] [--set KEY=VALUE ...]
    python -m xmrc_jax.reproduce mccrolin --config=configs/mccrolin.py:model=me5,root=DATA \\
        --workdir=ROOT [--seeds 0,1,2] [--set KEY=VALUE ...]

xMRC ("From Good to Best"): one baseline per seed (``base``), one mining per |Z| shared by HL
and MML, and the second stage for the full method, the ablations ``no_hl`` / ``no_aacl`` /
``mml`` (Table 6), every |Z| (Figure 2) and every alpha (Figure 4). Shared stages are linked
into each run's workdir and skipped by their fingerprints. Written to ``ROOT/report/``:
``xmrc.md`` (Table 2: EM@k of the baseline and ours; Tables 4-5: baseline vs ours per language
with the paper's 6-language and the all-language average and the paired 95 % bootstrap interval
of the difference and McNemar's test on EM; Table 6), ``xmrc.json``, ``figure2.png``,
``figure4.png``.

McCrolin: the full method, the no-teacher-update ablation and one run without each loss
component (gamma = 0). ``mccrolin.md`` / ``.json``: per level and language the initial encoder
vs McCrolin (Tables 1-3, with intervals and McNemar on R@1), and the ablations against the
full method.

With several seeds every number is the mean over seeds; intervals are over questions on the
seed-averaged per-question scores; McNemar's test pairs each (seed, question).
"""

from __future__ import annotations

import argparse
import ast
import copy
import logging
import os

import numpy as np

log = logging.getLogger("xmrc_jax")


# --------------------------------------------------------------------------- configs and runs

def load_config(spec: str, overrides=()):
    """``configs/x.py[:arg]`` -> its ``get_config(arg)``, with ``KEY=VALUE`` overrides."""
    from xmrc_jax.main import load_config_file
    c = load_config_file(spec)
    for item in overrides:
        key, _, text = item.partition("=")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node[p]
        if leaf not in node:
            raise KeyError(f"--set {key}: config has no such key")
        with node.ignore_type():
            node[leaf] = value
    return c


class Runs:
    """The run tree: ``ROOT/seed_<s>/<run>/`` workdirs sharing one feature cache."""

    def __init__(self, root: str, config):
        self.root, self.config = root, config

    def dir(self, seed: int, name: str) -> str:
        return os.path.join(self.root, f"seed_{seed}", name)

    def run(self, seed: int, name: str, stages, links=None, **changes) -> str:
        """Runs ``stages`` in ``seed_<seed>/<name>`` with ``changes`` ({"hl.alpha": 0.3}); the
        stages in ``links`` ({stage: run name}) are linked from those runs."""
        from xmrc_jax.stages import run_stages
        c = copy.deepcopy(self.config)
        c.seed, c.stages = seed, tuple(stages)
        c.data.cache_dir = os.path.join(self.root, "cache")
        for key, value in changes.items():
            section, leaf = key.split(".")
            with c[section].ignore_type():
                c[section][leaf] = value
        wd = self.dir(seed, name)
        os.makedirs(wd, exist_ok=True)
        for stage, source in (links or {}).items():
            dst = os.path.join(wd, stage)
            if not os.path.lexists(dst):
                os.symlink(os.path.join(self.dir(seed, source), stage), dst)
        log.info("reproduce: seed %d, run %s: %s %s", seed, name, tuple(stages), changes or "")
        run_stages(c, wd)
        return wd


# --------------------------------------------------------------------------- xMRC

def xmrc_runs(runs: Runs, seeds, zs, alphas) -> dict:
    """Runs everything; returns ``{run name: description}`` in table order."""
    c = runs.config
    if c.eval.track_every <= 0:         # Figure 3: the same questions tracked in every run
        c.eval.track_every = int(c.train.eval_every or 100)
        c.eval.track_questions = c.eval.track_questions or 4
    z0, a0 = int(c.hl.num_candidates), float(c.hl.alpha)
    second = ("mine", "hl_aacl", "evaluate")
    names = {"base": "baseline", "full": "ours (HL + AA-CL)"}
    for s in seeds:
        runs.run(s, "base", ("baseline", "evaluate"))
        runs.run(s, "full", second, {"baseline": "base"}, **{"hl.ablation": "full"})
        for ablation in ("no_hl", "no_aacl", "mml"):
            runs.run(s, ablation, second, {"baseline": "base", "mine": "full"},
                     **{"hl.ablation": ablation})
        for z in zs:
            if z == z0:
                continue
            runs.run(s, f"z{z}", second, {"baseline": "base"},
                     **{"hl.num_candidates": z, "hl.ablation": "full"})
            runs.run(s, f"z{z}_mml", second, {"baseline": "base", "mine": f"z{z}"},
                     **{"hl.num_candidates": z, "hl.ablation": "mml"})
        for a in alphas:
            if a != a0:
                runs.run(s, f"alpha{a:g}", second, {"baseline": "base", "mine": "full"},
                         **{"hl.alpha": a, "hl.ablation": "full"})
    names.update(no_hl="- HL (L_mrc + AA-CL)", no_aacl="- AA-CL (alpha 0)", mml="HL -> MML")
    return names


def _per_question(runs, seeds, name, files):
    """``{(dataset, lang): [{id: (em, f1)} per seed]}`` of one run over the eval ``files``."""
    from xmrc_jax.compare import per_question
    from xmrc_jax.stages.artifacts import Workdir
    return {(fs.name, fs.language): [per_question(Workdir(runs.dir(s, name)), fs, ex)
                                     for s in seeds] for fs, ex, _ in files}


def _mean_scores(per_seed):
    """Seed-averaged ``(em, f1)`` per question (percent), in id order."""
    ids = sorted(per_seed[0])
    em = np.mean([[100 * d[q][0] for q in ids] for d in per_seed], 0)
    f1 = np.mean([[100 * d[q][1] for q in ids] for d in per_seed], 0)
    return em, f1


def _diff(a_seeds, b_seeds, keys):
    """B - A over the questions of ``keys`` (files) together: bootstrap on seed means, McNemar
    over (seed, question) pairs on EM."""
    from xmrc_jax.eval.significance import mcnemar, paired_bootstrap
    ea, fa, eb, fb, ba, bb = [], [], [], [], [], []
    for k in keys:
        e1, f1 = _mean_scores(a_seeds[k])
        e2, f2 = _mean_scores(b_seeds[k])
        ea.append(e1), fa.append(f1), eb.append(e2), fb.append(f2)
        ids = sorted(a_seeds[k][0])
        ba += [d[q][0] > 0 for d in a_seeds[k] for q in ids]
        bb += [d[q][0] > 0 for d in b_seeds[k] for q in ids]
    cat = np.concatenate
    return dict(f1=paired_bootstrap(cat(fa), cat(fb)), exact_match=paired_bootstrap(cat(ea), cat(eb)),
                mcnemar_em=mcnemar(ba, bb))


def _avg(results_by_seed, ds, langs, key):
    return float(np.mean([np.mean([r[ds][lang][key] for lang in langs]) for r in results_by_seed]))


def _ci(d):
    return f"{d['mean_diff']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def xmrc_report(runs: Runs, seeds, zs, alphas, names) -> dict:
    from xmrc_jax.eval.report import PAPER_LANGS
    from xmrc_jax.stages.artifacts import read_json

    def results(name):
        return [read_json(os.path.join(runs.dir(s, name), "evaluate", "results.json"))["results"]
                for s in seeds]
    z0, a0 = int(runs.config.hl.num_candidates), float(runs.config.hl.alpha)
    res = {n: results(n) for n in names}
    from xmrc_jax.data import load_specs
    files = load_specs(runs.config.data.eval, runs.config.data.skip_bad_records)   # read once
    pq = {n: _per_question(runs, seeds, n, files) for n in ("base", "full", "no_hl", "no_aacl", "mml")}
    ks = [str(k) for k in runs.config.eval.em_at_k]
    out = {"seeds": list(seeds), "runs": names, "tables": {}}
    md = [f"# xMRC: tables and figures ({len(seeds)} seed(s): {list(seeds)})", "",
          "Each run's model, selection rule and config are in its `evaluate/results.md`; the "
          f"runs are `{runs.root}/seed_<s>/<run>`.", ""]
    for ds, per_lang in res["base"][0].items():
        langs = list(per_lang)
        six = [lang for lang in PAPER_LANGS if lang in langs]
        md += [f"## {ds}", "", "### Table 2: EM@k (an answer among the top k)", "",
               "| model | lang | " + " | ".join(f"EM@{k}" for k in ks) + " |",
               "|---" * (len(ks) + 2) + "|"]
        for n in ("base", "full"):
            for lang in langs:
                md.append(f"| {names[n]} | {lang} | " + " | ".join(
                    f"{np.mean([r[ds][lang]['em_at'][k] for r in res[n]]):.2f}" for k in ks) + " |")
        md += ["", "### Tables 4-5: baseline vs ours (F1 / EM; difference with its paired 95 % "
               "bootstrap interval; McNemar on EM)", "",
               "| lang | baseline F1 / EM | ours F1 / EM | F1 ours - baseline | EM ours - baseline | McNemar p |",
               "|---|---|---|---|---|---|"]
        table = {}
        groups = [(lang, [lang]) for lang in langs]
        if len(six) == len(PAPER_LANGS):
            groups.append(("avg (en es de ar hi vi)", six))
        groups.append(("avg (all)", langs))
        for label, g in groups:
            d = _diff(pq["base"], pq["full"], [(ds, lang) for lang in g])
            b = (_avg(res["base"], ds, g, "f1"), _avg(res["base"], ds, g, "exact_match"))
            o = (_avg(res["full"], ds, g, "f1"), _avg(res["full"], ds, g, "exact_match"))
            table[label] = dict(baseline=b, ours=o, **d)
            md.append(f"| {label} | {b[0]:.2f} / {b[1]:.2f} | {o[0]:.2f} / {o[1]:.2f} | "
                      f"{_ci(d['f1'])} | {_ci(d['exact_match'])} | {d['mcnemar_em']['p_value']:.3g} |")
        out["tables"][f"{ds}/tables_4_5"] = table
        avg_langs = six if len(six) == len(PAPER_LANGS) else langs
        label = "en es de ar hi vi" if avg_langs is six else "all languages"
        md += ["", f"### Table 6: ablations (average over {label}; difference to ours)", "",
               "| model | F1 / EM | F1 - ours | EM - ours | McNemar p |", "|---|---|---|---|---|"]
        t6 = {}
        for n in ("full", "no_hl", "no_aacl", "mml", "base"):
            f1, em = _avg(res[n], ds, avg_langs, "f1"), _avg(res[n], ds, avg_langs, "exact_match")
            row = f"| {names[n]} | {f1:.2f} / {em:.2f} |"
            t6[n] = {"f1": f1, "exact_match": em}
            if n != "full":
                d = _diff(pq["full"], pq[n], [(ds, lang) for lang in avg_langs])
                t6[n].update(d)
                row += f" {_ci(d['f1'])} | {_ci(d['exact_match'])} | {d['mcnemar_em']['p_value']:.3g} |"
            else:
                row += " | | |"
            md.append(row)
        out["tables"][f"{ds}/table_6"] = t6
        fig2 = {"hl": {}, "mml": {}, "baseline": _avg(res["base"], ds, avg_langs, "f1")}
        for z in zs:
            hl_run, mml_run = ("full", "mml") if z == z0 else (f"z{z}", f"z{z}_mml")
            fig2["hl"][z] = _avg(results(hl_run), ds, avg_langs, "f1")
            fig2["mml"][z] = _avg(results(mml_run), ds, avg_langs, "f1")
        fig4 = {a: _avg(results("full" if a == a0 else f"alpha{a:g}"), ds, avg_langs, "f1")
                for a in alphas}
        out["tables"][f"{ds}/figure_2"], out["tables"][f"{ds}/figure_4"] = fig2, fig4
        md += ["", f"### Figure 2: F1 ({label}) against |Z|", "",
               "| |Z| | " + " | ".join(str(z) for z in zs) + " |", "|---" * (len(zs) + 1) + "|",
               "| HL + AA-CL | " + " | ".join(f"{fig2['hl'][z]:.2f}" for z in zs) + " |",
               "| MML + AA-CL | " + " | ".join(f"{fig2['mml'][z]:.2f}" for z in zs) + " |",
               f"| baseline | {fig2['baseline']:.2f} |" + " |" * (len(zs) - 1),
               "", f"### Figure 4: F1 ({label}) against alpha", "",
               "| alpha | " + " | ".join(f"{a:g}" for a in alphas) + " |",
               "|---" * (len(alphas) + 1) + "|",
               "| ours | " + " | ".join(f"{fig4[a]:.2f}" for a in alphas) + " |", ""]
    fig3 = {label: read_json(os.path.join(runs.dir(seeds[0], run), stage, "tracked.json"))
            for label, run, stage in (("baseline", "base", "baseline"), ("ours", "full", "hl_aacl"))
            if os.path.exists(os.path.join(runs.dir(seeds[0], run), stage, "tracked.json"))}
    os.makedirs(os.path.join(runs.root, "report"), exist_ok=True)
    if "ours" in fig3 and "baseline" in fig3 and runs.config.hl.init == "baseline":
        # the second stage continues from the baseline: plot its steps after the baseline's
        offset = fig3["baseline"][-1]["step"]
        fig3["ours"] = [{**r, "step": r["step"] + offset} for r in fig3["ours"]]
    if fig3:
        out["tables"]["figure_3"] = fig3
        md += _figure3_markdown(fig3)
        _plot_figure3(fig3, os.path.join(runs.root, "report", "figure3.png"))
    _plot_sweeps(out, os.path.join(runs.root, "report"))
    return out, "\n".join(md)


def _gold_rank(entry) -> int:
    """1-based rank of the first top answer that matches a gold answer exactly (0: none)."""
    from xmrc_jax.eval.squad_metrics import normalize_squad
    gold = {normalize_squad(g) for g in entry["gold"]}
    return next((i + 1 for i, t in enumerate(entry["top"]) if normalize_squad(t["text"]) in gold), 0)


def _figure3_markdown(fig3) -> list:
    md = ["### Figure 3: top predictions of tracked questions across training steps (seed 0)", ""]
    first = next(iter(fig3.values()))
    for qid, q in first[-1]["questions"].items():
        md += [f"**{q['question']}** (gold: {' / '.join(q['gold'])})", "",
               "| model | step | top-3 answers (score) | gold rank |", "|---|---|---|---|"]
        for label, steps in fig3.items():
            for rec in steps:
                e = rec["questions"][qid]
                top = "; ".join(f"{t['text'][:40]} ({t['score']:.1f})" for t in e["top"][:3])
                md.append(f"| {label} | {rec['step']} | {top} | {_gold_rank(e) or '-'} |")
        md.append("")
    return md


def _plot_figure3(fig3, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    first = next(iter(fig3.values()))
    qids = list(first[-1]["questions"])
    fig, axes = plt.subplots(1, len(qids), figsize=(4 * len(qids), 3.4), squeeze=False)
    for ax, qid in zip(axes[0], qids):
        for label, steps in fig3.items():
            ranks = [_gold_rank(r["questions"][qid]) for r in steps]
            k = len(steps[0]["questions"][qid]["top"]) + 1
            ax.plot([r["step"] for r in steps], [x if x else k for x in ranks], marker="o",
                    label=label)
            ax.set_ylim(k + 0.5, 0.5)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"gold answer's rank ({k}: not in top {k - 1})")
        ax.set_title(first[-1]["questions"][qid]["question"][:45], fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 3: where the gold answer ranks among the model's top answers "
                 "(ours continues from the baseline when hl.init=baseline)")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_per_dataset(path, per_dataset: dict, draw):
    """One panel per dataset: ``draw(ax, dataset, data)`` fills it; saved as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(per_dataset), figsize=(5.5 * len(per_dataset), 3.8),
                             squeeze=False)
    for ax, (ds, data) in zip(axes[0], per_dataset.items()):
        draw(ax, ds, data)
        ax.set_ylabel("average F1")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_sweeps(out, folder):
    os.makedirs(folder, exist_ok=True)
    fig2 = {k.split("/")[0]: v for k, v in out["tables"].items() if k.endswith("figure_2")}
    fig4 = {k.split("/")[0]: v for k, v in out["tables"].items() if k.endswith("figure_4")}

    def z_panel(ax, ds, f):
        zs = sorted(f["hl"])
        ax.plot(zs, [f["hl"][z] for z in zs], marker="o", label="HL + AA-CL")
        ax.plot(zs, [f["mml"][z] for z in zs], marker="s", label="MML + AA-CL")
        ax.axhline(f["baseline"], color="gray", linestyle="--", label="baseline")
        ax.set_xscale("log")
        ax.set_xticks(zs, [str(z) for z in zs])
        ax.set_xlabel("|Z| (mined candidates per window)")
        ax.set_title(f"{ds}: F1 against the number of candidates (Figure 2)")

    def alpha_panel(ax, ds, f):
        alphas = sorted(f)
        ax.plot(alphas, [f[a] for a in alphas], marker="o", label="HL + AA-CL")
        ax.axhline(fig2[ds]["baseline"], color="gray", linestyle="--", label="baseline")
        ax.set_xlabel("alpha (weight of L_contrast; 1 - alpha on L_hard)")
        ax.set_title(f"{ds}: F1 against alpha (Figure 4)")
    _plot_per_dataset(os.path.join(folder, "figure2.png"), fig2, z_panel)
    _plot_per_dataset(os.path.join(folder, "figure4.png"), fig4, alpha_panel)


# --------------------------------------------------------------------------- McCrolin

MC_ABLATIONS = {"no_update": ("- teacher update", {"mccrolin.teacher_update": False}),
                "no_xlc": ("- L_XLC", {"mccrolin.gammas": (0.0, 1.0, 1.0)}),
                "no_rank": ("- L_rank", {"mccrolin.gammas": (1.0, 0.0, 1.0)}),
                "no_ha": ("- L_HA", {"mccrolin.gammas": (1.0, 1.0, 0.0)})}


def mccrolin_runs(runs: Runs, seeds):
    for s in seeds:
        runs.run(s, "mc_full", ("mccrolin", "retrieval"))
        for name, (_, changes) in MC_ABLATIONS.items():
            gammas = changes.get("mccrolin.gammas")
            if gammas is not None:   # the given weights, with one component switched off
                base = tuple(runs.config.mccrolin.gammas)
                changes = {"mccrolin.gammas": tuple(0.0 if g == 0.0 else b
                                                    for g, b in zip(gammas, base))}
            runs.run(s, f"mc_{name}", ("mccrolin", "retrieval"), **changes)


def _ranks(runs, seeds, name, which):
    """Per seed: ``{level: {lang: {id: rank}}}`` of the ``initial`` or the McCrolin model."""
    from xmrc_jax.stages.artifacts import read_json
    out = []
    for s in seeds:
        r = read_json(os.path.join(runs.dir(s, name), "retrieval", "ranks.json"))
        label = "initial" if which == "initial" else next(k for k in r if k != "initial")
        out.append(r[label])
    return out


def _rank_diff(a_seeds, b_seeds, level, langs, mrr_at):
    from xmrc_jax.eval.significance import mcnemar, paired_bootstrap
    ha, ra, hb, rb, ba, bb = [], [], [], [], [], []
    for lang in langs:
        ids = sorted(a_seeds[0][level][lang])
        for seeds, h, r, bits in ((a_seeds, ha, ra, ba), (b_seeds, hb, rb, bb)):
            ranks = np.array([[d[level][lang][q] for q in ids] for d in seeds])
            h.append(np.mean(ranks == 1, 0) * 100)
            r.append(np.mean(np.where((ranks >= 1) & (ranks <= mrr_at), 100.0 / np.maximum(ranks, 1), 0), 0))
            bits += list((ranks == 1).reshape(-1))
    cat = np.concatenate
    return {"R@1": paired_bootstrap(cat(ha), cat(hb)), f"MRR@{mrr_at}": paired_bootstrap(cat(ra), cat(rb)),
            "mcnemar_r1": mcnemar(ba, bb)}


def mccrolin_report(runs: Runs, seeds):
    from xmrc_jax.stages.artifacts import read_json
    mrr = int(runs.config.retrieval.mrr_at)
    m_key = f"MRR@{mrr}"

    def results(name):
        return [read_json(os.path.join(runs.dir(s, name), "retrieval", "results.json"))["results"]
                for s in seeds]
    full = results("mc_full")
    init_r, full_r = _ranks(runs, seeds, "mc_full", "initial"), _ranks(runs, seeds, "mc_full", "best")
    levels = list(full[0]["initial"])
    out = {"seeds": list(seeds), "tables": {}}
    md = [f"# McCrolin: tables ({len(seeds)} seed(s): {list(seeds)})", "",
          "Each run's models, round selection and config are in its `retrieval/results.md`; "
          f"the runs are `{runs.root}/seed_<s>/<run>`.", ""]
    for level in levels:
        langs = [k for k in full[0]["initial"][level] if k != "avg"]
        md += [f"## {level} level: initial encoder vs McCrolin (Tables 1-3)", "",
               f"| lang | initial R@1 / {m_key} | McCrolin R@1 / {m_key} | R@1 diff | {m_key} diff | McNemar R@1 p |",
               "|---|---|---|---|---|---|"]
        table = {}
        for lang in langs + ["avg"]:
            g = [x for x in langs if x != "en"] if lang == "avg" else [lang]
            d = _rank_diff(init_r, full_r, level, g, mrr)

            def mean(label, key):
                return float(np.mean([[v for k, v in r.items() if k != "initial"][0][level][lang][key]
                                      if label != "initial" else r["initial"][level][lang][key]
                                      for r in full]))
            i1, im, b1, bm = mean("initial", "R@1"), mean("initial", m_key), mean("best", "R@1"), mean("best", m_key)
            table[lang] = dict(initial=(i1, im), mccrolin=(b1, bm), **d)
            md.append(f"| {lang} | {i1:.2f} / {im:.2f} | {b1:.2f} / {bm:.2f} | {_ci(d['R@1'])} | "
                      f"{_ci(d[m_key])} | {d['mcnemar_r1']['p_value']:.3g} |")
        out["tables"][f"{level}/initial_vs_mccrolin"] = table
        md += ["", f"### {level} level: ablations (micro average over the non-English queries; difference to McCrolin)", "",
               f"| model | R@1 / {m_key} | R@1 diff | {m_key} diff | McNemar R@1 p |", "|---|---|---|---|---|"]
        abl = {}
        for name, (label, _) in MC_ABLATIONS.items():
            res = results(f"mc_{name}")
            best = [[v for k, v in r.items() if k != "initial"][0] for r in res]
            r1 = float(np.mean([b[level]["avg"]["R@1"] for b in best]))
            rm = float(np.mean([b[level]["avg"][m_key] for b in best]))
            d = _rank_diff(full_r, _ranks(runs, seeds, f"mc_{name}", "best"), level,
                           [x for x in langs if x != "en"], mrr)
            abl[name] = dict(R1=r1, MRR=rm, **d)
            md.append(f"| {label} | {r1:.2f} / {rm:.2f} | {_ci(d['R@1'])} | {_ci(d[m_key])} | "
                      f"{d['mcnemar_r1']['p_value']:.3g} |")
        out["tables"][f"{level}/ablations"] = abl
        md.append("")
    return out, "\n".join(md)


# --------------------------------------------------------------------------- command line

def _floats(text):
    return [float(x) for x in text.split(",") if x]


def _ints(text):
    return [int(x) for x in text.split(",") if x]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("method", choices=["xmrc", "mccrolin"])
    ap.add_argument("--config", required=True, help="configs/<file>.py[:arg]")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seeds", default="0", type=_ints)
    ap.add_argument("--z", default="1,5,10,20,50", type=_ints, help="|Z| values (Figure 2)")
    ap.add_argument("--alphas", default="0.1,0.3,0.5,0.7,0.9", type=_floats, help="Figure 4")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    from xmrc_jax.console import configure_logging
    configure_logging()
    from xmrc_jax.stages.artifacts import write_json, write_text
    try:
        runs = Runs(args.workdir, load_config(args.config, args.set))
        if args.method == "xmrc":
            names = xmrc_runs(runs, args.seeds, args.z, args.alphas)
            out, md = xmrc_report(runs, args.seeds, args.z, args.alphas, names)
        else:
            mccrolin_runs(runs, args.seeds)
            out, md = mccrolin_report(runs, args.seeds)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"xmrc_jax.reproduce: {e}") from None
    report = os.path.join(args.workdir, "report")
    write_text(os.path.join(report, f"{args.method}.md"), md + "\n")
    write_json(os.path.join(report, f"{args.method}.json"), out)
    print(md)


if __name__ == "__main__":
    from xmrc_jax.hostmem import reexec_with_huge_pages
    reexec_with_huge_pages()
    main()
