"""McCrolin data (sentences, parallel join, article split), the chunked top-k, retrieval metrics,
the frozen teacher in the train step, and a two-round end-to-end run on a tiny model."""

import copy
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from references import brute_ranking, brute_retrieval_metrics
from xmrc_jax.data import DataError, read_squad_file
from xmrc_jax.data.retrieval import (join_parallel, retrieval_sets, split_by_article,
                                     split_sentences, training_tuples)
from xmrc_jax.eval.retrieval_metrics import micro_average, retrieval_metrics, top_k_chunked
from xmrc_jax.models import EncoderConfig, build_model
from xmrc_jax import mesh as sh
from xmrc_jax.tasks import retrieval_qa
from xmrc_jax.train import state as st
from xmrc_jax.train.trainer import build_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo", "retrieval")
LANGS = ("en", "es", "de", "ar", "hi", "vi", "zh")


def _texts(text, spans):
    return [text[s:e] for s, e in spans]


def test_sentence_splitter():
    t = "Mr. Smith went to Washington, D.C. in 1990. He met J. R. R. Tolkien there! Why? (Nobody knows.) Fine."
    assert _texts(t, split_sentences(t)) == [
        "Mr. Smith went to Washington, D.C. in 1990.", "He met J. R. R. Tolkien there!", "Why?",
        "(Nobody knows.)", "Fine."]
    t = "It costs 3.5 dollars, e.g. in the U.S. Army stores. Really."
    assert _texts(t, split_sentences(t)) == ["It costs 3.5 dollars, e.g. in the U.S. Army stores.",
                                             "Really."]
    assert _texts("他出生于北京。后来去了上海！真的吗？是的", split_sentences("他出生于北京。后来去了上海！真的吗？是的")) == \
        ["他出生于北京。", "后来去了上海！", "真的吗？", "是的"]
    t = "यह एक वाक्य है। यह दूसरा है॥ तीसरा"
    assert _texts(t, split_sentences(t)) == ["यह एक वाक्य है।", "यह दूसरा है॥", "तीसरा"]
    t = "هل هذا صحيح؟ نعم"
    assert _texts(t, split_sentences(t)) == ["هل هذا صحيح؟", "نعم"]
    assert split_sentences("   ") == []


def _demo_parallel():
    en, _ = read_squad_file(os.path.join(DEMO, "xquad.en.json"), "en")
    others = {lang: read_squad_file(os.path.join(DEMO, f"xquad.{lang}.json"), lang)[0]
              for lang in LANGS[1:]}
    return en, others


def test_parallel_join_and_answer_sentence_on_shipped_data():
    en, others = _demo_parallel()
    qs, rep = join_parallel("xquad", en, others)
    assert rep.joined == len(en) and not rep.skipped
    assert all(rep.per_language[lang] == len(en) for lang in LANGS[1:])
    for q, ex in zip(qs, en):
        assert q.pr in q.passage
        a = ex.answers[0]
        s0, e0 = q.sentence_spans[q.answer_sentences[0]][0], q.sentence_spans[q.answer_sentences[1]][1]
        assert s0 <= a.start and a.start + len(a.text) <= e0          # PR holds the answer
        assert a.text in q.pr
        # sentences tile the passage: only whitespace between them
        gaps = [q.passage[e:s] for (_, e), (s, _) in zip(q.sentence_spans, q.sentence_spans[1:])]
        assert all(g.strip() == "" for g in gaps)
    cols = training_tuples(qs, LANGS)
    assert len(cols["q_en"]) == 6 * len(qs) and set(cols["language"]) == set(LANGS[1:])


def test_parallel_join_counts_and_rejects():
    en, others = _demo_parallel()
    es = others["es"]
    extra = es[0].__class__(**{**es[0].__dict__, "id": "no-such-id"})
    qs, rep = join_parallel("xquad", en, {"es": es + [extra]})
    assert rep.skipped["es questions with no English counterpart"] == ["no-such-id"]
    assert rep.per_language["es"] == len(es)
    with pytest.raises(DataError, match="occurs twice"):
        join_parallel("xquad", en, {"es": es + es[:1]})
    with pytest.raises(DataError, match="occurs twice"):
        join_parallel("xquad", en + en[:1], {})


