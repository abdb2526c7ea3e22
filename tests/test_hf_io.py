"""Parity with PyTorch transformers through committed fixtures (tests/make_parity_fixtures.py)."""

import json
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xmrc_jax.models import (EncoderConfig, build_model, init_params, load_pretrained,
                             position_ids_for, read_state_dict, save_pretrained)

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "parity")
NAMES = ["xlmr_qa", "bert_qa", "bert_encoder"]


def _expected(name):
    return dict(np.load(os.path.join(FIX, name, "expected.npz")))


def _run(module, params, e, **kw):
    return module.apply({"params": params}, jnp.asarray(e["input_ids"]),
                        jnp.asarray(e["attention_mask"]), jnp.asarray(e["token_type_ids"]), **kw)


@pytest.mark.parametrize("kernels", ["cpu", "xla"])
@pytest.mark.parametrize("name", NAMES)
def test_hidden_states_and_logits_match_pytorch(name, kernels):
    e = _expected(name)
    head = "span" if "start_logits" in e else None
    module, params = load_pretrained(os.path.join(FIX, name), head=head, kernels=kernels)
    assert module.kernels == kernels
    out = _run(module, params, e, output_hidden_states=True)
    n_layers = len([k for k in e if k.startswith("hidden_")])
    assert len(out.hidden_states) == n_layers
    mask = e["attention_mask"].astype(bool)
    for j in range(n_layers):
        # Padded positions are compared too: HF computes them the same way.
        np.testing.assert_allclose(np.asarray(out.hidden_states[j]), e[f"hidden_{j}"], atol=1e-5,
                                   rtol=0, err_msg=f"{name} hidden_{j}")
    if head == "span":
        for k in ("start_logits", "end_logits"):
            np.testing.assert_allclose(np.asarray(getattr(out, k))[mask], e[k][mask], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["xlmr_qa", "bert_qa"])
def test_export_round_trip_reproduces_checkpoint_and_logits(name, tmp_path):
    e = _expected(name)
    module, params = load_pretrained(os.path.join(FIX, name), head="span")
    save_pretrained(module, params, str(tmp_path))
    original = read_state_dict(os.path.join(FIX, name))
    exported = read_state_dict(str(tmp_path))
    assert sorted(exported) == sorted(original)
    for k in original:
        np.testing.assert_array_equal(exported[k], original[k], err_msg=k)
    module2, params2 = load_pretrained(str(tmp_path), head="span")
    out = _run(module2, params2, e)
    np.testing.assert_allclose(np.asarray(out.start_logits), np.asarray(_run(module, params, e).start_logits),
                               atol=0, rtol=0)
    cfg = json.load(open(tmp_path / "config.json"))
    assert cfg["architectures"][0].endswith("ForQuestionAnswering")


def test_roberta_position_ids_follow_padding():
    cfg = EncoderConfig(model_type="xlm-roberta", vocab_size=10, hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=8, pad_token_id=1)
    ids = jnp.array([[0, 5, 6, 2, 1, 1], [0, 1, 7, 2, 1, 1]])
    # Hugging Face: cumulative count of non-pad tokens, offset by padding_idx; pads get padding_idx.
    np.testing.assert_array_equal(position_ids_for(cfg, ids),
                                  [[2, 3, 4, 5, 1, 1], [2, 1, 3, 4, 1, 1]])
    bert = EncoderConfig(model_type="bert", vocab_size=10, hidden_size=8, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=8, type_vocab_size=2)
    np.testing.assert_array_equal(position_ids_for(bert, ids)[1], np.arange(6))


def test_missing_encoder_weight_is_an_error_naming_the_key(tmp_path):
    from safetensors.numpy import save_file
    src = os.path.join(FIX, "xlmr_qa")
    tensors = read_state_dict(src)
    key = "roberta.encoder.layer.1.attention.self.value.weight"
    del tensors[key]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    shutil.copy(os.path.join(src, "config.json"), tmp_path / "config.json")
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.attention\.self\.value\.weight"):
        load_pretrained(str(tmp_path), head="span")


