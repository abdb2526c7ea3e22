"""Result tables (markdown) and plots of both methods: F1 / EM with EM@k, and retrieval."""

from __future__ import annotations


# The xMRC paper's averages are over these six languages (its Tables 4 and 5).
PAPER_LANGS = ("en", "es", "de", "ar", "hi", "vi")


def averages(results: dict) -> dict:
    """``{dataset: {"all": {f1, exact_match, languages}, "paper6": ...}}``: the mean over every
    language, and over the paper's six (en es de ar hi vi) when all six were evaluated."""
    out = {}
    for ds, per_lang in results.items():
        groups = {"all": list(per_lang)}
        if set(PAPER_LANGS) <= set(per_lang):
            groups["paper6"] = list(PAPER_LANGS)
        out[ds] = {g: {"f1": sum(per_lang[lang]["f1"] for lang in langs) / len(langs),
                       "exact_match": sum(per_lang[lang]["exact_match"] for lang in langs) / len(langs),
                       "languages": langs} for g, langs in groups.items()}
    return out


def selection_line(selection: dict) -> str:
    """How the scored checkpoint was chosen, in one line (``<stage>/selection.json``)."""
    if not selection.get("dev"):
        return selection.get("rule", "last") + " (no dev selection: the final checkpoint)"
    files = ", ".join(f"{d['name']} {d['language']} ({d['questions']} questions, "
                      f"{d['removed_overlap']} removed as overlapping the test sets)"
                      for d in selection["dev"])
    return f"{selection['rule']}: best dev F1 on {files}"


def results_markdown(results: dict, ks) -> str:
    """``results[dataset][lang] = {"f1", "exact_match", "em_at": {k: em}}`` -> markdown tables,
    with the all-language average and the paper's 6-language one (when all six are there)."""
    lines = []
    avg = averages(results)
    for ds, per_lang in results.items():
        langs = list(per_lang)
        groups = avg[ds]
        heads = ["avg (all)"] + (["avg (en es de ar hi vi)"] if "paper6" in groups else [])
        lines.append(f"### {ds}: F1 / EM")
        lines.append("| | " + " | ".join(langs) + " | " + " | ".join(heads) + " |")
        lines.append("|---" * (len(langs) + 1 + len(heads)) + "|")
        cells = [f"{per_lang[lang]['f1']:.2f} / {per_lang[lang]['exact_match']:.2f}"
                 for lang in langs]
        cells += [f"{groups[g]['f1']:.2f} / {groups[g]['exact_match']:.2f}"
                  for g in ("all", "paper6") if g in groups]
        lines.append("| F1 / EM | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"### {ds}: EM@k (an answer among the top k)")
        lines.append("| lang | " + " | ".join(f"top-{k}" for k in ks) + " |")
        lines.append("|---" * (len(ks) + 1) + "|")
        for lang in langs:
            lines.append(f"| {lang} | " + " | ".join(f"{per_lang[lang]['em_at'][str(k)]:.2f}"
                                                    for k in ks) + " |")
        lines.append("")
    return "\n".join(lines)


def _value(d: dict, key: str):
    """A score, or ``None`` where it is missing or not a number."""
    v = d.get(key) if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) and v == v else None


def _bars(ax, langs, series, width=0.8):
    """Grouped bars ``series = [(label, [value or None per lang])]``, values written above; a
    missing value is drawn as 0 and labelled "n/a"."""
    w = width / len(series)
    for j, (label, values) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * w for i in range(len(langs))]
        bars = ax.bar(xs, [v or 0.0 for v in values], w, label=label)
        ax.bar_label(bars, ["n/a" if v is None else f"{v:.0f}" for v in values], fontsize=6,
                     padding=1)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylim(0, 105)


def _legend_below(ax, ncol):
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=ncol, fontsize=8,
              frameon=False)


