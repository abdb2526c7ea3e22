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
    assert d.model.arch.num_hidden_layers == 2 and d.stages == default.STAGES


def test_tuple_of_names_from_a_shell_override():
    from xmrc_jax.stages import names
    assert names("(en,es, zh)") == ["en", "es", "zh"] == names(("en", "es", "zh"))
    assert names("('passage',)") == ["passage"]


@pytest.mark.parametrize("key,value", [("similarity", "l2"), ("select_metric", "R@5"),
                                       ("levels", ("passage", "paragraph"))])
def test_bad_retrieval_setting_names_its_key(tmp_path, key, value):
    from xmrc_jax.stages import mccrolin as stage
    c = mccrolin.get_config("demo")
    setattr(c.retrieval, key, value)
    with pytest.raises(ValueError, match=f"config.retrieval.{key}"):
        stage.setup(c, str(tmp_path), {})