def test_wrong_shape_is_an_error_naming_the_key(tmp_path):
    from safetensors.numpy import save_file
    src = os.path.join(FIX, "bert_qa")
    tensors = read_state_dict(src)
    tensors["bert.encoder.layer.0.intermediate.dense.weight"] = np.zeros((3, 3), np.float32)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    shutil.copy(os.path.join(src, "config.json"), tmp_path / "config.json")
    with pytest.raises(ValueError, match="intermediate.dense.weight"):
        load_pretrained(str(tmp_path), head="span")


def test_encoder_only_checkpoint_with_span_head_says_head_initialised(caplog):
    with caplog.at_level(logging.WARNING, logger="xmrc_jax"):
        module, params = load_pretrained(os.path.join(FIX, "bert_encoder"), head="span")
    assert "qa_outputs.weight" in caplog.text and "initialised" in caplog.text
    e = _expected("bert_encoder")
    out = _run(module, params, e)
    np.testing.assert_allclose(np.asarray(out.last_hidden_state), e["hidden_2"], atol=1e-5)
    assert out.start_logits.shape == e["input_ids"].shape


def test_embed_head_mean_pools_over_mask():
    e = _expected("bert_encoder")
    module, params = load_pretrained(os.path.join(FIX, "bert_encoder"), head="embed")
    out = _run(module, params, e)
    m = e["attention_mask"][..., None]
    ref = (e["hidden_2"] * m).sum(1) / m.sum(1)
    np.testing.assert_allclose(np.asarray(out.embeddings), ref, atol=1e-5)
    cls_module, _ = load_pretrained(os.path.join(FIX, "bert_encoder"), head="embed", pooling="cls")
    out = _run(cls_module, params, e)
    np.testing.assert_allclose(np.asarray(out.embeddings), e["hidden_2"][:, 0], atol=1e-5)
    assert out.pooler_output is not None   # the checkpoint's pooler is kept for export


def test_prefix_free_and_old_layernorm_names_load(tmp_path):
    from safetensors.numpy import save_file
    src = os.path.join(FIX, "xlmr_qa")
    renamed = {}
    for k, v in read_state_dict(src).items():
        k = k.replace("roberta.", "")
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[k] = v
    save_file(renamed, str(tmp_path / "model.safetensors"))
    shutil.copy(os.path.join(src, "config.json"), tmp_path / "config.json")
    e = _expected("xlmr_qa")
    module, params = load_pretrained(str(tmp_path), head="span")
    np.testing.assert_allclose(np.asarray(_run(module, params, e).last_hidden_state), e["hidden_2"],
                               atol=1e-5)


def test_unknown_local_name_gives_offline_message():
    with pytest.raises(FileNotFoundError, match="neither a local checkpoint folder") as e:
        load_pretrained("no-such-org/no-such-model-xyz", head="span")
    assert "hf download no-such-org/no-such-model-xyz --local-dir DIR" in str(e.value)
    assert "huggingface-cli" not in str(e.value)        # huggingface_hub 1.x no longer ships it


def test_too_long_input_is_refused():
    cfg = EncoderConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=8, max_position_embeddings=10)
    module = build_model(cfg)
    params = init_params(module, jax.random.PRNGKey(0))
    ids = jnp.zeros((1, 9), jnp.int32)
    with pytest.raises(ValueError, match="exceeds the model's maximum of 8"):
        module.apply({"params": params}, ids, jnp.ones_like(ids))


