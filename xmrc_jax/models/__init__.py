"""Flax BERT-family encoders (XLM-R, mBERT, mE5), heads and Hugging Face import / export."""

from xmrc_jax.models.encoder import Encoder, EncoderConfig, EncoderOutput, position_ids_for
from xmrc_jax.models.heads import EncoderWithHead, mean_pool
from xmrc_jax.models.hf_io import (LoadReport, build_model, init_params, load_pretrained,
                                   load_tokenizer, read_config, read_state_dict,
                                   save_pretrained)

__all__ = ["Encoder", "EncoderConfig", "EncoderOutput", "EncoderWithHead", "LoadReport",
           "build_model", "init_params", "load_pretrained", "load_tokenizer", "mean_pool",
           "position_ids_for", "read_config", "read_state_dict", "save_pretrained"]
