"""Building, updating and querying the LSH layer's hash tables.

Layout (``lshprof.nn.lsh.HashTables`` holds the arrays; one table per row):

* ``codes[t, v]``: node ``v``'s code in table ``t``, in the smallest unsigned dtype that
  holds every code (``int64`` above 32 bits); meaningful for inserted nodes only.
* ``order[t, :count]`` (int32): the inserted nodes sorted by code, and within a code by
  falling priority; a bucket holds the first ``capacity`` nodes of its run. Entries past
  ``count`` are 0 and never read.
* ``index[t]``, one of two forms:

  - *offsets* (``dense``, when the code space ``S`` -- the next power of 2 above the
    largest code -- is at most the node count): ``S + 1`` int32 run starts, bucket ``c``
    is ``order[t, index[t, c]:index[t, c + 1]]``; a code ``>= S`` is an empty bucket;
  - *sorted codes* (otherwise): ``index[t, :count]`` = ``codes[t, order[t, :count]]``,
    ascending; a bucket is found by binary search, so empty buckets cost nothing.

* ``keys[t, v]`` (int64, reservoir replacement only): random priorities. FIFO needs
  none: the position in the run is the priority (newest first).

Priorities are compared as (key descending, node ascending), so ties between reservoir
keys go to the lower node number, as a stable sort by key over nodes in order would.

An update builds new arrays from the old ones (nothing is written in place), so a
reader that took the old arrays keeps a consistent table while it runs.
"""

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from lshprof._config import NJIT_PARALLEL, NJIT_SERIAL
from lshprof.kernels._select import topk_mark

#: policy codes shared with ``lshprof.nn.lsh``
UNION, HISTOGRAM, MULTIPROBE = 0, 1, 2


# -- building and updating -------------------------------------------------------------------
@nb.njit(**NJIT_SERIAL)
def transpose_codes(new_codes, out):
    """``out[t, i] = new_codes[i, t]`` (``out`` has the tables' compact dtype; every code
    fits): one row of codes per table."""
    for i in range(new_codes.shape[0]):
        src = new_codes[i]
        for t in range(out.shape[0]):
            out[t, i] = src[t]


@nb.njit(**NJIT_SERIAL)
def changed_counts(rows, codes_t, codes, inserted, clear, out):
    """``out[t]``: how many of ``rows`` get a new code (``codes_t[t, i]`` for
    ``rows[i]``) in table ``t`` (every row when ``clear`` or not inserted yet)."""
    for t in range(codes_t.shape[0]):
        c = 0
        for i in range(rows.shape[0]):
            r = rows[i]
            if clear or not inserted[r] or codes[t, r] != codes_t[t, i]:
                c += 1
        out[t] = c


@nb.njit(**NJIT_SERIAL)
def _sort_new(C, Cc, nc, fifo, keys, new_dense, n_buckets, A, Ac, astart):
    """``C[:nc]`` (codes ``Cc``, in insertion order) sorted by (code ascending, priority
    descending) into ``A``/``Ac``; with offsets, ``astart[c]`` = where code ``c`` starts."""
    if new_dense:
        for c in range(n_buckets + 1):
            astart[c] = 0
        for j in range(nc):
            astart[Cc[j] + 1] += 1
        for c in range(n_buckets):
            astart[c + 1] += astart[c]
    if fifo:
        if new_dense:  # counting sort of the newest-first sequence (C reversed): stable
            for j in range(nc - 1, -1, -1):
                c = Cc[j]
                p = astart[c]
                A[p] = C[j]
                Ac[p] = c
                astart[c] = p + 1
        else:
            rc = np.empty(nc, dtype=np.int64)
            for j in range(nc):
                rc[j] = Cc[nc - 1 - j]
            o = np.argsort(rc, kind="mergesort")
            for j in range(nc):
                A[j] = C[nc - 1 - o[j]]
                Ac[j] = rc[o[j]]
    else:  # (key descending, node ascending), then stably by code
        o = np.argsort(C[:nc], kind="mergesort")
        kk = np.empty(nc, dtype=np.int64)
        for j in range(nc):
            kk[j] = -keys[C[o[j]]]
        o = o[np.argsort(kk, kind="mergesort")]
        if new_dense:
            for j in range(nc):
                c = Cc[o[j]]
                p = astart[c]
                A[p] = C[o[j]]
                Ac[p] = c
                astart[c] = p + 1
        else:
            for j in range(nc):
                kk[j] = Cc[o[j]]
            o2 = np.argsort(kk, kind="mergesort")
            for j in range(nc):
                A[j] = C[o[o2[j]]]
                Ac[j] = kk[o2[j]]
    if new_dense:  # the scatter left astart[c] at the end of run c: shift back
        for c in range(n_buckets, 0, -1):
            astart[c] = astart[c - 1]
        astart[0] = 0


