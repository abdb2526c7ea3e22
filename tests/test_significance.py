"""Paired bootstrap and McNemar's test against independent references (scipy where installed,
brute-force loops otherwise)."""

import math

import numpy as np
import pytest

from xmrc_jax.eval.significance import (mcnemar, paired_bootstrap, seed_interval,
                                        student_t_quantile)


def test_paired_bootstrap_matches_a_loop_reference():
    rng = np.random.default_rng(0)
    a = rng.random(50) * 100
    b = a + rng.normal(2.0, 5.0, size=50)
    got = paired_bootstrap(a, b, n_resamples=2000, seed=7)
    # loop reference with the same draws
    draws = np.random.default_rng(7)
    means = []
    for start in range(0, 2000, 1000):
        idx = draws.integers(0, 50, size=(1000, 50))
        means += [float(np.mean([b[i] - a[i] for i in row])) for row in idx]
    low, high = np.quantile(means, [0.025, 0.975])
    assert got["mean_diff"] == pytest.approx(float(np.mean(b - a)))
    assert (got["low"], got["high"]) == pytest.approx((low, high))
    assert got["low"] < got["mean_diff"] < got["high"]
    same = paired_bootstrap(a, a)
    assert same["mean_diff"] == same["low"] == same["high"] == 0.0
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap(a, b[:10])


def test_bootstrap_interval_covers_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    hits = 0
    for trial in range(200):
        d = rng.normal(1.0, 3.0, size=80)
        r = paired_bootstrap(np.zeros(80), d, n_resamples=400, seed=trial)
        hits += r["low"] <= 1.0 <= r["high"]
    assert 0.88 <= hits / 200 <= 0.99                     # nominal 0.95


def _binom_two_sided(k, n):
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


@pytest.mark.parametrize("b01,b10", [(0, 0), (3, 9), (10, 2), (30, 12), (100, 70)])
def test_mcnemar_against_references(b01, b10):
    both = 40
    a = np.array([0] * b01 + [1] * b10 + [1] * both + [0] * 7, bool)
    b = np.array([1] * b01 + [0] * b10 + [1] * both + [0] * 7, bool)
    got = mcnemar(a, b)
    assert (got["b01"], got["b10"]) == (b01, b10)
    n = b01 + b10
    if n == 0:
        assert got["p_value"] == 1.0
        return
    exact = mcnemar(a, b, exact=True)["p_value"]
    chi = mcnemar(a, b, exact=False)
    try:
        from scipy import stats
        assert exact == pytest.approx(stats.binomtest(min(b01, b10), n, 0.5).pvalue)
        stat = (abs(b01 - b10) - 1) ** 2 / n
        assert chi["p_value"] == pytest.approx(stats.chi2.sf(stat, 1))
    except ImportError:
        assert exact == pytest.approx(_binom_two_sided(min(b01, b10), n))
    assert got["exact"] == (n < 25)


# Student's t quantiles from printed tables (two-sided 95 % and 90 %, one-sided 99.5 %)
T_TABLE = [(0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 10, 2.2281),
           (0.975, 30, 2.0423), (0.95, 2, 2.9200), (0.995, 5, 4.0321)]


@pytest.mark.parametrize("p,df,want", T_TABLE)
def test_student_t_quantile_against_tables_and_scipy(p, df, want):
    got = student_t_quantile(p, df)
    assert got == pytest.approx(want, abs=1e-4)
    assert student_t_quantile(1 - p, df) == pytest.approx(-got)
    try:
        from scipy import stats
        assert got == pytest.approx(stats.t.ppf(p, df), rel=1e-7)
    except ImportError:
        pass


def test_student_t_quantile_tends_to_the_normal_and_rejects_bad_input():
    assert student_t_quantile(0.975, 100_000) == pytest.approx(1.959964, abs=1e-4)
    with pytest.raises(ValueError, match="df >= 1"):
        student_t_quantile(0.975, 0)
    with pytest.raises(ValueError, match="0 < p < 1"):
        student_t_quantile(1.0, 3)


def test_seed_interval_is_the_t_interval_of_the_seed_values():
    v = [0.69, -0.37, 1.63]                      # three seeds' mean differences
    got = seed_interval(v)
    mean, sd = sum(v) / 3, math.sqrt(sum((x - sum(v) / 3) ** 2 for x in v) / 2)
    half = 4.302653 * sd / math.sqrt(3)          # t(0.975, 2) from tables
    assert got["mean"] == pytest.approx(mean)
    assert (got["low"], got["high"]) == pytest.approx((mean - half, mean + half), abs=1e-5)
    assert got["n"] == 3 and got["low"] < 0 < got["high"]
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_interval([1.0])
