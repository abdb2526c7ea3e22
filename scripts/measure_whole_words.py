"""What widening answers to whole words (``predict --whole-words``) changes under the official
scripts: EM / F1 of one exported span model on one SQuAD-format file, with and without.

    python scripts/measure_whole_words.py --model DIR --data FILE --lang en [--metric squad]
        [--limit N] [--out results.json]

Use a development file, never a test set, to choose the default from.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xmrc_jax.data import read_squad_file  # noqa: E402
from xmrc_jax.eval import squad_metrics  # noqa: E402
from xmrc_jax.eval.postprocess import predictions_from_nbest  # noqa: E402
from xmrc_jax.predict import Predictor, _widened  # noqa: E402


def measure(model: str, data: str, lang: str, metric: str, limit: int = 0) -> dict:
    examples, _ = read_squad_file(data, lang, limit=limit)
    predictor = Predictor(model)
    nbest = predictor.nbest(examples, n_best=1)
    gold = {ex.id: [a.text for a in ex.answers] for ex in examples if ex.answers}
    plain = predictions_from_nbest(nbest)
    wide = predictions_from_nbest({ex.id: _widened(ex.context, nbest[ex.id]) for ex in examples})
    out = {"model": model, "data": data, "language": lang, "metric": metric,
           "questions": len(gold), "settings": predictor.settings,
           "changed_answers": sum(plain[q] != wide[q] for q in gold)}
    for name, preds in (("as_predicted", plain), ("whole_words", wide)):
        out[name] = squad_metrics.evaluate(gold, preds, lang, metric)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--lang", default="en")
    ap.add_argument("--metric", default="squad", choices=sorted(squad_metrics.NORMALIZERS))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    out = measure(args.model, args.data, args.lang, args.metric, args.limit)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