@nb.njit(**NJIT_SERIAL)
def _update_table(rows, perm, codes_t, clear, fifo, old_codes, was_in, old_order, old_count,
                  old_dense, old_index, keys, drawn, new_codes, new_order, new_dense, new_index,
                  n_buckets, mark, C, Cc, A, Ac, astart):
    """Update one table; returns how many entries were (re)inserted.

    Row ``rows[i]`` gets code ``codes_t[perm[i]]``, in this insertion order (later =
    newer). A row is (re)inserted when ``clear``, when it was not inserted, or when its
    code changed; reservoir keys of the reinserted rows come from ``drawn`` (in the same
    order) and are written to ``keys``. ``new_codes`` holds the old codes on entry (any
    values when ``clear``) and the new ones on exit. ``mark`` must be all False and is
    left so; ``C``, ``Cc``, ``A``, ``Ac`` (``len(rows)``) and ``astart``
    (``n_buckets + 1``) are scratch. Writes ``new_order[:count]`` (zeros after) and
    ``new_index``; ``count`` is the number of nodes inserted after the update.
    """
    m = rows.shape[0]
    um = np.uint64(m)
    nc = np.uint64(0)
    if clear:
        for i in range(um):
            r = np.uint64(rows[i])
            c = codes_t[np.uint64(perm[i])]
            C[i] = r
            Cc[i] = c
            new_codes[r] = c
        nc = um
    else:
        for i in range(um):
            r = np.uint64(rows[i])
            c = codes_t[np.uint64(perm[i])]
            ch = (not was_in[r]) or old_codes[r] != c
            C[nc] = r
            Cc[nc] = c
            new_codes[r] = c  # (the same value when unchanged)
            mark[r] = ch
            nc += np.uint64(ch)
    n_new = np.int64(nc)
    if not fifo:
        for j in range(nc):
            keys[np.uint64(C[j])] = drawn[j]
    _sort_new(C, Cc, n_new, fifo, keys, new_dense, n_buckets, A, Ac, astart)
    n_old = 0 if clear else old_count
    k = np.uint64(0)
    if new_dense and n_old == 0:
        for j in range(nc):
            new_order[j] = A[j]
        for c in range(n_buckets + 1):
            new_index[c] = astart[c]
        k = nc
    elif new_dense and old_dense:
        # bucket by bucket: the new run, then the kept old run (fifo: new entries are
        # newer than all old ones) or the two merged by key (reservoir)
        n_old_b = old_index.shape[0] - 1
        for b in range(n_buckets):
            new_index[b] = k
            ja, jb = np.uint64(astart[b]), np.uint64(astart[b + 1])
            ia, ib = np.uint64(0), np.uint64(0)
            if b < n_old_b:
                ia, ib = np.uint64(old_index[b]), np.uint64(old_index[b + 1])
            if fifo:
                for j in range(ja, jb):
                    new_order[k] = A[j]
                    k += np.uint64(1)
                for i in range(ia, ib):
                    node = old_order[i]
                    if not mark[np.uint64(node)]:
                        new_order[k] = node
                        k += np.uint64(1)
            else:
                j, i = ja, ia
                while True:
                    while i < ib and mark[np.uint64(old_order[i])]:
                        i += np.uint64(1)
                    if j < jb and i < ib:
                        na, no = A[j], old_order[i]
                        if keys[na] > keys[no] or (keys[na] == keys[no] and na < no):
                            new_order[k] = na
                            j += np.uint64(1)
                        else:
                            new_order[k] = no
                            i += np.uint64(1)
                    elif j < jb:
                        new_order[k] = A[j]
                        j += np.uint64(1)
                    elif i < ib:
                        new_order[k] = old_order[i]
                        i += np.uint64(1)
                    else:
                        break
                    k += np.uint64(1)
        new_index[n_buckets] = k
    else:
        # general merge of two code-sorted sequences (sorted codes on either side)
        if new_dense:
            for c in range(n_buckets + 1):
                astart[c] = 0
        i = 0
        j = 0
        b_o = 0
        code_o = np.int64(0)
        while True:
            while i < n_old and mark[old_order[i]]:
                i += 1
            have_o = i < n_old
            if have_o:
                if old_dense:
                    while old_index[b_o + 1] <= i:
                        b_o += 1
                    code_o = np.int64(b_o)
                else:
                    code_o = np.int64(old_index[i])
            if j < n_new:
                code_a = np.int64(Ac[j])
                take_a = not have_o or code_a < code_o
                if have_o and code_a == code_o:
                    if fifo:
                        take_a = True
                    else:
                        na, no = A[j], old_order[i]
                        take_a = keys[na] > keys[no] or (keys[na] == keys[no] and na < no)
                if take_a:
                    node = A[j]
                    code = code_a
                    j += 1
                else:
                    node = old_order[i]
                    code = code_o
                    i += 1
            elif have_o:
                node = old_order[i]
                code = code_o
                i += 1
            else:
                break
            new_order[k] = node
            if new_dense:
                astart[code + 1] += 1
            else:
                new_index[k] = code
            k += np.uint64(1)
        if new_dense:
            for c in range(n_buckets):
                astart[c + 1] += astart[c]
            for c in range(n_buckets + 1):
                new_index[c] = astart[c]
    for p in range(k, np.uint64(new_order.shape[0])):
        new_order[p] = 0
        if not new_dense:
            new_index[p] = 0
    if not clear:
        for j in range(nc):
            mark[np.uint64(C[j])] = False
    return n_new


