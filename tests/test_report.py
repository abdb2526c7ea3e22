"""The results plots read without the code: units on the y axes, EM@k ticks at the measured k,
the run in the title, missing values drawn as 0 and labelled, legends clear of the bars."""

import matplotlib

matplotlib.use("Agg")

from xmrc_jax.eval import report  # noqa: E402


def _below_axes(fig, ax):
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    return legend.y1 <= ax.get_window_extent().y0 or legend.x0 >= ax.get_window_extent().x1


def test_results_figure():
    results = {"mlqa": {lang: {"f1": 40.0 + i, "exact_match": 20.0 + i,
                               "em_at": {"1": 20.0, "3": 35.0, "5": 40.0, "10": 50.0}}
                        for i, lang in enumerate(("en", "es", "de"))}}
    results["mlqa"]["de"] = {"f1": None, "exact_match": None, "em_at": {}}
    fig = report.results_figure(results, (1, 3, 5, 10), "run x: baseline (best)")
    bars, curve = fig.axes[0], fig.axes[1]
    assert fig._suptitle.get_text() == "run x: baseline (best)"
    assert bars.get_ylabel() == "score (%)" and curve.get_ylabel() == "EM@k (%)"
    assert list(curve.get_xticks()) == [1, 3, 5, 10]
    labels = [t.get_text() for t in bars.texts]
    assert labels.count("n/a") == 2 and "40" in labels                # de: F1 and EM missing
    heights = [p.get_height() for p in bars.patches]
    assert heights[2] == 0.0 and heights[0] == 40.0
    assert _below_axes(fig, bars) and _below_axes(fig, curve)


def test_retrieval_figure_has_r1_and_mrr():
    results = {"initial": {"passage": {"es": {"R@1": 10.0, "MRR@10": 20.0}, "avg": {"R@1": 10.0, "MRR@10": 20.0}}},
               "McCrolin": {"passage": {"es": {"R@1": 15.0}, "avg": {"R@1": 15.0, "MRR@10": 25.0}}}}
    fig = report.retrieval_figure(results, ("R@1", "MRR@10"), "run y")
    r1, mrr = fig.axes
    assert r1.get_ylabel() == "R@1 (%)" and mrr.get_ylabel() == "MRR@10 (%)"
    assert "n/a" in [t.get_text() for t in mrr.texts]                 # McCrolin es has no MRR
    assert _below_axes(fig, r1)
