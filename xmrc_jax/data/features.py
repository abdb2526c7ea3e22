"""Sliding-window features for extractive QA, built with one batched fast-tokenizer call.

    feats = build_features(examples, tokenizer, max_seq_length=384, doc_stride=128,
                           max_query_length=64, cache_dir="work/cache")

Each window is ``<s> question </s></s> context-part </s>`` (XLM-R; ``[CLS] q [SEP] c [SEP]`` for
BERT). ``doc_stride`` follows Hugging Face's ``stride``: the number of context tokens that
consecutive windows share. Questions longer than ``max_query_length`` tokens are cut at that
token's character offset. Labels are the tokens that cover the first gold answer; a window
that does not contain the whole answer points both labels at position 0 (the first special
token), as is standard. Offsets map context tokens back to characters (``-1`` elsewhere), so
predicted text is always cut from the original context, never detokenized.

The arrays are cached on disk under a key made of the tokenizer, the examples' content and the
settings: a second run with the same inputs loads them instead of tokenizing again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
import weakref

import numpy as np

log = logging.getLogger("xmrc_jax")

FEATURE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "offsets", "context_mask",
                "question_mask", "start_positions", "end_positions", "answer_in_window",
                "example_index")
_CACHE_VERSION = "1"


def _prefix_specials(tokenizer) -> int:
    """Special tokens before the context in a pair (XLM-R: 3, BERT: 2)."""
    return tokenizer.num_special_tokens_to_add(pair=True) - 1


def truncate_questions(questions, tokenizer, max_query_length: int) -> list:
    """Questions cut to at most ``max_query_length`` tokens (at a token's character end)."""
    qs = [q.lstrip() for q in questions]
    enc = tokenizer(qs, add_special_tokens=False, return_offsets_mapping=True,
                    verbose=False)              # cut below: no warning about long questions
    out = []
    for q, ids, offs in zip(qs, enc["input_ids"], enc["offset_mapping"]):
        out.append(q[:offs[max_query_length - 1][1]] if len(ids) > max_query_length else q)
    return out


# Per tokenizer object: its fingerprint and configured window tokenizers. Serialising a 250k
# vocabulary takes about a second, so each is built once per tokenizer, not once per call.
_PER_TOKENIZER = weakref.WeakKeyDictionary()


def _memo(tokenizer) -> dict:
    return _PER_TOKENIZER.setdefault(tokenizer, {})


def tokenizer_fingerprint(tokenizer) -> str:
    """SHA-256 of the tokenizer's vocabulary, normalizer and pre/post-processing, without the
    truncation and padding state that every call with ``truncation=`` / ``padding=`` changes.
    Added tokens change ``len(tokenizer)``, which is part of the key too."""
    memo = _memo(tokenizer)
    if memo.get("fingerprint", (None,))[0] != len(tokenizer):
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        memo["fingerprint"] = (len(tokenizer), f"{len(tokenizer)}:{digest}")
    return memo["fingerprint"][1]


def cache_key(examples, tokenizer, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(_CACHE_VERSION.encode())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    for ex in examples:
        h.update("\x1f".join([ex.id, ex.question, ex.context] +
                             [f"{a.start}:{a.text}" for a in ex.answers]).encode())
        h.update(b"\x1e")
    return h.hexdigest()[:24]


def build_features(examples, tokenizer, max_seq_length: int = 384, doc_stride: int = 128,
                   max_query_length: int = 64, use_token_types: bool = False,
                   cache_dir: str = "", chunk_size: int = 2048) -> dict:
    """Window arrays for ``examples`` (see the module docstring). All arrays have the window
    count as first dimension; ``example_index`` points into ``examples``."""
    settings = dict(max_seq_length=max_seq_length, doc_stride=doc_stride,
                    max_query_length=max_query_length, use_token_types=use_token_types)
    if max_query_length + _prefix_specials(tokenizer) + 2 >= max_seq_length:
        raise ValueError(f"max_query_length {max_query_length} leaves no room for context in "
                         f"max_seq_length {max_seq_length}")
    path = ""
    if cache_dir:
        path = os.path.join(cache_dir, f"features-{cache_key(examples, tokenizer, settings)}.npz")
        if os.path.exists(path):
            with np.load(path) as z:
                return {k: z[k] for k in FEATURE_KEYS}
    t0 = time.time()
    parts = [_build_chunk(examples[i:i + chunk_size], i, tokenizer, max_seq_length, doc_stride,
                          max_query_length, use_token_types)
             for i in range(0, len(examples), chunk_size)]
    feats = {k: np.concatenate([p[k] for p in parts]) for k in FEATURE_KEYS} if parts else \
        _empty(max_seq_length)
    log.info("built %d windows for %d examples in %.1fs", len(feats["input_ids"]), len(examples),
             time.time() - t0)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + f".tmp{os.getpid()}.npz"
        np.savez(tmp, **feats)
        os.replace(tmp, path)
    return feats


def _empty(L):
    z = lambda *s, dt=np.int32: np.zeros(s, dt)  # noqa: E731
    return dict(input_ids=z(0, L), attention_mask=z(0, L), token_type_ids=z(0, L),
                offsets=z(0, L, 2), context_mask=z(0, L, dt=bool), question_mask=z(0, L, dt=bool),
                start_positions=z(0), end_positions=z(0), answer_in_window=z(0, dt=bool),
                example_index=z(0))


def _window_tokenizer(tokenizer, L, stride):
    """A private copy of the fast tokenizer's Rust backend set to cut (question, context) pairs
    into windows of ``L`` tokens overlapping by ``stride``, padded to ``L``. Calling the backend
    directly skips the per-window Python conversions of the ``transformers`` wrapper (about
    half the time of a batch); the tests check the result equals the wrapper's, window by
    window."""
    from tokenizers import Tokenizer
    memo = _memo(tokenizer)
    key = ("windows", len(tokenizer), L, stride)
    if key not in memo:
        bt = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        bt.enable_truncation(max_length=L, stride=stride, strategy="only_second", direction="right")
        bt.enable_padding(length=L, pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
        memo[key] = bt
    return memo[key]


def _stack(windows, attr, L, width=1):
    """``[n, L(, 2)]`` int32 from one attribute of every window, without per-row lists."""
    chain = itertools.chain.from_iterable
    rows = (getattr(w, attr) for w in windows)
    flat = np.fromiter(chain(chain(rows)) if width > 1 else chain(rows), np.int32,
                       len(windows) * L * width)
    return flat.reshape((len(windows), L, width) if width > 1 else (len(windows), L))


def _build_chunk(examples, base_index, tokenizer, L, stride, max_q, use_token_types):
    questions = truncate_questions([e.question for e in examples], tokenizer, max_q)
    bt = _window_tokenizer(tokenizer, L, stride)
    q_lens = np.array([sum(e.attention_mask)
                       for e in bt.encode_batch(questions, add_special_tokens=False)])
    encs = bt.encode_batch(list(zip(questions, [e.context for e in examples])))
    windows, ex_idx = [], []
    for i, enc in enumerate(encs):            # a pair's first window, then its overflow windows
        windows.append(enc)
        windows.extend(enc.overflowing)
        ex_idx.extend([i] * (1 + len(enc.overflowing)))
    ex_idx = np.asarray(ex_idx, np.int32)
    ids = _stack(windows, "ids", L)
    mask = _stack(windows, "attention_mask", L)
    offsets = _stack(windows, "offsets", L, 2)
    n, pos = len(ids), np.arange(L)[None, :]
    q_len = q_lens[ex_idx][:, None]
    ctx_start = q_len + _prefix_specials(tokenizer)
    n_tokens = mask.sum(1, keepdims=True)
    context_mask = (pos >= ctx_start) & (pos < n_tokens - 1)
    question_mask = (pos >= 1) & (pos < 1 + q_len)
    # The layout above is checked against the tokenizer's own sequence ids on the first window.
    if n:
        seq_ids = np.array([-1 if s is None else s for s in windows[0].sequence_ids])
        if not (np.array_equal(seq_ids == 1, context_mask[0]) and
                np.array_equal(seq_ids == 0, question_mask[0])):
            raise ValueError(f"{type(tokenizer).__name__}: unexpected pair layout; only "
                             "BERT / XLM-R style special tokens are supported")
    offsets = np.where(context_mask[..., None], offsets, -1)
    token_types = _stack(windows, "type_ids", L) if use_token_types else np.zeros_like(ids)
    # Labels from the first gold answer.
    ans_start = np.array([e.answers[0].start if e.answers else -1 for e in examples])[ex_idx]
    ans_end = np.array([e.answers[0].start + len(e.answers[0].text) if e.answers else -1
                        for e in examples])[ex_idx]
    big = np.iinfo(np.int32).max
    first_ctx = np.where(context_mask, offsets[..., 0], big).min(1)
    last_ctx = np.where(context_mask, offsets[..., 1], -1).max(1)
    inside = (ans_start >= 0) & (first_ctx <= ans_start) & (last_ctx >= ans_end)
    start_tok = np.where(context_mask & (offsets[..., 0] <= ans_start[:, None]), pos, -1).max(1)
    # The end search starts at the start token: offsets may overlap (a lone "▁" and the next
    # piece can share a character), and a plain backward scan can then end before the start.
    end_tok = np.where(context_mask & (offsets[..., 1] >= ans_end[:, None])
                       & (pos >= start_tok[:, None]), pos, big).min(1)
    inside &= (start_tok >= 0) & (end_tok < big) & (start_tok <= end_tok)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=token_types,
                offsets=offsets.astype(np.int32), context_mask=context_mask,
                question_mask=question_mask,
                start_positions=np.where(inside, start_tok, 0).astype(np.int32),
                end_positions=np.where(inside, end_tok, 0).astype(np.int32),
                answer_in_window=inside, example_index=(ex_idx + base_index).astype(np.int32))


def build_features_per_example(examples, tokenizer, max_seq_length=384, doc_stride=128,
                               max_query_length=64) -> dict:
    """A straightforward reference: one tokenizer call per example, labels by Python loops over
    ``sequence_ids``. Used by the tests (window counts, labels) and by the benchmark."""
    rows = {k: [] for k in FEATURE_KEYS}
    questions = truncate_questions([e.question for e in examples], tokenizer, max_query_length)
    for i, (ex, q) in enumerate(zip(examples, questions)):
        enc = tokenizer(q, ex.context, truncation="only_second", max_length=max_seq_length,
                        stride=doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, padding="max_length")
        for w in range(len(enc["input_ids"])):
            seq = enc.sequence_ids(w)
            offs = enc["offset_mapping"][w]
            ctx = [t for t, s in enumerate(seq) if s == 1]
            start_tok = end_tok = 0
            inside = False
            if ex.answers:
                a0 = ex.answers[0].start
                a1 = a0 + len(ex.answers[0].text)
                if offs[ctx[0]][0] <= a0 and offs[ctx[-1]][1] >= a1:
                    s = ctx[0]
                    while s <= ctx[-1] and offs[s][0] <= a0:
                        s += 1
                    e = ctx[-1]
                    while e >= s - 1 and offs[e][1] >= a1:
                        e -= 1
                    start_tok, end_tok, inside = s - 1, e + 1, True
            rows["input_ids"].append(enc["input_ids"][w])
            rows["attention_mask"].append(enc["attention_mask"][w])
            rows["token_type_ids"].append([0] * max_seq_length)
            rows["offsets"].append([o if sq == 1 else (-1, -1) for o, sq in zip(offs, seq)])
            rows["context_mask"].append([sq == 1 for sq in seq])
            rows["question_mask"].append([sq == 0 for sq in seq])
            rows["start_positions"].append(start_tok)
            rows["end_positions"].append(end_tok)
            rows["answer_in_window"].append(inside)
            rows["example_index"].append(i)
    return {k: np.asarray(v) for k, v in rows.items()}


def dominant_contexts(examples, feats, share: float = 0.2, min_windows: int = 50) -> list:
    """Examples whose context alone makes more than ``share`` of all windows (and at least
    ``min_windows``): ``[(example, windows, fraction)]``, largest first. A pathological input
    (one huge paragraph) would otherwise silently dominate training."""
    counts = np.bincount(feats["example_index"], minlength=len(examples))
    total = max(int(counts.sum()), 1)
    by_context = {}
    for i, ex in enumerate(examples):
        by_context.setdefault(ex.context, []).append(i)
    out = []
    for idxs in by_context.values():
        n = int(counts[idxs].sum())
        if n >= min_windows and n / total > share:
            out.append((examples[idxs[0]], n, n / total))
    return sorted(out, key=lambda t: -t[1])