@nb.njit(**NJIT_SERIAL)
def _update_scratch(n, m, n_buckets):
    """Scratch space of :func:`_update_table` for one thread: ``(mark, C, Cc, A, Ac, astart)``."""
    return (np.zeros(n, dtype=np.bool_), np.empty(m, dtype=np.int64),
            np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64),
            np.empty(m, dtype=np.int64), np.empty(n_buckets + 1, dtype=np.int64))


@nb.njit(**NJIT_SERIAL)
def update_tables(rows, perm, codes_t, clear, fifo, old_codes, was_in, old_order, old_count,
                  old_dense, old_index, keys, drawn, drawn_ptr, new_codes, new_order, new_dense,
                  new_index, n_buckets):
    """:func:`_update_table` on every table, one after another; returns the entries
    (re)inserted. ``codes_t[t]``: the rows' codes in table ``t`` (in ``rows`` order,
    inserted in the order ``rows[perm]``); ``drawn[drawn_ptr[t]:drawn_ptr[t + 1]]``:
    table ``t``'s new reservoir keys."""
    L, n = new_codes.shape
    rows_p = rows[perm].astype(np.int64)
    mark, C, Cc, A, Ac, astart = _update_scratch(n, rows.shape[0], n_buckets)
    total = 0
    for t in range(L):
        total += _update_table(rows_p, perm, codes_t[t], clear, fifo, old_codes[t], was_in,
                               old_order[t], old_count, old_dense, old_index[t], keys[t],
                               drawn[drawn_ptr[t]:drawn_ptr[t + 1]], new_codes[t], new_order[t],
                               new_dense, new_index[t], n_buckets, mark, C, Cc, A, Ac, astart)
    return total


