"""Helpers every config file shares: the ``:arg`` parser, the repository's demo paths, the
demo model, and language lists taken from the dataset registry."""

import os

from xmrc_jax.data.sources import REGISTRY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo")
DEMO_LANGS = ("en", "es", "de", "ar", "hi", "vi", "zh")     # the languages data/demo ships


def languages(dataset: str) -> tuple:
    """The languages of a registered dataset (``data.sources.REGISTRY``)."""
    return tuple(REGISTRY[dataset]["languages"])


def parse_arg(arg, allowed: dict) -> dict:
    """``"a=1,b=x"`` -> dict, checking keys and values against ``allowed`` (key -> choices or
    ``None`` for free text). A bare word is taken as the value of the first key it fits."""
    out = {}
    for part in filter(None, (p.strip() for p in (arg or "").split(","))):
        if "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
        else:
            key = next((k for k, choices in allowed.items() if choices and part in choices), None)
            value = part
            if key is None:
                raise ValueError(f"config argument {part!r}: expected key=value with key in "
                                 f"{sorted(allowed)}")
        if key not in allowed:
            raise ValueError(f"config argument {key!r}: known keys are {sorted(allowed)}")
        if allowed[key] and value not in allowed[key]:
            raise ValueError(f"config argument {key}={value!r}: expected one of {allowed[key]}")
        out[key] = value
    return out


def data_root(a: dict) -> str:
    """The ``root=`` argument, else the ``XMRC_DATA`` environment variable ("" = TFDS)."""
    return a.get("root", os.environ.get("XMRC_DATA", ""))


def use_demo_model(c):
    """The shipped tokenizer and a 2-layer, 128-wide encoder from scratch (both demos)."""
    c.model.tokenizer = os.path.join(DEMO, "tokenizer")
    c.model.arch.update(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=512, max_position_embeddings=258)
