"""Losses against loop references, hand-worked closed forms and finite-difference gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from references import aacl_np, cos_np, info_nce_np, log_softmax_np, span_types_np
from xmrc_jax.losses import (aacl_loss, ha_loss, hard_learning_loss, hard_negatives,
                             in_batch_info_nce, masked_mean, mccrolin_loss, mrc_loss, rank_loss,
                             xlc_loss)

jax.config.update("jax_enable_x64", False)


def _hl_np(s, e, valid, cs, ce, cv, gs, ge, variant, w):
    out = np.zeros(s.shape[0])
    types = span_types_np(cs, ce, gs, ge)
    if variant in ("weighted_learned", "weighted_mml_learned"):
        w = np.exp(w) / np.exp(w).sum()
    for b in range(s.shape[0]):
        ls, le = log_softmax_np(s[b], valid[b]), log_softmax_np(e[b], valid[b])
        lps = [(ls[cs[b, z]] + le[ce[b, z]], types[b, z]) for z in range(cs.shape[1])
               if cv[b, z] and cs[b, z] >= 0]
        if not lps:
            continue
        vals = np.array([v for v, _ in lps])
        if variant == "mml":
            out[b] = -(vals.max() + np.log(np.exp(vals - vals.max()).sum()))
        elif variant == "hard_em":
            out[b] = -vals.max()
        elif variant in ("weighted_mml", "weighted_mml_learned"):
            mass = sum(w[t] * np.exp(v) for v, t in lps if w[t] > 0)
            out[b] = -np.log(mass) if mass > 0 else 0.0
        elif variant == "weighted_type_mean":
            out[b] = -sum(w[t] * np.mean([v for v, tt in lps if tt == t])
                          for t in range(3) if any(tt == t for _, tt in lps))
        else:
            out[b] = -sum(w[t] * v for v, t in lps)
    return out


def _hl_inputs(seed, batch=4, seq=12, z=6):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(batch, seq)).astype(np.float32)
    e = rng.normal(size=(batch, seq)).astype(np.float32)
    valid = rng.random((batch, seq)) < 0.8
    valid[:, :3] = True
    cs = rng.integers(0, 3, size=(batch, z))
    ce = cs + rng.integers(0, 2, size=(batch, z))
    cv = rng.random((batch, z)) < 0.8
    cv[-1] = False                                  # a row without any valid candidate
    cs[0, 2] = -1
    gs, ge = cs[:, 0].copy(), ce[:, 0].copy()
    return s, e, valid, cs, ce, cv, gs, ge


@pytest.mark.parametrize("variant", ["mml", "hard_em", "weighted", "weighted_learned",
                                     "weighted_mml", "weighted_mml_learned", "weighted_type_mean"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hard_learning_matches_loop_reference(variant, seed):
    args = _hl_inputs(seed)
    w = (np.array([0.0, -3.0, -6.0]) if variant.endswith("learned") else
         np.array([1.0, 0.3, 0.0]) if variant == "weighted_mml" else np.array([1.0, 0.3, 0.05]))
    got = hard_learning_loss(*[jnp.asarray(a) for a in args], variant=variant, type_weights=w)
    np.testing.assert_allclose(np.asarray(got), _hl_np(*args, variant, w), rtol=1e-5, atol=1e-5)
    assert np.asarray(got)[-1] == 0.0 and np.isfinite(np.asarray(got)).all()


def test_hl_hand_worked():
    # Two positions, uniform logits: every span has P = 1/2 * 1/2 = 1/4.
    s = jnp.zeros((1, 2))
    valid = jnp.ones((1, 2), bool)
    cs, ce = jnp.array([[0, 0, 1]]), jnp.array([[0, 1, 1]])
    cv = jnp.ones((1, 3), bool)
    g = (jnp.array([0]), jnp.array([0]))
    mml = hard_learning_loss(s, s, valid, cs, ce, cv, *g, variant="mml")
    assert float(mml[0]) == pytest.approx(-math.log(3 / 4))
    hem = hard_learning_loss(s, s, valid, cs, ce, cv, *g, variant="hard_em")
    assert float(hem[0]) == pytest.approx(math.log(4))
    # types: (0,0) gold, (0,1) one boundary, (1,1) none -> weights 1, 0.5, 0.25
    wl = hard_learning_loss(s, s, valid, cs, ce, cv, *g, variant="weighted",
                            type_weights=[1.0, 0.5, 0.25])
    assert float(wl[0]) == pytest.approx(1.75 * math.log(4))
    assert float(mrc_loss(s, s, valid, *g)[0]) == pytest.approx(2 * math.log(2))
    # weighted MML: -log(1 * 1/4 + 0.5 * 1/4 + 0 * 1/4); per-type means: 1.75 log 4 as well
    wm = hard_learning_loss(s, s, valid, cs, ce, cv, *g, variant="weighted_mml",
                            type_weights=[1.0, 0.5, 0.0])
    assert float(wm[0]) == pytest.approx(-math.log(1.5 / 4))
    tm = hard_learning_loss(s, s, valid, cs, ce, cv, *g, variant="weighted_type_mean",
                            type_weights=[1.0, 0.5, 0.25])
    assert float(tm[0]) == pytest.approx(1.75 * math.log(4))


def test_hl_gradients_including_learnable_weights():
    s, e, valid, cs, ce, cv, gs, ge = [jnp.asarray(a) for a in _hl_inputs(3)]
    for variant in ("mml", "weighted", "hard_em", "weighted_mml", "weighted_type_mean"):
        f = lambda s_, e_: jnp.sum(hard_learning_loss(s_, e_, valid, cs, ce, cv, gs, ge, variant,  # noqa
                                                      [1.0, 0.3, 0.1]))
        check_grads(f, (s, e), order=1, modes=["rev"], atol=1e-2, rtol=1e-2, eps=1e-2)
    for variant in ("weighted_learned", "weighted_mml_learned"):
        f = lambda th: jnp.sum(hard_learning_loss(s, e, valid, cs, ce, cv, gs, ge, variant, th))  # noqa
        check_grads(f, (jnp.array([0.0, -1.0, -2.0]),), order=1, modes=["rev"], atol=1e-2,
                    rtol=1e-2, eps=1e-2)


def test_mrc_loss_matches_reference_and_masked_mean():
    s, e, valid, *_ = _hl_inputs(4)
    sp, ep = np.array([0, 1, 2, 0]), np.array([2, 1, 2, 0])
    got = np.asarray(mrc_loss(jnp.asarray(s), jnp.asarray(e), jnp.asarray(valid), jnp.asarray(sp),
                              jnp.asarray(ep)))
    want = [-(log_softmax_np(s[b], valid[b])[sp[b]] + log_softmax_np(e[b], valid[b])[ep[b]])
            for b in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    m = np.array([True, False, True, True])
    assert float(masked_mean(jnp.asarray(got), jnp.asarray(m))) == pytest.approx(got[m].mean(), rel=1e-6)
    assert float(masked_mean(jnp.asarray(got), jnp.zeros(4, bool))) == 0.0


def _aacl_inputs(seed, batch=5, seq=14, dim=6, a=7):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(batch, seq, dim)).astype(np.float32)
    qmask = np.zeros((batch, seq), bool)
    qmask[:, 1:4] = True
    gs = rng.integers(5, 9, size=batch)
    ge = gs + rng.integers(0, 3, size=batch)
    gv = np.ones(batch, bool)
    gv[1] = False                                        # gold outside the window
    cs = rng.integers(5, 10, size=(batch, a))
    ce = cs + rng.integers(0, 3, size=(batch, a))
    cv = rng.random((batch, a)) < 0.9
    cs[:, 0], ce[:, 0] = gs, ge                          # the gold span is among the candidates
    cv[2, 1:] = False                                    # only the gold: no negative
    cs[3, 3] = -1
    return h, qmask, gs, ge, gv, cs, ce, cv


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_aacl_matches_loop_reference(seed, tau):
    args = _aacl_inputs(seed)
    loss, aux = aacl_loss(*[jnp.asarray(x) for x in args], tau=tau)
    want, n, per = aacl_np(*args, tau)
    assert int(aux["num_active"]) == n == 3
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(aux["per_example"]), per, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_aacl_with_non_overlapping_negatives_matches_loop_reference(seed):
    args = _aacl_inputs(seed)
    h, qmask, gs, ge, gv, cs, ce, cv = args
    loss, aux = aacl_loss(*[jnp.asarray(x) for x in args], tau=0.1, negative="no_overlap")
    want, n, per = aacl_np(*args, 0.1, negative="no_overlap")
    assert int(aux["num_active"]) == n
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(aux["per_example"]), per, rtol=1e-4, atol=1e-5)
    assert float(aux["neg_overlap"]) == 0.0
    # the default may pick an overlapping span: neg_overlap is the share of active rows whose
    # chosen negative (the most gold-like eligible one, by loops) shares a token with gold
    _, aux_default = aacl_loss(*[jnp.asarray(x) for x in args], tau=0.1)
    shares = []
    for b in range(len(gs)):
        pos = h[b, gs[b]:ge[b] + 1].mean(0)
        best = max(((cos_np(pos, h[b, cs[b, z]:ce[b, z] + 1].mean(0)), z)
                    for z in range(cs.shape[1]) if cv[b, z] and cs[b, z] >= 0
                    and not (cs[b, z] == gs[b] and ce[b, z] == ge[b])), default=None)
        if gv[b] and best is not None:
            z = best[1]
            shares.append(cs[b, z] <= ge[b] and ce[b, z] >= gs[b])
    assert float(aux_default["neg_overlap"]) == pytest.approx(np.mean(shares), abs=1e-6)


def test_hard_negative_readings_hand_worked():
    """Gold span 3..5; candidates 3..5 (gold), 4..6 (overlaps), 1..2 and 7..8 (apart)."""
    r_gold = jnp.array([[1.0, 0.0]])
    r_cand = jnp.array([[[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]]])
    cs, ce = jnp.array([[3, 4, 1, 7]]), jnp.array([[5, 6, 2, 8]])
    valid = jnp.ones((1, 4), bool)
    idx, has, sim, overlaps = hard_negatives(r_gold, r_cand, cs, ce, valid, jnp.array([3]),
                                             jnp.array([5]))
    assert int(idx[0]) == 1 and bool(overlaps[0]) and bool(has[0])      # 4..6: most similar
    idx, has, sim, overlaps = hard_negatives(r_gold, r_cand, cs, ce, valid, jnp.array([3]),
                                             jnp.array([5]), "no_overlap")
    assert int(idx[0]) == 2 and not bool(overlaps[0])                    # 1..2
    assert float(sim[0]) == pytest.approx(0.5 / math.sqrt(0.5), rel=1e-6)
    with pytest.raises(ValueError, match="hard negative"):
        hard_negatives(r_gold, r_cand, cs, ce, valid, jnp.array([3]), jnp.array([5]), "any")


def test_aacl_gradient_and_empty_batch():
    h, *rest = _aacl_inputs(5)
    rest = [jnp.asarray(x) for x in rest]
    f = lambda hh: aacl_loss(hh, *rest, tau=0.5)[0]  # noqa: E731
    check_grads(f, (jnp.asarray(h),), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-2)
    gv = jnp.zeros_like(rest[3])
    loss, aux = aacl_loss(jnp.asarray(h), *rest[:3], gv, *rest[4:])
    assert float(loss) == 0.0 and float(aux["num_active"]) == 0
    assert np.isfinite(np.asarray(jax.grad(lambda hh: aacl_loss(hh, *rest[:3], gv, *rest[4:])[0])(
        jnp.asarray(h)))).all()


def test_aacl_hand_worked_single_pair():
    # One row, dim 2: question (1,0); gold token (1,0); negative (0,1) -> cos 1 and 0.
    h = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    qmask = jnp.array([[True, False, False]])
    loss, aux = aacl_loss(h, qmask, jnp.array([1]), jnp.array([1]), jnp.array([True]),
                          jnp.array([[1, 2]]), jnp.array([[1, 2]]), jnp.array([[True, True]]), tau=0.5)
    assert float(loss) == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)), rel=1e-6)
    assert float(aux["neg_similarity"]) == pytest.approx(0.0, abs=1e-7)


def _emb(seed, batch=6, dim=5):
    rng = np.random.default_rng(seed)
    names = ["t_q_en", "t_d", "t_pr", "s_q_en", "s_q_ne", "s_d", "s_pr"]
    return {n: rng.normal(size=(batch, dim)).astype(np.float32) for n in names}


def test_mccrolin_terms_match_closed_forms():
    x = _emb(0)
    m = np.array([True] * 5 + [False])
    sq = lambda a, b: ((a - b) ** 2).sum(-1)[m].mean()  # noqa: E731
    J = {k: jnp.asarray(v) for k, v in x.items()}
    betas, lambdas, omegas, gammas, tau = (1.0, 0.5, 0.25, 2.0), (1.0, 0.3), (0.7, 0.2), (1.0, 0.1, 0.01), 0.5
    xlc, a = xlc_loss(J["t_q_en"], J["t_d"], J["s_q_ne"], J["s_d"], J["s_q_en"], betas, jnp.asarray(m))
    want_xlc = (betas[0] * sq(x["t_q_en"], x["s_q_ne"]) + betas[1] * sq(x["t_d"], x["s_d"])
                + betas[2] * sq(x["t_d"], x["s_q_ne"]) + betas[3] * sq(x["t_q_en"], x["s_q_en"]))
    np.testing.assert_allclose(float(xlc), want_xlc, rtol=1e-5)
    rank, _ = rank_loss(J["t_q_en"], J["t_d"], J["s_q_ne"], lambdas, tau, jnp.asarray(m))
    want_rank = (lambdas[0] * info_nce_np(x["t_q_en"], x["s_q_ne"], tau, m)[m].mean()
                 + lambdas[1] * info_nce_np(x["t_d"], x["s_q_ne"], tau, m)[m].mean())
    np.testing.assert_allclose(float(rank), want_rank, rtol=1e-5)
    ha, _ = ha_loss(J["t_pr"], J["s_pr"], J["s_q_ne"], omegas, jnp.asarray(m))
    want_ha = omegas[0] * sq(x["t_pr"], x["s_pr"]) + omegas[1] * sq(x["t_pr"], x["s_q_ne"])
    np.testing.assert_allclose(float(ha), want_ha, rtol=1e-5)
    teacher = dict(q_en=J["t_q_en"], d=J["t_d"], pr=J["t_pr"])
    student = dict(q_en=J["s_q_en"], q_ne=J["s_q_ne"], d=J["s_d"], pr=J["s_pr"])
    total, aux = mccrolin_loss(teacher, student, gammas, betas, lambdas, omegas, tau, jnp.asarray(m))
    np.testing.assert_allclose(float(total), gammas[0] * want_xlc + gammas[1] * want_rank
                               + gammas[2] * want_ha, rtol=1e-5)
    assert {"xlc_qen_qne", "xlc_d_d", "xlc_d_qne", "xlc_qen_qen", "rank_qen_qne", "rank_d_qne",
            "ha_pr_pr", "ha_pr_qne"} <= set(aux)


def test_in_batch_info_nce_hand_worked_and_gradients():
    # Orthonormal anchors = positives: logits diag 1/tau, off-diagonal 0.
    eye = jnp.eye(3)
    per = in_batch_info_nce(eye, eye, 0.5)
    np.testing.assert_allclose(np.asarray(per), -math.log(math.exp(2) / (math.exp(2) + 2)), rtol=1e-6)
    x = _emb(1)
    teacher = dict(q_en=jnp.asarray(x["t_q_en"]), d=jnp.asarray(x["t_d"]), pr=jnp.asarray(x["t_pr"]))

    def f(sq_en, sq_ne, sd, spr):
        return mccrolin_loss(teacher, dict(q_en=sq_en, q_ne=sq_ne, d=sd, pr=spr), tau=0.7)[0]
    check_grads(f, tuple(jnp.asarray(x[k]) for k in ("s_q_en", "s_q_ne", "s_d", "s_pr")), order=1,
                modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-2)
    # The teacher never receives a gradient.
    g = jax.grad(lambda t: mccrolin_loss(dict(q_en=t, d=t, pr=t), dict(
        q_en=teacher["q_en"], q_ne=teacher["d"], d=teacher["pr"], pr=teacher["d"]))[0])(teacher["q_en"])
    assert float(jnp.abs(g).max()) == 0.0


def test_in_batch_false_negatives_are_masked():
    rng = np.random.default_rng(5)
    a, p = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    groups = np.array([0, 0, 1, 2, 2, 2])
    m = np.array([True, True, True, True, True, False])
    got = in_batch_info_nce(jnp.asarray(a), jnp.asarray(p), 0.5, jnp.asarray(m), jnp.asarray(groups))
    np.testing.assert_allclose(np.asarray(got), info_nce_np(a, p, 0.5, m, groups), rtol=1e-5,
                               atol=1e-5)
    # each row alone in its group: the unmasked loss
    np.testing.assert_allclose(np.asarray(in_batch_info_nce(jnp.asarray(a), jnp.asarray(p), 0.5,
                                                            jnp.asarray(m), jnp.arange(6))),
                               info_nce_np(a, p, 0.5, m), rtol=1e-5, atol=1e-5)
    # a row whose only other rows share its group has loss 0 (nothing to contrast with)
    one = in_batch_info_nce(jnp.asarray(a[:2]), jnp.asarray(p[:2]), 0.5, None, jnp.zeros(2, int))
    np.testing.assert_allclose(np.asarray(one), 0.0, atol=1e-6)
