"""Querying LSH tables and scoring a chosen set against the exact top-k.

A table is stored sorted: ``sorted_codes[t]`` ascending and ``order[t]`` the nodes
in that order, each bucket's nodes by falling priority; a bucket holds the first
``capacity`` nodes of its run. A bucket is found by binary search, so empty
buckets cost nothing to store.
"""

import numba as nb
import numpy as np

from .._config import NJIT_SERIAL
from ._select import topk_mark

#: policy codes shared with ``lshprof.lsh``
UNION, HISTOGRAM, MULTIPROBE = 0, 1, 2


@nb.njit(**NJIT_SERIAL)
def query_tables(codes, probes, sorted_codes, order, capacity, budget, policy, n_nodes,
                 out_idx, out_cnt, stats):
    """Choose up to ``budget`` nodes per query from its buckets.

    ``codes[q, t]``: the query's bucket in table ``t``; ``probes[q, t, r]``: extra
    buckets (multi-probe; -1 = none). Policies:

    * ``UNION``: exact buckets, table by table, nodes in bucket order, until the
      budget is filled;
    * ``HISTOGRAM``: count in how many tables each node shares the exact bucket and
      keep the ``budget`` highest counts (ties: first seen);
    * ``MULTIPROBE``: like ``HISTOGRAM`` over the exact and the probed buckets, an
      exact-bucket hit outranking any number of probe hits.

    Writes node ids (ascending) to ``out_idx[q*budget : q*budget + out_cnt[q]]``.
    ``stats`` accumulates: [entries visited, buckets probed, empty buckets].
    """
    nq, L = codes.shape
    R = probes.shape[2]
    mark = np.full(n_nodes, -1, dtype=np.int64)
    score = np.zeros(n_nodes, dtype=np.int64)
    cand = np.empty(n_nodes, dtype=np.int64)
    exact_w = np.int64(L) * np.int64(R) + 1
    rounds = 1 + (R if policy == MULTIPROBE else 0)
    for q in range(nq):
        nc = 0
        done = False
        for r in range(rounds):
            if done:
                break
            for t in range(L):
                code = codes[q, t] if r == 0 else probes[q, t, r - 1]
                if code < 0:
                    continue
                row = sorted_codes[t]
                lo = np.searchsorted(row, code, side="left")
                hi = np.searchsorted(row, code, side="right")
                if hi - lo > capacity:
                    hi = lo + capacity
                stats[1] += 1
                if hi == lo:
                    stats[2] += 1
                w = exact_w if r == 0 else 1
                for e in range(lo, hi):
                    node = order[t, e]
                    stats[0] += 1
                    if mark[node] != q:
                        mark[node] = q
                        score[node] = 0
                        cand[nc] = node
                        nc += 1
                        if policy == UNION and nc == budget:
                            done = True
                            break
                    score[node] += w
                if done:
                    break
        base = q * budget
        if nc <= budget:
            keep = np.sort(cand[:nc])
            m = nc
        else:
            s = np.empty(nc, dtype=np.int64)
            for i in range(nc):
                s[i] = -score[cand[i]]
            top = np.argsort(s, kind="mergesort")[:budget]
            keep = np.sort(cand[:nc][top])
            m = budget
        for i in range(m):
            out_idx[base + i] = keep[i]
        out_cnt[q] = m


@nb.njit(**NJIT_SERIAL)
def selection_quality(z, indptr, indices, rand_keys, out):
    """Score each row's chosen set against the exact top-k of the same size.

    ``z[q]``: every pre-activation of query ``q``; the chosen set is row ``q`` of the
    CSR pattern. ``k`` = the chosen count; the true top-k breaks ties to the lowest
    node number; the random set is the ``k`` nodes with the smallest
    ``rand_keys[q]``. ``out[q]``: recall of the top-k, share of the positive mass
    ``sum max(z, 0)`` captured, the same two for the random set, the top-k's own
    mass share, and whether the row has any positive mass (1.0) or not (0.0).
    """
    n = z.shape[1]
    tmp = np.empty(n, dtype=z.dtype)
    in_top = np.empty(n, dtype=np.bool_)
    for q in range(z.shape[0]):
        a, b = indptr[q], indptr[q + 1]
        k = b - a
        total = 0.0
        for j in range(n):
            if z[q, j] > 0:
                total += z[q, j]
        if k == 0:
            out[q, :5] = 0.0
            out[q, 5] = 1.0 if total > 0 else 0.0
            continue
        topk_mark(z[q], k, tmp, in_top)
        top_mass = 0.0
        for j in range(n):
            if in_top[j] and z[q, j] > 0:
                top_mass += z[q, j]
        hit = 0
        mass = 0.0
        for e in range(a, b):
            j = indices[e]
            if in_top[j]:
                hit += 1
            if z[q, j] > 0:
                mass += z[q, j]
        rk = rand_keys[q]
        rthr = np.partition(rk.copy(), k - 1)[k - 1]
        rhit = 0
        rmass = 0.0
        taken = 0
        for j in range(n):
            if rk[j] <= rthr and taken < k:
                taken += 1
                if in_top[j]:
                    rhit += 1
                if z[q, j] > 0:
                    rmass += z[q, j]
        out[q, 0] = hit / k
        out[q, 2] = rhit / k
        if total > 0:
            out[q, 1] = mass / total
            out[q, 3] = rmass / total
            out[q, 4] = top_mass / total
            out[q, 5] = 1.0
        else:
            out[q, 1] = 0.0
            out[q, 3] = 0.0
            out[q, 4] = 0.0
            out[q, 5] = 0.0
