"""EM / F1 as the official evaluation scripts compute them.

* ``metric="mlqa"``: the MLQA v1 script (``mlqa_evaluation_v1.py``): lower-case; remove every
  Unicode punctuation character (category P*) and ASCII punctuation; remove the language's
  articles (en, es, de, vi; ar: the regex ``\\sال^|ال``, i.e. every ``ال``; none for hi, zh);
  whitespace tokens, and for zh each CJK character (U+4E00-U+9FA5) or punctuation character is
  its own token.
* ``metric="squad"``: the SQuAD v1.1 script (also what XQuAD uses): lower-case, ASCII
  punctuation and English articles removed, whitespace tokens.

Scores are the max over the gold answers; a question without a prediction scores 0; results
are percentages.
"""

from __future__ import annotations

import collections
import re
import string
import sys
import unicodedata

PUNCT = {chr(i) for i in range(sys.maxunicode + 1)
         if unicodedata.category(chr(i)).startswith("P")} | set(string.punctuation)
ASCII_PUNCT = set(string.punctuation)
WHITESPACE_LANGS = ("en", "es", "hi", "vi", "de", "ar")
MIXED_SEGMENTATION_LANGS = ("zh",)
_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "ar": re.compile("\\sال^|ال"),
}
_CJK = re.compile("[\u4e00-\u9fa5]")


def _mixed_segmentation(text: str) -> list:
    out, buf = [], ""
    for ch in text:
        if _CJK.search(ch) or ch in PUNCT:
            if buf:
                out.extend(buf.split())
                buf = ""
            out.append(ch)
        else:
            buf += ch
    if buf:
        out.extend(buf.split())
    return out


def check_language(metric: str, lang: str):
    """Raises when ``metric`` has no rules for ``lang`` (MLQA's script knows seven languages);
    run on every evaluation file before any work, and again when scoring."""
    if metric not in NORMALIZERS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(NORMALIZERS)}")
    if metric == "mlqa" and lang not in WHITESPACE_LANGS + MIXED_SEGMENTATION_LANGS:
        raise ValueError(f"the MLQA metric has no rules for language {lang!r}; it knows "
                         f"{WHITESPACE_LANGS + MIXED_SEGMENTATION_LANGS} (use the squad metric: "
                         "metric='squad' in the file's spec, or --metric squad)")


def normalize_mlqa(s: str, lang: str) -> str:
    check_language("mlqa", lang)
    s = "".join(ch for ch in s.lower() if ch not in PUNCT)
    if lang in _ARTICLES:
        s = _ARTICLES[lang].sub(" ", s)
    tokens = _mixed_segmentation(s) if lang in MIXED_SEGMENTATION_LANGS else s.split()
    return " ".join(t for t in tokens if t.strip() != "")


def normalize_squad(s: str, lang: str = "en") -> str:
    s = "".join(ch for ch in s.lower() if ch not in ASCII_PUNCT)
    s = _ARTICLES["en"].sub(" ", s)
    return " ".join(s.split())


NORMALIZERS = {"mlqa": normalize_mlqa, "squad": normalize_squad}


def f1_score(prediction: str, truth: str, lang: str, metric: str = "mlqa") -> float:
    norm = NORMALIZERS[metric]
    p, t = norm(prediction, lang).split(), norm(truth, lang).split()
    same = sum((collections.Counter(p) & collections.Counter(t)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, truth: str, lang: str, metric: str = "mlqa") -> float:
    norm = NORMALIZERS[metric]
    return float(norm(prediction, lang) == norm(truth, lang))


def score_one(prediction: str, truths, lang: str, metric: str):
    """``(em, f1)`` of one prediction, max over the gold answers (each 0 or 1 / in [0, 1])."""
    return (max(exact_match_score(prediction, t, lang, metric) for t in truths),
            max(f1_score(prediction, t, lang, metric) for t in truths))


def evaluate(gold: dict, predictions: dict, lang: str, metric: str = "mlqa") -> dict:
    """``gold``: id -> list of answer texts; ``predictions``: id -> text. Percentages."""
    if metric not in NORMALIZERS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(NORMALIZERS)}")
    em = f1 = 0.0
    missing = 0
    for qid, truths in gold.items():
        if qid not in predictions:
            missing += 1
            continue
        e, f = score_one(predictions[qid], truths, lang, metric)
        em, f1 = em + e, f1 + f
    n = max(len(gold), 1)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n, "total": len(gold),
            "missing": missing}
