"""Paired significance for "A vs B" tables: the paired bootstrap interval of the mean difference
over questions, and McNemar's test on paired right / wrong outcomes (EM, R@1)."""

from __future__ import annotations

import math

import numpy as np


def paired_bootstrap(a, b, n_resamples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0) -> dict:
    """Mean of ``b - a`` over paired items (questions) and its percentile bootstrap interval:
    ``{"mean_diff", "low", "high", "n", "confidence", "resamples"}``. The same question indices
    are drawn for both systems in each resample."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_bootstrap: expected two equal-length 1-D score arrays, got "
                         f"{a.shape} and {b.shape}")
    d = b - a
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 1000):          # bounded memory for large sets
        stop = min(start + 1000, n_resamples)
        idx = rng.integers(0, len(d), size=(stop - start, len(d)))
        means[start:stop] = d[idx].mean(1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean_diff": float(d.mean()), "low": float(low), "high": float(high), "n": int(len(d)),
            "confidence": confidence, "resamples": n_resamples}


def mcnemar(a_correct, b_correct, exact=None) -> dict:
    """McNemar's test on paired binary outcomes. ``b01``: A wrong and B right, ``b10``: A right
    and B wrong. Exact two-sided binomial test when ``exact`` (default: when b01 + b10 < 25),
    else the chi-square statistic with continuity correction."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a.shape != b.shape:
        raise ValueError(f"mcnemar: shapes {a.shape} and {b.shape} differ")
    b01, b10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    n = b01 + b10
    exact = n < 25 if exact is None else exact
    if n == 0:
        return {"b01": 0, "b10": 0, "statistic": 0.0, "p_value": 1.0, "exact": bool(exact)}
    if exact:
        k = min(b01, b10)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
        return {"b01": b01, "b10": b10, "statistic": float(k), "p_value": min(1.0, 2 * tail),
                "exact": True}
    stat = (abs(b01 - b10) - 1) ** 2 / n
    return {"b01": b01, "b10": b10, "statistic": float(stat),
            "p_value": float(math.erfc(math.sqrt(stat / 2))), "exact": False}


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (no scipy): bisection
    on the CDF, which is 1/2 plus Simpson's rule over the density from 0."""
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError(f"student_t_quantile: need 0 < p < 1 and df >= 1, got p={p}, df={df}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t):
        x = np.linspace(0.0, t, 20_001)
        f = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
        return 0.5 + (x[1] - x[0]) / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    low, high = 0.0, 1.0
    while cdf(high) < p:
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def seed_interval(values, confidence: float = 0.95) -> dict:
    """Student-t interval of the mean of one value per seed (the seed as the unit, so the
    interval carries the seed-to-seed spread that an interval over questions leaves out):
    ``{"mean", "low", "high", "n", "confidence"}``; needs two seeds or more."""
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"seed_interval: expected a 1-D array of at least 2 seeds' values, "
                         f"got shape {v.shape}")
    mean = float(v.mean())
    q = student_t_quantile(0.5 + confidence / 2, len(v) - 1)
    half = q * float(v.std(ddof=1)) / math.sqrt(len(v))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(len(v)),
            "confidence": confidence}
