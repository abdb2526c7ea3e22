"""The shipped configs: arguments, paper settings, data specs that expand, clear errors."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import default, demo, mccrolin, mlqa, xquad  # noqa: E402
from xmrc_jax.data import expand  # noqa: E402


def test_mlqa_and_xquad_settings(monkeypatch):
    monkeypatch.delenv("XMRC_DATA", raising=False)
    c = mlqa.get_config()
    assert c.model.name == "xlm-roberta-base" and c.train.learning_rate == 3e-5
    assert c.train.batch_size == 32 and c.hl.num_candidates == 20 and c.hl.num_contrast == 50
    assert c.data.train == [dict(tfds="squad/v1.1", split="train", language="en", name="squad")]
    assert [fs.language for fs in expand(c.data.eval[0])] == list(mlqa.LANGS)
    assert expand(c.data.eval[0])[0].split == "test"
    c = mlqa.get_config("model=mbert,setting=translate_train,root=/data")
    assert c.model.name == "bert-base-multilingual-cased"
    assert [s["path"] for s in c.data.train][1] == "/data/squad.translate.train.en-es.json"
    assert len(c.data.train) == 6 and expand(c.data.dev[0])[0].path == "/data/dev-context-en-question-en.json"
    c = xquad.get_config("mbert")          # a bare value fits the key it belongs to
    assert c.model.name == "bert-base-multilingual-cased" and len(expand(c.data.eval[0])) == 12
    with pytest.raises(ValueError, match="translate_train needs"):
        xquad.get_config("setting=translate_train")
    with pytest.raises(ValueError, match="known keys"):
        mlqa.get_config("modle=xlmr")
    with pytest.raises(ValueError, match="expected one of"):
        mlqa.get_config("model=gpt")


def test_mccrolin_configs():
    c = mccrolin.get_config("demo")
    assert c.stages == ("mccrolin", "retrieval") and c.mccrolin.rounds == 2
    assert all(os.path.exists(s["path"]) for s in c.data.parallel)
    c = mccrolin.get_config("model=me5,dataset=mlqa,root=/d")
    assert c.model.name == "intfloat/multilingual-e5-base" and c.retrieval.query_prefix == "query: "
    assert c.train.batch_size == 16 and c.mccrolin.rounds == 3
    assert [fs.path for fs in expand(c.data.parallel[0])][0] == "/d/dev-context-en-question-en.json"
    assert [fs.path for fs in expand(c.data.parallel[1])][0] == "/d/test-context-en-question-en.json"
    m = c.mccrolin                                    # the paper's Table 7
    assert (tuple(m.betas), tuple(m.lambdas), tuple(m.omegas), tuple(m.gammas), m.tau) == (
        (1e-3, 1.0, 1e-3, 1e-1), (3e-3, 1e-5), (1e-3, 1e-4), (1.0, 1.0, 1.0), 0.05)
    assert m.mask_false_negatives and m.teacher_update
    assert mccrolin.get_config("model=xlmr").retrieval.query_prefix == ""


def test_demo_is_the_base_config_with_small_sizes():
    base, d = default.get_base_config(), demo.get_config()
    assert set(base.keys()) == set(d.keys())
    assert d.model.arch.num_hidden_layers == 2 and d.stages == default.XMRC_STAGES


def test_base_config_is_method_neutral_and_valid_on_its_own():
    from xmrc_jax.stages import REGISTRY, normalize, validate
    base = normalize(default.get_config())
    assert base.stages == () and base.data.train == [] and base.data.parallel == []
    base.stages = tuple(REGISTRY)                     # every method's checks pass on it
    validate(base)
    for c in (demo.get_config(), mccrolin.get_config("demo"), mlqa.get_config(),
              xquad.get_config()):
        validate(normalize(c))
        assert set(c.keys()) == set(base.keys())       # one schema: any stage runs under any config


@pytest.mark.parametrize("key,value,match", [
    ("variant", "mmll", "config.hl.variant"), ("alpha", 1.5, "config.hl.alpha"),
    ("type_weights", (1.0, 0.1), "config.hl.type_weights")])
def test_bad_hl_setting_names_its_key(key, value, match):
    from xmrc_jax.stages import normalize, validate
    c = demo.get_config()
    c.hl.alpha = 1.0                                  # a misspelt variant is caught even here
    setattr(c.hl, key, value)
    with pytest.raises(ValueError, match=match):
        validate(normalize(c))


def test_dataset_metric_comes_from_the_registry():
    from xmrc_jax.data import expand
    assert expand(dict(dataset="mlqa", languages=["es"], root="/d"))[0].metric == "mlqa"
    assert expand(dict(dataset="xquad", languages=["es"], root="/d"))[0].metric == "squad"
    assert expand(dict(path="x.json", language="es", name="mlqa"))[0].metric == "mlqa"
    assert expand(dict(path="mlqa_like.json", language="es"))[0].metric == "squad"
    assert expand(dict(path="x.json", language="es", metric="mlqa"))[0].metric == "mlqa"
    with pytest.raises(ValueError, match="metric"):
        expand(dict(path="x.json", language="es", metric="bleu"))


def test_tuple_of_names_from_a_shell_override():
    from xmrc_jax.stages import names, normalize
    assert names("(en,es, zh)") == ("en", "es", "zh") == names(("en", "es", "zh"))
    assert names("('passage',)") == ("passage",)
    c = mccrolin.get_config("demo")
    with c.ignore_type():                             # what a shell override gives
        c.stages = "(mccrolin,retrieval)"
    with c.retrieval.ignore_type():
        c.retrieval.levels = "(passage,)"
    n = normalize(c)
    assert n.stages == ("mccrolin", "retrieval") and n.retrieval.levels == ("passage",)


@pytest.mark.parametrize("key,value", [("similarity", "l2"), ("select_metric", "R@5"),
                                       ("levels", ("passage", "paragraph"))])
def test_bad_retrieval_setting_names_its_key(tmp_path, key, value):
    from xmrc_jax.stages import normalize, validate
    c = mccrolin.get_config("demo")
    setattr(c.retrieval, key, value)
    with pytest.raises(ValueError, match=f"config.retrieval.{key}"):
        validate(normalize(c))


def test_zero_shot_selects_on_english_only_and_never_on_test_data(monkeypatch):
    from xmrc_jax.stages import normalize, validate
    monkeypatch.delenv("XMRC_DATA", raising=False)
    for c in (mlqa.get_config(), mlqa.get_config("root=/d"), xquad.get_config(),
              xquad.get_config("root=/d")):
        assert c.eval.selection == "english_dev"
        dev = [fs for spec in c.data.dev for fs in expand(spec)]
        assert dev and {fs.language for fs in dev} == {"en"}
        test = [fs for spec in c.data.eval for fs in expand(spec)]
        assert not {(fs.name, fs.split, fs.path) for fs in dev} & {(fs.name, fs.split, fs.path)
                                                                   for fs in test}
    c = mlqa.get_config("setting=translate_train,root=/d")
    assert c.eval.selection == "target_dev" and len(expand(c.data.dev[0])) == 7
    with pytest.raises(ValueError, match="no target-language dev"):
        xquad.get_config("selection=target_dev,root=/d")
    c = mlqa.get_config("selection=english_dev,setting=translate_train,root=/d")
    c.data.dev = [dict(dataset="mlqa", languages=["en", "es"], split="dev", root="/d")]
    with pytest.raises(ValueError, match="english_dev but config.data.dev holds"):
        validate(normalize(c))
    assert mlqa.get_config("selection=last").data.dev == []


def test_translate_train_files_are_xtremes():
    from configs.common import TRANSLATE_TRAIN
    assert TRANSLATE_TRAIN == ("ar", "de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh")
    paper = xquad.get_config("setting=translate_train,root=/x").data.train
    assert [os.path.basename(s["path"]) for s in paper] == ["train-v1.1.json"] + [
        f"squad.translate.train.en-{lang}.json" for lang in ("es", "de", "ar", "hi", "vi")]
    every = xquad.get_config("setting=translate_train,root=/x,tt=all").data.train
    assert sorted(s["language"] for s in every[1:]) == list(TRANSLATE_TRAIN)   # no ro


def test_paper_preset_is_the_papers_settings():
    c = mlqa.get_config("preset=paper")
    assert c.preset == "paper" and c.model.name == "xlm-roberta-base"
    t, d, h = c.train, c.data, c.hl
    assert (t.learning_rate, t.weight_decay, t.warmup_ratio, t.batch_size) == (3e-5, 0.01, 0.1, 32)
    assert (t.epochs, h.epochs, t.eval_every) == (8.0, 8.0, 1000)
    assert (d.max_seq_length, d.doc_stride, d.max_query_length, c.max_answer_length) == (384, 128, 64, 30)
    assert (h.num_candidates, h.num_contrast, h.alpha, h.tau) == (20, 50, 0.5, 0.1)
    assert (h.variant, tuple(h.type_weights), h.init) == ("weighted_mml", (1.0, 0.1, 0.0), "pretrained")
    s = mlqa.get_config("preset=short")
    assert (s.train.epochs, s.hl.epochs, s.hl.init) == (2.0, 2.0, "baseline")


def test_ablations_by_name():
    from xmrc_jax.stages import normalize
    got = {a: normalize(mlqa.get_config(f"ablation={a}")).hl for a in
           ("full", "no_hl", "no_aacl", "mml")}
    assert (got["full"].variant, got["full"].alpha) == ("weighted_mml", 0.5)
    assert (got["no_hl"].variant, got["no_hl"].alpha) == ("mrc", 0.5)     # L_mrc + AA-CL
    assert (got["no_aacl"].variant, got["no_aacl"].alpha) == ("weighted_mml", 0.0)
    assert (got["mml"].variant, got["mml"].alpha) == ("mml", 0.5)


def test_replication_config_selects_on_held_out_english_only():
    from configs import replication
    from xmrc_jax.stages import normalize, validate
    c = replication.get_config("root=/d,model=/m")
    validate(normalize(c))
    assert c.model.name == "/m" and c.eval.selection == "english_dev"
    assert [s["path"] for s in c.data.dev] == ["/d/dev-v1.1.json"]
    assert {s["name"] for s in c.data.eval} == {"mlqa", "xquad"} and len(c.data.eval) == 19
    assert (c.train.epochs, c.hl.epochs) == (1.0, 0.5)        # the one-session CPU budget
    assert replication.get_config("root=/d,model=/m,hl_epochs=2").hl.epochs == 2.0
    # the McCrolin runs have their own epochs, so one command runs both parts at their budgets
    m = replication.get_config("root=/d,model=/m,epochs=2,mccrolin")
    assert m.train.epochs == 0.25 and m.mccrolin.rounds == 3 and m.stages == ("mccrolin", "retrieval")
    assert replication.get_config("root=/d,model=/m,mc_epochs=1,mccrolin").train.epochs == 1.0


def test_second_stage_learning_rate():
    from xmrc_jax.stages import normalize, validate
    from xmrc_jax.stages.mrc import _train_settings
    c = default.get_base_config()
    c.train.learning_rate = 1e-4
    assert _train_settings(c, c.hl.learning_rate) is c.train    # 0: train.learning_rate
    c.hl.learning_rate = 3e-5
    t = _train_settings(c, c.hl.learning_rate)
    assert t.learning_rate == 3e-5 and t.batch_size == c.train.batch_size
    assert c.train.learning_rate == 1e-4                        # config.train is not changed
    c.stages = ("baseline", "mine", "hl_aacl")
    c.hl.learning_rate = -1.0
    with pytest.raises(ValueError, match="hl.learning_rate"):
        validate(normalize(c))
