"""Pure loss functions: L_mrc and hard learning, AA-CL, and the McCrolin losses."""

from xmrc_jax.losses.contrastive import aacl_loss, hard_negatives, info_nce_over_batch
from xmrc_jax.losses.distill import (ha_loss, in_batch_info_nce, mccrolin_loss, rank_loss,
                                     squared_distance, xlc_loss)
from xmrc_jax.losses.mrc import (DEFAULT_TYPE_LOGITS, HL_VARIANTS, gold_in_candidates,
                                 hard_learning_loss, masked_mean, mrc_loss)

__all__ = ["DEFAULT_TYPE_LOGITS", "HL_VARIANTS", "aacl_loss", "gold_in_candidates", "ha_loss",
           "hard_learning_loss", "hard_negatives", "in_batch_info_nce", "info_nce_over_batch",
           "masked_mean", "mccrolin_loss", "mrc_loss", "rank_loss", "squared_distance", "xlc_loss"]
