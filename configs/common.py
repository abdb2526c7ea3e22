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


# ---------------------------------------------------------------------- xMRC (mlqa.py, xquad.py)

MODELS = {"xlmr": "xlm-roberta-base", "mbert": "bert-base-multilingual-cased"}
SETTINGS = ("zero_shot", "translate_train")
# XTREME's SQuAD translate-train files (squad.translate.train.en-<lang>.json); no ro.
TRANSLATE_TRAIN = ("ar", "de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh")
PAPER_TRANSLATE_TRAIN = ("es", "de", "ar", "hi", "vi")      # what the paper trained on
PRESETS = ("paper", "short")
XMRC_ARGS = {"model": tuple(MODELS), "setting": SETTINGS, "root": None,
             "preset": PRESETS, "ablation": ("full", "no_hl", "no_aacl", "mml"),
             "selection": ("english_dev", "target_dev", "last"), "tt": ("paper", "all")}


def train_specs(setting: str, root: str, tt: str = "paper") -> list:
    """English SQuAD v1.1 train (zero-shot), plus XTREME's translations (translate-train: the
    paper's es de ar hi vi, or ``tt="all"``: every language XTREME ships)."""
    if setting == "zero_shot":
        return ([dict(path=os.path.join(root, "train-v1.1.json"), language="en", name="squad")]
                if root else [dict(tfds="squad/v1.1", split="train", language="en", name="squad")])
    if not root:
        raise ValueError("translate_train needs the XTREME translate-train files: pass "
                         "root=DIR (configs/mlqa.py:setting=translate_train,root=DIR) or set "
                         "XMRC_DATA")
    langs = PAPER_TRANSLATE_TRAIN if tt == "paper" else TRANSLATE_TRAIN
    specs = [dict(path=os.path.join(root, "train-v1.1.json"), language="en", name="squad")]
    specs += [dict(path=os.path.join(root, f"squad.translate.train.en-{lang}.json"), language=lang,
                   name="translate_train") for lang in langs]
    return specs


def apply_preset(c, preset: str):
    """``paper``: the xMRC paper's settings (AAAI 2022, Sec. 4.1; readings in docs/READINGS.md):
    XLM-R base or mBERT, AdamW lr 3e-5, weight decay 0.01, 10 % warm-up, batch 32, 8 epochs for
    each stage, a checkpoint scored every 1000 steps, max length 384 / stride 128 / question 64,
    |Z| = 20, |A| = 50, alpha 0.5, tau 0.1 (the printed "tau = 10" read as a scale), answers up
    to 30 tokens, HL as weighted MML with weights (1, 0.1, 0), the second stage from the
    pretrained encoder with Z mined by the baseline (Figure 3).
    ``short``: the same but 2 + 2 epochs and the second stage from the baseline."""
    c.train.update(learning_rate=3e-5, weight_decay=0.01, warmup_ratio=0.1, batch_size=32,
                   eval_every=1000, checkpoint_every=1000)
    c.data.update(max_seq_length=384, doc_stride=128, max_query_length=64)
    c.hl.update(num_candidates=20, num_contrast=50, alpha=0.5, tau=0.1)
    c.max_answer_length = 30
    if preset == "paper":
        c.train.epochs, c.hl.epochs = 8.0, 8.0
        c.hl.update(variant="weighted_mml", type_weights=(1.0, 0.1, 0.0), init="pretrained")
    else:
        c.train.epochs, c.hl.epochs = 2.0, 2.0
        c.hl.update(variant="weighted_learned", init="baseline")
    c.preset = preset
