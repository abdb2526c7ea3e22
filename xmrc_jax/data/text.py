"""Whole texts to fixed-length token arrays (sentence-encoder inputs: queries, passages)."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("xmrc_jax")


def encode_texts(tokenizer, texts, max_length: int, prefix: str = "", what: str = "texts"):
    """Token ids ``[N, max_length]`` (int32) and attention mask, padded with the tokenizer's pad
    id. Longer texts keep their first ``max_length - 1`` tokens and the closing special token;
    how many were cut is logged."""
    # verbose=False: the texts are cut below and counted, so the tokenizer need not warn
    enc = tokenizer([prefix + t for t in texts], add_special_tokens=True,
                    verbose=False)["input_ids"]
    ids = np.full((len(enc), max_length), tokenizer.pad_token_id, np.int32)
    mask = np.zeros((len(enc), max_length), np.int32)
    cut = 0
    for i, row in enumerate(enc):
        if len(row) > max_length:
            row = row[:max_length - 1] + row[-1:]
            cut += 1
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    if cut:
        log.info("%d of %d %s are longer than %d tokens and were truncated", cut, len(enc), what,
                 max_length)
    return ids, mask


def encode_columns(tokenizer, columns: dict, settings: dict, what: str = "texts") -> dict:
    """``{field: [text]}`` -> ``{field_ids, field_mask}`` arrays; ``settings[field] =
    (max_length, prefix)``. Each distinct text of a column is tokenized once."""
    arrays = {}
    for field, (max_length, prefix) in settings.items():
        unique = list(dict.fromkeys(columns[field]))
        where = {t: i for i, t in enumerate(unique)}
        ids, mask = encode_texts(tokenizer, unique, max_length, prefix, f"{what} {field} texts")
        rows = np.array([where[t] for t in columns[field]])
        arrays[f"{field}_ids"], arrays[f"{field}_mask"] = ids[rows], mask[rows]
    return arrays