def _save(fig, path: str):
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_results(results: dict, ks, path: str, title: str = ""):
    """Per dataset: F1 and EM per language (bars, percent) and EM@k against k (the measured k
    as ticks); ``title`` names the model and run. Saved as a PNG at ``path``."""
    _save(results_figure(results, ks, title), path)


def results_figure(results: dict, ks, title: str = ""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = max(len(results), 1)
    ks = [int(k) for k in ks]
    fig, axes = plt.subplots(2, n, figsize=(max(5.5, 0.55 * max(len(p) for p in results.values()) + 2) * n
                                            if results else 5.5, 8), squeeze=False)
    for c, (ds, per_lang) in enumerate(results.items()):
        langs = list(per_lang)
        ax = axes[0][c]
        _bars(ax, langs, [("F1", [_value(per_lang[lang], "f1") for lang in langs]),
                          ("EM", [_value(per_lang[lang], "exact_match") for lang in langs])])
        ax.set_ylabel("score (%)")
        ax.set_title(f"{ds}: F1 / EM per language")
        _legend_below(ax, 2)
        ax = axes[1][c]
        colors = plt.get_cmap("tab20" if len(langs) > 10 else "tab10")
        for i, lang in enumerate(langs):
            em_at = per_lang[lang].get("em_at", {})
            ax.plot(ks, [_value(em_at, str(k)) or 0.0 for k in ks], marker="o", label=lang,
                    color=colors(i))
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("k (answers considered, best first)")
        ax.set_ylabel("EM@k (%)")
        ax.set_ylim(0, 105)
        ax.set_title(f"{ds}: a gold answer among the top k")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def retrieval_markdown(results: dict) -> str:
    """``results[model][level][lang] = {"R@1", "R@10", "MRR@10", ...}`` (``"avg"`` = micro
    average over the non-English query languages) -> one markdown table per level."""
    lines = []
    levels = list(dict.fromkeys(lv for per_model in results.values() for lv in per_model))
    for level in levels:
        models = [m for m in results if level in results[m]]
        langs = list(results[models[0]][level])
        metrics = [k for k in results[models[0]][level][langs[0]] if k.startswith(("R@", "MRR@"))]
        lines.append(f"### {level}-level retrieval (English candidates; avg = micro average over "
                     "the non-English queries)")
        lines.append("| model | metric | " + " | ".join(langs) + " |")
        lines.append("|---" * (len(langs) + 2) + "|")
        for m in models:
            for k in metrics:
                lines.append(f"| {m} | {k} | " + " | ".join(
                    f"{results[m][level][lang][k]:.2f}" for lang in langs) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_retrieval(results: dict, path: str, metrics=("R@1", "MRR@10"), title: str = ""):
    """One row per metric (R@1 and MRR@10 by default), one panel per level: bars per language
    for each model (percent; a missing value is drawn as 0). Saved as a PNG at ``path``."""
    _save(retrieval_figure(results, metrics, title), path)


def retrieval_figure(results: dict, metrics=("R@1", "MRR@10"), title: str = ""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    levels = list(dict.fromkeys(lv for per_model in results.values() for lv in per_model))
    langs_max = max((len(results[m][lv]) for m in results for lv in results[m]), default=1)
    fig, axes = plt.subplots(len(metrics), max(len(levels), 1),
                             figsize=(max(6.0, 0.6 * langs_max + 2) * max(len(levels), 1),
                                      3.8 * len(metrics)), squeeze=False)
    for r, metric in enumerate(metrics):
        for c, level in enumerate(levels):
            ax = axes[r][c]
            models = [m for m in results if level in results[m]]
            langs = list(results[models[0]][level])
            _bars(ax, langs, [(m, [_value(results[m][level].get(lang, {}), metric)
                                   for lang in langs]) for m in models])
            ax.set_ylabel(f"{metric} (%)")
            ax.set_title(f"{level} level: {metric} (avg = non-English queries)")
            _legend_below(ax, min(len(models), 3))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
