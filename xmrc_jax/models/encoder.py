"""The BERT-family encoder (XLM-R / RoBERTa, mBERT / BERT, mE5) as one Flax Linen module.

The two architectures differ in three places only, all driven by ``EncoderConfig``:

* position ids: RoBERTa-style models (``model_type`` xlm-roberta / roberta / camembert) number
  the non-padding tokens from ``pad_token_id + 1`` and give padding ``pad_token_id``, exactly as
  Hugging Face's ``create_position_ids_from_input_ids`` does; BERT uses ``0 .. seq-1``;
* token types: XLM-R has ``type_vocab_size == 1`` (every token type 0), BERT has 2;
* layer-norm epsilon and vocabulary, which are plain config values.

Every parameter carries logical axis names (``vocab``, ``embed``, ``heads``, ``kv``, ``mlp``)
and activations are constrained to (``batch``, ``length``, ``embed``), so a mesh plus logical
axis rules (``xmrc_jax.train.sharding``) shards the model without touching this file.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

ROBERTA_TYPES = ("xlm-roberta", "roberta", "camembert")
BERT_TYPES = ("bert",)
_ACTIVATIONS = {
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "gelu_new": lambda x: nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
    "relu": nn.relu,
}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a BERT-family encoder; field names follow Hugging Face's ``config.json``."""

    model_type: str = "xlm-roberta"
    vocab_size: int = 250002
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1

    def __post_init__(self):
        if self.model_type not in ROBERTA_TYPES + BERT_TYPES:
            raise ValueError(
                f"model_type {self.model_type!r} is not a BERT-family architecture this encoder "
                f"implements; expected one of {ROBERTA_TYPES + BERT_TYPES}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported; "
                             f"expected one of {sorted(_ACTIVATIONS)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")

    @property
    def is_roberta(self) -> bool:
        return self.model_type in ROBERTA_TYPES

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_tokens(self) -> int:
        """Longest input the position table allows (RoBERTa reserves ``pad_token_id + 1`` rows)."""
        if self.is_roberta:
            return self.max_position_embeddings - self.pad_token_id - 1
        return self.max_position_embeddings

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        """Reads the architecture fields of a Hugging Face ``config.json`` dict; others are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "model_type" not in kwargs:
            raise ValueError("config has no 'model_type' (expected 'xlm-roberta', 'roberta' or 'bert')")
        if kwargs.get("pad_token_id") is None:
            kwargs["pad_token_id"] = 1 if kwargs["model_type"] in ROBERTA_TYPES else 0
        return cls(**kwargs)

    @classmethod
    def from_json_file(cls, path: str) -> "EncoderConfig":
        with open(path, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from e

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@flax.struct.dataclass
class EncoderOutput:
    """What the models return; fields a head does not produce are ``None``."""

    last_hidden_state: jax.Array                    # [batch, seq, hidden]
    hidden_states: Optional[tuple] = None           # (embeddings, layer 1, ..., layer L) on request
    start_logits: Optional[jax.Array] = None        # [batch, seq] (span head)
    end_logits: Optional[jax.Array] = None          # [batch, seq] (span head)
    embeddings: Optional[jax.Array] = None          # [batch, hidden] (embed head)
    pooler_output: Optional[jax.Array] = None       # [batch, hidden] (checkpoints with a pooler)


def position_ids_for(config: EncoderConfig, input_ids: jax.Array) -> jax.Array:
    """Position ids as Hugging Face computes them. ``input_ids: [batch, seq]``."""
    if config.is_roberta:
        not_pad = (input_ids != config.pad_token_id).astype(jnp.int32)
        return jnp.cumsum(not_pad, axis=1) * not_pad + config.pad_token_id
    return jnp.broadcast_to(jnp.arange(input_ids.shape[1], dtype=jnp.int32), input_ids.shape)


def _init(stddev: float, names: tuple):
    return nn.with_logical_partitioning(nn.initializers.normal(stddev), names)


def _zeros(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def _ones(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


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
    """Inverted dropout with 16 random bits per element from ``dropout_bits``.

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


