"""The two kernel sets of the encoder: CPU-tuned (hash dropout, deferred softmax, cotangent-tied
remat) and the XLA idioms used on GPU / TPU (nn.Dropout, jax.nn.dot_product_attention,
nn.remat with a named policy). Same parameters, same outputs, same gradients without dropout."""

import jax
import numpy as np
import pytest

from xmrc_jax.models import EncoderConfig, build_model, init_params
from xmrc_jax.models.encoder import resolve_kernels
from xmrc_jax.tasks import span_qa

CFG = EncoderConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=40, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)


def _batch(n=4, L=24):
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50, size=(n, L)).astype(np.int32)
    mask = np.ones((n, L), np.int32)
    mask[1, 15:] = 0
    ids[1, 15:] = 1
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                start_positions=np.array([3, 4, 5, 6], np.int32),
                end_positions=np.array([4, 4, 7, 9], np.int32))


def _grads(module, params, batch, rng=jax.random.PRNGKey(0)):
    obj = span_qa.mrc_objective(module)
    return jax.jit(jax.grad(lambda p: obj({"model": p}, batch, rng)[0]))(params)


def test_auto_picks_cpu_kernels_on_cpu_only():
    assert resolve_kernels("auto", "cpu") == "cpu"
    assert resolve_kernels("auto", "gpu") == "xla" == resolve_kernels("auto", "tpu")
    assert build_model(CFG).kernels == "cpu"          # this machine
    with pytest.raises(ValueError, match="kernels"):
        resolve_kernels("fast")


def test_same_parameters_outputs_and_gradients():
    batch = _batch()
    cpu, xla = build_model(CFG, kernels="cpu"), build_model(CFG, kernels="xla")
    params = init_params(cpu, jax.random.PRNGKey(0))
    p2 = init_params(xla, jax.random.PRNGKey(0))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(p2)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(p2)):
        assert a.shape == b.shape
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    a = cpu.apply({"params": params}, *args)
    b = xla.apply({"params": params}, *args)
    np.testing.assert_allclose(np.asarray(a.start_logits), np.asarray(b.start_logits), atol=2e-5)
    np.testing.assert_allclose(np.asarray(a.last_hidden_state), np.asarray(b.last_hidden_state),
                               atol=2e-5)
    ref = _grads(cpu, params, batch)
    for module in (xla, build_model(CFG, kernels="xla", remat=True),
                   build_model(CFG, kernels="xla", remat=True, remat_policy="dots_saveable"),
                   build_model(CFG, kernels="cpu", remat=True)):
        got = _grads(module, params, batch)
        for x, y in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(got)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=2e-5, rtol=1e-4)


def test_xla_kernels_apply_dropout_while_training():
    cfg = EncoderConfig(**{**CFG.to_dict(), "hidden_dropout_prob": 0.1,
                           "attention_probs_dropout_prob": 0.1})
    batch = _batch()
    module = build_model(cfg, kernels="xla", remat=True)
    params = init_params(module, jax.random.PRNGKey(0))
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    det = module.apply({"params": params}, *args)
    train = [module.apply({"params": params}, *args, deterministic=False,
                          rngs={"dropout": jax.random.PRNGKey(s)}) for s in (1, 1, 2)]
    assert not np.allclose(det.start_logits, train[0].start_logits)
    np.testing.assert_array_equal(train[0].start_logits, train[1].start_logits)  # reproducible
    assert not np.allclose(train[0].start_logits, train[2].start_logits)
    g = _grads(module, params, batch, jax.random.PRNGKey(3))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(g))
