"""The first implementation of ``lshprof.nn.lsh.HashTables``, kept as the reference: int64
codes and priorities, one ``lexsort`` per update, and a per-query stable sort by score.
Given generators in the same state, it and the fast tables make the same random draws,
so their buckets and their chosen nodes must be *identical*.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RefTables", "ref_query"]


class RefTables:
    """``L`` tables over ``n`` nodes: codes, priorities and sorted lookup arrays."""

    def __init__(self, L, n, capacity, replacement, rng):
        self.L, self.n, self.capacity, self.replacement, self.rng = L, n, capacity, replacement, rng
        self.codes = np.full((L, n), -1, dtype=np.int64)  # -1: not inserted yet
        self.prio = np.zeros((L, n), dtype=np.int64)
        self.order = np.zeros((L, n), dtype=np.int64)
        self.sorted_codes = np.full((L, n), -1, dtype=np.int64)
        self._clock = 0

    def set_codes(self, rows, new_codes, *, clear=False):
        rows = np.asarray(rows, dtype=np.int64)
        if clear:
            self.codes.fill(-1)
        perm = self.rng.permutation(rows.size)
        rows, new_codes = rows[perm], new_codes[perm]
        inserted = 0
        for t in range(self.L):
            changed = self.codes[t, rows] != new_codes[:, t]
            r = rows[changed]
            m = r.size
            if m == 0:
                continue
            self.codes[t, r] = new_codes[changed, t]
            if self.replacement == "fifo":
                self.prio[t, r] = self._clock + np.arange(m)
                self._clock += m
            else:
                self.prio[t, r] = self.rng.integers(0, 2**62, size=m)
            inserted += m
        tables = np.repeat(np.arange(self.L), self.n)
        o = np.lexsort((-self.prio.ravel(), self.codes.ravel(), tables))
        o = (o - tables * self.n).reshape(self.L, self.n)
        self.order[:] = o
        self.sorted_codes[:] = np.take_along_axis(self.codes, o, axis=1)
        return inserted

    def ranked(self, t, code):
        lo, hi = np.searchsorted(self.sorted_codes[t], [code, code + 1])
        return self.order[t, lo:hi]

    def bucket(self, t, code):
        b = self.ranked(t, code)
        return b if self.capacity is None else b[:self.capacity]

    def membership(self):
        found = np.zeros((self.L, self.n), dtype=bool)
        for t in range(self.L):
            for code in np.unique(self.codes[t][self.codes[t] >= 0]):
                found[t, self.bucket(t, code)] = True
        return found


def ref_query(ref: RefTables, codes, probes, policy, budget):
    """The original selection: visit buckets in table order (then probe rounds), score
    (exact hits weigh ``L*R + 1``, probe hits 1), keep the budget by a stable sort on
    the score (ties: first seen), return them ascending."""
    nq, L = codes.shape
    R = probes.shape[2]
    exact_w = L * R + 1
    rounds = 1 + (R if policy == "multiprobe" else 0)
    cap = ref.capacity if ref.capacity is not None else ref.n
    out, stats = [], np.zeros(3, dtype=np.int64)
    for q in range(nq):
        score, cand, done = {}, [], False
        for r in range(rounds):
            if done:
                break
            for t in range(L):
                code = codes[q, t] if r == 0 else probes[q, t, r - 1]
                if code < 0:
                    continue
                lo, hi = np.searchsorted(ref.sorted_codes[t], [code, code + 1])
                hi = min(hi, lo + cap)
                stats[1] += 1
                stats[2] += hi == lo
                for node in ref.order[t, lo:hi]:
                    stats[0] += 1
                    if node not in score:
                        score[node] = 0
                        cand.append(node)
                        if policy == "union" and len(cand) == budget:
                            done = True
                            break
                    score[node] += exact_w if r == 0 else 1
                if done:
                    break
        if len(cand) > budget:
            s = np.array([-score[c] for c in cand])
            cand = list(np.array(cand)[np.argsort(s, kind="mergesort")[:budget]])
        out.append(sorted(int(c) for c in cand))
    return out, stats
