"""glibc malloc with and without transparent huge pages (``xmrc_jax/hostmem.py``), in one run:
the same programs in two child processes that differ only in ``GLIBC_TUNABLES``.

    python benchmarks/host_memory.py [--batch 32 --seq 256 --layers 12]

Measures an ``8192 x 384 @ 384 x 1536`` matmul (the FFN input projection of e5-small at batch
32 x 256), the exact GELU on its output, and the full multilingual-e5-small-shaped train step
(L_mrc). Results: benchmarks/results/host_memory.json (summarised in benchmarks/RESULTS.md).
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import ROOT, machine, save  # noqa: E402

CHILD = r"""
import json, sys
sys.path.insert(0, ROOT)
import jax, jax.numpy as jnp
from benchmarks.common import timeit
from benchmarks.train_step import make_batch
from xmrc_jax import mesh as sh
from xmrc_jax.models import EncoderConfig, build_model
from xmrc_jax.tasks import span_qa
from xmrc_jax.train import state as st
from xmrc_jax.train.trainer import build_step
B, L, layers = ARGS
out = {}
x, w = jnp.ones((8192, 384)), jnp.ones((384, 1536)) * 0.01
mm = jax.jit(lambda x, w: x @ w)
mm(x, w).block_until_ready()
t = timeit(lambda: mm(x, w).block_until_ready(), repeat=10)
out["matmul_8192x384x1536"] = dict(seconds=t, gflops=2 * 8192 * 384 * 1536 / t / 1e9)
g = jnp.ones((8192, 1536))
gelu = jax.jit(lambda g: jax.nn.gelu(g, approximate=False))
gelu(g).block_until_ready()
out["gelu_8192x1536_s"] = timeit(lambda: gelu(g).block_until_ready(), repeat=10)
cfg = EncoderConfig(vocab_size=250037, hidden_size=384, num_hidden_layers=layers,
                    num_attention_heads=12, intermediate_size=1536, max_position_embeddings=514)
batch = make_batch(B, L, cfg.vocab_size)
mesh = sh.make_mesh({"data": 1}, jax.devices()[:1])
module = build_model(cfg, "span")
tx, _ = st.make_optimizer(1e-4, 1000)
state, _, step = build_step(module, tx, mesh, span_qa.mrc_objective(module), batch,
                            rng=jax.random.PRNGKey(0))
b = sh.put_batch(batch, mesh)
holder = {"s": state}
def run():
    holder["s"], m = step(holder["s"], b)
    jax.block_until_ready(m["loss"])
out["train_step_s"] = timeit(run, repeat=3)
print("RESULT " + json.dumps(out))
"""


def child(env_tunable: bool, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if env_tunable:
        env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
    code = CHILD.replace("ROOT", repr(ROOT)).replace("ARGS", repr((args.batch, args.seq, args.layers)))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--layers", type=int, default=12)
    args = ap.parse_args()
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        thp = f.read().strip()
    default, huge = child(False, args), child(True, args)
    out = dict(machine=machine(), config=vars(args), transparent_hugepage=thp,
               default_malloc=default, huge_pages=huge,
               speedup=dict(matmul=default["matmul_8192x384x1536"]["seconds"]
                            / huge["matmul_8192x384x1536"]["seconds"],
                            gelu=default["gelu_8192x1536_s"] / huge["gelu_8192x1536_s"],
                            train_step=default["train_step_s"] / huge["train_step_s"]))
    save("host_memory", out)


if __name__ == "__main__":
    main()
