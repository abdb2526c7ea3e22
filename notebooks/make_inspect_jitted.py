"""Writes notebooks/inspect_jitted.ipynb and fills in its outputs by running each code cell
(no Jupyter needed): ``python notebooks/make_inspect_jitted.py``. tests/test_notebook.py runs
the same cells, so the notebook cannot rot."""

import contextlib
import io
import os

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))

CELLS = [
    ("md", """# Inspecting the jitted span ops and losses

Every function in `xmrc_jax.ops` and `xmrc_jax.losses` is a pure function of arrays. For each we
look at the jaxpr (`jax.make_jaxpr`), the StableHLO that XLA receives
(`jax.jit(f).lower(...).as_text()`), XLA's own cost and memory estimates of the compiled
program (`compile().cost_analysis()` / `memory_analysis()`), and a small worked example.

Shapes are static: `k`, `max_answer_len` and `tau` are Python values closed over, so each
setting compiles once."""),
    ("code", """import os, sys
sys.path.insert(0, os.path.abspath(".."))       # the repository root, when run from notebooks/
import jax, jax.numpy as jnp, numpy as np
from xmrc_jax.ops import top_k_spans, span_log_prob, span_types, mean_pool, pool_spans
from xmrc_jax.losses import (mrc_loss, hard_learning_loss, aacl_loss, xlc_loss, rank_loss,
                             ha_loss, mccrolin_loss)
from xmrc_jax.eval.retrieval_metrics import top_k_chunked
np.set_printoptions(precision=3, suppress=True)


def inspect(fn, *args, hlo_lines=12):
    \"\"\"jaxpr size, the head of the StableHLO, and XLA's cost / memory estimates.\"\"\"
    jaxpr = jax.make_jaxpr(fn)(*args)
    print(f"jaxpr: {len(jaxpr.eqns)} equations; primitives:",
          sorted({e.primitive.name for e in jaxpr.eqns}))
    lowered = jax.jit(fn).lower(*args)
    hlo = lowered.as_text().splitlines()
    print(f"StableHLO ({len(hlo)} lines), first {hlo_lines}:")
    print("\\n".join(hlo[:hlo_lines]))
    compiled = lowered.compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    print("cost_analysis: flops %.3g, bytes accessed %.3g" % (cost.get("flops", float("nan")),
                                                          cost.get("bytes accessed", float("nan"))))
    mem = compiled.memory_analysis()
    print("memory_analysis: arguments %d B, outputs %d B, temporaries %d B" % (
        mem.argument_size_in_bytes, mem.output_size_in_bytes, mem.temp_size_in_bytes))
    return jaxpr"""),
    ("md", """## `top_k_spans`: the k best valid spans, exact

A sliding-window max gives each start's best end within `max_answer_len`; the k best starts
are kept (no span outside them can be in the top k), and a top-k over their `k x max_answer_len`
band gives the answer. Time and memory are linear in `seq * max_answer_len`."""),
    ("code", """start = jnp.array([[0., 3., 1., 0., 2., -1.]])
end = jnp.array([[0., 0., 2., 4., 1., 0.]])
mask = jnp.array([[False, True, True, True, True, False]])   # context tokens
f = lambda s, e, m: top_k_spans(s, e, m, k=4, max_answer_len=2)
starts, ends, scores = f(start, end, mask)
print("starts", starts, "ends", ends, "scores", scores, sep="\\n")
_ = inspect(f, start, end, mask)"""),
    ("md", """Spans (1, 2) and (2, 3) both score 5; the tie goes to the lower start. Span (1, 3) would
score 3 + 4 = 7 but is 3 tokens long, over `max_answer_len = 2`; tokens 0 and 5 are not context.

## `span_log_prob` and `span_types`"""),
    ("code", """valid = jnp.ones((1, 6), bool)
lp = span_log_prob(start, end, valid, starts, ends)
print("log P(span) =", lp)
print("types vs gold (2, 3):", span_types(starts, ends, jnp.array([2]), jnp.array([3])),
      "(0 = gold, 1 = one shared boundary, 2 = none)")
_ = inspect(lambda s, e: span_log_prob(s, e, valid, starts, ends), start, end)"""),
    ("md", "## Pooling: question mean and span means (`mean_pool`, `pool_spans`)"),
    ("code", """hidden = jnp.arange(6 * 2, dtype=jnp.float32).reshape(1, 6, 2)
print("question mean over tokens 1..2:", mean_pool(hidden, jnp.array([[0, 1, 1, 0, 0, 0]])))
print("span means:", pool_spans(hidden, starts, ends))
_ = inspect(pool_spans, hidden, starts, ends)"""),
    ("md", """## Hard learning over the candidate set Z

`mml` (marginal likelihood), `hard_em` (the most probable candidate), `weighted` (fixed
weights by span type) and `weighted_learned` (softmax of learnable type logits, passed in)."""),
    ("code", """gs, ge = jnp.array([2]), jnp.array([3])
for variant, w in [("mml", None), ("hard_em", None), ("weighted", (1.0, 0.1, 0.0)),
                   ("weighted_learned", jnp.array([0.0, -3.0, -6.0]))]:
    loss = hard_learning_loss(start, end, valid, starts, ends, starts >= 0, gs, ge, variant, w)
    print(f"{variant:17s}", loss)
print("L_mrc (cross-entropy on gold):", mrc_loss(start, end, valid, gs, ge))
_ = inspect(lambda s, e, w: hard_learning_loss(s, e, valid, starts, ends, starts >= 0, gs, ge,
                                               "weighted_learned", w),
            start, end, jnp.array([0.0, -3.0, -6.0]))"""),
    ("md", """## Answer-aware contrastive learning

Span representations from the hidden states, cosine to the gold span, the hardest non-gold
candidate as the negative, and InfoNCE over the batch with temperature tau."""),
    ("code", """rng = np.random.default_rng(0)
H = jnp.asarray(rng.normal(size=(3, 12, 8)), jnp.float32)
qmask = jnp.zeros((3, 12), bool).at[:, 1:4].set(True)
g_s, g_e = jnp.array([5, 6, 7]), jnp.array([6, 6, 9])
c_s = jnp.array([[5, 6, 8], [6, 5, 9], [4, 7, 7]])
c_e = jnp.array([[6, 7, 9], [6, 6, 10], [5, 9, 8]])
loss, aux = aacl_loss(H, qmask, g_s, g_e, jnp.ones(3, bool), c_s, c_e, jnp.ones((3, 3), bool), 0.1)
print("L_contrast", loss, {k: np.asarray(v) for k, v in aux.items()})
_ = inspect(lambda h: aacl_loss(h, qmask, g_s, g_e, jnp.ones(3, bool), c_s, c_e,
                                jnp.ones((3, 3), bool), 0.1)[0], H)"""),
    ("md", """## McCrolin: L_XLC, L_rank, L_HA and the total

Teacher embeddings enter under `stop_gradient`; every term is returned in `aux`."""),
    ("code", """emb = lambda seed: jnp.asarray(np.random.default_rng(seed).normal(size=(4, 8)), jnp.float32)
teacher = dict(q_en=emb(1), d=emb(2), pr=emb(3))
student = dict(q_en=emb(4), q_ne=emb(5), d=emb(6), pr=emb(7))
loss, aux = mccrolin_loss(teacher, student, tau=0.05)
print("total", loss)
for k, v in sorted(aux.items()):
    print(f"  {k:13s} {float(v):.4f}")
g = jax.grad(lambda t: mccrolin_loss(t, student, tau=0.05)[0])(teacher)
print("gradient reaching the teacher:", float(sum(jnp.abs(x).sum() for x in g.values())))
_ = inspect(lambda t, s: mccrolin_loss(t, s, tau=0.05)[0], teacher, student)"""),
    ("md", """## Retrieval: the chunked top-k

The pool is scanned in chunks, keeping a running top-k, so temporary memory does not grow
with the pool beyond one chunk; compare the temporaries of two pool sizes."""),
    ("code", """q = jnp.asarray(np.random.default_rng(0).normal(size=(16, 32)), jnp.float32)
for n in (1_000, 20_000):
    pool = jnp.asarray(np.random.default_rng(1).normal(size=(n, 32)), jnp.float32)
    mem = jax.jit(lambda a, b: top_k_chunked(a, b, k=10, chunk=512, similarity="cosine")) \\
        .lower(q, pool).compile().memory_analysis()
    print(f"pool {n:6d}: temporaries {mem.temp_size_in_bytes:8d} B, pool argument "
          f"{mem.argument_size_in_bytes - q.nbytes:9d} B")
sims, found = top_k_chunked(q, pool, k=3, chunk=512, similarity="cosine")
print("top-3 of the first query:", found[0], sims[0])"""),
]


def build(run=True):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    ns = {}
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        for kind, src in CELLS:
            if kind == "md":
                nb.cells.append(nbformat.v4.new_markdown_cell(src))
                continue
            cell = nbformat.v4.new_code_cell(src)
            if run:
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    exec(compile(src, "<cell>", "exec"), ns)
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=buf.getvalue())]
            nb.cells.append(cell)
    finally:
        os.chdir(cwd)
    return nb


if __name__ == "__main__":
    nbformat.write(build(), os.path.join(HERE, "inspect_jitted.ipynb"))
