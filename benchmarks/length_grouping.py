"""Length-grouped training batches against batches padded to ``max_seq_length``, in one run.

    python benchmarks/length_grouping.py --model /tmp/e5/model [--steps 16 --batch 32 --seq 256]

The replication's real training windows: the multilingual-e5-small tokenizer (XLM-R vocabulary)
on the shipped SQuAD-format file ``data/demo/train_en.json`` (1,203 English SQuAD questions),
windows of 256 tokens with stride 128, as ``configs/replication.py`` makes them. A fixed sample
of ``steps x batch`` of those windows is trained for one pass either way with L_mrc, from the
same initial weights (``--model``: e5-small's, else a random initialisation of its shape):

- examples/s in steady state (every shape compiled beforehand), and with compilation counted;
- the number of compiled shapes and their compile time;
- the mean padded fraction of token positions over the whole file's epoch and the sample;
- the loss after the pass, on a fixed set of held-out windows (not in the sample), beside a
  second padded pass with another seed (the noise a changed batch composition is measured
  against).

Results: benchmarks/results/length_grouping.json (summarised in benchmarks/RESULTS.md).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import ROOT, machine, save  # noqa: E402
from xmrc_jax import mesh as sh  # noqa: E402
from xmrc_jax.data import TrainIterator, build_features, read_squad_file  # noqa: E402
from xmrc_jax.losses import mrc_loss  # noqa: E402
from xmrc_jax.models import EncoderConfig, build_model, load_pretrained, load_tokenizer  # noqa: E402
from xmrc_jax.tasks import span_qa  # noqa: E402
from xmrc_jax.train import state as st  # noqa: E402
from xmrc_jax.train.trainer import build_step  # noqa: E402

E5_SMALL = dict(vocab_size=250037, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=1536, max_position_embeddings=514, model_type="bert",
                type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0)


def windows(tokenizer, seq, stride, path):
    examples, _ = read_squad_file(path, "en")
    feats = build_features(examples, tokenizer, seq, stride, 64)
    return {k: feats[k] for k in span_qa.TRAIN_KEYS}


def held_out_loss(module, params, arrays, mesh, batch=32):
    """Mean L_mrc (no dropout) over ``arrays`` at full length."""
    @jax.jit
    def loss(p, b):
        out = span_qa._forward(module, {"model": p}, b, None, deterministic=True)
        return mrc_loss(out.start_logits, out.end_logits, b["attention_mask"].astype(bool),
                        b["start_positions"], b["end_positions"]).sum()
    n = len(arrays["input_ids"]) // batch * batch
    total = sum(float(loss(params, sh.put_batch({k: v[i:i + batch] for k, v in arrays.items()},
                                                 mesh))) for i in range(0, n, batch))
    return total / n


def one_pass(module, init, arrays, args, mesh, multiple, seed):
    """Trains one pass over ``arrays``; returns timings, shapes and the final parameters."""
    it = TrainIterator(arrays, args.batch, seed=seed, length_multiple=multiple,
                       sequence_keys=span_qa.SEQUENCE_KEYS if multiple else ())
    tx, _ = st.make_optimizer(args.lr, it.batches_per_epoch, 0.1)
    example = {k: v[:args.batch] for k, v in arrays.items()}
    t0 = time.perf_counter()
    state, _, step = build_step(module, tx, mesh, span_qa.mrc_objective(module), example,
                                rng=jax.random.PRNGKey(seed), init_params=init)
    batches = [next(it) for _ in range(it.batches_per_epoch)]
    first = {b["input_ids"].shape[1]: b for b in batches}
    for b in first.values():                # compile and run once every shape before timing
        b = sh.put_batch(b, mesh)           # (on a copy: the pass starts from the same state)
        _, m = step(jax.tree_util.tree_map(jnp.copy, state), b)
        jax.block_until_ready(m["loss"])
    compile_s = time.perf_counter() - t0
    losses, t0 = [], time.perf_counter()
    for b in batches:
        state, m = step(state, sh.put_batch(b, mesh))
        losses.append(float(m["loss"]))     # blocks: each step is timed whole
    run_s = time.perf_counter() - t0
    examples = len(batches) * args.batch
    lengths = sorted({b["input_ids"].shape[1] for b in batches})
    return dict(steps=len(batches), run_s=run_s, examples_per_s=examples / run_s,
                examples_per_s_with_compile=examples / (run_s + compile_s),
                compile_s=compile_s, compiled_shapes=step.compilations, batch_lengths=lengths,
                padded_fraction=dict(zip(("at_full_length", "as_cut"), it.padded_fraction())),
                train_loss_first=losses[0], train_loss_last=losses[-1]), \
        jax.device_get(state.params["model"])


def main():
    from xmrc_jax.hostmem import reexec_with_huge_pages
    reexec_with_huge_pages()                # as the entry points run (benchmarks/RESULTS.md)
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="", help="multilingual-e5-small folder (weights and "
                    "tokenizer); without it: random initialisation, tokenizer from --tokenizer")
    ap.add_argument("--tokenizer", default="")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "demo", "train_en.json"))
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--multiples", default="32,64")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--held-out", type=int, default=256)
    ap.add_argument("--layers", type=int, default=0, help="fewer layers (a quick check)")
    args = ap.parse_args()
    tokenizer = load_tokenizer(args.model or args.tokenizer)
    arrays = windows(tokenizer, args.seq, args.stride, args.data)
    n = len(arrays["input_ids"])
    sample_n = args.steps * args.batch
    if sample_n + args.held_out > n:
        raise SystemExit(f"{n} windows: fewer than --steps x --batch + --held-out")
    order = np.random.default_rng(0).permutation(n)          # the fixed sample and held-out set
    sample = {k: v[order[:sample_n]] for k, v in arrays.items()}
    held = {k: v[order[-args.held_out:]] for k, v in arrays.items()}
    whole = TrainIterator(arrays, args.batch, length_multiple=32,
                          sequence_keys=span_qa.SEQUENCE_KEYS)
    mesh = sh.make_mesh({"data": 1}, jax.devices()[:1])
    if args.model:
        module, init = load_pretrained(args.model, head="span")
    else:
        cfg = dict(E5_SMALL, vocab_size=len(tokenizer))
        if args.layers:
            cfg["num_hidden_layers"] = args.layers
        module, init = build_model(EncoderConfig(**cfg), "span"), None
    out = dict(machine=machine(), config=vars(args), windows_in_file=n,
               padded_fraction_of_the_file=dict(zip(("at_full_length", "grouped_32"),
                                                    whole.padded_fraction())))
    runs = [("padded", 0, 0), ("padded_seed_1", 0, 1)] + [
        (f"grouped_{m}", int(m), 0) for m in args.multiples.split(",")]
    for name, multiple, seed in runs:
        res, params = one_pass(module, init, sample, args, mesh, multiple, seed)
        res["held_out_loss"] = held_out_loss(module, params, held, mesh)
        out[name] = res
        print(name, {k: v for k, v in res.items() if k != "batch_lengths"}, flush=True)
    base = out["padded"]
    for name, _, _ in runs[2:]:
        out[name]["speedup"] = out[name]["examples_per_s"] / base["examples_per_s"]
        out[name]["speedup_with_compile"] = (out[name]["examples_per_s_with_compile"]
                                             / base["examples_per_s_with_compile"])
        out[name]["held_out_loss_minus_padded"] = out[name]["held_out_loss"] - base["held_out_loss"]
    out["seed_noise_held_out_loss"] = out["padded_seed_1"]["held_out_loss"] - base["held_out_loss"]
    save("length_grouping", out)


if __name__ == "__main__":
    main()
