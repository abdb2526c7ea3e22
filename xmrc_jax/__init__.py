"""xmrc_jax: cross-lingual reading comprehension and retrieval QA in JAX / Flax."""

__version__ = "0.1.0"
