"""The LSH layer's hash tables: :class:`HashTables` and the per-thread query scratch.

Every node sits in one bucket per table, the bucket of its current code. A bucket
holds at most ``capacity`` nodes; when more nodes share a code, the bucket keeps
the ``capacity`` with the highest priority and the rest are not found in that
table (so a node is then in fewer than ``L`` buckets). Replacement policies
(:data:`lshprof.names.REPLACEMENTS`):

* ``fifo``: priority is the insertion time, so the newest nodes stay (as SLIDE's
  FIFO buckets). A node is (re)inserted when its code in that table changes;
  nodes inserted together are inserted in a random order.
* ``reservoir``: priority is a random key drawn at insertion, so the bucket keeps
  a uniform random subset of its nodes (reservoir sampling).

A node evicted from a full bucket comes back if the nodes above it leave the
bucket; membership is always a function of the current codes and priorities.
Storage, update costs and what concurrent readers may rely on are described in
:class:`HashTables`; the query policies (:data:`lshprof.names.POLICIES`) in
:func:`lshprof.kernels.query_tables`.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numba
import numpy as np

from lshprof import kernels as kern
from lshprof.names import POLICIES

__all__ = ["HashTables", "MAX_CODE_BITS"]

#: the largest code a table may use, in bits (codes are int64)
MAX_CODE_BITS = 62

#: query policy -> the kernels' code for it
_POLICY_CODE = {"union": kern.UNION, "histogram": kern.HISTOGRAM, "multiprobe": kern.MULTIPROBE}
if tuple(_POLICY_CODE) != POLICIES:
    raise ImportError(f"the tables' query policies {tuple(_POLICY_CODE)} are not "
                      f"lshprof.names.POLICIES {POLICIES}: add or remove them in both places")


def _code_dtype(max_code: int) -> np.dtype:
    """The smallest dtype that holds codes up to ``max_code`` (int64 above 32 bits, so
    kernels never mix uint64 with int64)."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_code <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


class _TableState(NamedTuple):
    """One consistent version of every table (see :class:`HashTables`)."""

    codes: np.ndarray  # [L, n] compact: each node's code (meaningful where inserted)
    inserted: np.ndarray  # [n] bool: the node has a code (in every table)
    count: int  # inserted nodes
    order: np.ndarray  # [L, n] int32: nodes by (code, priority desc); [count:] unused
    dense: bool  # index is bucket offsets (else sorted codes)
    index: np.ndarray  # [L, S + 1] int32 offsets, or [L, n] sorted codes
    n_buckets: int  # S (offsets) or 0
    keys: np.ndarray | None  # [L, n] int64 reservoir priorities (None: fifo)
    max_code: int  # the largest code inserted (-1: none)


