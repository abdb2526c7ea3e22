"""The inspection notebook: every code cell runs against the current package."""

import contextlib
import io
import os

import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NB = os.path.join(ROOT, "notebooks", "inspect_jitted.ipynb")


def test_notebook_cells_run_and_show_each_inspection(monkeypatch):
    nb = nbformat.read(NB, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 8
    monkeypatch.chdir(os.path.dirname(NB))
    ns, out = {}, io.StringIO()
    with contextlib.redirect_stdout(out):
        for src in code:
            exec(compile(src, "<notebook cell>", "exec"), ns)
    text = out.getvalue()
    for needle in ("jaxpr:", "StableHLO", "cost_analysis: flops", "memory_analysis:",
                   "L_contrast", "gradient reaching the teacher: 0.0", "top-3 of the first query"):
        assert needle in text, needle
    # the worked top-k example: best span (1, 2) with score 5
    assert ns["starts"][0, 0] == 1 and ns["ends"][0, 0] == 2 and float(ns["scores"][0, 0]) == 5.0


def test_committed_notebook_matches_its_generator():
    import sys
    sys.path.insert(0, os.path.join(ROOT, "notebooks"))
    from make_inspect_jitted import build
    fresh = build(run=False)
    nb = nbformat.read(NB, as_version=4)
    assert [c.source for c in nb.cells] == [c.source for c in fresh.cells]
