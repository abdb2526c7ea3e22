"""Pure, jit-compilable span operations (top-k spans, span log-probabilities, pooling)."""

from xmrc_jax.ops.spans import (GOLD, NO_BOUNDARY, ONE_BOUNDARY, cosine, log_softmax_masked,
                                mean_pool, pool_spans, span_log_prob, span_types, top_k_spans)

__all__ = ["GOLD", "NO_BOUNDARY", "ONE_BOUNDARY", "cosine", "log_softmax_masked", "mean_pool",
           "pool_spans", "span_log_prob", "span_types", "top_k_spans"]
