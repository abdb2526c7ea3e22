"""Reading and validation, the dataset registry, features and loaders, on the shipped data."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from xmrc_jax.data import (DataError, TrainIterator, build_features, build_features_per_example,
                           eval_batches, expand, load_specs, read_squad_file)
from xmrc_jax.models import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo")
SHARED = os.path.join(ROOT, "..", "shared", "data")


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(os.path.join(DEMO, "tokenizer"), vocab_size=8001)


def test_shipped_files_load():
    files = sorted(glob.glob(os.path.join(DEMO, "*.json")))
    assert len(files) == 16
    for path in files:
        ex, rep = read_squad_file(path, "xx")
        least = 100 if path.endswith("dev_en.json") else 150     # the selection set: 102
        assert rep.read == len(ex) >= least and rep.num_skipped == 0


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data is not here")
def test_full_shared_files_load():
    specs = [dict(dataset="mlqa", root=os.path.join(SHARED, "mlqa")),
             dict(dataset="xquad", root=os.path.join(SHARED, "xquad")),
             dict(dataset="tydiqa_goldp", root=os.path.join(SHARED, "tydiqa_goldp")),
             dict(path=os.path.join(SHARED, "squad_v1.1", "dev-v1.1.json"), language="en")]
    loaded = load_specs(specs)
    assert len(loaded) == 7 + 12 + 9 + 1
    counts = {(fs.name, fs.language): len(ex) for fs, ex, _ in loaded}
    assert counts[("mlqa", "en")] == 1148 and counts[("xquad", "zh")] == 1190


def test_registry_and_bad_specs():
    fs = expand(dict(dataset="mlqa", languages="en,es", root="/d"))
    assert [f.path for f in fs] == ["/d/dev-context-en-question-en.json", "/d/dev-context-es-question-es.json"]
    fs = expand(dict(dataset="xquad", languages=["de"]))
    assert fs[0].tfds == "xquad/de" and fs[0].split == "test"
    with pytest.raises(ValueError, match="no language"):
        expand(dict(dataset="mlqa", languages=["ru"]))
    with pytest.raises(ValueError, match="unknown key"):
        expand(dict(path="x.json", language="en", lang="en"))


def test_tfds_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="tfds build"):
        load_specs([dict(tfds="xquad/es", split="test", language="es", data_dir=str(tmp_path))])


def _write(tmp_path, qas, context="The cat sat on the mat."):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}))
    return str(p)


def _qa(qid, question="Who?", text="cat", start=4):
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


def test_bad_input_errors_and_counted_skips(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"data": [')
    with pytest.raises(DataError, match="broken.json: malformed JSON"):
        read_squad_file(str(p), "en")
    cases = {
        "duplicate_id": [_qa("a"), _qa("a")],
        "empty_question": [_qa("a"), _qa("b", question="  ")],
        "answer_mismatch": [_qa("a"), _qa("b", text="dog", start=4)],
        "malformed_answer": [_qa("a"), {"id": "b", "question": "q", "answers": [{"text": "cat"}]}],
        "no_answers": [_qa("a"), {"id": "b", "question": "q", "answers": []}],
    }
    for kind, qas in cases.items():
        path = _write(tmp_path, qas)
        with pytest.raises(DataError, match=r"bad.json: question '(a|b)'"):
            read_squad_file(path, "en")
        ex, rep = read_squad_file(path, "en", skip_bad=True)
        assert [e.id for e in ex] == ["a"] and rep.skipped == {kind: [qas[-1]["id"] if kind != "duplicate_id" else "a"]}
        assert kind in str(rep)
    with pytest.raises(DataError, match="empty context"):
        read_squad_file(_write(tmp_path, [_qa("a")], context="  "), "en")


def test_answer_offset_drift_is_repaired_and_counted(tmp_path):
    ex, rep = read_squad_file(_write(tmp_path, [_qa("a", start=6)]), "en")
    assert ex[0].answers[0].start == 4 and rep.repaired == ["a"]


@pytest.mark.parametrize("lang", ["en", "es", "de", "ar", "hi", "vi", "zh"])
def test_features_match_per_example_reference_and_round_trip(tok, lang):
    ex, _ = read_squad_file(os.path.join(DEMO, f"mlqa.{lang}.json"), lang)
    f = build_features(ex, tok, 128, 48, 24)
    g = build_features_per_example(ex, tok, 128, 48, 24)
    assert len(f["input_ids"]) == len(g["input_ids"]) > len(ex)      # several windows per example
    for k in f:
        np.testing.assert_array_equal(f[k], g[k], err_msg=k)
    exact = 0
    for i in np.nonzero(f["answer_in_window"])[0]:
        e = ex[f["example_index"][i]]
        s, t = f["start_positions"][i], f["end_positions"][i]
        a0, a1 = f["offsets"][i, s, 0], f["offsets"][i, t, 1]
        ans = e.answers[0]
        # The labelled tokens cover the answer exactly when token boundaries allow it: no token
        # can start later or end earlier and still cover it.
        assert a0 <= ans.start and a1 >= ans.start + len(ans.text)
        assert not (f["context_mask"][i, s + 1] and f["offsets"][i, s + 1, 0] <= ans.start)
        assert not (t > s and f["offsets"][i, t - 1, 1] >= ans.start + len(ans.text))
        exact += " ".join(e.context[a0:a1].split()) == " ".join(ans.text.split())
    assert exact >= 0.9 * f["answer_in_window"].sum()
    # Windows without the answer point at position 0.
    out = ~f["answer_in_window"]
    assert (f["start_positions"][out] == 0).all() and (f["end_positions"][out] == 0).all()


def test_feature_cache(tok, tmp_path):
    ex, _ = read_squad_file(os.path.join(DEMO, "xquad.de.json"), "de")
    a = build_features(ex, tok, 128, 48, 24, cache_dir=str(tmp_path))
    assert len(os.listdir(tmp_path)) == 1
    tok(["a b c d e f"], truncation=True, max_length=3, padding="max_length")   # changes its state
    b = build_features(ex, tok, 128, 48, 24, cache_dir=str(tmp_path))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    build_features(ex, tok, 128, 64, 24, cache_dir=str(tmp_path))      # other settings: new entry
    assert len(os.listdir(tmp_path)) == 2


def test_question_truncation(tok):
    ex, _ = read_squad_file(os.path.join(DEMO, "xquad.en.json"), "en")
    f = build_features(ex[:20], tok, 128, 48, 4)
    assert (f["question_mask"].sum(1) <= 4).all()


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_train_iterator_resumes_exactly(processes):
    arrays = {"x": np.arange(103), "y": np.arange(103) * 2}

    def run(stop_at=None):
        its = [TrainIterator(arrays, 8, seed=3, process_index=p, process_count=processes)
               for p in range(processes)]
        out = []
        for step in range(30):
            if stop_at is not None and step == stop_at:
                states = [it.get_state() for it in its]
                its = [TrainIterator(arrays, 8, seed=3, process_index=p, process_count=processes)
                       for p in range(processes)]
                for it, s in zip(its, states):
                    it.set_state(s)
            out.append(np.concatenate([next(it)["x"] for it in its]))
        return np.stack(out)

    full = run()
    np.testing.assert_array_equal(full, run(stop_at=17))
    assert len(set(full[:12].ravel())) == 12 * 8       # an epoch (12 batches) never repeats a window
    assert not np.array_equal(full[0], full[12])      # reshuffled next epoch


def _windows(n=203, L=64, seed=0):
    """Arrays shaped like training windows: ``attention_mask`` of random lengths (4..L)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, L + 1, size=n)
    mask = (np.arange(L)[None, :] < lengths[:, None]).astype(np.int32)
    ids = np.where(mask, rng.integers(3, 50, size=(n, L)), 1).astype(np.int32)
    return {"input_ids": ids, "attention_mask": mask, "row": np.arange(n),
            "start_positions": (lengths // 2).astype(np.int32)}, lengths


def _reference_grouped_epoch(lengths, g, seed, epoch, group_batches, multiple, L):
    """The documented plan, written out once more with Python lists: shuffle, keep whole
    batches, sort each group of ``group_batches`` batches by length (longest first, ties in
    shuffled order), cut into batches, shuffle the batches with the same generator."""
    rng = np.random.default_rng(seed + epoch)
    perm = list(rng.permutation(len(lengths)))
    used = perm[:(len(lengths) // g) * g]
    batches = []
    for lo in range(0, len(used), group_batches * g):
        group = sorted(used[lo:lo + group_batches * g], key=lambda i: -lengths[i])
        batches += [group[i:i + g] for i in range(0, len(group), g)]
    order = rng.permutation(len(batches))
    plan = [batches[i] for i in order]
    cuts = [min(L, -(-max(lengths[i] for i in b) // multiple) * multiple) for b in plan]
    return plan, cuts


@pytest.mark.parametrize("processes", [1, 2])
def test_length_grouped_batches_follow_the_plan_and_lose_no_token(processes):
    arrays, lengths = _windows()
    g, L = 16, 64
    its = [TrainIterator(arrays, g, seed=5, process_index=p, process_count=processes,
                         length_multiple=16, sequence_keys=("input_ids", "attention_mask"),
                         group_batches=4) for p in range(processes)]
    plain = TrainIterator(arrays, g, seed=5)
    for epoch in range(2):
        plan, cuts = _reference_grouped_epoch(lengths, g, 5, epoch, 4, 16, L)
        rows = []
        for b in range(its[0].batches_per_epoch):
            parts = [next(it) for it in its]
            got = np.concatenate([p["row"] for p in parts])
            np.testing.assert_array_equal(got, plan[b])
            for part in parts:
                assert part["input_ids"].shape == (g // processes, cuts[b])  # the same cut
                assert part["start_positions"].shape == (g // processes,)    # not a sequence key
                assert (part["attention_mask"].sum(1) == lengths[part["row"]]).all()  # no token cut
                np.testing.assert_array_equal(part["input_ids"],
                                              arrays["input_ids"][part["row"], :cuts[b]])
            rows.append(got)
        # the same windows as the ungrouped epoch (the same ones left out), each once
        ungrouped = np.concatenate([next(plain)["row"] for _ in range(plain.batches_per_epoch)])
        assert sorted(np.concatenate(rows)) == sorted(ungrouped)
    assert its[0].padded_fraction()[1] < its[0].padded_fraction()[0]


def test_length_grouped_batches_resume_exactly_and_bound_the_shapes():
    arrays, _ = _windows(n=150)
    kw = dict(seed=1, length_multiple=8, sequence_keys=("input_ids", "attention_mask"),
              group_batches=3)
    full = TrainIterator(arrays, 8, **kw)
    ref = [next(full) for _ in range(40)]                 # over two epochs
    it = TrainIterator(arrays, 8, **kw)
    for _ in range(23):
        next(it)
    resumed = TrainIterator(arrays, 8, **kw)
    resumed.set_state(it.get_state())
    for want in ref[23:]:
        got = next(resumed)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    assert {b["input_ids"].shape[1] for b in ref} <= set(range(8, 65, 8))
    off = TrainIterator(arrays, 8, seed=1)                # 0 / no keys: the padded batches
    assert all(next(off)["input_ids"].shape[1] == 64 for _ in range(20))
    with pytest.raises(ValueError, match="no array 'token_type_ids'"):
        TrainIterator(arrays, 8, length_multiple=8, sequence_keys=("token_type_ids",))


def test_eval_batches_cover_everything_once():
    arrays = {"x": np.arange(23)}
    seen = []
    for b in eval_batches(arrays, 5):
        assert len(b["x"]) == 5
        seen.extend(b["x"][b["valid"]].tolist())
        assert (b["index"][~b["valid"]] == -1).all()
    assert seen == list(range(23))


def test_wrongly_typed_id_and_context_are_named_as_such():
    from xmrc_jax.data import parse_squad_json
    def data(qid, context):
        return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
            {"id": qid, "question": "q?", "answers": [{"text": "a", "answer_start": 0}]}]}]}]}
    with pytest.raises(DataError, match=r"has an 'id' of type int \(7\); ids are strings"):
        parse_squad_json(data(7, "a b"), "f.json", "en")
    with pytest.raises(DataError, match="context is a list, not a string"):
        parse_squad_json(data("x", ["a b"]), "f.json", "en")
    with pytest.raises(DataError, match="empty context"):
        parse_squad_json(data("x", "  "), "f.json", "en")


def test_a_context_that_dominates_the_windows_is_reported():
    from xmrc_jax.data import Answer, Example
    from xmrc_jax.data.features import dominant_contexts
    exs = [Example(f"q{i}", "en", "q?", f"ctx {i}", (Answer("x", 0),)) for i in range(5)]
    feats = {"example_index": np.array([0] * 96 + [1, 2, 3, 4])}
    got = dominant_contexts(exs, feats)
    assert [(e.id, n) for e, n, _ in got] == [("q0", 96)] and got[0][2] == pytest.approx(0.96)
    assert dominant_contexts(exs, {"example_index": np.arange(5).repeat(20)}) == []


def test_a_file_with_no_questions_is_named(tmp_path):
    from xmrc_jax.data import DataError, load_specs
    empty = tmp_path / "empty.json"
    empty.write_text('{"version": "1.1", "data": []}')
    with pytest.raises(DataError, match=r"config.data.eval\[0\]: .*empty.json \(de\) has 0 questions"):
        load_specs([dict(path=str(empty), language="de", name="mine")], where="config.data.eval")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "abc", "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": "zzz", "answer_start": 0}]}]}]}]}))
    with pytest.raises(DataError, match=r"has 0 questions \(1 skipped as bad records\)"):
        load_specs([dict(path=str(bad), language="en", name="mine")], skip_bad=True)


