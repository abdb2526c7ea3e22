"""Writes the PyTorch reference fixtures under tests/fixtures/parity/ (needs torch + transformers).

    python tests/make_parity_fixtures.py

For each tiny architecture it builds a random ``transformers`` model, perturbs every tensor (so
LayerNorm scales and biases are not the trivial 1 / 0 that would hide a swapped key), saves the
checkpoint with ``save_pretrained`` and the model's hidden states and logits on fixed padded
inputs (``expected.npz``). It then loads each checkpoint with ``xmrc_jax.models.load_pretrained``,
exports it again with ``save_pretrained`` and loads the export back into ``transformers``: the
maximum differences are printed and written to ``parity/report.json``.
The tests (tests/test_hf_io.py) read the fixtures and do not need torch.
"""

import json
import os
import sys
import tempfile

import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "parity")

SPECS = {
    # name: (transformers class, config kwargs)
    "xlmr_qa": ("XLMRobertaForQuestionAnswering", dict(
        vocab_size=123, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=40, type_vocab_size=1, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, hidden_act="gelu")),
    "bert_qa": ("BertForQuestionAnswering", dict(
        vocab_size=157, hidden_size=48, num_hidden_layers=3, num_attention_heads=6,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, pad_token_id=0,
        layer_norm_eps=1e-12, hidden_act="gelu")),
    "bert_encoder": ("BertModel", dict(
        vocab_size=211, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=96, max_position_embeddings=32, type_vocab_size=2, pad_token_id=0,
        layer_norm_eps=1e-12, hidden_act="gelu_new")),
}


def make_inputs(vocab: int, pad: int, type_vocab: int, seed: int):
    rng = np.random.default_rng(seed)
    batch, seq = 3, 12
    lengths = [12, 9, 5]
    ids = rng.integers(3, vocab, size=(batch, seq))
    mask = np.zeros((batch, seq), np.int64)
    types = np.zeros((batch, seq), np.int64)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        ids[b, n:] = pad
        if type_vocab > 1:
            types[b, n // 2:n] = 1
    return ids.astype(np.int64), mask, types


def main():
    from xmrc_jax.models import load_pretrained, save_pretrained
    import jax.numpy as jnp

    os.makedirs(OUT, exist_ok=True)
    report = {"transformers": transformers.__version__, "torch": torch.__version__, "models": {}}
    for i, (name, (cls_name, kw)) in enumerate(SPECS.items()):
        torch.manual_seed(i)
        config_cls = (transformers.XLMRobertaConfig if cls_name.startswith("XLMRoberta")
                      else transformers.BertConfig)
        model = getattr(transformers, cls_name)(config_cls(**kw)).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        folder = os.path.join(OUT, name)
        model.save_pretrained(folder, safe_serialization=True)
        ids, mask, types = make_inputs(kw["vocab_size"], kw["pad_token_id"], kw["type_vocab_size"], i)
        with torch.no_grad():
            out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                        token_type_ids=torch.tensor(types), output_hidden_states=True)
        arrays = dict(input_ids=ids, attention_mask=mask, token_type_ids=types)
        for j, h in enumerate(out.hidden_states):
            arrays[f"hidden_{j}"] = h.numpy()
        if hasattr(out, "start_logits"):
            arrays["start_logits"] = out.start_logits.numpy()
            arrays["end_logits"] = out.end_logits.numpy()
        np.savez_compressed(os.path.join(folder, "expected.npz"), **arrays)

        # Round trip: load here, export, load the export in transformers, compare.
        head = "span" if "start_logits" in arrays else None
        module, params = load_pretrained(folder, head=head)
        ours = module.apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask),
                            jnp.asarray(types))
        entry = {"class": cls_name,
                 "jax_vs_torch_hidden_max_abs": float(np.max(np.abs(
                     np.asarray(ours.last_hidden_state) - arrays[f"hidden_{len(out.hidden_states) - 1}"])))}
        with tempfile.TemporaryDirectory() as tmp:
            save_pretrained(module, params, tmp)
            auto = (transformers.AutoModelForQuestionAnswering if head == "span"
                    else transformers.AutoModel)
            back, info = auto.from_pretrained(tmp, output_loading_info=True)
            back.eval()
            with torch.no_grad():
                again = back(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                             token_type_ids=torch.tensor(types))
            entry["export_missing_keys"] = sorted(info["missing_keys"])
            entry["export_unexpected_keys"] = sorted(info["unexpected_keys"])
            entry["export_hidden_max_abs"] = float(np.max(np.abs(
                again.last_hidden_state.numpy() - arrays[f"hidden_{len(out.hidden_states) - 1}"])) if
                hasattr(again, "last_hidden_state") and again.last_hidden_state is not None else 0.0)
            if head == "span":
                entry["export_logits_max_abs"] = float(max(
                    np.max(np.abs(again.start_logits.numpy() - arrays["start_logits"])),
                    np.max(np.abs(again.end_logits.numpy() - arrays["end_logits"]))))
                entry["jax_vs_torch_logits_max_abs"] = float(max(
                    np.max(np.abs(np.asarray(ours.start_logits) - arrays["start_logits"])),
                    np.max(np.abs(np.asarray(ours.end_logits) - arrays["end_logits"]))))
        report["models"][name] = entry
        print(name, json.dumps(entry))
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