class HashTables:
    """``L`` tables over ``n`` nodes (semantics in the module docstring).

    Storage (:mod:`lshprof.kernels._tables` has the details): per table, each node's
    code in the smallest unsigned dtype that holds the codes (K=6 srp: 1 byte), the
    nodes sorted by (code, priority descending) as int32, and either bucket offsets
    (``S + 1`` int32 when the code space ``S`` is at most ``n``) or the sorted codes.
    FIFO stores no priorities (a node's place in its run is its priority, newest
    first); reservoir keeps an int64 random key per entry. So a table costs about
    ``5 + 4 S / n`` bytes per node (srp K=6), ``6 + 4 S / n`` (12-bit codes) or 13+
    (reservoir); see :attr:`bytes_per_node_per_table`.

    The layout (code dtype, offsets or sorted codes) is sized by ``code_bits`` when it
    is given, for the whole code space ``S = 2**code_bits``, and then never changes: the
    empty tables, the first build and every later update have arrays of the same
    dtypes, so the kernels meet one set of argument types and compile once (a warm-up
    that builds the tables has compiled what every later re-hash runs). The LSH layer
    gives its codes' width. Without ``code_bits`` the layout follows the largest code
    inserted so far (and changes when it crosses a dtype or ``n``); codes must then be
    below ``2**62`` (:data:`MAX_CODE_BITS`), else below ``2**code_bits``.

    A full rebuild is a counting sort by code (FIFO); an update of ``m`` rows merges
    the reinserted entries, sorted by code, into the kept ones: ``O(L (n + S))`` for
    FIFO with offsets, ``O(L (n + m log m))`` otherwise.

    Thread safety (lock-free Hogwild training): every array of one version of the
    tables lives in one tuple, :attr:`state`. :meth:`set_codes` builds new arrays (it
    never writes into arrays a reader may hold) and publishes them with one attribute
    assignment, so a reader that takes ``state`` once (as :meth:`query` does) sees one
    consistent version, old or new, never a half-written one or an out-of-range node.
    Any number of threads may query while *one* thread calls :meth:`set_codes`; two
    writers at once are not supported (an update holds the old and the new arrays,
    briefly twice the memory). Querying at one numba thread uses this thread's own
    scratch arrays; at more threads a parallel kernel spreads the queries.
    """

    def __init__(self, L: int, n: int, capacity: int | None, replacement: str,
                 rng: np.random.Generator, *, code_bits: int | None = None):
        self.L, self.n = L, n
        self.capacity = capacity
        self.replacement = replacement
        self.rng = rng
        if code_bits is not None and not 0 <= code_bits <= MAX_CODE_BITS:
            raise ValueError(f"code_bits must be in [0, {MAX_CODE_BITS}], got {code_bits}")
        #: the codes' width when fixed (None: the layout follows the largest code inserted)
        self.code_bits = code_bits
        if code_bits is None:  # empty, as if sized for code 0; the first insertion re-sizes
            cdt, dense = np.dtype(np.uint8), True
        else:
            cdt, dense, _ = self._layout(self._space_top())
        self.state = _TableState(
            codes=np.zeros((L, n), dtype=cdt), inserted=np.zeros(n, dtype=bool), count=0,
            order=np.zeros((L, n), dtype=np.int32), dense=dense,
            index=(np.zeros((L, 2), dtype=np.int32) if dense else np.zeros((L, n), dtype=cdt)),
            n_buckets=1 if dense else 0,
            keys=None if replacement == "fifo" else np.zeros((L, n), dtype=np.int64),
            max_code=-1)

    def _space_top(self) -> int:
        """The largest code the fixed code space holds."""
        return (1 << self.code_bits) - 1

    def _layout(self, max_code: int) -> tuple[np.dtype, bool, int]:
        """``(code dtype, dense, S)`` of tables whose codes go up to ``max_code``: the
        smallest dtype that holds them, the code space ``S`` (the power of 2 above
        ``max_code``) and whether bucket offsets are kept (``S <= n``; else sorted codes)."""
        S = 1 << max(max_code, 0).bit_length()
        return _code_dtype(max(max_code, 0)), S <= self.n, S

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes held by the tables: codes, node order, offsets or sorted codes,
        reservoir keys and the inserted flags (exact)."""
        st = self.state
        arrays = [st.codes, st.inserted, st.order, st.index]
        if st.keys is not None:
            arrays.append(st.keys)
        return int(sum(a.nbytes for a in arrays))

    @property
    def bytes_per_node_per_table(self) -> float:
        """:attr:`nbytes` per node per table."""
        return self.nbytes / (max(self.n, 1) * self.L)

    # -- reading --------------------------------------------------------------------------------
    @property
    def codes(self) -> np.ndarray:
        """``[L, n]`` int64: each node's code per table, -1 where not inserted (a copy)."""
        st = self.state
        out = st.codes.astype(np.int64)
        out[:, ~st.inserted] = -1
        return out

    @property
    def keys(self) -> np.ndarray | None:
        """``[L, n]`` int64 reservoir priorities (None for fifo)."""
        return self.state.keys

    @staticmethod
    def _run(st: _TableState, t: int, code: int) -> tuple[int, int]:
        if code < 0:
            return 0, 0
        if st.dense:
            if code >= st.n_buckets:
                return 0, 0
            return int(st.index[t, code]), int(st.index[t, code + 1])
        row = st.index[t, :st.count]
        if code > np.iinfo(row.dtype).max:
            return 0, 0
        lo, hi = np.searchsorted(row, [code, code + 1])
        return int(lo), int(hi)

    def ranked(self, t: int, code: int) -> np.ndarray:
        """Every node with ``code`` in table ``t``, highest priority first, including
        those past the capacity (which are not found)."""
        st = self.state
        lo, hi = self._run(st, t, code)
        return st.order[t, lo:hi].astype(np.int64)

    def bucket(self, t: int, code: int) -> np.ndarray:
        """Nodes found in table ``t``'s bucket ``code`` (highest priority first)."""
        st = self.state
        lo, hi = self._run(st, t, code)
        if self.capacity is not None:
            hi = min(hi, lo + self.capacity)
        return st.order[t, lo:hi].astype(np.int64)

    def membership(self) -> np.ndarray:
        """``[L, n]`` bool: whether each node is found in its bucket of each table."""
        st = self.state
        found = np.zeros((self.L, self.n), dtype=bool)
        c = st.count
        for t in range(self.L):
            if st.dense:
                sizes = np.diff(st.index[t])
                starts = np.repeat(st.index[t, :-1].astype(np.int64), sizes)
            else:
                sc = st.index[t, :c]
                starts = np.searchsorted(sc, sc, side="left")
            ok = np.ones(c, dtype=bool)
            if self.capacity is not None:
                ok = np.arange(c) - starts < self.capacity
            found[t, st.order[t, :c][ok]] = True
        return found

    # -- writing --------------------------------------------------------------------------------
    def set_codes(self, rows: np.ndarray, new_codes: np.ndarray, *, clear: bool = False) -> int:
        """Give ``rows`` (distinct nodes) the codes ``new_codes[r, t]``; returns how many
        (row, table) entries were (re)inserted. ``clear`` empties every table first (a
        rebuild: every row is inserted again, in a random order)."""
        st = self.state
        rows = np.asarray(rows, dtype=np.int64)
        new_codes = np.asarray(new_codes, dtype=np.int64).reshape(rows.size, self.L)
        L, n = self.L, self.n
        perm = self.rng.permutation(rows.size)
        if rows.size == 0 and not clear:
            return 0
        top = int(new_codes.max()) if rows.size else -1
        bits = MAX_CODE_BITS if self.code_bits is None else self.code_bits
        if top >= 2**bits or (rows.size and int(new_codes.min()) < 0):
            raise ValueError(f"codes must be in [0, 2**{bits})")
        max_code = top if clear else max(st.max_code, top)
        # the layout: fixed by the code space, or following the largest code inserted
        cdt, dense, S = self._layout(max_code if self.code_bits is None else self._space_top())
        codes_t = np.empty((L, rows.size), dtype=cdt)
        kern.transpose_codes(new_codes, codes_t)
        inserted = np.zeros(n, dtype=bool) if clear else st.inserted.copy()
        inserted[rows] = True
        count = int(np.count_nonzero(inserted))
        fifo = self.replacement == "fifo"
        drawn_ptr = np.zeros(L + 1, dtype=np.int64)
        if fifo:
            keys, drawn = np.zeros((L, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)
        else:  # one draw per table that changed, in table order (as always)
            counts = np.empty(L, dtype=np.int64)
            kern.changed_counts(rows, codes_t, st.codes, st.inserted, clear, counts)
            drawn_ptr[1:] = np.cumsum(counts)
            parts = [self.rng.integers(0, 2**62, size=int(m)) for m in counts if m]
            drawn = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            keys = np.zeros((L, n), dtype=np.int64) if clear else st.keys.copy()
        codes = np.zeros((L, n), dtype=cdt) if clear else st.codes.astype(cdt, copy=True)
        order = np.empty((L, n), dtype=np.int32)
        index = np.empty((L, S + 1) if dense else (L, n), dtype=np.int32 if dense else cdt)
        update = kern.update_tables_par if kern.parallel(L * n) and L > 1 else kern.update_tables
        total = int(update(rows, perm, codes_t, clear, fifo, st.codes, st.inserted, st.order,
                           st.count, st.dense, st.index, keys, drawn, drawn_ptr, codes, order,
                           dense, index, S if dense else 0))
        self.state = _TableState(codes=codes, inserted=inserted, count=count, order=order,
                                 dense=dense, index=index, n_buckets=S if dense else 0,
                                 keys=None if fifo else keys, max_code=max_code)
        return total

    # -- querying -------------------------------------------------------------------------------
    def query(self, codes: np.ndarray, probes: np.ndarray, policy: str, budget: int):
        """Chosen nodes per query as ``(counts, indices)`` and ``[visited, buckets, empty]``:
        query ``q``'s nodes, ascending, are ``indices[q*budget : q*budget + counts[q]]``
        (semantics: :func:`lshprof.kernels.query_tables`)."""
        st = self.state  # one consistent version for the whole call
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        probes = np.ascontiguousarray(probes, dtype=np.int64)
        nq = codes.shape[0]
        out_idx = np.empty(nq * budget, dtype=np.int32)
        out_cnt = np.empty(nq, dtype=np.int64)
        stats = np.zeros(3, dtype=np.int64)
        cap = self.capacity if self.capacity is not None else self.n
        cap = min(cap, self.n)
        pol = _POLICY_CODE[policy]
        R = probes.shape[2]
        rounds = 1 + (R if pol == kern.MULTIPROBE else 0)
        max_cand = max(1, min(self.n, rounds * self.L * cap))
        args = (codes, probes, st.dense, st.index, st.order, st.count, st.n_buckets, cap,
                budget, pol, self.n)
        proto = np.zeros(0, dtype=kern.score_dtype(self.L, R, pol))
        # work: the bucket entries a query may visit, each worth several element operations
        if nq > 1 and kern.parallel(8 * nq * self.L * cap):
            kern.query_tables_par(*args, max_cand, proto, numba.get_num_threads(),
                               out_idx, out_cnt, stats)
        else:
            kern.query_tables(*args, _scratch(self.n, max_cand, self.L, R, budget, proto),
                           out_idx, out_cnt, stats)
        return out_cnt, out_idx, stats

    def query_csr(self, codes: np.ndarray, probes: np.ndarray, policy: str, budget: int):
        """:meth:`query` as CSR rows: ``(indptr int64, indices int32, stats)``; with every
        query full the indices are :meth:`query`'s own array (no copy)."""
        cnt, idx, stats = self.query(codes, probes, policy, budget)
        indptr = np.empty(cnt.size + 1, dtype=np.int64)
        if cnt.size and int(cnt.min()) == budget:
            indptr[:] = np.arange(cnt.size + 1, dtype=np.int64) * budget
            return indptr, idx, stats
        indices = np.empty(int(cnt.sum()), dtype=np.int32)
        kern.pack_rows(idx, cnt, budget, indptr, indices)
        return indptr, indices, stats

    def collisions(self, codes: np.ndarray, probes: np.ndarray, policy: str) -> np.ndarray:
        """``[nq, n]``: the tables' own score of every node for every query, the number of
        tables whose probed bucket holds the node (as :meth:`query` finds it: the first
        ``capacity`` nodes of a bucket). ``union`` and ``histogram`` probe the exact bucket
        of each table; ``multiprobe`` also the probes ``probes[q, t]``, a hit in either
        counting one (a node is in one bucket per table). Work: the entries the queries'
        buckets hold (:func:`lshprof.kernels.collision_counts`)."""
        st = self.state
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        probes = np.ascontiguousarray(probes, dtype=np.int64)
        pol = _POLICY_CODE[policy]
        rounds = 1 + (probes.shape[2] if pol == kern.MULTIPROBE else 0)
        top = self.L * rounds
        dt = np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.int32
        out = np.zeros((codes.shape[0], self.n), dtype=dt)
        cap = min(self.capacity if self.capacity is not None else self.n, self.n)
        kern.collision_counts(codes, probes, rounds, st.dense, st.index, st.order, st.count,
                              st.n_buckets, cap, out)
        return out


_LOCAL = threading.local()
#: scratch sets kept per thread (one per distinct table/query shape, most recent last)
_SCRATCH_KEEP = 4


def _scratch(n: int, max_cand: int, L: int, R: int, budget: int, proto: np.ndarray):
    """This thread's query scratch for these sizes, kept between calls (no allocation or
    page faults per batch); the kernel leaves its scores and bitmap zero, as it found them."""
    cache = getattr(_LOCAL, "scratch", None)
    if cache is None:
        cache = _LOCAL.scratch = {}
    key = (n, max_cand, L, R, budget, proto.dtype)
    s = cache.pop(key, None)
    if s is None:
        s = kern.new_scratch(n, max_cand, L, R, budget, proto)
        while len(cache) >= _SCRATCH_KEEP:
            cache.pop(next(iter(cache)))
    cache[key] = s
    return s
