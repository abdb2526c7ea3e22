"""The method-neutral base config: every section either method reads, with defaults.

Named configs (``demo.py``, ``mlqa.py``, ``xquad.py``, ``mccrolin.py``) import it and
override; so any stage can run under any of them (``--config.stages=(evaluate,retrieval)``).
On its own it is valid but names no stages and no data.

xMRC paper settings ("From Good to Best", AAAI 2022): XLM-R base, AdamW lr 3e-5, weight decay
0.01, 10 % warm-up, batch 32, |Z| = 20 mined candidates, |A| = 50 contrastive candidates,
alpha 0.5. McCrolin's settings are in ``configs/mccrolin.py``.
"""

import ml_collections

XMRC_STAGES = ("baseline", "mine", "hl_aacl", "evaluate")


def get_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.preset = ""                       # the named settings a config applied (configs/common.py)
    c.stages = ()                       # a tuple, so --config.stages="(baseline,evaluate)" works

    c.model = ml_collections.ConfigDict()
    c.model.name = ""                   # hub id or local Hugging Face folder; "" = random init from arch
    c.model.tokenizer = ""              # defaults to model.name
    c.model.pooling = "mean"
    c.model.remat = False
    c.model.remat_policy = "nothing_saveable"   # jax.checkpoint_policies name (kernels "xla")
    c.model.kernels = "auto"            # auto (cpu on CPU, xla elsewhere) | cpu | xla
    c.model.precision = "auto"          # auto | fp32 | bf16 | fp16 (fp16: dynamic loss scaling)
    c.model.v100_precision = "fp16"     # what auto picks on compute capability < 8.0: fp16 | fp32
    c.model.arch = ml_collections.ConfigDict(dict(
        model_type="xlm-roberta", vocab_size=0, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=256, max_position_embeddings=514,
        type_vocab_size=1, layer_norm_eps=1e-5, hidden_act="gelu", pad_token_id=1,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))

    c.data = ml_collections.ConfigDict()
    c.data.train = []                   # span QA training files (data specs)
    c.data.eval = []                    # span QA evaluation files
    c.data.dev = []                     # scored every train.eval_every steps; best kept by F1
    c.data.parallel = []                # McCrolin: the same questions in several languages
    c.data.parallel_test = []           # out of domain: test on these (all of them) instead
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
    c.train.log_every = 50              # 0 = one log line, at the end
    c.train.checkpoint_every = 1000     # 0 = a checkpoint at the end only (and on SIGTERM)
    c.train.keep_checkpoints = 2
    c.train.eval_every = 0              # 0 = no dev evaluation during training
    c.train.eval_batch_size = 64
    # Span stages, opt-in: batches of windows of similar length, each cut to its longest window
    # rounded up to a multiple of this (data.TrainIterator; at most max_seq_length / this shapes
    # compile), e.g. 32: 1.34x examples/s on e5-small, but its 1-epoch replication baseline
    # ended 3.0 dev F1 below padded batches (README "Speed"); 0 = every batch padded to
    # data.max_seq_length
    c.train.group_by_length = 0

    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))

    # xMRC: hard learning + answer-aware contrastive learning (stage hl_aacl)
    c.hl = ml_collections.ConfigDict()
    # mml | hard_em | weighted | weighted_learned | weighted_mml | weighted_mml_learned |
    # weighted_type_mean (readings of the paper's Eq. 5: xmrc_jax/losses/mrc.py, docs/READINGS.md)
    c.hl.variant = "weighted_learned"
    c.hl.type_weights = (1.0, 0.1, 0.0)  # fixed weights (gold, one boundary, none)
    c.hl.weights_lr = 0.0               # own peak lr of learned type weights (0 = train.learning_rate)
    c.hl.learning_rate = 0.0            # peak lr of the second stage (0 = train.learning_rate)
    c.hl.init = "baseline"              # second stage starts from: baseline | pretrained
    c.hl.ablation = "full"              # full | no_hl (L_mrc + AA-CL) | no_aacl (alpha 0) | mml
    c.hl.num_candidates = 20            # |Z|
    c.hl.num_contrast = 50              # |A|
    c.hl.alpha = 0.5                    # L = alpha L_contrast + (1 - alpha) L_hard
    c.hl.tau = 0.1
    # AA-CL's hard negative: the most gold-like top-|A| span other than the gold one
    # ("not_gold", the paper's words) | that shares no token with it ("no_overlap");
    # docs/READINGS.md
    c.hl.negative = "not_gold"
    c.hl.epochs = 2.0
    c.max_answer_length = 30

    c.eval = ml_collections.ConfigDict()
    c.eval.n_best = 20
    c.eval.em_at_k = (1, 3, 5, 10)
    c.eval.use_best = True              # later stages use <stage>/best/hf (best dev score) if present
    # What picks the checkpoint a training stage hands on (recorded in every results file):
    # english_dev: data.dev is English only (zero-shot: no target-language data anywhere);
    # target_dev: data.dev may hold target languages (translate-train); last: no selection.
    # Any dev question or passage that occurs in data.eval is removed before selection.
    c.eval.selection = "english_dev"
    # Figure 3: every track_every steps, the top answers of the first track_questions questions
    # of the first evaluation file go to <stage>/tracked.json (0 = off; not used for selection)
    c.eval.track_every = 0
    c.eval.track_questions = 0

    # McCrolin: teacher-student rounds (stage mccrolin) and retrieval evaluation (retrieval)
    c.mccrolin = ml_collections.ConfigDict()
    c.mccrolin.rounds = 3
    # loss weights: the paper's Table 7
    c.mccrolin.gammas = (1.0, 1.0, 1.0)        # L_XLC, L_rank, L_HA
    c.mccrolin.betas = (1e-3, 1.0, 1e-3, 1e-1)  # XLC: T(q_en)-S(q_ne), T(d)-S(d), T(d)-S(q_ne), T(q_en)-S(q_en)
    c.mccrolin.lambdas = (3e-3, 1e-5)          # rank: CL(T(q_en), S(q_ne)), CL(T(d), S(q_ne))
    c.mccrolin.omegas = (1e-3, 1e-4)           # HA: T(PR)-S(PR), T(PR)-S(q_ne)
    c.mccrolin.tau = 0.05
    c.mccrolin.mask_false_negatives = True     # same question / same passage: not a negative
    c.mccrolin.teacher_update = True           # teacher <- student after each round (false: ablation)
    c.mccrolin.normalize = True                # L2-normalise embeddings (dot product = cosine)
    # The workdir of a finished McCrolin run whose round 1 this run takes instead of training
    # it: allowed only where the two runs' settings differ in nothing but teacher_update and
    # rounds, which round 1 does not depend on (its teacher is round 0 either way). Not part
    # of the fingerprint: it changes where the work comes from, not what it is.
    c.mccrolin.first_round_from = ""

    c.retrieval = ml_collections.ConfigDict()
    c.retrieval.languages = ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi",
                             "ro")             # query languages; "en" queries are for reference
    c.retrieval.include_english = True
    c.retrieval.split_fractions = (0.7, 0.1, 0.2)   # train / dev / test, by article
    c.retrieval.split_seed = 0
    c.retrieval.levels = ("passage", "sentence")   # and "document" (an article's paragraphs)
    c.retrieval.sentence_context = False       # sentence candidates followed by their paragraph
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
    return c


def get_config(arg=None):
    return get_base_config()
