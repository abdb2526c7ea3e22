"""From window-level top-k spans to per-example answers (n-best across an example's windows).

Answer text is always cut from the original context by character offsets; it is never
detokenized (detokenizing breaks zh and any script without spaces).
"""

from __future__ import annotations

import collections



def nbest_per_example(examples, features: dict, starts, ends, scores, n_best: int = 20) -> dict:
    """``{example id: [(text, score, char_start), ...]}`` sorted by score, distinct texts.

    ``starts, ends, scores``: ``[num_windows, k]`` from ``top_k_spans`` (token indices of each
    window, -1 for missing spans). Every example appears, with an empty list if no window had a
    valid span.
    """
    per = collections.defaultdict(list)
    offsets, ex_index = features["offsets"], features["example_index"]
    for w in range(len(starts)):
        ok = starts[w] >= 0
        if not ok.any():
            continue
        cs = offsets[w, starts[w][ok], 0]
        ce = offsets[w, ends[w][ok], 1]
        for a, b, s in zip(cs, ce, scores[w][ok]):
            per[int(ex_index[w])].append((float(s), int(a), int(b)))
    out = {}
    for i, ex in enumerate(examples):
        seen, ranked = set(), []
        for s, a, b in sorted(per.get(i, ()), key=lambda t: (-t[0], t[1], t[2])):
            text = ex.context[a:b]
            if text in seen:
                continue
            seen.add(text)
            ranked.append((text, s, a))
            if len(ranked) == n_best:
                break
        out[ex.id] = ranked
    return out


def predictions_from_nbest(nbest: dict) -> dict:
    """The official predictions format: ``{id: top-1 text}`` ("" where nothing was found)."""
    return {qid: (cands[0][0] if cands else "") for qid, cands in nbest.items()}
