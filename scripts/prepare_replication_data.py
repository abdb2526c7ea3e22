"""Builds the replication's English training data from SQuAD v1.1 dev (the only English
SQuAD-format training data reachable offline), run by hand:

    python scripts/prepare_replication_data.py --shared ../shared/data --out DATA

* every paragraph whose context occurs in XQuAD (XQuAD is built from SQuAD v1.1 dev), and every
  question whose id occurs there, is removed;
* whole articles are held out for English model selection (in a seeded order, until they hold
  ``--dev-questions``), so no passage is in both;
* ``DATA/train-v1.1.json`` (the training file, under the name configs expect),
  ``DATA/dev-v1.1.json`` (the held-out English articles), the MLQA dev files and the XQuAD files
  are written or linked, so ``configs/mlqa.py:root=DATA`` / ``configs/xquad.py:root=DATA`` and
  ``configs/replication.py:root=DATA`` read them.
"""

import argparse
import json
import os
import random


def _norm(text: str) -> str:
    return " ".join(text.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True, help="the folder holding squad_v1.1/, xquad/, mlqa/")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dev-questions", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    squad = json.load(open(os.path.join(args.shared, "squad_v1.1", "dev-v1.1.json"), encoding="utf-8"))
    xquad_dir = os.path.join(args.shared, "xquad")
    contexts, ids = set(), set()
    for name in os.listdir(xquad_dir):
        for article in json.load(open(os.path.join(xquad_dir, name), encoding="utf-8"))["data"]:
            for p in article["paragraphs"]:
                contexts.add(_norm(p["context"]))
                ids.update(q["id"] for q in p["qas"])
    kept, removed = [], 0
    for article in squad["data"]:
        paras = []
        for p in article["paragraphs"]:
            if _norm(p["context"]) in contexts:
                removed += len(p["qas"])
                continue
            qas = [q for q in p["qas"] if q["id"] not in ids]
            removed += len(p["qas"]) - len(qas)
            if qas:
                paras.append({**p, "qas": qas})
        if paras:
            kept.append({**article, "paragraphs": paras})
    order = list(range(len(kept)))
    random.Random(args.seed).shuffle(order)
    dev_idx, n = set(), 0
    for i in order:                       # whole articles, none much larger than the budget
        size = sum(len(p["qas"]) for p in kept[i]["paragraphs"])
        if n + size <= 1.5 * args.dev_questions:
            dev_idx.add(i)
            n += size
        if n >= args.dev_questions:
            break
    train = [a for i, a in enumerate(kept) if i not in dev_idx]
    dev = [a for i, a in enumerate(kept) if i in dev_idx]
    os.makedirs(args.out, exist_ok=True)
    for name, data in (("train-v1.1.json", train), ("dev-v1.1.json", dev)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            json.dump({"version": "1.1", "data": data}, f, ensure_ascii=False)
    for sub in ("mlqa", "xquad"):
        for name in os.listdir(os.path.join(args.shared, sub)):
            dst = os.path.join(args.out, name)
            if not os.path.lexists(dst):
                os.symlink(os.path.abspath(os.path.join(args.shared, sub, name)), dst)
    count = lambda arts: sum(len(p["qas"]) for a in arts for p in a["paragraphs"])  # noqa: E731
    print(json.dumps({"removed_as_xquad": removed, "train_articles": len(train),
                      "train_questions": count(train), "dev_articles": len(dev),
                      "dev_questions": count(dev)}))


if __name__ == "__main__":
    main()
