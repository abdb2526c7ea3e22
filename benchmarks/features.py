"""Feature building: the batched path (``build_features``) against the per-example reference
(``build_features_per_example``), and the cached rerun, on real data.

    python benchmarks/features.py --tokenizer DIR_OR_HUB_ID [--xquad FILE] [--squad FILE]

Defaults: the shipped demo tokenizer and ``../shared/data`` files when present, else the demo
XQuAD slice. Results: benchmarks/results/features.json.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import ROOT, machine, save  # noqa: E402
from xmrc_jax.data import build_features, build_features_per_example, read_squad_file  # noqa: E402
from xmrc_jax.models import load_tokenizer  # noqa: E402


def bench(name, path, lang, tok, L=384, stride=128, q=64):
    ex, _ = read_squad_file(path, lang)
    build_features(ex[:20], tok, L, stride, q)                       # warm the tokenizer
    t = time.perf_counter()
    ref = build_features_per_example(ex, tok, L, stride, q)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    got = build_features(ex, tok, L, stride, q)
    t_batched = time.perf_counter() - t
    assert len(got["input_ids"]) == len(ref["input_ids"])
    with tempfile.TemporaryDirectory() as cache:
        build_features(ex, tok, L, stride, q, cache_dir=cache)
        t = time.perf_counter()
        build_features(ex, tok, L, stride, q, cache_dir=cache)
        t_cached = time.perf_counter() - t
    n = len(got["input_ids"])
    return dict(dataset=name, questions=len(ex), windows=n,
                per_example_windows_per_s=n / t_ref, batched_windows_per_s=n / t_batched,
                cached_windows_per_s=n / t_cached, batched_speedup=t_ref / t_batched,
                cached_speedup_vs_batched=t_batched / t_cached)


def main():
    shared = os.path.join(os.path.dirname(ROOT), "shared", "data")
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "data", "demo", "tokenizer"))
    ap.add_argument("--xquad", default=os.path.join(shared, "xquad", "xquad.en.json"))
    ap.add_argument("--squad", default=os.path.join(shared, "squad_v1.1", "dev-v1.1.json"))
    args = ap.parse_args()
    tok = load_tokenizer(args.tokenizer)
    rows = []
    for name, path in (("XQuAD en", args.xquad), ("SQuAD v1.1 dev", args.squad)):
        if os.path.exists(path):
            rows.append(bench(name, path, "en", tok))
    if not rows:
        rows.append(bench("demo XQuAD en slice", os.path.join(ROOT, "data", "demo", "xquad.en.json"),
                          "en", tok))
    save("features", dict(machine=machine(), tokenizer=args.tokenizer, vocab=len(tok),
                          tokenizers_parallelism=os.environ.get("TOKENIZERS_PARALLELISM", "default"),
                          rows=rows))


if __name__ == "__main__":
    main()
