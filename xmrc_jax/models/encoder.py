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

from xmrc_jax.models.cpu_kernels import Dropout as HashDropout
from xmrc_jax.models.cpu_kernels import deferred_softmax_attention, recompute_in_backward

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


KERNELS = ("cpu", "xla")


def resolve_kernels(kernels: str = "auto", backend: Optional[str] = None) -> str:
    """``auto`` -> ``cpu`` on the CPU backend (``models.cpu_kernels``), ``xla`` elsewhere."""
    if kernels == "auto":
        return "cpu" if (backend or jax.default_backend()) == "cpu" else "xla"
    if kernels not in KERNELS:
        raise ValueError(f"kernels {kernels!r}: expected 'auto' or one of {KERNELS}")
    return kernels


def _dropout(rate: float, kernels: str):
    return HashDropout(rate) if kernels == "cpu" else nn.Dropout(rate)


class Embeddings(nn.Module):
    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02
    kernels: str = "cpu"

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
        x = _dropout(cfg.hidden_dropout_prob, self.kernels)(x, deterministic=deterministic)
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class HeadsProjection(nn.Module):
    """``[batch, seq, embed] -> [batch, heads, seq, head_dim]`` (``heads_first``, the CPU
    kernels' layout) or ``[batch, seq, heads, head_dim]`` (what ``jax.nn.dot_product_attention``
    takes), with a ``[embed, heads, head_dim]`` kernel: the parameters of
    ``nn.DenseGeneral((heads, head_dim))``."""

    heads: int
    head_dim: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02
    heads_first: bool = True

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", _init(self.initializer_range, ("embed", "heads", "kv")),
                            (x.shape[-1], self.heads, self.head_dim), self.param_dtype)
        bias = self.param("bias", _zeros(("heads", "kv")), (self.heads, self.head_dim),
                          self.param_dtype)
        if self.heads_first:
            y = jnp.einsum("bse,ehd->bhsd", x.astype(self.dtype), kernel.astype(self.dtype))
            return y + bias.astype(self.dtype)[None, :, None, :]
        y = jnp.einsum("bse,ehd->bshd", x.astype(self.dtype), kernel.astype(self.dtype))
        return y + bias.astype(self.dtype)