def test_a_missing_local_model_folder_is_not_sent_to_the_hub():
    from xmrc_jax.models.hf_io import _resolve, looks_like_path
    assert looks_like_path("/models/xlmr") and looks_like_path("./m") and looks_like_path("a/b/c")
    assert not looks_like_path("xlm-roberta-base") and not looks_like_path("intfloat/multilingual-e5-small")
    with pytest.raises(FileNotFoundError, match="/models/none: no such checkpoint folder"):
        _resolve("/models/none")


def test_handled_long_texts_and_the_missing_torch_print_nothing(tmp_path):
    """Texts and questions longer than the model are cut and counted by the project; neither
    transformers' "Token indices sequence length is longer ..." warning nor its advice that
    PyTorch is missing (never needed here) reaches the console. A fresh process, so that both
    would print if they could."""
    code = (
        "from xmrc_jax.data.features import truncate_questions\n"
        "from xmrc_jax.data.text import encode_texts\n"
        "from xmrc_jax.models import load_tokenizer\n"
        f"tok = load_tokenizer({os.path.join(ROOT, 'data', 'demo', 'tokenizer')!r})\n"
        "long = ' '.join(['word'] * 2000)\n"
        "ids, mask = encode_texts(tok, [long, 'short'], 16)\n"
        "assert mask.sum(1).tolist() == [16, int(mask[1].sum())]\n"
        "assert len(truncate_questions([long], tok, 8)[0]) < len(long)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[transformers]" not in out.stderr and "longer than" not in out.stderr, out.stderr
