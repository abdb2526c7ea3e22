"""McCrolin data: parallel questions -> training tuples (q_en, q_ne, d, PR) and retrieval sets.

Parallel SQuAD-format files (XQuAD: the same question ids in 12 languages; MLQA: ids shared
across its 7 languages) are joined on the question id within a dataset. The English record gives
the passage d (its context), the English question q_en and the answer; each other language gives
q_ne. PR is the sentence of d that holds the answer (the sentences from the one holding the
answer's first character to the one holding its last, if it crosses a boundary).

Splits are by article (title), so no passage of the evaluation split is seen in training.

Sentence splitting (``split_sentences``) is rule-based and works on character offsets, so the
text is never altered:

* a sentence ends after ``.``, ``!`` or ``?`` (plus closing quotes or brackets) followed by
  whitespace and then a character that is not lower-case, except after a known abbreviation
  (``Mr.``, ``Dr.``, ``St.``, ``e.g.``, ``U.S.`` ...), a single-letter initial (``J. R. R.``),
  or a number followed by ``.`` and a lower-case word;
* it also ends after the full-width and script-specific terminators ``。！？`` (zh / ja, no
  space needed), ``؟`` and ``۔`` (Arabic / Urdu) and ``।`` ``॥`` (Devanagari), which are
  unambiguous.

That is what the English passages (the retrieval candidates) need. Other languages with these
terminators split correctly; Thai, which has no sentence punctuation, stays one sentence per
paragraph.
"""

from __future__ import annotations

import collections
import dataclasses
import re

import numpy as np

from xmrc_jax.data.squad_format import DataError

ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st jr sr vs etc e.g i.e u.s u.k u.n no nos vol fig figs inc ltd co corp gen col
lt sgt capt cmdr adm gov sen rep rev mt ft ca approx jan feb mar apr jun jul aug sep sept oct nov
dec est al op ed pp p a.m p.m b.c a.d c.e b.c.e ph.d
""".split())
_LATIN_END = re.compile(r"[.!?]+[\"'”’»)\]]*(?=\s)")
_UNAMBIGUOUS_END = re.compile(r"[。！？؟۔।॥]+[\"'”’»)\]」』]*\s*")


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the ``.`` at ``dot`` closes an abbreviation or an initial, not a sentence."""
    j = dot
    while j > 0 and not text[j - 1].isspace() and text[j - 1] not in "(\"'“‘[":
        j -= 1
    word = text[j:dot].lower()
    if word in ABBREVIATIONS:
        return True
    return len(word) == 1 and word.isalpha()          # "J." in "J. R. R. Tolkien"


def split_sentences(text: str) -> list:
    """``[(start, end)]`` character spans of the sentences of ``text``, in order, covering every
    non-space character (surrounding whitespace is left out)."""
    cuts = []
    for m in _LATIN_END.finditer(text):
        end = m.end()
        nxt = end
        while nxt < len(text) and text[nxt].isspace():
            nxt += 1
        if nxt >= len(text):
            continue
        if text[nxt].islower():
            continue
        if text[m.start()] == "." and m.end() - m.start() == 1 and _is_abbreviation(text, m.start()):
            continue
        cuts.append(end)
    for m in _UNAMBIGUOUS_END.finditer(text):
        if m.end() < len(text):
            cuts.append(m.end())
    spans, begin = [], 0
    for cut in sorted(set(cuts)) + [len(text)]:
        s, e = begin, cut
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        begin = cut
    return spans


def sentences_of_span(sentences: list, start: int, end: int) -> tuple:
    """Indices ``(first, last)`` of the sentences that the character span ``[start, end)``
    overlaps."""
    hit = [i for i, (s, e) in enumerate(sentences) if s < max(end, start + 1) and start < e]
    if not hit:
        raise ValueError(f"span [{start}, {end}) lies outside every sentence")
    return hit[0], hit[-1]


@dataclasses.dataclass(frozen=True)
class ParallelQuestion:
    """One English question, its passage and answer sentence, and its other-language versions."""

    dataset: str
    id: str
    title: str
    passage: str                    # English context d
    q_en: str
    questions: dict                 # language -> question text (English not included)
    sentence_spans: tuple           # sentences of the passage, (start, end)
    answer_sentences: tuple         # (first, last) sentence index holding the answer

    @property
    def pr(self) -> str:
        first, last = self.answer_sentences
        return self.passage[self.sentence_spans[first][0]:self.sentence_spans[last][1]]


@dataclasses.dataclass
class ParallelReport:
    dataset: str
    joined: int = 0
    per_language: dict = dataclasses.field(default_factory=dict)
    skipped: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))

    def __str__(self):
        s = (f"{self.dataset}: {self.joined} English questions with a passage; other-language "
             f"questions joined: {self.per_language}")
        for kind, ids in sorted(self.skipped.items()):
            s += f"; skipped {len(ids)} {kind} (first: {ids[:5]})"
        return s


