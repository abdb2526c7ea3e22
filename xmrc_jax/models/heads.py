"""Heads over the encoder: span start/end logits and sentence embeddings (mean or CLS pooling).

``EncoderWithHead`` is the module users apply::

    out = module.apply({"params": params}, input_ids, attention_mask, token_type_ids=None,
                       deterministic=True)
    out.start_logits, out.end_logits   # [batch, seq], head="span"
    out.embeddings                     # [batch, hidden], head="embed"
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from xmrc_jax.models.encoder import Encoder, EncoderConfig
from xmrc_jax.ops.spans import mean_pool

HEADS = ("span", "embed", None)
POOLINGS = ("mean", "cls")


class EncoderWithHead(nn.Module):
    """The encoder plus an optional head.

    ``head="span"`` adds ``qa_outputs`` (Dense to 2, Hugging Face's layout); ``head="embed"``
    pools the last hidden states (``pooling`` = ``mean`` over the attention mask, or ``cls``);
    ``head=None`` returns the encoder's hidden states only.
    """

    config: EncoderConfig
    head: Optional[str] = "span"
    pooling: str = "mean"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    remat: bool = False
    add_pooler: bool = False
    initializer_range: float = 0.02
    kernels: str = "cpu"                    # "cpu" (models.cpu_kernels) | "xla"
    remat_policy: str = "nothing_saveable"
    attention_impl: Optional[str] = None    # jax.nn.dot_product_attention: None (XLA) | "cudnn"

    def setup(self):
        if self.head not in HEADS:
            raise ValueError(f"head {self.head!r} is not one of {HEADS}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} is not one of {POOLINGS}")
        self.encoder = Encoder(self.config, self.dtype, self.param_dtype, self.remat,
                               self.add_pooler, self.initializer_range, self.kernels,
                               self.remat_policy, self.attention_impl)
        if self.head == "span":
            self.qa_outputs = nn.Dense(
                2, dtype=self.dtype, param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(
                    nn.initializers.normal(self.initializer_range), ("embed", None)),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (None,)))

    def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic: bool = True,
                 output_hidden_states: bool = False):
        out = self.encoder(input_ids, attention_mask, token_type_ids, deterministic,
                           output_hidden_states)
        h = out.last_hidden_state
        if self.head == "span":
            logits = self.qa_outputs(h).astype(jnp.float32)
            return out.replace(start_logits=logits[..., 0], end_logits=logits[..., 1])
        if self.head == "embed":
            pooled = (h[:, 0] if self.pooling == "cls" else mean_pool(h, attention_mask))
            return out.replace(embeddings=pooled.astype(jnp.float32))
        return out
