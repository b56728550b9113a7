"""Hash families, input transforms, hash tables and re-hash schedules for the LSH layer.

Everything here is explicit state (numpy arrays drawn from a given generator) plus
the numba kernels in :mod:`lshprof.kernels`; the layer itself is
:class:`lshprof.nn.layers.LSH`.

Hash families (``family``)
--------------------------
``srp``         signed random projections (SimHash; Charikar 2002): Gaussian
                directions, one bit per function, collision probability
                ``1 - theta/pi`` for vectors at angle ``theta``. The paper's public
                code uses this family.
``srp_sparse``  the same with sparse +-1 directions: each function adds or subtracts
                a random ``density`` share (default 1/3) of the coordinates, as SLIDE
                (Chen et al. 2020) does. Additions only, no multiplications.
``wta``         winner-take-all hashing (Yagnik et al., ICCV 2011): each function
                looks at ``bin_size`` random coordinates and returns the position of
                the largest; ``log2(bin_size)`` bits per function. Comparisons only.
``dwta``        densified WTA (Chen & Shrivastava, UAI 2018; SLIDE's default): WTA
                over the nonzero coordinates only; a function whose coordinates are
                all zero borrows the value of another function chosen by a seeded
                probe sequence (up to 100 tries, else 0).

Transforms for inner-product search (``transform``)
--------------------------------------------------
``none``          hash the input and the weight rows as they are: the tables find
                  large *cosine*, not large inner product; the bias is ignored. This
                  is what the paper's public code does.
``norm_augment``  "simple-LSH" (Neyshabur & Srebro, ICML 2015): a row ``u = [w, b]``
                  becomes ``[u/M, sqrt(1 - |u|^2/M^2)]`` and a query ``[x, 1, 0]``,
                  so the cosine between them grows with ``w.x + b``.
``sign_alsh``     Sign-ALSH (Shrivastava & Li, UAI 2015) with ``m = 2``, ``U = 0.75``:
                  a row becomes ``[v, 1/2 - |v|^2, 1/2 - |v|^4]`` with ``v = U u / M``,
                  a query ``[x, 1, 0, 0]``.

``M`` is the largest row norm times :data:`MIPS_HEADROOM`, fixed at a full build;
when a re-hashed row outgrows it, every row is re-hashed with a new ``M``.
Queries are not normalised: sign and rank hashes do not change under positive
scaling, so normalising would only cost multiplications.

Pooling (``pool``)
------------------
``pool = p > 1`` averages contiguous blocks of ``p`` coordinates of both the input
and the weight rows before anything else (the paper's code pools 784 -> 8 with
``p = 98``). The bias is not pooled.

What hashing costs (counted exactly, per hashed vector)
-------------------------------------------------------
With ``F = K*L`` functions and ``D`` the length of the vector after pooling and
transform (``a`` its stored entries when it is a sparse row):

* pooling: ``hash_adds += entries summed``, MACs ``+= ceil(n_in/p)`` (one scaling each);
* ``srp``: ``F*D`` MACs (``F*a`` for a sparse row);
* ``srp_sparse``: one addition per (function, coordinate it uses) met in the vector;
* ``wta``/``dwta``: comparisons only (``hash_compares``), as the kernel counts them;
* row transforms (re-hash only): ``norm_augment`` ``2*(d+1) + 1`` MACs per row
  (squared norm, scaling, the augmented entry), ``sign_alsh`` ``2*(d+1) + 2``.

Tables
------
Every node sits in one bucket per table, the bucket of its current code. A bucket
holds at most ``capacity`` nodes; when more nodes share a code, the bucket keeps
the ``capacity`` with the highest priority and the rest are not found in that
table (so a node is then in fewer than ``L`` buckets). Replacement policies:

* ``fifo``: priority is the insertion time, so the newest nodes stay (as SLIDE's
  FIFO buckets). A node is (re)inserted when its code in that table changes;
  nodes inserted together are inserted in a random order.
* ``reservoir``: priority is a random key drawn at insertion, so the bucket keeps
  a uniform random subset of its nodes (reservoir sampling).

A node evicted from a full bucket comes back if the nodes above it leave the
bucket; membership is always a function of the current codes and priorities.
Storage (about 5 bytes per node per table for 6-bit codes), update costs and what
concurrent readers may rely on are described in :class:`HashTables`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numba
import numpy as np

from lshprof.names import FAMILIES, POLICIES, REPLACEMENTS, SCHEDULES, TRANSFORMS
from lshprof import kernels as K

__all__ = [
    "FAMILIES", "TRANSFORMS", "POLICIES", "REPLACEMENTS", "SCHEDULES", "MIPS_HEADROOM",
    "HashFunctions", "HashTables", "RehashSchedule", "SelectionStats", "HashCost",
]


#: ``M`` = largest row norm times this, so rows may grow a little before a full re-hash
MIPS_HEADROOM = 1.1
#: Sign-ALSH constants (Shrivastava & Li 2015 recommend m = 2, U = 0.75)
ALSH_M, ALSH_U = 2, 0.75
#: densified WTA: tries to find a non-empty bin to borrow from
DWTA_ATTEMPTS = 100
#: the largest code a table may use, in bits (codes are int64)
MAX_CODE_BITS = 62

_POLICY_CODE = {"union": K.UNION, "histogram": K.HISTOGRAM, "multiprobe": K.MULTIPROBE}


@dataclass
class HashCost:
    """Work of one hashing call: MACs, additions, comparisons and modelled bytes moved."""

    macs: int = 0
    adds: int = 0
    compares: int = 0
    bytes_moved: int = 0

    def __iadd__(self, other: "HashCost") -> "HashCost":
        self.macs += other.macs
        self.adds += other.adds
        self.compares += other.compares
        self.bytes_moved += other.bytes_moved
        return self


def extra_dims(transform: str) -> int:
    """Coordinates a transform appends to a (pooled) input: bias and padding."""
    return {"none": 0, "norm_augment": 2, "sign_alsh": 1 + ALSH_M}[transform]


def pooled_dims(n_in: int, pool: int) -> int:
    return -(-n_in // pool)


# -- hash functions --------------------------------------------------------------------------
#: rows projected per BLAS call when hashing many vectors (bounds the temporary product)
PROJECT_CHUNK = 4096


class HashFunctions:
    """``K*L`` hash functions of one family over vectors of ``dim`` coordinates.

    State is plain arrays drawn from ``rng``: Gaussian directions ``P`` (srp), +-1
    directions by coordinate ``col_ptr/col_fn/col_sign`` (srp_sparse), or
    coordinate samples ``perm`` (wta, dwta).

    Dense ``srp`` projections are one BLAS product ``X @ P.T`` in the layer's dtype
    (a projection within rounding of 0 may take either sign); the counted MACs are
    the same ``F*D`` per vector whatever computes them.
    """

    def __init__(self, family: str, K_: int, L: int, dim: int, rng: np.random.Generator, *,
                 bin_size: int = 8, density: float = 1 / 3, dtype=np.float32):
        self.family, self.K, self.L, self.dim = family, K_, L, dim
        self.n_fn = K_ * L
        self.digit_bits = 1
        if family == "srp":
            self.P = rng.standard_normal((self.n_fn, dim)).astype(dtype)
        elif family == "srp_sparse":
            per_fn = max(1, int(round(density * dim)))
            fn_ids, coords, signs = [], [], []
            for f in range(self.n_fn):
                c = rng.choice(dim, size=per_fn, replace=False)
                fn_ids.append(np.full(per_fn, f))
                coords.append(c)
                signs.append(rng.integers(0, 2, size=per_fn) * 2 - 1)
            fn_ids, coords, signs = (np.concatenate(a) for a in (fn_ids, coords, signs))
            o = np.lexsort((fn_ids, coords))
            self.col_fn = fn_ids[o].astype(np.int64)
            self.col_sign = signs[o].astype(np.int8)
            self.col_count = np.bincount(coords, minlength=dim).astype(np.int64)
            self.col_ptr = np.concatenate([[0], np.cumsum(self.col_count)]).astype(np.int64)
        elif family in ("wta", "dwta"):
            self.digit_bits = int(math.log2(bin_size))
            m = min(bin_size, dim)
            self.perm = np.stack([rng.permutation(dim)[:m] for _ in range(self.n_fn)]).astype(np.int64)
            self.salt = int(rng.integers(0, 2**31))
        else:  # validated by the layer
            raise ValueError(family)

    @property
    def code_bits(self) -> int:
        return self.K * self.digit_bits

    @property
    def digit_dtype(self) -> np.dtype:
        """dtype of digits and alternatives: the smallest unsigned one that holds a digit."""
        return np.dtype(np.uint8 if self.digit_bits <= 8 else np.uint16)

    @property
    def nbytes(self) -> int:
        arrays = {"srp": ("P",), "srp_sparse": ("col_fn", "col_sign", "col_count", "col_ptr"),
                  "wta": ("perm",), "dwta": ("perm",)}[self.family]
        return int(sum(getattr(self, a).nbytes for a in arrays))

    def _fill(self, dense, csr, digits, alts, margins) -> int:
        """Write digits, alternatives and margins of the vectors; returns comparisons."""
        fam = self.family
        if fam == "srp":
            if dense is not None:
                for lo in range(0, dense.shape[0], PROJECT_CHUNK):
                    hi = min(lo + PROJECT_CHUNK, dense.shape[0])
                    K.sign_digits(dense[lo:hi] @ self.P.T, digits[lo:hi], alts[lo:hi],
                                  margins[lo:hi])
            else:
                K.srp_csr(*csr, self.P, digits, alts, margins)
            return 0
        if fam == "srp_sparse":
            if dense is not None:
                K.pm1_dense(dense, self.col_ptr, self.col_fn, self.col_sign, self.n_fn,
                            digits, alts, margins)
            else:
                K.pm1_csr(*csr, self.col_ptr, self.col_fn, self.col_sign, self.n_fn,
                          digits, alts, margins)
            return 0
        densify = fam == "dwta"
        if dense is not None:
            return int(K.wta_dense(dense, self.perm, densify, self.salt, DWTA_ATTEMPTS,
                                   digits, alts, margins))
        return int(K.wta_csr(*csr, self.dim, self.perm, densify, self.salt, DWTA_ATTEMPTS,
                             digits, alts, margins))

    def _cost(self, dense, csr, compares: int) -> HashCost:
        """What hashing the vectors costs (the formulas of the module docstring)."""
        nv = dense.shape[0] if dense is not None else csr[0].shape[0] - 1
        cost = HashCost()
        if self.family == "srp":
            cost.macs = (nv * self.n_fn * dense.shape[1] if dense is not None
                         else self.n_fn * int(csr[1].shape[0]))
        elif self.family == "srp_sparse":
            cost.adds = (nv * int(self.col_count.sum()) if dense is not None
                         else int(self.col_count[csr[1]].sum()))
        else:
            cost.compares = int(compares)
        return cost

    def digits(self, dense: np.ndarray | None = None, csr=None):
        """Digits, alternatives and margins of the vectors (dense rows or ``(indptr,
        indices, values)``), and the :class:`HashCost` of computing them.

        Digits and alternatives are ``[n_vectors, K*L]`` of :attr:`digit_dtype`, margins
        float32 (``inf`` where a digit cannot flip)."""
        nv = dense.shape[0] if dense is not None else csr[0].shape[0] - 1
        digits = np.empty((nv, self.n_fn), dtype=self.digit_dtype)
        alts = np.empty_like(digits)
        margins = np.empty((nv, self.n_fn), dtype=np.float32)
        compares = self._fill(dense, csr, digits, alts, margins)
        return digits, alts, margins, self._cost(dense, csr, compares)

    def hash_codes(self, dense: np.ndarray | None = None, csr=None):
        """``(codes, cost)``: :meth:`codes` of :meth:`digits` and the same cost, computed
        a block of vectors at a time, so hashing every weight row needs no
        ``[n, K*L]`` digit arrays (no alternatives or margins: for tables, not probes)."""
        nv = dense.shape[0] if dense is not None else csr[0].shape[0] - 1
        out = np.empty((nv, self.L), dtype=np.int64)
        if self.family == "srp" and dense is not None:
            for lo in range(0, nv, PROJECT_CHUNK):
                hi = min(lo + PROJECT_CHUNK, nv)
                K.sign_codes(dense[lo:hi] @ self.P.T, self.K, out[lo:hi])
            return out, self._cost(dense, csr, 0)
        if dense is None:  # CSR rows are few (queries): one block
            d, _, _, cost = self.digits(csr=csr)
            K.pack_codes(d, self.K, self.digit_bits, out)
            return out, cost
        compares = 0
        step = min(nv, PROJECT_CHUNK) or 1
        digits = np.empty((step, self.n_fn), dtype=self.digit_dtype)
        alts = np.empty_like(digits)
        margins = np.empty((step, self.n_fn), dtype=np.float32)
        for lo in range(0, nv, step):
            hi = min(lo + step, nv)
            n = hi - lo
            compares += self._fill(dense[lo:hi], None, digits[:n], alts[:n], margins[:n])
            K.pack_codes(digits[:n], self.K, self.digit_bits, out[lo:hi])
        return out, self._cost(dense, csr, compares)

    def codes(self, digits: np.ndarray) -> np.ndarray:
        """Pack digits into one code per table: ``[n_vectors, L]`` int64."""
        out = np.empty((digits.shape[0], self.L), dtype=np.int64)
        K.pack_codes(digits, self.K, self.digit_bits, out)
        return out

    def probes(self, codes, digits, alts, margins, n_probes: int) -> np.ndarray:
        """Multi-probe codes ``[n_vectors, L, n_probes]`` (-1 where none)."""
        out = np.empty((codes.shape[0], self.L, n_probes), dtype=np.int64)
        K.probe_codes(codes, digits, alts, margins, self.K, self.digit_bits, n_probes, out)
        return out


# -- tables -------------------------------------------------------------------------------------
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
                 rng: np.random.Generator):
        self.L, self.n = L, n
        self.capacity = capacity
        self.replacement = replacement
        self.rng = rng
        self.state = _TableState(
            codes=np.zeros((L, n), dtype=np.uint8), inserted=np.zeros(n, dtype=bool), count=0,
            order=np.zeros((L, n), dtype=np.int32), dense=True,
            index=np.zeros((L, 2), dtype=np.int32), n_buckets=1,
            keys=None if replacement == "fifo" else np.zeros((L, n), dtype=np.int64),
            max_code=-1)

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
        if top >= 2**MAX_CODE_BITS or (rows.size and int(new_codes.min()) < 0):
            raise ValueError("codes must be in [0, 2**62)")
        max_code = top if clear else max(st.max_code, top)
        cdt = _code_dtype(max(max_code, 0))
        S = 1 << max(max_code, 0).bit_length()  # code space: a power of 2 above every code
        dense = S <= n
        codes_t = np.empty((L, rows.size), dtype=cdt)
        K.transpose_codes(new_codes, codes_t)
        inserted = np.zeros(n, dtype=bool) if clear else st.inserted.copy()
        inserted[rows] = True
        count = int(np.count_nonzero(inserted))
        fifo = self.replacement == "fifo"
        drawn_ptr = np.zeros(L + 1, dtype=np.int64)
        if fifo:
            keys, drawn = np.zeros((L, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)
        else:  # one draw per table that changed, in table order (as always)
            counts = np.empty(L, dtype=np.int64)
            K.changed_counts(rows, codes_t, st.codes, st.inserted, clear, counts)
            drawn_ptr[1:] = np.cumsum(counts)
            parts = [self.rng.integers(0, 2**62, size=int(m)) for m in counts if m]
            drawn = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            keys = np.zeros((L, n), dtype=np.int64) if clear else st.keys.copy()
        codes = np.zeros((L, n), dtype=cdt) if clear else st.codes.astype(cdt, copy=True)
        order = np.empty((L, n), dtype=np.int32)
        index = np.empty((L, S + 1) if dense else (L, n), dtype=np.int32 if dense else cdt)
        update = K.update_tables_par if K.parallel(L * n) and L > 1 else K.update_tables
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
        rounds = 1 + (R if pol == K.MULTIPROBE else 0)
        max_cand = max(1, min(self.n, rounds * self.L * cap))
        args = (codes, probes, st.dense, st.index, st.order, st.count, st.n_buckets, cap,
                budget, pol, self.n)
        proto = np.zeros(0, dtype=K.score_dtype(self.L, R, pol))
        # work: the bucket entries a query may visit, each worth several element operations
        if nq > 1 and K.parallel(8 * nq * self.L * cap):
            K.query_tables_par(*args, max_cand, proto, numba.get_num_threads(),
                               out_idx, out_cnt, stats)
        else:
            K.query_tables(*args, _scratch(self.n, max_cand, self.L, R, budget, proto),
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
        K.pack_rows(idx, cnt, budget, indptr, indices)
        return indptr, indices, stats


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
        s = K.new_scratch(n, max_cand, L, R, budget, proto)
        while len(cache) >= _SCRATCH_KEEP:
            cache.pop(next(iter(cache)))
    cache[key] = s
    return s


# -- re-hash schedules --------------------------------------------------------------------------
class RehashSchedule:
    """When to re-hash updated rows, counted in optimizer steps (batches).

    ``every``        every ``every`` batches.
    ``exponential``  SLIDE's schedule (Chen et al. 2020): the ``t``-th interval
                     (``t = 0, 1, ...``) is ``every * exp(growth * t)`` batches.
    ``paper``        the paper's public code: an epoch is cut into 10 chunks and the
                     tables are rebuilt after each chunk of epoch ``e`` (counted from
                     0) while ``e <= 20`` and ``e % (e // 10 + 1) == 0`` (every epoch
                     up to 9, then epochs 10, 12, 14, 16 and 18, then never). The trainer
                     tells the layer the epoch and its batch count; without that the
                     layer is in epoch 0 with chunks of ``every`` batches.
    ``never``        the tables keep the initial weights' codes.
    """

    def __init__(self, mode: str, every: int, growth: float):
        self.mode, self.every, self.growth = mode, every, growth
        self.steps = 0  # optimizer steps seen
        self.done = 0  # re-hashes made
        self.next_at = every
        self.epoch = 0
        self.epoch_batches = None
        self.epoch_step = 0

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self.epoch, self.epoch_batches, self.epoch_step = epoch, n_batches, 0

    def step(self) -> bool:
        """Count one optimizer step; True when the tables are due for a re-hash."""
        self.steps += 1
        self.epoch_step += 1
        if self.mode == "never":
            return False
        if self.mode == "every":
            return self.steps % self.every == 0
        if self.mode == "exponential":
            if self.steps < self.next_at:
                return False
            self.done += 1
            self.next_at = self.steps + max(1, int(round(self.every * math.exp(self.growth * self.done))))
            return True
        # paper
        e = self.epoch
        if not (e <= 20 and e % (e // 10 + 1) == 0):
            return False
        nb = self.epoch_batches if self.epoch_batches is not None else 10 * self.every
        bounds = {math.ceil(nb * c / 10) for c in range(1, 11)}
        return self.epoch_step in bounds


# -- what the selection did ------------------------------------------------------------------------
@dataclass(frozen=True)
class SelectionStats:
    """Sums over the queries an LSH layer answered; :meth:`summary` gives means.

    Quality fields are filled only when the layer measures quality (``quality=True``);
    ``mass`` fields only over queries with some positive pre-activation.
    """

    queries: int = 0
    chosen: int = 0  # nodes chosen by the tables (before padding and forced nodes)
    short_queries: int = 0  # queries whose tables returned fewer nodes than the budget
    padded: int = 0  # random nodes added to short queries (shortfall="pad")
    visited: int = 0  # bucket entries read
    buckets: int = 0  # buckets probed
    empty_buckets: int = 0
    quality_queries: int = 0
    mass_queries: int = 0
    recall: float = 0.0
    mass: float = 0.0
    random_recall: float = 0.0
    random_mass: float = 0.0
    topk_mass: float = 0.0

    def __add__(self, other: "SelectionStats") -> "SelectionStats":
        return SelectionStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                                 for f in fields(self)})

    def __sub__(self, other: "SelectionStats") -> "SelectionStats":
        return SelectionStats(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                                 for f in fields(self)})

    def summary(self) -> dict[str, Any]:
        """Means per query (nan where nothing was measured)."""
        nan = float("nan")
        q, qq, mq = self.queries, self.quality_queries, self.mass_queries
        return {
            "queries": q,
            "chosen_per_query": self.chosen / q if q else nan,
            "short_fraction": self.short_queries / q if q else nan,
            "padded_per_query": self.padded / q if q else nan,
            "visited_per_query": self.visited / q if q else nan,
            "empty_bucket_fraction": self.empty_buckets / self.buckets if self.buckets else nan,
            "quality_queries": qq,
            "recall": self.recall / qq if qq else nan,
            "random_recall": self.random_recall / qq if qq else nan,
            "mass": self.mass / mq if mq else nan,
            "random_mass": self.random_mass / mq if mq else nan,
            "topk_mass": self.topk_mass / mq if mq else nan,
        }