@nb.njit(**NJIT_PARALLEL)
def update_tables_par(rows, perm, codes_t, clear, fifo, old_codes, was_in, old_order, old_count,
                      old_dense, old_index, keys, drawn, drawn_ptr, new_codes, new_order,
                      new_dense, new_index, n_buckets):
    """:func:`update_tables` with the tables spread over the numba threads."""
    L, n = new_codes.shape
    rows_p = rows[perm].astype(np.int64)
    done = np.zeros(L, dtype=np.int64)
    for t in nb.prange(L):
        mark, C, Cc, A, Ac, astart = _update_scratch(n, rows.shape[0], n_buckets)
        done[t] = _update_table(rows_p, perm, codes_t[t], clear, fifo, old_codes[t], was_in,
                                old_order[t], old_count, old_dense, old_index[t], keys[t],
                                drawn[drawn_ptr[t]:drawn_ptr[t + 1]], new_codes[t],
                                new_order[t], new_dense, new_index[t], n_buckets, mark, C, Cc,
                                A, Ac, astart)
    return done.sum()


# -- querying ------------------------------------------------------------------------------------
@nb.njit(**NJIT_SERIAL)
def _bucket(dense, index_t, count, n_buckets, code):
    """``(lo, hi)``: the run of ``code`` in one table's ``order`` row."""
    if dense:
        if code >= n_buckets:
            return 0, 0
        return np.int64(index_t[code]), np.int64(index_t[code + 1])
    lo = 0
    hi = count
    while lo < hi:
        mid = (lo + hi) >> 1
        if np.int64(index_t[mid]) < code:
            lo = mid + 1
        else:
            hi = mid
    a = lo
    hi = count
    while lo < hi:
        mid = (lo + hi) >> 1
        if np.int64(index_t[mid]) <= code:
            lo = mid + 1
        else:
            hi = mid
    return np.int64(a), np.int64(lo)


def score_dtype(L, R, policy):
    """The smallest dtype that holds a node's score (:func:`query_tables`)."""
    top = L if (policy != MULTIPROBE or R == 0) else L * (L * R + 1) + L * R
    for dt in (np.uint8, np.uint16, np.int32):
        if top <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


@nb.njit(**NJIT_SERIAL)
def new_scratch(n_nodes, max_cand, L, R, budget, score_proto):
    """Working arrays of one querying thread: ``(score, cand, ce, cp, hist_e, hist_p,
    bits, tmp, tmp2)``. ``score`` (``score_proto``'s dtype, see :func:`score_dtype`) and
    ``bits`` must be zero on entry; a query leaves them zero."""
    return (np.zeros(n_nodes, dtype=score_proto.dtype), np.empty(max_cand + 1, dtype=np.int32),
            np.empty(max_cand + 1, dtype=np.int64), np.empty(max_cand + 1, dtype=np.int64),
            np.empty(2 * (L + 1), dtype=np.int64), np.empty(L * R + 2, dtype=np.int64),
            np.zeros((n_nodes + 63) >> 6, dtype=np.uint64),
            np.empty(budget + 64, dtype=np.int32), np.empty(budget + 64, dtype=np.int32))


@nb.njit(**NJIT_SERIAL)
def _threshold(hist, top, want):
    """Largest ``s`` with ``sum(hist[s:top + 1]) >= want``, and the sum above it."""
    acc = 0
    s = top
    while s > 0 and acc + hist[s] < want:
        acc += hist[s]
        s -= 1
    return s, acc