class LayerNorm(nn.Module):
    """LayerNorm with logically named ``scale`` / ``bias``; statistics in float32."""

    eps: float
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        return nn.LayerNorm(epsilon=self.eps, dtype=self.dtype, param_dtype=self.param_dtype,
                            scale_init=_ones(("embed",)), bias_init=_zeros(("embed",)),
                            name="norm")(x)


class Embeddings(nn.Module):
    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02

    @nn.compact
    def __call__(self, input_ids, token_type_ids, deterministic: bool):
        cfg = self.config
        embed = lambda n, name, axes: nn.Embed(  # noqa: E731
            n, cfg.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
            embedding_init=_init(self.initializer_range, axes), name=name)
        x = embed(cfg.vocab_size, "word_embeddings", ("vocab", "embed"))(input_ids)
        x += embed(cfg.max_position_embeddings, "position_embeddings", (None, "embed"))(
            position_ids_for(cfg, input_ids))
        x += embed(cfg.type_vocab_size, "token_type_embeddings", (None, "embed"))(token_type_ids)
        x = LayerNorm(cfg.layer_norm_eps, self.dtype, self.param_dtype, name="LayerNorm")(x)
        x = Dropout(cfg.hidden_dropout_prob)(x, deterministic=deterministic)
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class HeadsProjection(nn.Module):
    """``[batch, seq, embed] -> [batch, heads, seq, head_dim]`` with a ``[embed, heads, head_dim]``
    kernel: the parameters of ``nn.DenseGeneral((heads, head_dim))``, but heads-first output,
    so the attention products need no transposes (about a fifth of a CPU forward pass)."""

    heads: int
    head_dim: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", _init(self.initializer_range, ("embed", "heads", "kv")),
                            (x.shape[-1], self.heads, self.head_dim), self.param_dtype)
        bias = self.param("bias", _zeros(("heads", "kv")), (self.heads, self.head_dim),
                          self.param_dtype)
        y = jnp.einsum("bse,ehd->bhsd", x.astype(self.dtype), kernel.astype(self.dtype))
        return y + bias.astype(self.dtype)[None, :, None, :]


