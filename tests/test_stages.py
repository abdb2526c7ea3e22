"""Stages in process on a tiny model: declared needs checked before any work, fingerprints that
skip what is current and redo what is stale (and its dependants), results naming their model,
and stages of both methods in one run."""

import json
import logging
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import demo, mccrolin  # noqa: E402
from xmrc_jax.stages import run_stages  # noqa: E402

DEMO = os.path.join(ROOT, "data", "demo")


def _tiny(c):
    c.model.arch.update(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2)
    c.train.batch_size, c.train.max_steps, c.train.log_every = 8, 2, 1
    c.train.eval_batch_size = 8
    return c


def _mrc_config(**hl):
    c = _tiny(demo.get_config())
    c.data.max_seq_length, c.data.doc_stride, c.data.max_query_length = 64, 32, 16
    c.data.limit_per_file = 24
    c.data.dev = []                 # the demo's selection set: only where a test asks for it
    c.data.eval = [dict(path=os.path.join(DEMO, f"{ds}.{lang}.json"), language=lang, name=ds,
                        limit=10) for ds, lang in (("mlqa", "en"), ("xquad", "es"))]
    c.hl.num_contrast = 5
    c.hl.update(hl)
    return c


def _run(c, wd, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xmrc_jax"):
        run_stages(c, str(wd))
    return caplog.text


def _actions(text):
    """stage -> 'skip' | 'redo' | 'run' from the log of one run."""
    out = {}
    for line in text.splitlines():
        for name in ("baseline", "mine", "hl_aacl", "evaluate", "mccrolin", "retrieval"):
            if f"{name}: done with these settings" in line:
                out[name] = "skip"
            elif f"{name}: redoing it" in line:
                out[name] = "redo"
    return out


def _mtime(path):
    return os.stat(path).st_mtime_ns


def test_changed_settings_redo_the_stale_stage_and_its_dependants(tmp_path, caplog):
    wd = tmp_path / "wd"
    _run(_mrc_config(), wd, caplog)
    assert np.load(wd / "mine" / "candidates.npz")["cand_starts"].shape[1] == 20
    baseline_export = _mtime(wd / "baseline" / "hf" / "model.safetensors")

    # |Z| 20 -> 10: mining and everything after it is redone, the baseline is not
    log = _run(_mrc_config(num_candidates=10), wd, caplog)
    assert _actions(log) == {"baseline": "skip", "mine": "redo", "hl_aacl": "redo",
                             "evaluate": "redo"}
    assert "hl.num_candidates 20 -> 10" in log
    assert np.load(wd / "mine" / "candidates.npz")["cand_starts"].shape[1] == 10
    assert _mtime(wd / "baseline" / "hf" / "model.safetensors") == baseline_export

    # alpha or the HL reading: the second stage retrains, mining is reused
    hl_export = _mtime(wd / "hl_aacl" / "hf" / "model.safetensors")
    log = _run(_mrc_config(num_candidates=10, alpha=0.3), wd, caplog)
    assert _actions(log) == {"baseline": "skip", "mine": "skip", "hl_aacl": "redo",
                             "evaluate": "redo"}
    assert "hl.alpha" in log and _mtime(wd / "hl_aacl" / "hf" / "model.safetensors") != hl_export
    log = _run(_mrc_config(num_candidates=10, alpha=0.3, variant="mml"), wd, caplog)
    assert _actions(log)["hl_aacl"] == "redo" and "hl.variant" in log
    assert not (wd / "hl_aacl" / "hl_type_weights.json").exists()   # mml learns no weights

    # the same settings again: everything is skipped, the stored table is printed
    log = _run(_mrc_config(num_candidates=10, alpha=0.3, variant="mml"), wd, caplog)
    assert set(_actions(log).values()) == {"skip"}

    # the second stage's own rate: only hl_aacl (and evaluate) redone, at that peak rate
    c = _mrc_config(num_candidates=10, alpha=0.3, variant="mml", learning_rate=3e-5)
    log = _run(c, wd, caplog)
    assert _actions(log) == {"baseline": "skip", "mine": "skip", "hl_aacl": "redo",
                             "evaluate": "redo"} and "hl.learning_rate" in log

    def rates(stage):
        with open(wd / stage / "metrics.jsonl") as f:
            return [r["learning_rate"] for r in map(json.loads, f) if "learning_rate" in r]
    base, second = rates("baseline"), rates("hl_aacl")
    assert len(base) == len(second) == 2 and c.train.learning_rate != 3e-5
    assert np.allclose(np.array(second) * c.train.learning_rate, np.array(base) * 3e-5)


def test_final_table_scores_the_latest_model_and_names_it(tmp_path, caplog, capsys):
    wd = tmp_path / "wd"
    c = _mrc_config()
    c.stages = ("baseline", "evaluate")
    _run(c, wd, caplog)
    res = json.load(open(wd / "evaluate" / "results.json"))
    assert res["model"].startswith("baseline, final checkpoint")
    assert "Model: baseline" in capsys.readouterr().out
    # the full pipeline later: evaluate scores hl_aacl now, not the baseline's stored table
    log = _run(_mrc_config(), wd, caplog)
    assert _actions(log) == {"baseline": "skip", "evaluate": "redo"}
    res = json.load(open(wd / "evaluate" / "results.json"))
    assert res["model"].startswith("hl_aacl, final checkpoint")
    assert "\nModel: hl_aacl" in (wd / "evaluate" / "results.md").read_text()


def test_needs_are_checked_before_any_work(tmp_path, caplog):
    wd = tmp_path / "wd"
    c = _mrc_config()
    c.stages = ("hl_aacl", "evaluate")
    with pytest.raises(ValueError, match="hl_aacl needs 'baseline'.*add 'baseline'"):
        run_stages(c, str(wd))
    assert not wd.exists() or os.listdir(wd) == []
    c.stages = ("baseline",)
    _run(c, wd, caplog)
    # a need in the workdir that was made with other settings is refused, naming the change
    c = _mrc_config()
    c.stages = ("mine",)
    c.data.max_seq_length = 48
    with pytest.raises(ValueError, match=r"baseline was made with other settings "
                                         r"\(data.max_seq_length 64 -> 48"):
        run_stages(c, str(wd))
    assert not (wd / "mine").exists()
    c = _mrc_config()
    c.stages = ("evaluate",)
    c.eval.use_best = False
    with pytest.raises(ValueError, match="no model to score"):
        run_stages(c, str(tmp_path / "empty"))
    # an evaluation file whose metric has no rules for its language: refused before any work
    c = _mrc_config()
    c.data.eval = c.data.eval + [dict(path=os.path.join(DEMO, "xquad.es.json"), language="ru",
                                      name="mlqa")]
    with pytest.raises(ValueError, match=r"config.data.eval\[2\] \(.*xquad.es.json, ru\): the MLQA "
                                         r"metric has no rules for language 'ru'"):
        run_stages(c, str(tmp_path / "lang"))
    assert not (tmp_path / "lang").exists() or os.listdir(tmp_path / "lang") == []


def test_stages_of_both_methods_in_one_run(tmp_path, caplog):
    """evaluate (span head) and retrieval (embedding head) from one pretrained folder."""
    import jax
    from xmrc_jax.models import EncoderConfig, build_model, init_params, load_tokenizer, \
        save_pretrained
    tok = load_tokenizer(os.path.join(DEMO, "tokenizer"))
    arch = EncoderConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=258)
    module = build_model(arch, "span")
    model_dir = str(tmp_path / "tiny-encoder")
    save_pretrained(module, init_params(module, jax.random.PRNGKey(0)), model_dir, tok)

    c = _tiny(mccrolin.get_config("demo"))
    c.stages = ("evaluate", "retrieval")
    c.model.name, c.model.tokenizer = model_dir, ""
    c.data.max_seq_length, c.data.doc_stride, c.data.max_query_length = 64, 32, 16
    c.data.eval = [dict(path=os.path.join(DEMO, "mlqa.en.json"), language="en", name="mlqa",
                        limit=10)]
    c.retrieval.languages = ("en", "es")
    c.retrieval.levels = ("passage",)
    c.retrieval.max_passage_length, c.retrieval.max_sentence_length = 64, 32
    wd = tmp_path / "wd"
    _run(c, wd, caplog)
    span = json.load(open(wd / "evaluate" / "results.json"))
    assert span["model"] == f"{model_dir} (not fine-tuned)"
    assert span["results"]["mlqa"]["en"]["total"] == 10
    ret = json.load(open(wd / "retrieval" / "results.json"))
    assert list(ret["results"]) == ["tiny-encoder"]
    assert set(ret["results"]["tiny-encoder"]["passage"]) == {"en", "es", "avg"}