@nb.njit(**NJIT_SERIAL)
def _extract(bits, nwords, buf):
    """Set bits of ``bits[:nwords]`` as ascending positions into ``buf`` (which needs 4
    spare entries), clearing them; returns the count. Four positions are written per
    non-zero word whether set or not (most words have at most four), so the loop
    hardly branches; indices are unsigned, so indexing needs no wraparound code."""
    k = np.uint64(0)
    one = np.uint64(1)
    for w in range(nwords):
        x = bits[w]
        if x == 0:
            continue
        bits[w] = 0
        base = np.uint64(w) << np.uint64(6)
        for _ in range(4):
            buf[k] = base + trailing_zeros(x)
            k += np.uint64(x != 0)
            x &= x - one
        while x != 0:
            buf[k] = base + trailing_zeros(x)
            k += one
            x &= x - one
    return np.int64(k)


@nb.njit(**NJIT_SERIAL)
def _sort_small(tmp, tmp2, m, n_nodes, out):
    """``tmp[:m]`` (node ids ``< n_nodes``) ascending into ``out``: insertion sort for a
    few, else an LSD radix sort by bytes."""
    if m <= 32:
        for i in range(1, m):
            v = tmp[i]
            j = i - 1
            while j >= 0 and tmp[j] > v:
                tmp[j + 1] = tmp[j]
                j -= 1
            tmp[j + 1] = v
        for i in range(m):
            out[i] = tmp[i]
        return
    cnt = np.zeros(257, dtype=np.int64)
    src = tmp
    dst = tmp2
    shift = 0
    while (n_nodes - 1) >> shift > 0 or shift == 0:
        for d in range(257):
            cnt[d] = 0
        for i in range(m):
            cnt[((src[i] >> shift) & 255) + 1] += 1
        for d in range(256):
            cnt[d + 1] += cnt[d]
        for i in range(m):
            d = (src[i] >> shift) & 255
            dst[cnt[d]] = src[i]
            cnt[d] += 1
        src, dst = dst, src
        shift += 8
    for i in range(m):
        out[i] = src[i]


