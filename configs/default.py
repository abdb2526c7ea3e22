"""Defaults shared by every xMRC config; each named config imports and overrides them.

Paper settings ("From Good to Best", AAAI 2022): XLM-R base, AdamW lr 3e-5, weight decay 0.01,
10 % warm-up, batch 32, |Z| = 20 mined candidates, |A| = 50 contrastive candidates, alpha 0.5.
"""

import ml_collections

STAGES = ("baseline", "mine", "hl_aacl", "evaluate")


def get_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.stages = STAGES                   # a tuple, so --config.stages="(baseline,evaluate)" works

    c.model = ml_collections.ConfigDict()
    c.model.name = ""                   # hub id or local Hugging Face folder; "" = random init from arch
    c.model.tokenizer = ""              # defaults to model.name
    c.model.pooling = "mean"
    c.model.remat = False
    c.model.precision = "auto"          # auto | fp32 | bf16 | fp16 (fp16: dynamic loss scaling)
    c.model.v100_precision = "fp16"     # what auto picks on compute capability < 8.0: fp16 | fp32
    c.model.arch = ml_collections.ConfigDict(dict(
        model_type="xlm-roberta", vocab_size=0, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=256, max_position_embeddings=514,
        type_vocab_size=1, layer_norm_eps=1e-5, hidden_act="gelu", pad_token_id=1,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))

    c.data = ml_collections.ConfigDict()
    c.data.train = [dict(source="squad", path="", language="en")]
    c.data.eval = []
    c.data.dev = []                     # scored every train.eval_every steps; best kept by F1
    c.data.max_seq_length = 384
    c.data.doc_stride = 128
    c.data.max_query_length = 64
    c.data.skip_bad_records = False     # True: count and report bad records instead of failing
    c.data.cache_dir = ""               # "" = <workdir>/cache
    c.data.limit_per_file = 0           # 0 = every example

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32
    c.train.grad_accum_steps = 1
    c.train.learning_rate = 3e-5
    c.train.weight_decay = 0.01
    c.train.warmup_ratio = 0.1
    c.train.max_grad_norm = 1.0
    c.train.epochs = 2.0
    c.train.max_steps = 0               # 0 = derived from epochs
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 2
    c.train.eval_every = 0              # 0 = no dev evaluation during training
    c.train.eval_batch_size = 64

    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))

    c.hl = ml_collections.ConfigDict()
    c.hl.variant = "weighted_learned"   # mml | hard_em | weighted | weighted_learned
    c.hl.type_weights = (1.0, 0.1, 0.0)  # fixed weights (gold, one boundary, none) for "weighted"
    c.hl.num_candidates = 20            # |Z|
    c.hl.num_contrast = 50              # |A|
    c.hl.alpha = 0.5                    # L = alpha L_contrast + (1 - alpha) L_hard
    c.hl.tau = 0.1
    c.hl.epochs = 2.0
    c.max_answer_length = 30

    c.eval = ml_collections.ConfigDict()
    c.eval.n_best = 20
    c.eval.em_at_k = (1, 3, 5, 10)
    c.eval.use_best = True              # later stages use <stage>/best/hf (best dev F1) if present
    return c