class HeadsOutput(nn.Module):
    """``[batch, heads, seq, head_dim]`` (or ``[batch, seq, heads, head_dim]`` when not
    ``heads_first``) ``-> [batch, seq, embed]`` with a ``[heads, head_dim, embed]`` kernel
    (``nn.DenseGeneral(embed, axis=(-2, -1))``'s parameters)."""

    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02
    heads_first: bool = True

    @nn.compact
    def __call__(self, ctx):
        heads, head_dim = (ctx.shape[1], ctx.shape[3]) if self.heads_first else ctx.shape[2:]
        kernel = self.param("kernel", _init(self.initializer_range, ("heads", "kv", "embed")),
                            (heads, head_dim, self.features), self.param_dtype)
        bias = self.param("bias", _zeros(("embed",)), (self.features,), self.param_dtype)
        pattern = "bhsd,hde->bse" if self.heads_first else "bshd,hde->bse"
        y = jnp.einsum(pattern, ctx.astype(self.dtype), kernel.astype(self.dtype))
        return y + bias.astype(self.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention; same parameters and numbers as Hugging Face's (parity tests).

    ``kernels="cpu"``: heads-first with the softmax normalisation deferred
    (``cpu_kernels.deferred_softmax_attention``). ``kernels="xla"``: ``jax.nn.dot_product_attention``
    (cuDNN flash attention where ``attention_impl="cudnn"``) when no attention dropout applies,
    and Flax's ``nn.dot_product_attention`` with its dropout while training.
    """

    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02
    kernels: str = "cpu"
    attention_impl: Optional[str] = None

    @nn.compact
    def __call__(self, x, mask, deterministic: bool):
        """``x: [batch, seq, hidden]``; ``mask``: the additive ``[batch, 1, 1, seq]`` bias
        (CPU kernels) or the boolean ``[batch, 1, 1, seq]`` mask (XLA)."""
        cfg = self.config
        first = self.kernels == "cpu"
        proj = lambda name: HeadsProjection(  # noqa: E731
            cfg.num_attention_heads, cfg.head_dim, self.dtype, self.param_dtype,
            self.initializer_range, heads_first=first, name=name)
        q, k, v = proj("query")(x), proj("key")(x), proj("value")(x)
        rate = cfg.attention_probs_dropout_prob
        if first:
            q = q / jnp.sqrt(cfg.head_dim).astype(q.dtype)
            ctx = deferred_softmax_attention(q, k, v, mask, HashDropout(rate), deterministic,
                                             self.dtype)
            ctx = nn.with_logical_constraint(ctx.astype(self.dtype),
                                             ("batch", "heads", "length", "kv"))
        elif deterministic or rate == 0.0:
            ctx = jax.nn.dot_product_attention(q, k, v, mask=mask,
                                               implementation=self.attention_impl)
        else:
            ctx = nn.dot_product_attention(q, k, v, mask=mask, dropout_rate=rate,
                                           dropout_rng=self.make_rng("dropout"),
                                           broadcast_dropout=False, deterministic=False,
                                           dtype=self.dtype)
        if not first:
            ctx = nn.with_logical_constraint(ctx.astype(self.dtype),
                                             ("batch", "length", "heads", "kv"))
        return HeadsOutput(cfg.hidden_size, self.dtype, self.param_dtype, self.initializer_range,
                           heads_first=first, name="output")(ctx)


class Layer(nn.Module):
    """One post-LN transformer block, laid out like Hugging Face's ``BertLayer``."""

    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    initializer_range: float = 0.02
    kernels: str = "cpu"
    attention_impl: Optional[str] = None

    @nn.compact
    def __call__(self, x, mask, deterministic: bool):
        cfg = self.config
        drop = _dropout(cfg.hidden_dropout_prob, self.kernels)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        attn = SelfAttention(cfg, self.dtype, self.param_dtype, self.initializer_range,
                             self.kernels, self.attention_impl, name="attention")(
                                 x, mask, deterministic)
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


class Encoder(nn.Module):
    """Embeddings plus ``num_hidden_layers`` blocks (and a pooler where the checkpoint has one).

    ``remat=True`` recomputes each block's activations in the backward pass, trading compute
    for activation memory: ``nn.remat`` with the named ``jax.checkpoint_policies`` policy
    ``remat_policy`` (kernels ``xla``), or ``cpu_kernels.recompute_in_backward`` (kernels
    ``cpu``, where XLA drops ``jax.checkpoint``'s barriers).
    """

    config: EncoderConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    remat: bool = False
    add_pooler: bool = False
    initializer_range: float = 0.02
    kernels: str = "cpu"
    remat_policy: str = "nothing_saveable"
    attention_impl: Optional[str] = None

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
        x = Embeddings(cfg, self.dtype, self.param_dtype, self.initializer_range, self.kernels,
                       name="embeddings")(input_ids, token_type_ids, deterministic)
        mask = attention_mask.astype(bool)[:, None, None, :]
        if self.kernels == "cpu":
            mask = jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)
        layer_kw = dict(dtype=self.dtype, param_dtype=self.param_dtype,
                        initializer_range=self.initializer_range, kernels=self.kernels,
                        attention_impl=self.attention_impl)
        block = Layer
        if self.remat and self.kernels != "cpu":
            block = nn.remat(Layer, policy=getattr(jax.checkpoint_policies, self.remat_policy),
                             static_argnums=(3,))
        hidden = [x]
        for i in range(cfg.num_hidden_layers):
            if self.remat and self.kernels == "cpu" and not self.is_initializing():
                pure = Layer(cfg, **layer_kw)

                def fn(params, h, b, rng, pure=pure):
                    return pure.apply({"params": params}, h, b, deterministic,
                                      rngs=None if rng is None else {"dropout": rng})
                rng = None if deterministic else self.make_rng("dropout")
                x = recompute_in_backward(fn)(self.variables["params"][f"layer_{i}"], x, mask, rng)
            else:
                x = block(cfg, **layer_kw, name=f"layer_{i}")(x, mask, deterministic)
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
