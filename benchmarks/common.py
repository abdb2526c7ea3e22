"""Shared helpers for the benchmarks: timing, machine description, results files."""

import json
import os
import platform
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timeit(fn, repeat=5, warmup=1):
    """Median wall time of ``fn()`` in seconds (``fn`` must block until done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def machine() -> str:
    import jax
    d = jax.devices()[0]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"jax {jax.__version__} on {d.platform} ({d.device_kind})")


def matmul_peak_flops(n=2048, dtype="float32", repeat=5):
    """Measured dense matmul FLOP/s of this machine through XLA (``n x n @ n x n``)."""
    import jax
    import jax.numpy as jnp
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t = timeit(lambda: f(a).block_until_ready(), repeat=repeat)
    return 2 * n ** 3 / t


def save(name: str, payload: dict):
    path = os.path.join(HERE, "results", f"{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(json.dumps(payload, indent=2))
    return path
