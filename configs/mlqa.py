"""The paper's MLQA setting (AAAI 2022 "From Good to Best"): XLM-R base (or mBERT), trained on
English SQuAD v1.1 (zero-shot) or on SQuAD translated into the MLQA languages (translate-train),
evaluated on MLQA (7 languages, same-language context and question) with the official MLQA
EM / F1.

    python -m xmrc_jax.main --config=configs/mlqa.py --workdir=DIR
    python -m xmrc_jax.main --config=configs/mlqa.py:model=mbert,setting=translate_train,root=DATA \\
        --config.model.name=/path/to/bert-base-multilingual-cased --workdir=DIR

Arguments after ``:`` (comma-separated ``key=value``):

* ``model``: ``xlmr`` (``xlm-roberta-base``, default) or ``mbert``
  (``bert-base-multilingual-cased``). A hub id is downloaded where the hub is reachable;
  offline, download it elsewhere and pass the folder with ``--config.model.name=DIR``.
* ``setting``: ``zero_shot`` (default) or ``translate_train``.
* ``root``: folder holding the data files under their official names (default: the
  ``XMRC_DATA`` environment variable). Without a root the TFDS builders are used (prepared data
  in ``~/tensorflow_datasets``). Expected files:
  ``train-v1.1.json`` (SQuAD), ``squad.translate.train.en-<lang>.json`` (translate-train, as the
  XTREME download names them), ``dev-context-<lang>-question-<lang>.json`` /
  ``test-context-...`` (MLQA).
* ``split``: MLQA split to evaluate, ``test`` (default, the paper's numbers) or ``dev``.
"""

import os

from configs.common import data_root, languages, parse_arg
from configs.default import XMRC_STAGES, get_base_config

MODELS = {"xlmr": "xlm-roberta-base", "mbert": "bert-base-multilingual-cased"}
SETTINGS = ("zero_shot", "translate_train")
LANGS = languages("mlqa")


def train_specs(setting: str, root: str, languages) -> list:
    if setting == "zero_shot":
        return ([dict(path=os.path.join(root, "train-v1.1.json"), language="en", name="squad")]
                if root else [dict(tfds="squad/v1.1", split="train", language="en", name="squad")])
    if not root:
        raise ValueError("translate_train needs the XTREME translate-train files: pass "
                         "root=DIR (configs/mlqa.py:setting=translate_train,root=DIR) or set "
                         "XMRC_DATA")
    specs = [dict(path=os.path.join(root, "train-v1.1.json"), language="en", name="squad")]
    specs += [dict(path=os.path.join(root, f"squad.translate.train.en-{lang}.json"), language=lang,
                   name="translate_train") for lang in languages if lang != "en"]
    return specs


def get_config(arg=None):
    a = parse_arg(arg, {"model": tuple(MODELS), "setting": SETTINGS, "root": None,
                        "split": ("dev", "test")})
    root = data_root(a)
    c = get_base_config()
    c.stages = XMRC_STAGES
    c.model.name = MODELS[a.get("model", "xlmr")]
    c.data.train = train_specs(a.get("setting", "zero_shot"), root, LANGS)
    spec = dict(dataset="mlqa", languages=list(LANGS), split=a.get("split", "test"))
    if root:
        spec["root"] = root
    c.data.eval = [spec]
    c.data.dev = [{**spec, "split": "dev"}]     # model selection by average MLQA dev F1
    c.train.eval_every = 1000
    return c