def test_split_by_article_is_disjoint_and_deterministic():
    en, others = _demo_parallel()
    qs, _ = join_parallel("xquad", en, others)
    a = split_by_article(qs, (0.5, 0.1, 0.4), seed=3)
    b = split_by_article(qs, (0.5, 0.1, 0.4), seed=3)
    assert [q.id for q in a["test"]] == [q.id for q in b["test"]]
    titles = {k: {q.title for q in v} for k, v in a.items()}
    assert not (titles["train"] & titles["dev"]) and not (titles["train"] & titles["test"]) \
        and not (titles["dev"] & titles["test"])
    assert sum(len(v) for v in a.values()) == len(qs)
    assert len(titles["train"]) == 24 and len(titles["test"]) == 19
    with pytest.raises(ValueError, match="summing to 1"):
        split_by_article(qs, (0.5, 0.5, 0.5))
    rs = retrieval_sets(a["test"], LANGS, "sentence")
    for lang in LANGS:
        for qid, rel in zip(rs.ids[lang], rs.relevant[lang]):
            q = next(x for x in a["test"] if x.id == qid)
            assert q.pr == " ".join(rs.pool[i] for i in rel) or len(rel) == 1 and rs.pool[rel[0]] == q.pr


@pytest.mark.parametrize("n,chunk,k", [(37, 8, 5), (16, 16, 10), (5, 4, 10), (100, 7, 1), (64, 1000, 12)])
def test_top_k_chunked_matches_stable_sort(n, chunk, k):
    rng = np.random.default_rng(n + k)
    # integer-valued embeddings make many exact ties
    q = rng.integers(-2, 3, size=(9, 4)).astype(np.float32)
    p = rng.integers(-2, 3, size=(n, 4)).astype(np.float32)
    scores, idx = top_k_chunked(q, p, k=k, chunk=chunk, similarity="dot")
    ref = brute_ranking(q @ p.T, k)
    np.testing.assert_array_equal(np.asarray(idx), ref)
    full = q @ p.T
    want = np.where(ref >= 0, np.take_along_axis(full, np.maximum(ref, 0), 1), -np.inf)
    np.testing.assert_array_equal(np.asarray(scores), want)


def test_top_k_chunked_cosine_and_pool_size():
    rng = np.random.default_rng(0)
    q, p = rng.normal(size=(6, 8)), rng.normal(size=(30, 8))
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (p / np.linalg.norm(p, axis=1, keepdims=True)).T
    _, idx = top_k_chunked(q, p, k=4, chunk=7, similarity="cosine")
    np.testing.assert_array_equal(np.asarray(idx), brute_ranking(cos, 4))
    _, idx = top_k_chunked(q, p, k=4, chunk=7, similarity="cosine", pool_size=20)
    np.testing.assert_array_equal(np.asarray(idx), brute_ranking(cos[:, :20], 4))
    with pytest.raises(ValueError, match="similarity"):
        top_k_chunked(q, p, k=4, similarity="l2")


def test_retrieval_metrics_match_brute_force_with_ties_and_missing_relevant():
    rng = np.random.default_rng(1)
    for trial in range(20):
        nq, n = rng.integers(1, 30), rng.integers(1, 40)
        scores = rng.integers(0, 4, size=(nq, n)).astype(np.float32)      # heavy ties
        relevant = [rng.choice(n, size=min(n, rng.integers(0, 3)), replace=False) for _ in range(nq)]
        relevant[0] = np.array([], np.int64)                               # no relevant at all
        _, idx = top_k_chunked(scores, np.eye(n, dtype=np.float32), k=10, chunk=6)
        got = retrieval_metrics(np.asarray(idx), relevant)
        want = brute_retrieval_metrics(scores, relevant)
        for key, v in want.items():
            assert got[key] == pytest.approx(v, abs=1e-9), (trial, key)
        assert got["no_relevant"] >= 1 and got["queries"] == nq


def test_retrieval_metrics_hand_example_and_micro_average():
    ranked = np.array([[3, 1, 2] + [-1] * 7, [0, 5, 9] + [-1] * 7, [4, 4, 4] + [-1] * 7])
    m = retrieval_metrics(ranked, [np.array([1]), np.array([0, 9]), np.array([], int)])
    assert m["R@1"] == pytest.approx(100 / 3) and m["R@10"] == pytest.approx(200 / 3)
    assert m["MRR@10"] == pytest.approx(100 * (0.5 + 1.0) / 3)
    avg = micro_average({"a": dict(m), "b": {**m, "R@1": 100.0, "queries": 1}})
    assert avg["R@1"] == pytest.approx((100 / 3 * 3 + 100) / 4) and avg["queries"] == 4
    with pytest.raises(ValueError, match="columns"):
        retrieval_metrics(ranked[:, :5], [np.array([1])] * 3)


