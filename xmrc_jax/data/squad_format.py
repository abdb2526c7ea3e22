"""Reading and validating SQuAD-format QA data (SQuAD v1.1, MLQA, XQuAD, TyDi QA GoldP).

    examples, report = read_squad_file("xquad.es.json", language="es")

Every problem names the file and the question id. With ``skip_bad=False`` (the default) the
first problem raises ``DataError``; with ``skip_bad=True`` bad questions are skipped, counted
by kind and listed (first few ids) in the returned ``ReadReport``. Nothing is dropped silently.

Answer offsets: when ``context[answer_start:answer_start + len(text)]`` is not the answer text,
the nearest exact occurrence within ``OFFSET_WINDOW`` characters is used instead (whitespace
drift, as the official preprocessing tolerates) and counted as ``answer_start_repaired``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from typing import Optional

OFFSET_WINDOW = 16


class DataError(ValueError):
    """A problem in a data file; the message names the file and the record."""


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str
    start: int          # character offset in the context


@dataclasses.dataclass(frozen=True)
class Example:
    id: str
    language: str
    question: str
    context: str
    answers: tuple      # of Answer; the first is the training label
    title: str = ""


@dataclasses.dataclass
class ReadReport:
    """Counts of what reading a file did; ``skipped`` maps a problem kind to question ids."""

    path: str
    read: int = 0
    repaired: list = dataclasses.field(default_factory=list)
    unanswered: list = dataclasses.field(default_factory=list)   # read with no gold answer
    skipped: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))

    @property
    def num_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def __str__(self):
        s = f"{self.path}: {self.read} questions read"
        if self.repaired:
            s += f", {len(self.repaired)} answer offsets repaired (e.g. {self.repaired[:3]})"
        if self.unanswered:
            s += f", {len(self.unanswered)} without a gold answer (first: {self.unanswered[:3]})"
        for kind, ids in sorted(self.skipped.items()):
            s += f", {len(ids)} skipped ({kind}; first: {ids[:5]})"
        return s


def _fix_offset(context: str, text: str, start: int) -> Optional[int]:
    """``start`` if the text is there, else the nearest exact match within the window."""
    if context[start:start + len(text)] == text:
        return start
    best = None
    lo = max(0, start - OFFSET_WINDOW)
    pos = context.find(text, lo)
    while pos != -1 and pos <= start + OFFSET_WINDOW:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        pos = context.find(text, pos + 1)
    return best


def parse_squad_json(data: dict, path: str, language: str, skip_bad: bool = False,
                     require_answers: bool = True):
    """Examples from an already-parsed SQuAD-format dict. Returns ``(examples, report)``."""
    report = ReadReport(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path}: not SQuAD format (expected a top-level object with a 'data' list)")
    examples, seen = [], set()

    def bad(kind: str, qid: str, message: str):
        if not skip_bad:
            raise DataError(f"{path}: question {qid!r}: {message}")
        report.skipped[kind].append(qid)

    for a_i, article in enumerate(data["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DataError(f"{path}: data[{a_i}] has no 'paragraphs' list")
        title = str(article.get("title", ""))
        for p_i, para in enumerate(article["paragraphs"]):
            where = f"data[{a_i}].paragraphs[{p_i}]"
            if not isinstance(para, dict) or "context" not in para or not isinstance(para.get("qas"), list):
                raise DataError(f"{path}: {where} needs 'context' and a 'qas' list")
            context = para["context"]
            for q_i, qa in enumerate(para["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                if qid is not None and not isinstance(qid, str):
                    raise DataError(f"{path}: {where}.qas[{q_i}] has an 'id' of type "
                                    f"{type(qid).__name__} ({qid!r}); ids are strings")
                if not isinstance(qid, str) or not qid:
                    raise DataError(f"{path}: {where}.qas[{q_i}] has no 'id'")
                if qid in seen:
                    bad("duplicate_id", qid, "duplicate id")
                    continue
                seen.add(qid)
                question = qa.get("question")
                if not isinstance(question, str) or not question.strip():
                    bad("empty_question", qid, "empty or missing question")
                    continue
                if not isinstance(context, str):
                    bad("malformed_context", qid, f"context is a {type(context).__name__}, "
                                                  "not a string")
                    continue
                if not context.strip():
                    bad("empty_context", qid, "empty context")
                    continue
                raw_answers = qa.get("answers")
                if not isinstance(raw_answers, list) or (require_answers and not raw_answers):
                    bad("no_answers", qid, "no 'answers'")
                    continue
                answers, problem = [], None
                placeholders = [a for a in raw_answers if isinstance(a, dict) and a.get("text") == ""]
                if placeholders:   # {"text": "", "answer_start": 0}: no gold answer given
                    report.unanswered.append(qid)
                    raw_answers = [a for a in raw_answers if a not in placeholders]
                    if require_answers and not raw_answers:
                        bad("no_answers", qid, "its only answers have an empty text (no gold "
                            "answer); read it with require_answers=False to use it unscored")
                        continue
                for ans in raw_answers:
                    if not isinstance(ans, dict) or "text" not in ans or "answer_start" not in ans:
                        problem = ("malformed_answer", "an answer lacks 'text' or 'answer_start'")
                        break
                    text, start = ans["text"], ans["answer_start"]
                    if not isinstance(text, str) or not text.strip() or not isinstance(start, int):
                        problem = ("malformed_answer", f"answer {ans!r} has an empty text or a "
                                   "non-integer answer_start")
                        break
                    fixed = _fix_offset(context, text, start)
                    if fixed is None:
                        problem = ("answer_mismatch", f"answer {text!r} is not in the context at "
                                   f"{start} (nor within {OFFSET_WINDOW} characters); context "
                                   f"there reads {context[start:start + len(text)]!r}")
                        break
                    if fixed != start:
                        report.repaired.append(qid)
                    answers.append(Answer(text, fixed))
                if problem:
                    bad(problem[0], qid, problem[1])
                    continue
                examples.append(Example(qid, language, question, context, tuple(answers), title))
    report.read = len(examples)
    report.skipped = dict(report.skipped)
    return examples, report


def read_squad_file(path: str, language: str, skip_bad: bool = False, limit: int = 0,
                    require_answers: bool = True):
    """Reads a SQuAD-format JSON file. Returns ``(examples, report)``; ``limit`` > 0 keeps the
    first ``limit`` questions (file order)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from e
    examples, report = parse_squad_json(data, path, language, skip_bad, require_answers)
    if limit:
        examples = examples[:limit]
        report.read = len(examples)
    return examples, report
