"""The paper's XQuAD setting: as ``configs/mlqa.py`` (same arguments: ``model``, ``setting``,
``root``), evaluated on the 11 XQuAD languages with the official SQuAD v1.1 EM / F1.

    python -m xmrc_jax.main --config=configs/xquad.py:model=xlmr,setting=zero_shot --workdir=DIR

Expected files under ``root``: ``train-v1.1.json``, ``squad.translate.train.en-<lang>.json``
(translate-train) and ``xquad.<lang>.json``. ``ro`` is XQuAD's 12th language, added after the
paper; it is evaluated too.
"""

import os

from configs.common import data_root, languages, parse_arg
from configs.default import XMRC_STAGES, get_base_config
from configs.mlqa import MODELS, SETTINGS, train_specs

LANGS = languages("xquad")


def get_config(arg=None):
    a = parse_arg(arg, {"model": tuple(MODELS), "setting": SETTINGS, "root": None})
    root = data_root(a)
    c = get_base_config()
    c.stages = XMRC_STAGES
    c.model.name = MODELS[a.get("model", "xlmr")]
    c.data.train = train_specs(a.get("setting", "zero_shot"), root, LANGS)
    spec = dict(dataset="xquad", languages=list(LANGS))
    if root:
        spec["root"] = root
    c.data.eval = [spec]
    # XQuAD has no dev split: select on SQuAD v1.1 dev (English), as zero-shot work does.
    c.data.dev = [dict(path=os.path.join(root, "dev-v1.1.json"), language="en", name="squad")
                  if root else dict(tfds="squad/v1.1", split="validation", language="en", name="squad")]
    c.train.eval_every = 1000
    return c
