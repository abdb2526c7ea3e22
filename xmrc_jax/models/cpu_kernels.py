"""CPU-tuned kernels of the encoder, chosen with ``kernels="cpu"`` (the default on CPU).

On XLA:CPU three things that are cheap on accelerators are not, and these replace them with the
same numbers (or, for dropout, the same distribution):

* ``Dropout`` (hash dropout): 16 hashed random bits per element instead of 32 threefry bits;
* ``deferred_softmax_attention``: heads-first attention with the softmax normalisation applied
  after the value product;
* ``recompute_in_backward``: per-layer rematerialisation that XLA:CPU cannot merge away
  (``jax.checkpoint``'s barriers are dropped there, so it saves no memory).

On GPU and TPU the encoder uses the field's idioms instead (``kernels="xla"``):
``nn.Dropout`` with the hardware PRNG, ``jax.nn.dot_product_attention`` and ``nn.remat`` with a
named policy. Tests check that both give the same outputs and gradients.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def _fmix32(h):
    """MurmurHash3's 32-bit finaliser: a bijection that spreads every input bit over the word."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def dropout_bits(key, num_words: int):
    """``num_words`` pseudo-random uint32 words: two words drawn from ``key`` with the JAX PRNG
    seed a counter-based hash (two rounds of MurmurHash3's finaliser over the word index).

    The hash is several times cheaper than drawing every word from threefry, and its output
    passes as uniform for the purpose of dropout masks (as Philox does for PyTorch); keys for
    different layers and steps come from the JAX PRNG as usual, so masks stay reproducible.
    """
    seed = jax.random.bits(key, (2,), jnp.uint32)
    i = jax.lax.iota(jnp.uint32, num_words)
    return _fmix32(_fmix32(i * jnp.uint32(0x9E3779B9) + seed[0]) ^ seed[1])


class Dropout(nn.Module):
    """Inverted dropout with 16 random bits per element from ``dropout_bits``. (Named like
    ``nn.Dropout``, so that its auto-named scope, and hence its PRNG stream, is the same.)

    On CPU, drawing 32 threefry bits per element (``nn.Dropout``) took about a third of an
    XLM-R training step. Here one hashed word gives two decisions. An element is kept when
    its 16 bits fall below ``round(keep * 65536)``: the keep probability is exact to within
    2**-17 (0.899994 for rate 0.1), and kept values are divided by that realised probability,
    so the expectation is unchanged.
    """

    rate: float

    @nn.compact
    def __call__(self, x, deterministic: bool):
        if deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        threshold = int(round((1.0 - self.rate) * 65536))
        bits = dropout_bits(self.make_rng("dropout"), (x.size + 1) // 2)
        halves = jnp.stack([bits & 0xFFFF, bits >> 16], axis=-1).reshape(-1)[:x.size]
        keep = (halves < threshold).reshape(x.shape)
        return jnp.where(keep, x / jnp.asarray(threshold / 65536, x.dtype), jnp.zeros_like(x))


def deferred_softmax_attention(q, k, v, bias, dropout, deterministic: bool, dtype):
    """``softmax(q k^T + bias) v`` for heads-first ``[b, h, s, d]`` inputs (``q`` already
    scaled), computed as ``(exp(s - max s) @ v) / sum exp(s - max s)``: the division then
    touches ``[.., q, head_dim]`` instead of ``[.., q, k]``. ``dropout`` drops entries of the
    unnormalised weights, which equals dropping the normalised ones (the row sum is a per-row
    constant). Returns ``[b, h, s, d]`` in float32."""
    scores = jnp.einsum("bhqd,bhkd->bhqk", q, k).astype(jnp.float32) + bias
    weights = jnp.exp(scores - jax.lax.stop_gradient(scores.max(-1, keepdims=True)))
    denom = weights.sum(-1, keepdims=True)                            # [b, h, q, 1]
    weights = dropout(weights.astype(dtype), deterministic=deterministic)
    return jnp.einsum("bhqk,bhkd->bhqd", weights, v).astype(jnp.float32) / denom


def recompute_in_backward(fn):
    """``fn(params, x, bias, rng)`` whose activations are recomputed in the backward pass.

    Unlike ``jax.checkpoint``, the recomputation's input is tied to the incoming cotangent
    (``x + 0 * ct[0]``). XLA:CPU drops ``jax.checkpoint``'s optimisation barriers and CSE then
    merges the recomputation back into the forward pass, so the activations stay alive and
    memory does not fall; with the tie the recomputation can neither be merged nor scheduled
    before the backward pass reaches the layer, on every backend. Gradients are identical.
    """
    @jax.custom_vjp
    def run(params, x, bias, rng):
        return fn(params, x, bias, rng)

    def fwd(params, x, bias, rng):
        return fn(params, x, bias, rng), (params, x, bias, rng)

    def bwd(res, ct):
        params, x, bias, rng = res
        tie = (ct.reshape(-1)[0] * 0).astype(x.dtype)
        _, vjp = jax.vjp(lambda p, h: fn(p, h, bias, rng), params, x + tie)
        d_params, d_x = vjp(ct)
        return d_params, d_x, None, None

    run.defvjp(fwd, bwd)
    return run