def test_retrieval_metrics_agree_with_trec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(25, 40))          # distinct scores: trec_eval breaks ties by doc id
    relevant = [rng.choice(40, size=rng.integers(0, 3), replace=False) for _ in range(25)]
    _, idx = top_k_chunked(scores.astype(np.float32), np.eye(40, dtype=np.float32), k=10)
    got = retrieval_metrics(np.asarray(idx), relevant)
    qrel = {f"q{i}": {f"d{j}": 1 for j in rel} or {"none": 1} for i, rel in enumerate(relevant)}
    run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in np.argsort(-scores[i])[:10]}
           for i in range(25)}
    res = pytrec_eval.RelevanceEvaluator(qrel, {"recip_rank", "success"}).evaluate(run)
    assert got["R@1"] == pytest.approx(100 * np.mean([r["success_1"] for r in res.values()]))
    assert got["R@10"] == pytest.approx(100 * np.mean([r["success_10"] for r in res.values()]))
    assert got["MRR@10"] == pytest.approx(100 * np.mean([r["recip_rank"] for r in res.values()]))


TINY = EncoderConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=40)


def _tuple_batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for k, L in (("q_en", 8), ("q_ne", 8), ("d", 16), ("pr", 10)):
        ids = rng.integers(3, 60, size=(n, L)).astype(np.int32)
        mask = np.ones((n, L), np.int32)
        mask[:, L - 2:] = 0
        out[f"{k}_ids"], out[f"{k}_mask"] = ids, mask
    return out


def test_teacher_is_frozen_not_donated_and_student_learns():
    mesh = sh.make_mesh({"data": 2}, jax.devices()[:2])
    module = build_model(TINY, "embed")
    tx, _ = st.make_optimizer(1e-2, 10, warmup_ratio=0.0)
    state, shardings = st.create_state(module, tx, mesh, jax.random.PRNGKey(0))
    teacher = jax.device_put(jax.tree_util.tree_map(jnp.array, state.params["model"]),
                             shardings.params["model"])
    before = jax.device_get(teacher)
    obj = retrieval_qa.mccrolin_objective(module, (1.0,) * 3, (1.0,) * 4, (1.0,) * 2, (1.0,) * 2,
                                          0.05, True)
    state, _, fn = build_step(module, tx, mesh, obj, _tuple_batch(), rng=jax.random.PRNGKey(0),
                              init_params=before, consts=(teacher,))
    losses = []
    for i in range(4):
        state, m = fn(state, sh.put_batch(_tuple_batch(seed=i % 2), mesh))
        losses.append(float(m["loss"]))
        assert {"xlc", "rank", "ha", "rank_qen_qne", "ha_pr_qne"} <= set(m)
    after = jax.device_get(teacher)            # still readable: not donated
    for a, b in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(after)):
        np.testing.assert_array_equal(a, b)
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(before),
                                                      jax.tree_util.tree_leaves(jax.device_get(state.params["model"])))]
    assert all(np.isfinite(losses)) and any(moved)