def test_bf16_compute_stays_close_to_fp32():
    e = _expected("xlmr_qa")
    module, params = load_pretrained(os.path.join(FIX, "xlmr_qa"), head="span", dtype=jnp.bfloat16)
    out = _run(module, params, e)
    assert out.last_hidden_state.dtype == jnp.bfloat16
    assert params["encoder"]["embeddings"]["word_embeddings"]["embedding"].dtype == jnp.float32
    mask = e["attention_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(out.start_logits)[mask], e["start_logits"][mask], atol=0.1)


def test_tokenizer_vocabulary_must_match_the_model():
    from xmrc_jax.models import load_tokenizer
    folder = os.path.join(os.path.dirname(FIX), "..", "..", "data", "demo", "tokenizer")
    tok = load_tokenizer(folder, vocab_size=8001)
    assert tok.is_fast and tok.pad_token_id == 1 and tok.cls_token_id == 0 and tok.sep_token_id == 2
    load_tokenizer(folder, vocab_size=8040)             # a slightly padded embedding table is fine
    with pytest.raises(ValueError, match="do not belong together"):
        load_tokenizer(folder, vocab_size=250002)
    with pytest.raises(ValueError, match="do not belong together"):
        load_tokenizer(folder, vocab_size=5)


def test_tokenizer_encodes_pairs_as_its_tokenizer_json_says():
    """What transformers < 5.6 gets wrong (found by installing each 5.x release): the pair
    template's two separators and offsets without the leading space."""
    from xmrc_jax.models import load_tokenizer
    from xmrc_jax.models.hf_io import check_transformers_version
    folder = os.path.join(os.path.dirname(FIX), "..", "..", "data", "demo", "tokenizer")
    tok = load_tokenizer(folder, vocab_size=8001)
    question, context = "Who wrote it?", "It was written by Ada in 1843."
    enc = tok(question, context, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    q_ids = tok(question, add_special_tokens=False)["input_ids"]
    c_ids = tok(context, add_special_tokens=False)["input_ids"]
    assert ids == [0] + q_ids + [2, 2] + c_ids + [2]
    second = ids.index(2) + 2
    for (a, b), i in zip(offsets[second:-1], range(second, len(ids) - 1)):
        assert context[a:b] == context[a:b].strip() and b > a, (i, a, b)
    for version in ("5.0.0", "5.2.0", "5.5.4"):
        with pytest.raises(ValueError, match=r"too old.*transformers>=5.6"):
            check_transformers_version(version)
    check_transformers_version("5.6.0")
    check_transformers_version("5.24.0.dev0")


def test_dropout_rate_expectation_and_bit_uniformity():
    import jax
    import jax.numpy as jnp
    from xmrc_jax.models.cpu_kernels import Dropout, dropout_bits

    x = jnp.ones((64, 1000))
    d = Dropout(0.1)
    y = d.apply({}, x, False, rngs={"dropout": jax.random.PRNGKey(0)})
    kept = np.asarray(y != 0)
    assert abs(kept.mean() - 0.9) < 0.005                       # 64k Bernoulli(0.9) draws
    assert abs(float(y.mean()) - 1.0) < 0.01                     # expectation preserved
    np.testing.assert_allclose(np.asarray(y)[kept], 65536 / 58982, rtol=1e-6)
    assert d.apply({}, x, True) is x                             # deterministic: identity
    y2 = d.apply({}, x, False, rngs={"dropout": jax.random.PRNGKey(1)})
    assert 0.15 < np.mean(kept != np.asarray(y2 != 0)) < 0.21     # independent masks (~0.18)
    y3 = d.apply({}, x, False, rngs={"dropout": jax.random.PRNGKey(0)})
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y3))   # reproducible
    # the hashed bits look uniform: every byte value about equally often, bits unbiased
    bits = np.asarray(dropout_bits(jax.random.PRNGKey(3), 1 << 16))
    counts = np.bincount(bits.view(np.uint8), minlength=256)
    expected = bits.size * 4 / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 340                                             # df 255: p ~ 0.0003
    per_bit = ((bits[:, None] >> np.arange(32, dtype=np.uint32)) & 1).mean(0)
    assert np.abs(per_bit - 0.5).max() < 0.01