@nb.njit(**NJIT_SERIAL)
def _query_one(q, codes, probes, rounds, dense, index, order, count, n_buckets, capacity,
               budget, policy, n_nodes, score, cand, ce, cp, hist_e, hist_p, bits, tmp, tmp2,
               out):
    """Answer query ``q`` into ``out`` (ascending node ids); returns
    ``(chosen, visited, buckets, empty)``. See :func:`query_tables`.

    Visiting is branch-free: ``score[node]`` counts the node's hits (an exact hit
    weighs ``L*R + 1`` when probes are scored, else 1) and every entry is written to
    ``cand[nc]``, ``nc`` advancing only on a first hit, so ``cand[:nc]`` lists the
    candidates in first-seen order. ``score`` and ``bits`` are left zero."""
    L = codes.shape[1]
    w_exact = L * (rounds - 1) + 1
    # hot loops index with unsigned integers: numba then emits no negative-index wraparound
    one = np.uint64(1)
    ubudget = np.uint64(budget)
    nc = np.uint64(0)
    visited = 0
    n_buckets_probed = 0
    n_empty = 0
    done = False
    for r in range(rounds):
        if done:
            break
        w = w_exact if r == 0 else 1
        for t in range(L):
            code = np.int64(codes[q, t]) if r == 0 else np.int64(probes[q, t, r - 1])
            if code < 0:
                continue
            lo, hi = _bucket(dense, index[t], count, n_buckets, code)
            if hi - lo > capacity:
                hi = lo + capacity
            n_buckets_probed += 1
            if hi == lo:
                n_empty += 1
            row = order[t]
            if policy == UNION:
                for e in range(np.uint64(lo), np.uint64(hi)):
                    node = np.uint64(row[e])
                    visited += 1
                    old = score[node]
                    score[node] = old + w
                    cand[nc] = node
                    nc += np.uint64(old == 0)
                    if nc == ubudget:
                        done = True
                        break
                if done:
                    break
            else:
                visited += hi - lo
                for e in range(np.uint64(lo), np.uint64(hi)):
                    node = np.uint64(row[e])
                    old = score[node]
                    score[node] = old + w
                    cand[nc] = node
                    nc += np.uint64(old == 0)
    m = np.int64(nc) if nc <= ubudget else budget
    # the chosen nodes go to a bitmap over the nodes when it is short enough to scan
    # (about what sorting them costs), else to ``tmp`` for a sort; scores are cleared
    nwords = (n_nodes + 63) >> 6
    bitmap = m > 32 and nwords <= 4 * m
    six, low6 = np.uint64(6), np.uint64(63)
    if nc <= ubudget:
        for i in range(nc):
            node = np.uint64(cand[i])
            score[node] = 0
            if bitmap:
                bits[node >> six] |= one << (node & low6)
            else:
                tmp[i] = node
    else:
        # keep the budget by (exact hits, probe hits) descending, ties to the first seen:
        # a stable sort by score, done by counting
        W = L + 1
        for s in range(2 * W):
            hist_e[s] = 0
        for i in range(nc):
            node = np.uint64(cand[i])
            sc = np.int64(score[node])
            score[node] = 0
            if rounds == 1:
                e = sc
            else:
                e = sc // w_exact
                cp[i] = sc - e * w_exact
            ce[i] = e
            hist_e[np.uint64((i & one) * np.uint64(W)) + np.uint64(e)] += 1  # two histograms:
            # alternate counters, so runs of equal scores do not chain through one
        for s in range(W):
            hist_e[s] += hist_e[W + s]
        thr_e, above = _threshold(hist_e, L, budget)
        need = budget - above
        thr_p = -1
        if rounds > 1:
            top = L * (rounds - 1)
            for s in range(top + 1):
                hist_p[s] = 0
            for i in range(nc):
                if ce[i] == thr_e:
                    hist_p[cp[i]] += 1
            thr_p, above = _threshold(hist_p, top, need)
            need -= above
        k = np.uint64(0)
        for i in range(nc):
            e = ce[i]
            if rounds > 1:
                pp = cp[i]
                tie = (e == thr_e) & (pp == thr_p)
                better = (e > thr_e) | ((e == thr_e) & (pp > thr_p))
            else:
                tie = e == thr_e
                better = e > thr_e
            take = better | (tie & (need > 0))
            need -= tie & (need > 0)
            node = np.uint64(cand[i])
            if bitmap:
                bits[node >> six] |= np.uint64(take) << (node & low6)
            else:
                tmp[k] = node
                k += np.uint64(take)
    # ascending output
    if bitmap:
        _extract(bits, nwords, tmp)
        for i in range(np.uint64(m)):
            out[i] = tmp[i]
    else:
        _sort_small(tmp, tmp2, m, n_nodes, out)
    return m, visited, n_buckets_probed, n_empty


@nb.njit(**NJIT_SERIAL)
def query_tables(codes, probes, dense, index, order, count, n_buckets, capacity, budget, policy,
                 n_nodes, scratch, out_idx, out_cnt, stats):
    """Choose up to ``budget`` nodes per query from its buckets.

    ``codes[q, t]``: the query's bucket in table ``t``; ``probes[q, t, r]``: extra
    buckets (multi-probe; -1 = none). The tables are ``dense, index, order, count,
    n_buckets`` (module docstring); a bucket holds its first ``capacity`` nodes.
    Policies:

    * ``UNION``: exact buckets, table by table, nodes in bucket order, until the
      budget is filled;
    * ``HISTOGRAM``: count in how many tables each node shares the exact bucket and
      keep the ``budget`` highest counts (ties: first seen);
    * ``MULTIPROBE``: like ``HISTOGRAM`` over the exact and the probed buckets, an
      exact-bucket hit outranking any number of probe hits (ties: first seen).

    Writes node ids (ascending) to ``out_idx[q*budget : q*budget + out_cnt[q]]``.
    ``stats`` accumulates: [entries visited, buckets probed, empty buckets].
    ``scratch``: :func:`new_scratch` of this thread (``score`` and ``bits`` zero).
    """
    nq = codes.shape[0]
    rounds = 1 + (probes.shape[2] if policy == MULTIPROBE else 0)
    score, cand, ce, cp, hist_e, hist_p, bits, tmp, tmp2 = scratch
    for q in range(nq):
        out = out_idx[q * budget:(q + 1) * budget]
        m, v, b, e = _query_one(q, codes, probes, rounds, dense, index, order, count, n_buckets,
                                capacity, budget, policy, n_nodes, score, cand, ce, cp, hist_e,
                                hist_p, bits, tmp, tmp2, out)
        out_cnt[q] = m
        stats[0] += v
        stats[1] += b
        stats[2] += e


