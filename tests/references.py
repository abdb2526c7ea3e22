"""Independent brute-force numpy references (loops over spans, pairs and rows).

Shared by the tests and by benchmarks/ (which time them against the jitted versions).
"""

import math

import numpy as np


def log_softmax_np(x, valid):
    out = np.full(x.shape, -np.inf)
    v = x[valid].astype(np.float64)
    if v.size:
        mx = v.max()
        lse = mx + math.log(np.exp(v - mx).sum()) if np.isfinite(mx) else -np.inf
        out[valid] = v - lse
    return out


def brute_top_k_spans(start, end, mask, k, max_len):
    """Every valid span of every row, sorted by (-score, start, end); first k."""
    batch, seq = start.shape
    S = np.full((batch, k), -1, np.int64)
    E = np.full((batch, k), -1, np.int64)
    V = np.full((batch, k), -np.inf, np.float32)
    for b in range(batch):
        spans = []
        for i in range(seq):
            for j in range(i, min(seq, i + max_len)):
                if mask[b, i] and mask[b, j]:
                    score = np.float32(start[b, i]) + np.float32(end[b, j])
                    if score > -np.inf:
                        spans.append((-score, i, j))
        spans.sort()
        for r, (neg, i, j) in enumerate(spans[:k]):
            S[b, r], E[b, r], V[b, r] = i, j, -neg
    return S, E, V


def host_nbest(start, end, mask, k, max_len, n_best=20):
    """The usual host-side post-processing (HF run_qa / BERT): the top ``n_best`` start indices
    times the top ``n_best`` end indices, filtered for validity, sorted by score; first k."""
    out = []
    for b in range(start.shape[0]):
        s_idx = np.argsort(start[b])[::-1][:n_best]
        e_idx = np.argsort(end[b])[::-1][:n_best]
        spans = []
        for i in s_idx:
            for j in e_idx:
                if not (mask[b, i] and mask[b, j]) or j < i or j - i + 1 > max_len:
                    continue
                spans.append((-(start[b, i] + end[b, j]), int(i), int(j)))
        spans.sort()
        out.append([(i, j, -s) for s, i, j in spans[:k]])
    return out


def span_types_np(starts, ends, gs, ge):
    t = np.full(starts.shape, 2)
    for b in range(starts.shape[0]):
        for z in range(starts.shape[1]):
            same = int(starts[b, z] == gs[b]) + int(ends[b, z] == ge[b])
            t[b, z] = {2: 0, 1: 1, 0: 2}[int(same)]
    return t


def pool_spans_np(hidden, starts, ends):
    batch, k = starts.shape
    out = np.zeros((batch, k, hidden.shape[-1]))
    for b in range(batch):
        for z in range(k):
            if starts[b, z] >= 0:
                out[b, z] = hidden[b, starts[b, z]:ends[b, z] + 1].astype(np.float64).mean(0)
    return out


def cos_np(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / max(na * nb, 1e-8))


def aacl_np(hidden, qmask, gs, ge, gvalid, cs, ce, cvalid, tau, negative="not_gold"):
    """AA-CL by loops: returns (loss, number of active rows, per-row loss); ``negative``
    "no_overlap" skips every candidate that shares a token with the gold span."""
    batch = hidden.shape[0]
    h = hidden.astype(np.float64)
    rq, rpos, rneg, active = [], [], [], []
    for b in range(batch):
        q = h[b][qmask[b]].mean(0) if qmask[b].any() else np.zeros(h.shape[-1])
        pos = h[b, gs[b]:ge[b] + 1].mean(0)
        best, best_sim = None, -np.inf
        for z in range(cs.shape[1]):
            if not cvalid[b, z] or cs[b, z] < 0 or (cs[b, z] == gs[b] and ce[b, z] == ge[b]):
                continue
            shared = set(range(cs[b, z], ce[b, z] + 1)) & set(range(gs[b], ge[b] + 1))
            if negative == "no_overlap" and shared:
                continue
            c = h[b, cs[b, z]:ce[b, z] + 1].mean(0)
            sim = cos_np(pos, c)
            if sim > best_sim:
                best, best_sim = c, sim
        rq.append(q)
        rpos.append(pos)
        rneg.append(best)
        active.append(bool(gvalid[b]) and best is not None)
    per = np.zeros(batch)
    cands = [rpos[b] for b in range(batch) if active[b]] + [rneg[b] for b in range(batch) if active[b]]
    for b in range(batch):
        if not active[b]:
            continue
        logits = np.array([cos_np(rq[b], c) / tau for c in cands])
        per[b] = -(cos_np(rq[b], rpos[b]) / tau - np.log(np.exp(logits - logits.max()).sum()) - logits.max())
    n = sum(active)
    return per.sum() / max(n, 1), n, per


def info_nce_np(anchors, positives, tau, mask, groups=None):
    """In-batch InfoNCE by loops; with ``groups``, another row of the same group is no negative."""
    idx = [i for i in range(len(anchors)) if mask[i]]
    per = np.zeros(len(anchors))
    for i in idx:
        cols = [j for j in idx if groups is None or j == i or groups[j] != groups[i]]
        logits = np.array([float(anchors[i] @ positives[j]) / tau for j in cols])
        mx = logits.max()
        per[i] = -(float(anchors[i] @ positives[i]) / tau - (mx + np.log(np.exp(logits - mx).sum())))
    return per


def brute_ranking(scores, k):
    """Indices of the ``k`` best candidates of each row: sorted by (-score, index); -1 past the
    end of the pool."""
    out = np.full((scores.shape[0], k), -1, np.int64)
    for i, row in enumerate(scores):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        out[i, :len(order)] = order
    return out


def brute_retrieval_metrics(scores, relevant, ks=(1, 10), mrr_at=10):
    """Recall@k (a relevant candidate ranked <= k) and MRR@k from full score rows, ranking every
    candidate by (-score, index); a query with no relevant candidate scores 0."""
    hits = {k: 0.0 for k in ks}
    rr = 0.0
    for row, rel in zip(scores, relevant):
        ranked = sorted(range(len(row)), key=lambda j: (-row[j], j))
        rank = next((r + 1 for r, j in enumerate(ranked) if j in set(rel)), None)
        for k in ks:
            hits[k] += 1.0 if rank is not None and rank <= k else 0.0
        rr += 1.0 / rank if rank is not None and rank <= mrr_at else 0.0
    n = len(scores)
    out = {f"R@{k}": 100.0 * hits[k] / n for k in ks}
    out[f"MRR@{mrr_at}"] = 100.0 * rr / n
    return out
