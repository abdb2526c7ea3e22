"""Scores a predictions file against a SQuAD-format dataset, as the official scripts do.

    python -m xmrc_jax.evaluate_predictions DATASET.json PREDICTIONS.json --lang es [--metric mlqa|squad]

Prints ``{"exact_match": ..., "f1": ...}`` (percentages). Questions without a prediction
score 0 and are counted on stderr.
"""

import argparse
import json
import sys

from xmrc_jax.data.squad_format import DataError, read_squad_file
from xmrc_jax.eval.squad_metrics import evaluate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("predictions")
    ap.add_argument("--lang", required=True)
    ap.add_argument("--metric", choices=["mlqa", "squad"], default="mlqa")
    args = ap.parse_args(argv)
    try:
        examples, _ = read_squad_file(args.dataset, args.lang)
    except (DataError, OSError) as e:
        sys.exit(f"error: {e}")
    try:
        with open(args.predictions, encoding="utf-8") as f:
            preds = json.load(f)
    except json.JSONDecodeError as e:
        sys.exit(f"error: {args.predictions}: not valid JSON ({e})")
    except OSError as e:
        sys.exit(f"error: {args.predictions}: {e.strerror}")
    if not isinstance(preds, dict) or not all(isinstance(v, str) for v in preds.values()):
        sys.exit(f"error: {args.predictions}: expected a JSON object {{question id: answer text}}")
    gold = {ex.id: [a.text for a in ex.answers] for ex in examples}
    if not gold:
        sys.exit(f"error: {args.dataset}: 0 questions with answers; nothing to score")
    unknown = [q for q in preds if q not in gold]
    if preds and len(unknown) == len(preds):
        sys.exit(f"error: {args.predictions}: none of its {len(preds)} question ids is in "
                 f"{args.dataset} (first: {unknown[:3]}); wrong dataset or language?")
    if unknown:
        print(f"{len(unknown)} prediction ids are not in {args.dataset} and were ignored "
              f"(first: {unknown[:5]})", file=sys.stderr)
    res = evaluate(gold, preds, args.lang, args.metric)
    if res["missing"]:
        print(f"{res['missing']} of {res['total']} questions have no prediction and score 0",
              file=sys.stderr)
    print(json.dumps({"exact_match": res["exact_match"], "f1": res["f1"]}))


if __name__ == "__main__":
    main()