@nb.njit(**NJIT_PARALLEL)
def query_tables_par(codes, probes, dense, index, order, count, n_buckets, capacity, budget,
                     policy, n_nodes, max_cand, score_proto, n_chunks, out_idx, out_cnt, stats):
    """:func:`query_tables` with the queries cut into ``n_chunks`` contiguous chunks (one
    per numba thread), each with its own scratch; a chunk writes only its own queries'
    outputs and its own row of partial stats."""
    nq, L = codes.shape
    R = probes.shape[2]
    rounds = 1 + (R if policy == MULTIPROBE else 0)
    n_chunks = max(1, min(nq, n_chunks))
    part = np.zeros((max(n_chunks, 1), 3), dtype=np.int64)
    for c in nb.prange(n_chunks):
        score, cand, ce, cp, hist_e, hist_p, bits, tmp, tmp2 = new_scratch(
            n_nodes, max_cand, L, R, budget, score_proto)
        sv = 0
        sb = 0
        se = 0
        for q in range(c * nq // n_chunks, (c + 1) * nq // n_chunks):
            out = out_idx[q * budget:(q + 1) * budget]
            m, v, b, e = _query_one(q, codes, probes, rounds, dense, index, order, count,
                                    n_buckets, capacity, budget, policy, n_nodes, score, cand,
                                    ce, cp, hist_e, hist_p, bits, tmp, tmp2, out)
            out_cnt[q] = m
            sv += v
            sb += b
            se += e
        part[c, 0] = sv
        part[c, 1] = sb
        part[c, 2] = se
    for c in range(n_chunks):
        for j in range(3):
            stats[j] += part[c, j]


@nb.njit(**NJIT_SERIAL)
def pack_rows(out_idx, out_cnt, budget, indptr, indices):
    """CSR of :func:`query_tables`' answers: ``indptr`` (``nq + 1``) and ``indices``
    (``sum(out_cnt)``), each query's ids moved to the front."""
    indptr[0] = 0
    for q in range(out_cnt.shape[0]):
        a = indptr[q]
        c = out_cnt[q]
        indices[a:a + c] = out_idx[q * budget:q * budget + c]
        indptr[q + 1] = a + c


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


@nb.njit(**NJIT_SERIAL)
def collision_counts(codes, probes, rounds, dense, index, order, count, n_buckets, capacity, out):
    """The hash's own score of every node for every query: ``out[q, v]`` (zero on entry)
    gains one for every bucket query ``q`` probes that holds node ``v`` (its first
    ``capacity`` nodes): the exact bucket ``codes[q, t]`` of each table, and with
    ``rounds > 1`` also the probes ``probes[q, t, :rounds - 1]`` (-1 = none). A node sits
    in one bucket per table and a table's probes differ from its exact code and from each
    other, so ``out[q, v]`` counts the tables whose probed buckets hold ``v`` (at most
    ``L``). Work: the bucket entries the queries visit, as :func:`query_tables`."""
    L = codes.shape[1]
    for q in range(codes.shape[0]):
        row_out = out[q]
        for r in range(rounds):
            for t in range(L):
                code = np.int64(codes[q, t]) if r == 0 else np.int64(probes[q, t, r - 1])
                if code < 0:
                    continue
                lo, hi = _bucket(dense, index[t], count, n_buckets, code)
                if hi - lo > capacity:
                    hi = lo + capacity
                row = order[t]
                for e in range(lo, hi):
                    row_out[row[e]] += 1
