"""The paper's XQuAD setting: as ``configs/mlqa.py`` (same arguments but ``split``), evaluated on
the XQuAD languages with the official SQuAD v1.1 EM / F1.

    python -m xmrc_jax.main --config=configs/xquad.py:model=xlmr,setting=zero_shot --workdir=DIR

Expected files under ``root``: ``train-v1.1.json``, ``dev-v1.1.json``,
``squad.translate.train.en-<lang>.json`` (translate-train) and ``xquad.<lang>.json``. ``ro`` is
XQuAD's 12th language, added after the paper; it is evaluated too.

XQuAD has no dev split and is built from SQuAD v1.1 dev (all 1,190 questions and 240 passages),
so selection (``english_dev``) uses SQuAD v1.1 dev with every XQuAD question and passage
removed before any scoring (the removal is counted and written to ``<stage>/selection.json``).
"""

import os

from configs.common import XMRC_ARGS, data_root, languages, parse_arg
from configs.mlqa import build

LANGS = languages("xquad")


def get_config(arg=None):
    a = parse_arg(arg, XMRC_ARGS)
    root = data_root(a)

    def dev(spec, english_only):
        return [dict(path=os.path.join(root, "dev-v1.1.json"), language="en", name="squad")
                if root else dict(tfds="squad/v1.1", split="validation", language="en",
                                  name="squad")]
    return build(a, "xquad", dev, no_target_dev=True)