def test_two_round_end_to_end_teacher_update(tmp_path, monkeypatch, capsys):
    import sys
    sys.path.insert(0, ROOT)
    from configs import mccrolin as mc_config
    from xmrc_jax.stages import common, run_stages
    from xmrc_jax.train import trainer

    c = mc_config.get_config("demo")
    c.model.arch.update(hidden_size=32, num_hidden_layers=1, intermediate_size=64,
                        num_attention_heads=2)
    c.train.max_steps = 2
    c.train.batch_size = 8
    c.mccrolin.rounds = 2
    c.retrieval.languages = ("en", "es", "zh")
    c.retrieval.max_passage_length = 64
    c.retrieval.max_sentence_length = 32
    c.retrieval.max_query_length = 24
    calls = []
    real = trainer.run_training

    def spy(train_cfg, job):
        out = real(train_cfg, job)
        calls.append((job.name, jax.device_get(job.init_params), jax.device_get(job.consts[0]),
                      out))
        return out
    monkeypatch.setattr(common, "run_training", spy)
    run_stages(c, str(tmp_path))
    assert [name for name, *_ in calls] == ["mccrolin/round_1", "mccrolin/round_2"]
    # round 2's teacher and student start are round 1's trained student (teacher <- student)
    leaves = jax.tree_util.tree_leaves
    for a, b, s in zip(leaves(calls[1][2]), leaves(calls[0][3]["model"]), leaves(calls[1][1])):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(s, b)
    # round 1 started from the initial model, and ended somewhere else
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(calls[0][2]), leaves(calls[0][3]["model"])))
    rounds = json.load(open(tmp_path / "mccrolin" / "rounds.json"))
    assert rounds["best_round"] in (1, 2) and set(rounds["dev"]) == {"0", "1", "2"}
    res = json.load(open(tmp_path / "retrieval" / "results.json"))["results"]
    assert set(res) == {"initial", f"McCrolin (round {rounds['best_round']})"}
    for per_model in res.values():
        assert set(per_model) == {"passage", "sentence"}
        assert set(per_model["passage"]) == {"en", "es", "zh", "avg"}
    assert (tmp_path / "retrieval" / "results.png").exists()
    assert "passage-level retrieval" in capsys.readouterr().out
    # a second run skips everything
    calls.clear()
    run_stages(c, str(tmp_path))
    assert calls == []


def test_no_teacher_update_keeps_the_initial_teacher(tmp_path, monkeypatch):
    import sys
    sys.path.insert(0, ROOT)
    from configs import mccrolin as mc_config
    from xmrc_jax.models import read_state_dict
    from xmrc_jax.stages import common, run_stages
    from xmrc_jax.train import trainer

    c = mc_config.get_config("demo")
    c.stages = ("mccrolin",)
    c.model.arch.update(hidden_size=16, num_hidden_layers=1, intermediate_size=32,
                        num_attention_heads=2)
    c.train.max_steps, c.train.batch_size, c.mccrolin.rounds = 2, 8, 2
    c.mccrolin.teacher_update = False
    c.retrieval.languages = ("en", "es")
    c.retrieval.max_passage_length, c.retrieval.max_sentence_length = 64, 32
    calls = []
    real = trainer.run_training

    def spy(train_cfg, job):
        out = real(train_cfg, job)
        calls.append((jax.device_get(job.init_params), jax.device_get(job.consts[0]), out,
                      {k: np.asarray(v) for k, v in job.arrays.items() if k.endswith("_group")}))
        return out
    monkeypatch.setattr(common, "run_training", spy)
    run_stages(c, str(tmp_path))
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(calls[1][1]), leaves(calls[0][1])):       # both rounds: round 0
        np.testing.assert_array_equal(a, b)
    for a, b in zip(leaves(calls[1][0]), leaves(calls[0][2]["model"])):   # student continues
        np.testing.assert_array_equal(a, b)
    assert len(read_state_dict(str(tmp_path / "mccrolin" / "round_0" / "hf"))) > 0
    groups = calls[0][3]
    assert set(groups) == {"q_group", "d_group"}
    assert len(np.unique(groups["d_group"])) < len(np.unique(groups["q_group"]))  # ~5 q / passage

    # Round 1 does not depend on teacher_update or rounds (its teacher is round 0 either way):
    # this run again, taking round 1 from a one-round teacher-update run, trains round 2 only
    # and ends where the run above ended, bit for bit, with the same fingerprint.
    from xmrc_jax.data import DataError
    b, a, taker = str(tmp_path), str(tmp_path / "a"), str(tmp_path / "c")
    source = copy.deepcopy(c)
    source.mccrolin.teacher_update, source.mccrolin.rounds = True, 1
    run_stages(source, a)
    calls.clear()
    take = copy.deepcopy(c)
    take.mccrolin.first_round_from = a
    run_stages(take, taker)
    assert len(calls) == 1                                  # round 2 only
    for r in (1, 2):
        want, got = (read_state_dict(os.path.join(d, "mccrolin", f"round_{r}", "hf"))
                     for d in (b, taker))
        assert set(want) == set(got)
        for k in want:
            np.testing.assert_array_equal(want[k], got[k])
    rb, rc = (json.load(open(os.path.join(d, "mccrolin", "rounds.json"))) for d in (b, taker))
    assert rc.pop("first_round_from") == a and rc == rb
    fp = [json.load(open(os.path.join(d, "mccrolin", "artifact.json")))["fingerprint"]
          for d in (b, taker)]
    assert fp[0] == fp[1] and not os.path.exists(os.path.join(taker, "mccrolin", "round_1",
                                                               "checkpoints"))
    bad = copy.deepcopy(take)
    bad.train.learning_rate *= 10
    with pytest.raises(DataError, match="first_round_from: .* other settings .*train.learning_rate"):
        run_stages(bad, str(tmp_path / "d"))
    bad.train.learning_rate, bad.mccrolin.first_round_from = c.train.learning_rate, b + "/none"
    with pytest.raises(DataError, match="has no finished McCrolin round 1"):
        run_stages(bad, str(tmp_path / "e"))
    assert len(calls) == 1


