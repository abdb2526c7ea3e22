"""The embedded demo: a small XLM-R-shaped model trained from scratch on the shipped data.

    python -m xmrc_jax.main --config=configs/demo.py --workdir=/tmp/xmrc_demo

Runs all four stages (baseline -> mine -> hl_aacl -> evaluate) on data/demo (1,203 English
SQuAD questions for training, 102 from another article for model selection; 150 MLQA and 153
XQuAD questions in en es de ar hi vi zh) with the shipped tokenizer, on CPU in a few minutes. The numbers it prints show that the pipeline works
end to end; a model this small trained on this little data is not a research result.
"""

import os

from configs.common import DEMO, DEMO_LANGS, use_demo_model
from configs.default import XMRC_STAGES, get_base_config


def get_config(arg=None):
    c = get_base_config()
    c.stages = XMRC_STAGES
    use_demo_model(c)
    c.data.train = [dict(path=os.path.join(DEMO, "train_en.json"), language="en", name="squad")]
    # English selection set (other SQuAD dev articles): the best dev model is what evaluate scores
    c.data.dev = [dict(path=os.path.join(DEMO, "dev_en.json"), language="en", name="squad")]
    c.data.eval = ([dict(path=os.path.join(DEMO, f"mlqa.{lang}.json"), language=lang, name="mlqa")
                    for lang in DEMO_LANGS] +
                   [dict(path=os.path.join(DEMO, f"xquad.{lang}.json"), language=lang, name="xquad")
                    for lang in DEMO_LANGS])
    c.data.max_seq_length = 256
    c.data.doc_stride = 96
    c.train.batch_size = 16
    c.train.learning_rate = 1e-3
    c.train.epochs = 3.0
    c.train.log_every = 20
    c.train.checkpoint_every = 100
    c.train.eval_every = 40
    c.train.eval_batch_size = 64
    c.hl.epochs = 1.0
    return c
