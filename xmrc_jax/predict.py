"""Answers questions with an exported span model: the inference command and API.

    python -m xmrc_jax.predict --model DIR --question "Who wrote it?" --context "It was ..."
    python -m xmrc_jax.predict --model DIR --input FILE [--out PREDICTIONS.json] [--nbest-out F]

``DIR`` is a Hugging Face folder with a span head (any stage's ``hf`` export, or a fine-tuned
``*ForQuestionAnswering`` checkpoint). ``FILE`` is SQuAD-format JSON (answers optional) or JSON
lines with ``question`` and ``context`` (and optionally ``id``). Windows, spans and n-best
are made exactly as the ``evaluate`` stage makes them, so a stage's export answers an
evaluation file as that stage's predictions file says. The window settings come from the flags,
else from the ``config.json`` of the workdir the export sits in, else the defaults below.

``--whole-words`` widens each answer to whole words, as transformers' former question-answering
pipeline did (``align_to_words``); not in scripts written without spaces (CJK, Thai, Lao, Khmer,
Myanmar). Off by default: see the README ("Inference") for what it changes under the official
scripts.

API::

    from xmrc_jax.predict import Predictor
    p = Predictor("DIR")
    p.answer([("Who wrote it?", "It was written by Ada.")], n_best=3)
    # [{"id": "0", "answer": "Ada", "score": 7.1, "start": 18, "n_best": [...]}]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import unicodedata

log = logging.getLogger("xmrc_jax")

DEFAULTS = dict(max_seq_length=384, doc_stride=128, max_query_length=64, max_answer_length=30)
_NO_SPACE_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI", "LAO", "KHMER", "MYANMAR",
                     "TIBETAN")


def _word_char(ch: str) -> bool:
    """A character inside a space-delimited word (letters, digits, marks), not in a script
    written without spaces."""
    if not (ch.isalnum() or unicodedata.category(ch).startswith("M")):
        return False
    return not unicodedata.name(ch, "").startswith(_NO_SPACE_SCRIPTS)


def widen_to_words(context: str, start: int, end: int) -> tuple:
    """``(start, end)`` grown to the boundaries of the words the span cuts into."""
    if start >= end:
        return start, end
    while start > 0 and _word_char(context[start - 1]) and _word_char(context[start]):
        start -= 1
    while end < len(context) and _word_char(context[end]) and _word_char(context[end - 1]):
        end += 1
    return start, end


def _settings_from_workdir(model_dir: str) -> dict:
    """The window settings of the run that exported ``model_dir`` (``WORKDIR/<stage>/hf``)."""
    folder = os.path.abspath(model_dir)
    for _ in range(3):
        folder = os.path.dirname(folder)
        path = os.path.join(folder, "config.json")
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    c = json.load(f)
                d = c["data"]
                found = dict(max_seq_length=d["max_seq_length"], doc_stride=d["doc_stride"],
                             max_query_length=d["max_query_length"],
                             max_answer_length=c["max_answer_length"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            log.info("predict: window settings from %s: %s", path, found)
            return found
    return {}


class Predictor:
    """An exported span model with its tokenizer and window settings."""

    def __init__(self, model_dir: str, *, batch_size: int = 64, whole_words: bool = False,
                 **settings):
        import jax
        from xmrc_jax import mesh as sh
        from xmrc_jax.models import load_pretrained, load_tokenizer
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"Predictor: unknown settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.module, self.params = load_pretrained(model_dir, "span", require_head=True)
        self.tokenizer = load_tokenizer(model_dir, self.module.config.vocab_size)
        chosen = {**DEFAULTS, **_settings_from_workdir(model_dir),
                  **{k: v for k, v in settings.items() if v is not None}}
        if chosen["max_seq_length"] > self.module.config.max_tokens:
            raise ValueError(f"max_seq_length {chosen['max_seq_length']} exceeds the model's "
                             f"{self.module.config.max_tokens} positions ({model_dir})")
        self.settings = chosen
        self.batch_size, self.whole_words = batch_size, whole_words
        self.mesh = sh.make_mesh({"data": -1, "fsdp": 1, "tensor": 1}, jax.local_devices())

    def nbest(self, examples, n_best: int = 5) -> dict:
        """``{id: [(text, score, char_start), ...]}`` for ``data.Example`` objects."""
        from xmrc_jax.data import build_features
        from xmrc_jax.eval import postprocess
        from xmrc_jax.eval.span_qa import predict_windows
        s = self.settings
        feats = build_features(examples, self.tokenizer, s["max_seq_length"], s["doc_stride"],
                               s["max_query_length"],
                               use_token_types=self.module.config.type_vocab_size > 1)
        starts, ends, scores = predict_windows(self.module, self.params, feats, self.mesh,
                                               self.batch_size, n_best, s["max_answer_length"])
        out = postprocess.nbest_per_example(examples, feats, starts, ends, scores, n_best)
        if self.whole_words:
            out = {ex.id: _widened(ex.context, out[ex.id]) for ex in examples}
        return out

    def answer(self, pairs, n_best: int = 5) -> list:
        """``pairs``: ``(question, context)`` or ``(id, question, context)`` tuples, or
        ``data.Example`` objects. One dict per question: ``id``, ``answer`` (``""`` when no span
        was found), ``score``, ``start`` (character offset) and ``n_best``."""
        examples = [_as_example(p, i) for i, p in enumerate(pairs)]
        nbest = self.nbest(examples, n_best)
        rows = []
        for ex in examples:
            cands = [dict(text=t, score=float(sc), start=int(a)) for t, sc, a in nbest[ex.id]]
            top = cands[0] if cands else dict(text="", score=None, start=None)
            rows.append(dict(id=ex.id, answer=top["text"], score=top["score"], start=top["start"],
                             n_best=cands))
        return rows


def _widened(context: str, cands) -> list:
    seen, out = set(), []
    for text, score, a in cands:
        a, b = widen_to_words(context, a, a + len(text))
        if context[a:b] not in seen:
            seen.add(context[a:b])
            out.append((context[a:b], score, a))
    return out


def _as_example(p, i: int):
    from xmrc_jax.data import Example
    if isinstance(p, Example):
        return p
    qid, question, context = (str(i), *p) if len(p) == 2 else p
    for name, value in (("question", question), ("context", context)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"question {qid}: {name} is empty or not a string")
    return Example(id=str(qid), language="", question=question, context=context, answers=())


def read_inputs(path: str, language: str = "") -> list:
    """Examples of a SQuAD-format JSON file or of JSON lines (``question``, ``context``, ``id``)."""
    from xmrc_jax.data import DataError, Example
    from xmrc_jax.data.squad_format import parse_squad_json
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise FileNotFoundError(f"--input {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "data" in data:
        examples, report = parse_squad_json(data, path, language, require_answers=False)
        log.info("%s", report)
    else:
        examples = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise DataError(f"{path} line {n}: not JSON ({e.msg}); expected SQuAD-format JSON "
                                "or one {\"question\": ..., \"context\": ...} object per line") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path} line {n}: expected an object with question and context")
            for key in ("question", "context"):
                if not isinstance(rec.get(key), str) or not rec[key].strip():
                    raise DataError(f"{path} line {n}: '{key}' is missing, empty or not a string")
            examples.append(Example(id=str(rec.get("id", n)), language=language,
                                    question=rec["question"], context=rec["context"], answers=()))
    if not examples:
        raise DataError(f"--input {path}: 0 questions")
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        dup = next(q for q in ids if ids.count(q) > 1)
        raise DataError(f"--input {path}: question id {dup!r} occurs more than once")
    return examples


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="exported span model (Hugging Face folder)")
    ap.add_argument("--input", help="SQuAD-format JSON or JSON lines (question, context, id)")
    ap.add_argument("--question")
    ap.add_argument("--context", help="the context for --question (or @FILE to read it)")
    ap.add_argument("--out", help="write {id: answer} (the official predictions format) here")
    ap.add_argument("--nbest-out", help="write {id: [{text, score, start}, ...]} here")
    ap.add_argument("--n-best", type=int, default=5)
    ap.add_argument("--whole-words", action="store_true", help="widen answers to whole words")
    ap.add_argument("--batch-size", type=int, default=64)
    for key in DEFAULTS:
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    from xmrc_jax.console import configure_logging
    configure_logging()
    from xmrc_jax.data import DataError
    try:
        if bool(args.input) == bool(args.question):
            raise ValueError("give either --input FILE or --question with --context")
        if args.n_best < 1:
            raise ValueError(f"--n-best {args.n_best}: must be at least 1")
        predictor = Predictor(args.model, batch_size=args.batch_size, whole_words=args.whole_words,
                              **{k: getattr(args, k) for k in DEFAULTS})
        if args.question:
            context = args.context or ""
            if context.startswith("@"):
                with open(context[1:], encoding="utf-8") as f:
                    context = f.read()
            examples = [_as_example(("0", args.question, context), 0)]
        else:
            examples = read_inputs(args.input)
        rows = predictor.answer(examples, args.n_best)
    except (FileNotFoundError, DataError, ValueError) as e:
        if args.verbose:
            raise
        raise SystemExit(f"xmrc_jax.predict: {e}  (--verbose shows the traceback)") from None
    if args.out:
        _write(args.out, {r["id"]: r["answer"] for r in rows})
    if args.nbest_out:
        _write(args.nbest_out, {r["id"]: r["n_best"] for r in rows})
    if args.question:
        r = rows[0]
        print(r["answer"] if r["answer"] else "(no answer found)")
        for c in r["n_best"]:
            print(f"  {c['score']:8.3f}  {c['text']!r} (at {c['start']})")
    elif not args.out and not args.nbest_out:
        for r in rows:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
    else:
        found = sum(1 for r in rows if r["answer"])
        log.info("predict: %d questions, %d answered, %d without a span", len(rows), found,
                 len(rows) - found)


def _write(path: str, obj):
    from xmrc_jax.stages.artifacts import write_json
    write_json(path, obj, indent=None)


def cli():
    """The console entry point: ``main()`` in a process whose malloc uses huge pages."""
    from xmrc_jax.hostmem import reexec_with_huge_pages
    reexec_with_huge_pages()
    main()


if __name__ == "__main__":
    cli()
