"""The inference command and API: an export answers an evaluation file exactly as the evaluate
stage did; inputs from the command line, SQuAD JSON and JSON lines; whole-word widening; bad
input named in one line."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from test_stages import DEMO, _mrc_config  # noqa: E402


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from xmrc_jax.stages import run_stages
    from xmrc_jax.stages.artifacts import Workdir
    wd = tmp_path_factory.mktemp("predict") / "wd"
    c = _mrc_config()
    c.stages = ("baseline", "evaluate")
    run_stages(c, str(wd))
    folder, _ = Workdir(str(wd)).trained_model("baseline", True)
    return wd, folder


def test_predictor_answers_as_the_evaluate_stage(evaluated):
    from xmrc_jax.data import read_squad_file
    from xmrc_jax.predict import Predictor
    wd, folder = evaluated
    stage = json.load(open(wd / "evaluate" / "predictions_xquad_es.json"))
    examples, _ = read_squad_file(os.path.join(DEMO, "xquad.es.json"), "es", limit=10)
    p = Predictor(folder)                       # window settings from the run's config.json
    assert p.settings == dict(max_seq_length=64, doc_stride=32, max_query_length=16,
                              max_answer_length=30)
    rows = p.answer(examples, n_best=3)
    assert {r["id"]: r["answer"] for r in rows} == stage
    for r, ex in zip(rows, examples):
        assert len(r["n_best"]) <= 3 and r["id"] == ex.id
        if r["answer"]:
            assert ex.context[r["start"]:r["start"] + len(r["answer"])] == r["answer"]
            assert r["score"] == max(c["score"] for c in r["n_best"])


def test_predict_command_files_and_one_question(evaluated, tmp_path):
    wd, folder = evaluated
    stage = json.load(open(wd / "evaluate" / "predictions_mlqa_en.json"))
    out = tmp_path / "preds.json"
    cmd = [sys.executable, "-m", "xmrc_jax.predict", "--model", folder]
    subprocess.run(cmd + ["--input", os.path.join(DEMO, "mlqa.en.json"), "--out", str(out),
                          "--nbest-out", str(tmp_path / "nbest.json")],
                   cwd=ROOT, check=True, capture_output=True)
    got = json.load(open(out))
    assert {q: got[q] for q in stage} == stage          # the stage scored the first 10 only
    data = json.load(open(os.path.join(DEMO, "mlqa.en.json")))
    para = data["data"][0]["paragraphs"][0]
    lines = tmp_path / "in.jsonl"
    lines.write_text(json.dumps({"id": "a", "question": para["qas"][0]["question"],
                                 "context": para["context"]}) + "\n\n"
                     + json.dumps({"question": "What?", "context": para["context"]}) + "\n")
    rows = [json.loads(x) for x in subprocess.run(
        cmd + ["--input", str(lines), "--n-best", "2"], cwd=ROOT, check=True,
        capture_output=True, text=True).stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "3"] and all(len(r["n_best"]) <= 2 for r in rows)
    assert rows[0]["answer"] == got[para["qas"][0]["id"]]
    asked = subprocess.run(cmd + ["--question", para["qas"][0]["question"], "--context",
                                  para["context"]], cwd=ROOT, check=True, capture_output=True,
                           text=True)
    one = asked.stdout.splitlines()
    assert one[0] == (rows[0]["answer"] or "(no answer found)") and len(one) >= 2
    # no library chatter: jax's backend probe, transformers' advice about PyTorch
    assert "Unable to initialize backend" not in asked.stderr, asked.stderr
    assert "[transformers]" not in asked.stderr, asked.stderr


@pytest.mark.parametrize("content,message", [
    ('{"question": "q", "context": "c"}\n{"question": "q"\n', "line 2: not JSON"),
    ('{"question": "", "context": "c"}\n', "line 1: 'question' is missing, empty"),
    ('{"question": "q", "context": ["c"]}\n', "line 1: 'context' is missing, empty or not a string"),
    ('{"id": 1, "question": "q", "context": "c"}\n{"id": 1, "question": "r", "context": "c"}\n',
     "question id '1' occurs more than once"),
    ("\n", "0 questions"),
])
def test_bad_inputs_are_one_line_naming_file_and_line(evaluated, tmp_path, content, message):
    _, folder = evaluated
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    out = subprocess.run([sys.executable, "-m", "xmrc_jax.predict", "--model", folder, "--input",
                          str(path)], cwd=ROOT, capture_output=True, text=True)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert last.startswith("xmrc_jax.predict: ") and message in last and str(path) in last, last


def test_an_export_without_a_span_head_is_refused(tmp_path):
    import jax
    from xmrc_jax.models import EncoderConfig, build_model, init_params, load_tokenizer, save_pretrained
    from xmrc_jax.predict import Predictor
    tok = load_tokenizer(os.path.join(DEMO, "tokenizer"))
    emb = build_model(EncoderConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32,
                                    max_position_embeddings=130), "embed")
    save_pretrained(emb, init_params(emb, jax.random.PRNGKey(0)), str(tmp_path / "emb"), tok)
    with pytest.raises(ValueError, match="no span head .*not a fine-tuned question-answering"):
        Predictor(str(tmp_path / "emb"))


def test_widening_to_whole_words():
    from xmrc_jax.predict import widen_to_words
    text = "The Normans (Norman: Nourmands) gave their name to Normandy in 911."
    cut = text.index("ormans")
    assert text[slice(*widen_to_words(text, cut, cut + 4))] == "Normans"          # "orma"
    s = text.index("Norman:")
    assert text[slice(*widen_to_words(text, s, s + 6))] == "Norman"               # whole already
    s = text.index("911")
    assert text[slice(*widen_to_words(text, s + 1, s + 2))] == "911"
    assert text[slice(*widen_to_words(text, s - 3, s + 3))] == "in 911"            # spans words
    zh = "诺曼人是10世纪的民族"
    assert widen_to_words(zh, 1, 3) == (1, 3)                                      # no spaces: kept
    de = "Die Übergänge waren schön"
    s = de.index("bergä")
    assert de[slice(*widen_to_words(de, s, s + 5))] == "Übergänge"
    hi = "नॉर्मन लोग"                                                               # marks inside
    assert hi[slice(*widen_to_words(hi, 1, 3))] == "नॉर्मन"


def test_batches_cut_to_their_longest_window_give_the_same_spans():
    import jax
    import numpy as np
    from xmrc_jax import mesh as sh
    from xmrc_jax.data import build_features, eval_batches, read_squad_file
    from xmrc_jax.eval.span_qa import predict_windows
    from xmrc_jax.models import EncoderConfig, build_model, init_params, load_tokenizer
    tok = load_tokenizer(os.path.join(DEMO, "tokenizer"))
    examples = []
    for lang in ("en", "zh", "hi"):
        examples += read_squad_file(os.path.join(DEMO, f"mlqa.{lang}.json"), lang, limit=12)[0]
    feats = build_features(examples, tok, 192, 64, 32)
    lengths = feats["attention_mask"].sum(1)
    assert lengths.min() < 96 < lengths.max()               # windows of very different lengths
    batches = list(eval_batches({k: feats[k] for k in ("input_ids", "attention_mask")}, 8, 32))
    assert {b["input_ids"].shape[1] for b in batches} > {192} and all(
        b["input_ids"].shape[1] % 32 == 0 for b in batches)
    seen = np.concatenate([b["index"][b["valid"]] for b in batches])
    assert sorted(seen) == list(range(len(lengths)))        # every window once
    for b in batches:                                       # no real token is cut off
        assert (lengths[b["index"][b["valid"]]] <= b["input_ids"].shape[1]).all()
    cfg = EncoderConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=194)
    module = build_model(cfg, "span")
    params = init_params(module, jax.random.PRNGKey(0))
    mesh = sh.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    full = predict_windows(module, params, feats, mesh, 8, 10, 30, length_multiple=0)
    cut = predict_windows(module, params, feats, mesh, 8, 10, 30, length_multiple=32)
    np.testing.assert_array_equal(full[0], cut[0])
    np.testing.assert_array_equal(full[1], cut[1])
    np.testing.assert_allclose(full[2], cut[2], atol=1e-5)