def test_document_level_and_sentences_with_context():
    en, _ = read_squad_file(os.path.join(ROOT, "data", "demo", "xquad.en.json"), "en")
    es, _ = read_squad_file(os.path.join(ROOT, "data", "demo", "xquad.es.json"), "es")
    qs, _ = join_parallel("xquad", en, {"es": es})
    docs = retrieval_sets(qs, ("es",), "document")
    titles = list(dict.fromkeys(q.title for q in qs))
    assert len(docs.pool) == len(titles)
    for q, rel, text in zip(qs, docs.relevant["es"], docs.queries["es"]):
        assert list(rel) == [titles.index(q.title)] and q.passage in docs.pool[rel[0]]
    plain = retrieval_sets(qs, ("es",), "sentence")
    ctx = retrieval_sets(qs, ("es",), "sentence", sentence_context=True)
    assert len(plain.pool) == len(ctx.pool)
    assert all(c.startswith(p) and len(c) > len(p) for p, c in zip(plain.pool, ctx.pool))
    with pytest.raises(ValueError, match="retrieval level"):
        retrieval_sets(qs, ("es",), "chapter")


def test_out_of_domain_test_split():
    import sys
    import types
    sys.path.insert(0, ROOT)
    from configs import mccrolin as mc_config
    from xmrc_jax.stages import mccrolin as stage, normalize
    c = mc_config.get_config("demo")
    c.data.parallel_test = [dict(path=os.path.join(ROOT, "data", "demo", f"xquad.{lang}.json"),
                                 language=lang, name="xquad_other") for lang in ("en", "es")]
    ctx = types.SimpleNamespace(config=normalize(c), cached=lambda key, build: build())
    splits = stage.parallel_splits(ctx)
    assert {q.dataset for q in splits["test"]} == {"xquad_other"}
    assert {q.dataset for q in splits["train"] + splits["dev"]} == {"xquad"}
    en, _ = read_squad_file(os.path.join(ROOT, "data", "demo", "xquad.en.json"), "en")
    assert len(splits["test"]) == len(en)


def test_embed_texts_batches_by_length_and_matches_one_text_at_a_time():
    """Length-sorted batches cut to a multiple of 32 tokens, a padded last batch, rows put back
    in input order: each embedding equals that text embedded alone at full length."""
    from configs.default import get_base_config
    from xmrc_jax.eval.retrieval import embed_texts
    from xmrc_jax.models import init_params, load_tokenizer
    from test_stages import DEMO
    tok = load_tokenizer(os.path.join(DEMO, "tokenizer"))
    module = build_model(EncoderConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32,
                                       max_position_embeddings=128), "embed")
    params = init_params(module, jax.random.PRNGKey(0))
    words = "the answer was found in a passage about rivers and old towns".split()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 60, size=21)]
    r = get_base_config().retrieval
    r.update(max_passage_length=96, passage_prefix="passage: ", eval_batch_size=8)
    mesh = sh.make_mesh({"data": 2}, jax.devices()[:2])
    got = embed_texts(module, params, tok, mesh, texts, "passage", r, normalize=True)
    enc = tok(["passage: " + t for t in texts], max_length=96, truncation=True,
              padding="max_length", return_tensors="np")
    assert enc["attention_mask"].sum(1).max() > 32          # more than one width compiles
    for i in range(len(texts)):
        want = retrieval_qa.embed(module, params, enc["input_ids"][i:i + 1],
                                  enc["attention_mask"][i:i + 1], True)
        np.testing.assert_allclose(got[i], np.asarray(want)[0], atol=2e-6, rtol=1e-5)

