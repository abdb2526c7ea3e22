"""Top-k span extraction: the jitted exact ``top_k_spans`` against the usual host-side n-best
(top-20 starts x top-20 ends, filtered, in numpy/Python loops) and a brute force over all spans.

    python benchmarks/topk.py [--windows 1000 --seq 384 --k 20 --max-len 30]

Also checks how often the host n-best misses a span of the exact top-k.
Results: benchmarks/results/topk.json.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import machine, save, timeit  # noqa: E402
from references import brute_top_k_spans, host_nbest  # noqa: E402
from xmrc_jax.ops import top_k_spans  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--seq", type=int, default=384)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--brute-rows", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, L, k, m = args.windows, args.seq, args.k, args.max_len
    start = rng.normal(size=(n, L)).astype(np.float32)
    end = rng.normal(size=(n, L)).astype(np.float32)
    mask = np.zeros((n, L), bool)
    mask[:, 30:L - 1] = True
    f = jax.jit(lambda s, e, mk: top_k_spans(s, e, mk, k, m))
    s_d, e_d, m_d = jax.device_put(start), jax.device_put(end), jax.device_put(mask)
    t_jit = timeit(lambda: jax.block_until_ready(f(s_d, e_d, m_d)), repeat=10)
    t0 = time.perf_counter()
    host = host_nbest(start, end, mask, k, m)
    t_host = time.perf_counter() - t0
    r = args.brute_rows
    t0 = time.perf_counter()
    brute = brute_top_k_spans(start[:r], end[:r], mask[:r], k, m)
    t_brute = (time.perf_counter() - t0) * n / r
    starts, ends, _ = (np.asarray(x) for x in f(s_d, e_d, m_d))
    np.testing.assert_array_equal(starts[:r], brute[0])
    np.testing.assert_array_equal(ends[:r], brute[1])
    missed = np.mean([len({(int(a), int(b)) for a, b in zip(starts[i], ends[i])} -
                          {(a, b) for a, b, _ in host[i]}) / k for i in range(n)])
    save("topk", dict(machine=machine(), config=vars(args), jit_s=t_jit, host_nbest_s=t_host,
                      brute_force_s_extrapolated=t_brute, speedup_vs_host=t_host / t_jit,
                      speedup_vs_brute=t_brute / t_jit, windows_per_s=n / t_jit,
                      host_nbest_missed_fraction_of_exact_top_k=float(missed)))


if __name__ == "__main__":
    main()
