"""The embedded demo: a small XLM-R-shaped model trained from scratch on the shipped data.

    python -m xmrc_jax.main --config=configs/demo.py --workdir=/tmp/xmrc_demo

Runs all four stages (baseline -> mine -> hl_aacl -> evaluate) on data/demo (1,203 English
SQuAD questions for training; 150 MLQA and 153 XQuAD questions in en es de ar hi vi zh) with the
shipped tokenizer, on CPU in a few minutes. The numbers it prints show that the pipeline works
end to end; a model this small trained on this little data is not a research result.
"""

import os

from configs.default import get_base_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo")
LANGS = ("en", "es", "de", "ar", "hi", "vi", "zh")


def use_demo_model(c):
    """The shipped tokenizer and a 2-layer, 128-wide encoder from scratch (both demos)."""
    c.model.tokenizer = os.path.join(DEMO, "tokenizer")
    c.model.arch.update(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=512, max_position_embeddings=258)


def get_config(arg=None):
    c = get_base_config()
    use_demo_model(c)
    c.data.train = [dict(path=os.path.join(DEMO, "train_en.json"), language="en", name="squad")]
    c.data.eval = ([dict(path=os.path.join(DEMO, f"mlqa.{lang}.json"), language=lang, name="mlqa")
                    for lang in LANGS] +
                   [dict(path=os.path.join(DEMO, f"xquad.{lang}.json"), language=lang, name="xquad")
                    for lang in LANGS])
    c.data.max_seq_length = 256
    c.data.doc_stride = 96
    c.train.batch_size = 16
    c.train.learning_rate = 1e-3
    c.train.epochs = 3.0
    c.train.log_every = 20
    c.train.checkpoint_every = 100
    c.train.eval_batch_size = 64
    c.hl.epochs = 1.0
    return c
