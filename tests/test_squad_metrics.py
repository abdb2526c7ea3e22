"""EM / F1 against numbers worked out by hand with the official scripts' rules."""

import json
import subprocess
import sys

import pytest

from xmrc_jax.eval.squad_metrics import evaluate, f1_score, normalize_mlqa, normalize_squad, score_one


def test_english_articles_and_punctuation():
    assert normalize_mlqa("The  Cat, a dog!", "en") == "cat dog"
    assert normalize_squad("The  Cat, a dog!") == "cat dog"
    assert score_one("the cat", ["Cat."], "en", "mlqa") == (1.0, 1.0)


def test_unicode_punctuation_mlqa_vs_squad():
    # « » and ¿ are Unicode punctuation: removed by MLQA's script, kept by SQuAD's.
    assert normalize_mlqa("«Hola» ¿qué?", "es") == "hola qué"
    assert normalize_squad("«Hola» ¿qué?") == "«hola» ¿qué"


def test_spanish_german_vietnamese_articles():
    assert normalize_mlqa("El perro y la casa", "es") == "perro y casa"
    assert normalize_mlqa("Der Hund und das Haus", "de") == "hund und haus"
    assert normalize_mlqa("cái bàn của tôi", "vi") == "bàn tôi"
    assert normalize_mlqa("the dog", "hi") == "the dog"       # no articles for hi


def test_arabic_al_removed_everywhere():
    # The official regex '\sال^|ال' removes every occurrence of ال, also inside words.
    assert normalize_mlqa("الكتاب", "ar") == "كتاب"
    assert normalize_mlqa("قال", "ar") == "ق"
    assert score_one("الكتاب", ["كتاب"], "ar", "mlqa")[0] == 1.0


def test_chinese_mixed_segmentation():
    assert normalize_mlqa("北京大学, ABC def", "zh") == "北 京 大 学 abc def"
    # pred 2 chars of 4 in gold: P = 1, R = 0.5 -> F1 = 2/3
    assert f1_score("北京", "北京大学", "zh") == pytest.approx(2 / 3)
    assert f1_score("北京", "北京大学", "zh", metric="squad") == 0.0   # one token each, different


def test_several_gold_answers_and_missing_predictions():
    gold = {"q1": ["Paris", "the city of Paris"], "q2": ["1858"], "q3": ["red"]}
    preds = {"q1": "city of Paris", "q2": "in 1858"}
    res = evaluate(gold, preds, "en", "mlqa")
    # q1: EM 1 (second gold), F1 1; q2: EM 0, F1 2*(1/2*1)/(1.5) = 2/3; q3 missing: 0.
    assert res["exact_match"] == pytest.approx(100 / 3, abs=0.01)
    assert res["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3, abs=0.01)
    assert res["missing"] == 1


def test_unknown_language_for_mlqa_metric():
    with pytest.raises(ValueError, match="no rules for language 'ru'"):
        normalize_mlqa("x", "ru")


def test_command_line(tmp_path):
    data = {"data": [{"title": "t", "paragraphs": [{"context": "El perro come en la casa.", "qas": [
        {"id": "a", "question": "¿Dónde?", "answers": [{"text": "la casa", "answer_start": 17}]},
        {"id": "b", "question": "¿Quién?", "answers": [{"text": "El perro", "answer_start": 0}]}]}]}]}
    (tmp_path / "d.json").write_text(json.dumps(data))
    (tmp_path / "p.json").write_text(json.dumps({"a": "casa", "b": "perro come"}))
    out = subprocess.run([sys.executable, "-m", "xmrc_jax.evaluate_predictions", str(tmp_path / "d.json"),
                          str(tmp_path / "p.json"), "--lang", "es"], capture_output=True, text=True,
                         check=True)
    res = json.loads(out.stdout)
    # a: "casa" vs "la casa" -> both "casa": EM 1; b: "perro come" vs "perro": F1 = 2*(.5*1)/1.5
    assert res["exact_match"] == pytest.approx(50.0)
    assert res["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    out = subprocess.run([sys.executable, "-m", "xmrc_jax.evaluate_predictions", str(tmp_path / "d.json"),
                          str(tmp_path / "p.json"), "--lang", "es", "--metric", "squad"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["exact_match"] == pytest.approx(0.0)   # "la" is kept by SQuAD's rules


def test_command_line_reports_bad_predictions(tmp_path):
    data = {"data": [{"title": "t", "paragraphs": [{"context": "El perro come.", "qas": [
        {"id": "a", "question": "¿Quién?", "answers": [{"text": "El perro", "answer_start": 0}]}]}]}]}
    (tmp_path / "d.json").write_text(json.dumps(data))
    (tmp_path / "empty.json").write_text(json.dumps({"data": []}))

    def run(preds_text, dataset="d.json"):
        (tmp_path / "p.json").write_text(preds_text)
        return subprocess.run([sys.executable, "-m", "xmrc_jax.evaluate_predictions",
                               str(tmp_path / dataset), str(tmp_path / "p.json"), "--lang", "es"],
                              capture_output=True, text=True)
    out = run("{not json")
    assert out.returncode != 0 and "p.json: not valid JSON" in out.stderr
    out = run(json.dumps({"x1": "perro", "x2": "casa"}))
    assert out.returncode != 0 and "none of its 2 question ids" in out.stderr
    out = run(json.dumps({"a": "El perro", "zz": "casa"}))
    assert out.returncode == 0 and "1 prediction ids are not in" in out.stderr and "'zz'" in out.stderr
    assert json.loads(out.stdout)["exact_match"] == 100.0
    out = run(json.dumps({"a": "x"}), "empty.json")
    assert out.returncode != 0 and "0 questions" in out.stderr


def test_metrics_writer_writes_jsonl_and_tensorboard_events(tmp_path):
    import json
    import struct

    import pytest
    from xmrc_jax.utils import MetricsWriter

    w = MetricsWriter(str(tmp_path))
    w.write_scalars(3, {"loss": 1.5, "lr": 2e-5})
    w.flush()
    w.close()
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert rows == [{"step": 3, "loss": 1.5, "lr": 2e-5}]
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    (events,) = [p for p in tmp_path.iterdir() if p.name.startswith("events.out.tfevents")]
    data, scalars = events.read_bytes(), {}
    while data:                                  # TFRecord: length, crc, payload, crc
        (n,) = struct.unpack("<Q", data[:8])
        ev = event_pb2.Event.FromString(data[12:12 + n])
        for v in ev.summary.value:
            scalars[v.tag] = (ev.step, v.simple_value)
        data = data[12 + n + 4:]
    assert scalars["loss"] == (3, 1.5) and scalars["lr"][0] == 3


def test_progress_reports_and_passes_everything_through(caplog):
    import logging

    from xmrc_jax.utils import progress
    with caplog.at_level(logging.INFO, logger="xmrc_jax"):
        assert list(progress(range(5), 5, "walk", every_s=0.0)) == list(range(5))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("walk:")]
    assert lines[0].startswith("walk: 1/5 batches") and len(lines) == 4 and "eta" in lines[-1]