def join_parallel(dataset: str, english: list, others: dict) -> tuple:
    """Joins ``others`` (``{language: [Example]}``) to the ``english`` examples on question id.

    Returns ``([ParallelQuestion], ParallelReport)``. English questions without a gold answer
    and other-language questions whose id has no English counterpart are skipped and counted.
    """
    rep = ParallelReport(dataset)
    by_id = {}
    for lang, exs in others.items():
        if lang == "en":
            raise DataError(f"{dataset}: English is the pivot; list it once")
        for ex in exs:
            if lang in by_id.setdefault(ex.id, {}):
                raise DataError(f"{dataset} {lang}: question id {ex.id!r} occurs twice")
            by_id[ex.id][lang] = ex.question
        rep.per_language[lang] = 0                 # counted below: those joined to English
    english_ids = set()
    out = []
    sentence_cache = {}
    for ex in english:
        if ex.id in english_ids:
            raise DataError(f"{dataset} en: question id {ex.id!r} occurs twice")
        english_ids.add(ex.id)
        if not ex.answers:
            rep.skipped["English questions without an answer"].append(ex.id)
            continue
        if ex.context not in sentence_cache:
            sentence_cache[ex.context] = tuple(split_sentences(ex.context))
        spans = sentence_cache[ex.context]
        a = ex.answers[0]
        out.append(ParallelQuestion(dataset, ex.id, ex.title, ex.context, ex.question,
                                    by_id.get(ex.id, {}), spans,
                                    sentences_of_span(list(spans), a.start, a.start + len(a.text))))
    for qid, langs in by_id.items():
        for lang in langs:
            if qid in english_ids:
                rep.per_language[lang] += 1
            else:
                rep.skipped[f"{lang} questions with no English counterpart"].append(qid)
    rep.joined = len(out)
    return out, rep


SPLITS = ("train", "dev", "test")


def split_by_article(questions: list, fractions=(0.7, 0.1, 0.2), seed: int = 0) -> dict:
    """``{"train" | "dev" | "test": [ParallelQuestion]}``: articles (dataset, title) are shuffled
    with ``seed`` and cut by ``fractions``, so every passage lives in exactly one split."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {tuple(fractions)} must be three non-negative numbers "
                         "(train, dev, test) summing to 1")
    articles = sorted({(q.dataset, q.title) for q in questions})
    needed = sum(f > 0 for f in fractions)
    if len(articles) < needed:
        raise ValueError(f"{len(articles)} article(s) cannot fill {needed} non-empty splits")
    order = np.random.RandomState(seed).permutation(len(articles))
    bounds = np.round(np.cumsum(fractions) * len(articles)).astype(int)
    which = {}
    for rank, idx in enumerate(order):
        which[articles[idx]] = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
    out = {s: [] for s in SPLITS}
    for q in questions:
        out[which[(q.dataset, q.title)]].append(q)
    return out


def training_tuples(questions: list, languages) -> dict:
    """Columns of (q_en, q_ne, d, pr) texts, one row per (question, language) pair present, plus
    ``language`` and ``id``."""
    cols = collections.defaultdict(list)
    for q in questions:
        for lang in languages:
            if lang in q.questions:
                cols["q_en"].append(q.q_en)
                cols["q_ne"].append(q.questions[lang])
                cols["d"].append(q.passage)
                cols["pr"].append(q.pr)
                cols["language"].append(lang)
                cols["id"].append(q.id)
    return dict(cols)


@dataclasses.dataclass
class RetrievalSet:
    """Queries of one language against a pool of English candidates.

    ``relevant[i]`` is the array of pool indices that answer query ``i`` (may be empty: such a
    query counts as a miss).
    """

    level: str
    pool: list
    queries: dict                   # language -> list of query texts
    relevant: dict                  # language -> list of int arrays
    ids: dict                       # language -> question ids


LEVELS = ("document", "passage", "sentence")


def retrieval_sets(questions: list, languages, level: str = "passage",
                   include_english: bool = True, sentence_context: bool = False) -> RetrievalSet:
    """The candidate pool and per-language queries with their relevant candidates. ``level``:
    ``document`` (an article: its paragraphs in order, joined by blank lines), ``passage`` (every
    distinct paragraph) or ``sentence`` (every sentence of them; with ``sentence_context`` each
    candidate is the sentence followed by its paragraph)."""
    if level not in LEVELS:
        raise ValueError(f"retrieval level {level!r}: expected one of {LEVELS}")
    passage_index, pool, sentence_base, documents = {}, [], {}, {}
    for q in questions:
        key = (q.dataset, q.title, q.passage)
        if key in passage_index:
            continue
        passage_index[key] = len(passage_index)
        if level == "passage":
            pool.append(q.passage)
        elif level == "document":
            documents.setdefault((q.dataset, q.title), []).append(q.passage)
        else:
            sentence_base[key] = len(pool)
            pool.extend(q.passage[s:e] + ("\n\n" + q.passage if sentence_context else "")
                        for s, e in q.sentence_spans)
    document_index = {k: i for i, k in enumerate(documents)}
    if level == "document":
        pool = ["\n\n".join(paragraphs) for paragraphs in documents.values()]
    langs = (["en"] if include_english else []) + [lang for lang in languages if lang != "en"]
    queries = {lang: [] for lang in langs}
    relevant = {lang: [] for lang in langs}
    ids = {lang: [] for lang in langs}
    for q in questions:
        key = (q.dataset, q.title, q.passage)
        if level == "passage":
            rel = np.array([passage_index[key]], np.int32)
        elif level == "document":
            rel = np.array([document_index[(q.dataset, q.title)]], np.int32)
        else:
            first, last = q.answer_sentences
            rel = np.arange(sentence_base[key] + first, sentence_base[key] + last + 1, dtype=np.int32)
        for lang in langs:
            text = q.q_en if lang == "en" else q.questions.get(lang)
            if text is None:
                continue
            queries[lang].append(text)
            relevant[lang].append(rel)
            ids[lang].append(q.id)
    empty = [lang for lang in langs if not queries[lang]]
    for lang in empty:
        del queries[lang], relevant[lang], ids[lang]
    return RetrievalSet(level, pool, queries, relevant, ids)
