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
    assert len(c.data.train) == 7 and expand(c.data.dev[0])[0].path == "/data/dev-context-en-question-en.json"
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