def test_exports_carry_max_length_and_sentence_transformers_metadata(tmp_path):
    from xmrc_jax.models import load_tokenizer
    demo = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "demo", "tokenizer")
    tok = load_tokenizer(demo)
    cfg = EncoderConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=258)
    span = build_model(cfg, "span")
    save_pretrained(span, init_params(span, jax.random.PRNGKey(0)), str(tmp_path / "span"), tok)
    tc = json.load(open(tmp_path / "span" / "tokenizer_config.json"))
    assert tc["model_max_length"] == 256 == cfg.max_tokens          # 258 positions - pad - 1
    assert not (tmp_path / "span" / "modules.json").exists()
    emb = build_model(cfg, "embed", pooling="mean")
    save_pretrained(emb, init_params(emb, jax.random.PRNGKey(0)), str(tmp_path / "emb"), tok,
                    {"query": "query: ", "passage": "passage: "})
    pooling = json.load(open(tmp_path / "emb" / "1_Pooling" / "config.json"))
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert pooling["word_embedding_dimension"] == 16
    st = json.load(open(tmp_path / "emb" / "config_sentence_transformers.json"))
    assert st["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert json.load(open(tmp_path / "emb" / "sentence_bert_config.json"))["max_seq_length"] == 256
    assert [m["type"].split(".")[-1] for m in json.load(open(tmp_path / "emb" / "modules.json"))] == [
        "Transformer", "Pooling"]
    # the pooler transformers' BertModel / XLMRobertaModel always build is written (initialised
    # as transformers does; embeddings never use it), so AutoModel reports no missing weights
    from safetensors.numpy import load_file
    t = load_file(str(tmp_path / "emb" / "model.safetensors"))
    assert t["pooler.dense.weight"].shape == (16, 16) and not t["pooler.dense.bias"].any()
    assert 0.01 < t["pooler.dense.weight"].std() < 0.03                 # initializer_range 0.02
    ids = jnp.asarray(tok(["query: a b c", "passage: d"], padding=True)["input_ids"])
    mask = (ids != tok.pad_token_id).astype(jnp.int32)
    back, back_params = load_pretrained(str(tmp_path / "emb"), "embed")
    assert not back.add_pooler and "pooler" not in back_params["encoder"]   # a placeholder only
    want = emb.apply({"params": init_params(emb, jax.random.PRNGKey(0))}, ids, mask, jnp.zeros_like(ids))
    got = back.apply({"params": back_params}, ids, mask, jnp.zeros_like(ids))
    np.testing.assert_allclose(np.asarray(got.embeddings), np.asarray(want.embeddings), atol=1e-6)
    torch = pytest.importorskip("torch")
    from transformers import AutoModel
    model, info = AutoModel.from_pretrained(str(tmp_path / "emb"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(np.asarray(ids)), attention_mask=torch.as_tensor(np.asarray(mask)))
    m = np.asarray(mask)[..., None]
    pooled = (out.last_hidden_state.numpy() * m).sum(1) / m.sum(1)       # mean pooling
    np.testing.assert_allclose(pooled, np.asarray(want.embeddings), atol=1e-5)
    st_lib = pytest.importorskip("sentence_transformers")
    model = st_lib.SentenceTransformer(str(tmp_path / "emb"), device="cpu")
    got = model.encode(["a b c", "d"], prompt_name="query", convert_to_numpy=True)
    q = tok(["query: a b c", "query: d"], padding=True)
    q_ids = jnp.asarray(q["input_ids"])
    q_mask = jnp.asarray(q["attention_mask"])
    want_q = emb.apply({"params": init_params(emb, jax.random.PRNGKey(0))}, q_ids, q_mask,
                       jnp.zeros_like(q_ids)).embeddings
    np.testing.assert_allclose(got, np.asarray(want_q), atol=1e-5)
