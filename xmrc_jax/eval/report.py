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


def plot_results(results: dict, ks, path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(results)
    fig, axes = plt.subplots(2, max(n, 1), figsize=(5 * max(n, 1), 7), squeeze=False)
    for c, (ds, per_lang) in enumerate(results.items()):
        langs = list(per_lang)
        x = range(len(langs))
        ax = axes[0][c]
        ax.bar([i - 0.2 for i in x], [per_lang[lang]["f1"] for lang in langs], 0.4, label="F1")
        ax.bar([i + 0.2 for i in x], [per_lang[lang]["exact_match"] for lang in langs], 0.4, label="EM")
        ax.set_xticks(list(x), langs)
        ax.set_title(f"{ds}: F1 / EM")
        ax.legend()
        ax = axes[1][c]
        for lang in langs:
            ax.plot(list(ks), [per_lang[lang]["em_at"][str(k)] for k in ks], marker="o", label=lang)
        ax.set_xlabel("k")
        ax.set_ylabel("EM@k")
        ax.set_title(f"{ds}: EM among the top k")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


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


def plot_retrieval(results: dict, path: str, metric: str = "R@1"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    levels = list(dict.fromkeys(lv for per_model in results.values() for lv in per_model))
    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 3.6), squeeze=False)
    for c, level in enumerate(levels):
        ax = axes[0][c]
        models = [m for m in results if level in results[m]]
        langs = list(results[models[0]][level])
        width = 0.8 / len(models)
        for j, m in enumerate(models):
            ax.bar([i + (j - (len(models) - 1) / 2) * width for i in range(len(langs))],
                   [results[m][level][lang][metric] for lang in langs], width, label=m)
        ax.set_xticks(range(len(langs)), langs)
        ax.set_ylabel(metric)
        ax.set_title(f"{level}-level {metric}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
