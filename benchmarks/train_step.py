"""The xMRC train step against a ``transformers`` PyTorch ``XLMRobertaForQuestionAnswering``
training step with the same sizes, batch and sequence length, in one run.

    python benchmarks/train_step.py [--layers 12 --hidden 384 --heads 12 --batch 8 --seq 384]

Reports examples/s of both, model FLOP/s as a fraction of this machine's measured dense matmul
FLOP/s, the HL + AA-CL step against the baseline step, the cost of the in-step top-|A| span
search, and peak memory with and without ``remat`` from ``memory_analysis()``.
Results: benchmarks/results/train_step.json (summarised in benchmarks/RESULTS.md).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import machine, matmul_peak_flops, save, timeit  # noqa: E402
from xmrc_jax.losses import DEFAULT_TYPE_LOGITS  # noqa: E402
from xmrc_jax.models import EncoderConfig, build_model  # noqa: E402
from xmrc_jax.ops import top_k_spans  # noqa: E402
from xmrc_jax import mesh as sh  # noqa: E402
from xmrc_jax.tasks import span_qa  # noqa: E402
from xmrc_jax.train import state as st  # noqa: E402
from xmrc_jax.train.trainer import build_step  # noqa: E402


def make_batch(n, L, vocab, k=20, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, vocab, size=(n, L)).astype(np.int32)
    ids[:, 0] = 0
    mask = np.ones((n, L), np.int32)
    ctx = np.zeros((n, L), bool)
    ctx[:, 40:L - 1] = True
    q = np.zeros((n, L), bool)
    q[:, 1:30] = True
    s = rng.integers(50, L - 40, size=n).astype(np.int32)
    e = s + rng.integers(0, 10, size=n).astype(np.int32)
    cs = np.sort(rng.integers(40, L - 40, size=(n, k)), 1).astype(np.int32)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                context_mask=ctx, question_mask=q, start_positions=s, end_positions=e,
                answer_in_window=np.ones(n, bool), cand_starts=cs, cand_ends=cs + 3,
                cand_valid=np.ones((n, k), bool))


def model_flops(cfg, batch, L):
    """Forward + backward (3x forward) matmul FLOPs of encoder and QA head."""
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    tokens = batch * L
    dense = 2 * tokens * layers * (4 * h * h + 2 * h * i) + 2 * tokens * h * 2
    attention = 2 * 2 * batch * layers * L * L * h
    return 3 * (dense + attention)


def jax_step(cfg, batch, objective, remat=False, extra=None, precision="fp32",
             attention_impl="auto", lr=3e-5, keep_state=False):
    """``(run, memory_analysis, XLA's FLOP count)`` of one compiled train step on one device;
    ``run()`` takes a step and blocks. ``keep_state``: ``run()`` returns the step's metrics and
    ``run.state()`` the current state."""
    mesh = sh.make_mesh({"data": 1}, jax.devices()[:1])
    module = build_model(cfg, "span", remat=remat, dtype=st.DTYPES[precision],
                         attention_impl=attention_impl)
    tx, _ = st.make_optimizer(lr, 1000)
    state, _, compiled = build_step(module, tx, mesh, objective(module), batch,
                                    rng=jax.random.PRNGKey(0), extra_params=extra,
                                    precision=precision)
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    b = sh.put_batch(batch, mesh)
    holder = {"state": state}

    def run():
        holder["state"], m = compiled(holder["state"], b)
        jax.block_until_ready(m["loss"])
        return m if keep_state else None
    run.state = lambda: holder["state"]
    return run, mem, (cost or {}).get("flops", float("nan"))


def torch_step(cfg, batch, threads, device="cpu", autocast_dtype=None):
    """``(run, version)``: one ``XLMRobertaForQuestionAnswering`` AdamW step per ``run()``
    (blocking); on ``device``, under ``torch.autocast`` to ``autocast_dtype`` if given."""
    import contextlib
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForQuestionAnswering
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hf = XLMRobertaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
                          num_hidden_layers=cfg.num_hidden_layers,
                          num_attention_heads=cfg.num_attention_heads,
                          intermediate_size=cfg.intermediate_size,
                          max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=1)
    model = XLMRobertaForQuestionAnswering(hf).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
    t = {k: torch.as_tensor(batch[k]).long().to(device)
         for k in ("input_ids", "attention_mask", "start_positions", "end_positions")}
    amp = (lambda: torch.autocast(device_type=device.split(":")[0], dtype=getattr(
        torch, autocast_dtype))) if autocast_dtype else contextlib.nullcontext

    def run():
        with amp():
            out = model(**t)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device != "cpu":
            torch.cuda.synchronize()
    return run, torch.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=1536)
    ap.add_argument("--vocab", type=int, default=250002)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=384)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    cfg = EncoderConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=args.intermediate, max_position_embeddings=args.seq + 2)
    batch = make_batch(args.batch, args.seq, args.vocab)
    peak = matmul_peak_flops()
    flops = model_flops(cfg, args.batch, args.seq)
    out = dict(machine=machine(), config=vars(args), matmul_peak_gflops=peak / 1e9,
               model_gflops_per_step=flops / 1e9)

    base, mem, xla_flops = jax_step(cfg, batch, span_qa.mrc_objective)
    t_base = timeit(base, repeat=args.repeat)
    out["jax_baseline"] = dict(step_s=t_base, examples_per_s=args.batch / t_base,
                               fraction_of_matmul_peak=flops / t_base / peak,
                               xla_gflops_per_step=xla_flops / 1e9,
                               temp_mib=mem.temp_size_in_bytes / 2**20,
                               argument_mib=mem.argument_size_in_bytes / 2**20)
    del base
    hl = lambda m: span_qa.hl_aacl_objective(m, "weighted_learned", 0.5, 0.1, 50, 30)  # noqa: E731
    run_hl, mem_hl, _ = jax_step(cfg, batch, hl, extra={"hl": {"type_logits": jnp.asarray(
        DEFAULT_TYPE_LOGITS, jnp.float32)}})
    t_hl = timeit(run_hl, repeat=args.repeat)
    del run_hl
    out["jax_hl_aacl"] = dict(step_s=t_hl, ratio_to_baseline=t_hl / t_base,
                              temp_mib=mem_hl.temp_size_in_bytes / 2**20)
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(args.batch, args.seq)), jnp.float32)
    ctx = jnp.asarray(batch["context_mask"])
    topk = jax.jit(lambda s, e, m: top_k_spans(s, e, m, 50, 30))
    t_topk = timeit(lambda: jax.block_until_ready(topk(logits, logits[::-1], ctx)), repeat=20)
    out["top_50_spans_in_step"] = dict(seconds=t_topk, fraction_of_hl_aacl_step=t_topk / t_hl)
    _, mem_remat, _ = jax_step(cfg, batch, span_qa.mrc_objective, remat=True)
    out["remat"] = dict(temp_mib_without=mem.temp_size_in_bytes / 2**20,
                        temp_mib_with=mem_remat.temp_size_in_bytes / 2**20,
                        reduction=mem.temp_size_in_bytes / max(mem_remat.temp_size_in_bytes, 1))
    if not args.no_torch:
        try:
            run_t, version = torch_step(cfg, batch, os.cpu_count())
            t_torch = timeit(run_t, repeat=args.repeat)
            out["torch"] = dict(version=version, step_s=t_torch, examples_per_s=args.batch / t_torch,
                                fraction_of_matmul_peak=flops / t_torch / peak)
            out["jax_baseline"]["speedup_vs_torch"] = t_torch / t_base
        except ImportError as e:
            out["torch"] = f"not installed ({e})"
    save("train_step", out)


if __name__ == "__main__":
    main()