class HeadsOutput(nn.Module):
    """``[batch, heads, seq, head_dim] -> [batch, seq, embed]`` with a ``[heads, head_dim, embed]``
    kernel (``nn.DenseGeneral(embed, axis=(-2, -1))``'s parameters)."""

    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02

    @nn.compact
    def __call__(self, ctx):
        kernel = self.param("kernel", _init(self.initializer_range, ("heads", "kv", "embed")),
                            (ctx.shape[1], ctx.shape[3], self.features), self.param_dtype)
        bias = self.param("bias", _zeros(("embed",)), (self.features,), self.param_dtype)
        y = jnp.einsum("bhsd,hde->bse", ctx.astype(self.dtype), kernel.astype(self.dtype))
        return y + bias.astype(self.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention, heads-first, with the softmax normalisation deferred.

    ``softmax(s) @ v`` is computed as ``(exp(s - max s) @ v) / sum exp(s - max s)``: the
    division then touches ``[.., q, head_dim]`` instead of ``[.., q, k]``. Attention dropout
    drops entries of the unnormalised weights, which equals dropping the normalised ones (the
    row sum is a per-row constant). Same numbers as Hugging Face's attention (parity tests).
    """

    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02

    @nn.compact
    def __call__(self, x, bias, deterministic: bool):
        """``x: [batch, seq, hidden]``; ``bias: [batch, 1, 1, seq]`` additive mask."""
        cfg = self.config
        proj = lambda name: HeadsProjection(  # noqa: E731
            cfg.num_attention_heads, cfg.head_dim, self.dtype, self.param_dtype,
            self.initializer_range, name=name)
        q, k, v = proj("query")(x), proj("key")(x), proj("value")(x)      # [b, h, s, d]
        q = q / jnp.sqrt(cfg.head_dim).astype(q.dtype)
        scores = jnp.einsum("bhqd,bhkd->bhqk", q, k).astype(jnp.float32) + bias
        weights = jnp.exp(scores - jax.lax.stop_gradient(scores.max(-1, keepdims=True)))
        denom = weights.sum(-1, keepdims=True)                            # [b, h, q, 1]
        weights = Dropout(cfg.attention_probs_dropout_prob)(weights.astype(self.dtype),
                                                            deterministic=deterministic)
        ctx = jnp.einsum("bhqk,bhkd->bhqd", weights, v).astype(jnp.float32) / denom
        ctx = nn.with_logical_constraint(ctx.astype(self.dtype), ("batch", "heads", "length", "kv"))
        return HeadsOutput(cfg.hidden_size, self.dtype, self.param_dtype, self.initializer_range,
                           name="output")(ctx)


class Layer(nn.Module):
    """One post-LN transformer block, laid out like Hugging Face's ``BertLayer``."""

    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02

    @nn.compact
    def __call__(self, x, bias, deterministic: bool):
        cfg = self.config
        drop = Dropout(cfg.hidden_dropout_prob)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        attn = SelfAttention(cfg, self.dtype, self.param_dtype, self.initializer_range,
                             name="attention")(x, bias, deterministic)
        x = LayerNorm(cfg.layer_norm_eps, name="attention_norm", **kw)(
            x + drop(attn, deterministic=deterministic))
        h = nn.Dense(cfg.intermediate_size, kernel_init=_init(self.initializer_range, ("embed", "mlp")),
                     bias_init=_zeros(("mlp",)), name="intermediate", **kw)(x)
        h = _ACTIVATIONS[cfg.hidden_act](h)
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        h = nn.Dense(cfg.hidden_size, kernel_init=_init(self.initializer_range, ("mlp", "embed")),
                     bias_init=_zeros(("embed",)), name="output", **kw)(h)
        x = LayerNorm(cfg.layer_norm_eps, name="output_norm", **kw)(
            x + drop(h, deterministic=deterministic))
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


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


class Encoder(nn.Module):
    """Embeddings plus ``num_hidden_layers`` blocks (and a pooler where the checkpoint has one).

    ``remat=True`` recomputes each block's activations in the backward pass
    (``recompute_in_backward`` per layer), trading compute for activation memory.
    """

    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    remat: bool = False
    add_pooler: bool = False
    initializer_range: float = 0.02

    @nn.compact
    def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic: bool = True,
                 output_hidden_states: bool = False):
        cfg = self.config
        if input_ids.shape[1] > cfg.max_tokens:
            raise ValueError(f"input length {input_ids.shape[1]} exceeds the model's maximum of "
                             f"{cfg.max_tokens} tokens (max_position_embeddings "
                             f"{cfg.max_position_embeddings})")
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        x = Embeddings(cfg, self.dtype, self.param_dtype, self.initializer_range,
                       name="embeddings")(input_ids, token_type_ids, deterministic)
        mask = attention_mask.astype(bool)[:, None, None, :]
        bias = jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)
        hidden = [x]
        for i in range(cfg.num_hidden_layers):
            layer = Layer(cfg, self.dtype, self.param_dtype, self.initializer_range,
                          name=f"layer_{i}")
            if self.remat and not self.is_initializing():
                pure = Layer(cfg, self.dtype, self.param_dtype, self.initializer_range)

                def fn(params, h, b, rng, pure=pure):
                    return pure.apply({"params": params}, h, b, deterministic,
                                      rngs=None if rng is None else {"dropout": rng})
                rng = None if deterministic else self.make_rng("dropout")
                x = recompute_in_backward(fn)(self.variables["params"][f"layer_{i}"], x, bias, rng)
            else:
                x = layer(x, bias, deterministic)
            hidden.append(x)
        pooled = None
        if self.add_pooler:
            pooled = jnp.tanh(nn.Dense(
                cfg.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
                kernel_init=_init(self.initializer_range, ("embed", "mlp")),
                bias_init=_zeros(("mlp",)), name="pooler")(x[:, 0]))
        return EncoderOutput(last_hidden_state=x,
                             hidden_states=tuple(hidden) if output_hidden_states else None,
                             pooler_output=pooled)