def test_selection_never_sees_a_test_question_or_passage(tmp_path, caplog):
    """SQuAD dev contains XQuAD: a dev file that holds XQuAD paragraphs selects only on the rest,
    and the results say how the checkpoint was chosen."""
    from xmrc_jax.data import read_squad_file
    xq = json.load(open(os.path.join(DEMO, "xquad.en.json")))
    squad = json.load(open(os.path.join(DEMO, "train_en.json")))
    dev = {"version": "1.1", "data": xq["data"][:2] + squad["data"][:1]}
    dev_path = tmp_path / "dev.json"
    dev_path.write_text(json.dumps(dev))
    n_xquad = sum(len(p["qas"]) for a in xq["data"][:2] for p in a["paragraphs"])
    n_dev = len(read_squad_file(str(dev_path), "en")[0])
    c = _mrc_config()
    c.stages = ("baseline", "evaluate")
    c.train.eval_every = 1
    c.data.dev = [dict(path=str(dev_path), language="en", name="squad")]
    c.data.eval = [dict(path=os.path.join(DEMO, f"xquad.{lang}.json"), language=lang,
                        name="xquad") for lang in ("en", "es")]
    wd = tmp_path / "wd"
    _run(c, wd, caplog)
    sel = json.load(open(wd / "baseline" / "selection.json"))
    assert sel["rule"] == "english_dev"
    assert sel["dev"] == [dict(name="squad", language="en", questions=n_dev - n_xquad,
                               removed_overlap=n_xquad)]
    res = json.load(open(wd / "evaluate" / "results.json"))
    assert res["selection"] == sel and res["model"].startswith("baseline, best dev checkpoint")
    assert f"{n_xquad} removed as overlapping" in (wd / "evaluate" / "results.md").read_text()
    assert set(res["averages"]["xquad"]) == {"all"}             # the paper's six are not all here


def test_compare_two_runs_with_intervals(tmp_path, caplog):
    from xmrc_jax import compare
    c = _mrc_config()
    c.stages = ("baseline", "evaluate")
    _run(c, tmp_path / "a", caplog)
    c.train.max_steps = 4
    _run(c, tmp_path / "b", caplog)
    out = compare.compare(str(tmp_path / "a"), str(tmp_path / "b"), resamples=200)
    r = out["results"]["mlqa"]["en"]
    assert r["questions"] == 10 and r["f1"]["low"] <= r["f1"]["mean_diff"] <= r["f1"]["high"]
    a = json.load(open(tmp_path / "a" / "evaluate" / "results.json"))["results"]["mlqa"]["en"]
    b = json.load(open(tmp_path / "b" / "evaluate" / "results.json"))["results"]["mlqa"]["en"]
    assert r["f1"]["mean_diff"] == pytest.approx(b["f1"] - a["f1"])
    assert "| mlqa | en |" in compare.markdown(out)
