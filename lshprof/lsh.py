"""Hash families, input transforms, hash tables and re-hash schedules for the LSH layer.

Everything here is explicit state (numpy arrays drawn from a given generator) plus
the numba kernels in :mod:`lshprof.kernels`; the layer itself is
:class:`lshprof.layers.LSH`.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from . import kernels as K

__all__ = [
    "FAMILIES", "TRANSFORMS", "POLICIES", "REPLACEMENTS", "SCHEDULES", "MIPS_HEADROOM",
    "HashFunctions", "HashTables", "RehashSchedule", "SelectionStats", "HashCost",
]

FAMILIES = ("srp", "srp_sparse", "wta", "dwta")
TRANSFORMS = ("none", "norm_augment", "sign_alsh")
POLICIES = ("union", "histogram", "multiprobe")
REPLACEMENTS = ("fifo", "reservoir")
SCHEDULES = ("every", "paper", "exponential", "never")

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
class HashFunctions:
    """``K*L`` hash functions of one family over vectors of ``dim`` coordinates.

    State is plain arrays drawn from ``rng``: Gaussian directions ``P`` (srp), +-1
    directions by coordinate ``col_ptr/col_fn/col_sign`` (srp_sparse), or
    coordinate samples ``perm`` (wta, dwta).
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
    def nbytes(self) -> int:
        arrays = {"srp": ("P",), "srp_sparse": ("col_fn", "col_sign", "col_count", "col_ptr"),
                  "wta": ("perm",), "dwta": ("perm",)}[self.family]
        return int(sum(getattr(self, a).nbytes for a in arrays))

    def digits(self, dense: np.ndarray | None = None, csr=None):
        """Digits, alternatives and margins of the vectors (dense rows or ``(indptr,
        indices, values)``), and the :class:`HashCost` of computing them."""
        nv = dense.shape[0] if dense is not None else csr[0].shape[0] - 1
        digits = np.empty((nv, self.n_fn), dtype=np.int64)
        alts = np.empty_like(digits)
        margins = np.empty((nv, self.n_fn), dtype=np.float64)
        cost = HashCost()
        fam = self.family
        if fam == "srp":
            if dense is not None:
                K.srp_dense(dense, self.P, digits, alts, margins)
                cost.macs = nv * self.n_fn * dense.shape[1]
            else:
                K.srp_csr(*csr, self.P, digits, alts, margins)
                cost.macs = self.n_fn * int(csr[1].shape[0])
        elif fam == "srp_sparse":
            if dense is not None:
                K.pm1_dense(dense, self.col_ptr, self.col_fn, self.col_sign, self.n_fn,
                            digits, alts, margins)
                cost.adds = nv * int(self.col_count.sum())
            else:
                K.pm1_csr(*csr, self.col_ptr, self.col_fn, self.col_sign, self.n_fn,
                          digits, alts, margins)
                cost.adds = int(self.col_count[csr[1]].sum())
        else:
            densify = fam == "dwta"
            if dense is not None:
                cost.compares = int(K.wta_dense(dense, self.perm, densify, self.salt,
                                                DWTA_ATTEMPTS, digits, alts, margins))
            else:
                cost.compares = int(K.wta_csr(*csr, self.dim, self.perm, densify, self.salt,
                                              DWTA_ATTEMPTS, digits, alts, margins))
        return digits, alts, margins, cost

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
class HashTables:
    """``L`` tables over ``n`` nodes: codes, priorities and the sorted lookup arrays."""

    def __init__(self, L: int, n: int, capacity: int | None, replacement: str,
                 rng: np.random.Generator):
        self.L, self.n = L, n
        self.capacity = capacity
        self.replacement = replacement
        self.rng = rng
        self.codes = np.full((L, n), -1, dtype=np.int64)  # -1: not inserted yet
        self.prio = np.zeros((L, n), dtype=np.int64)
        self.order = np.zeros((L, n), dtype=np.int32)
        self.sorted_codes = np.full((L, n), -1, dtype=np.int64)
        self._clock = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables (codes, priorities, sorted codes and node order)."""
        return int(self.codes.nbytes + self.prio.nbytes + self.order.nbytes
                   + self.sorted_codes.nbytes)

    def set_codes(self, rows: np.ndarray, new_codes: np.ndarray, *, clear: bool = False) -> int:
        """Give ``rows`` the codes ``new_codes[r, t]``; returns how many (row, table)
        entries were (re)inserted. ``clear`` empties every table first (a rebuild:
        every row is inserted again, in a random order)."""
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
        self._sort()
        return inserted

    def _sort(self) -> None:
        tables = np.repeat(np.arange(self.L), self.n)
        o = np.lexsort((-self.prio.ravel(), self.codes.ravel(), tables))
        o = (o - tables * self.n).reshape(self.L, self.n)
        self.order[:] = o
        self.sorted_codes[:] = np.take_along_axis(self.codes, o, axis=1)

    def bucket(self, t: int, code: int) -> np.ndarray:
        """Nodes found in table ``t``'s bucket ``code`` (highest priority first)."""
        lo, hi = np.searchsorted(self.sorted_codes[t], [code, code + 1])
        if self.capacity is not None:
            hi = min(hi, lo + self.capacity)
        return self.order[t, lo:hi].astype(np.int64)

    def membership(self) -> np.ndarray:
        """``[L, n]`` bool: whether each node is found in its bucket of each table."""
        found = np.zeros((self.L, self.n), dtype=bool)
        for t in range(self.L):
            sc = self.sorted_codes[t]
            starts = np.searchsorted(sc, sc, side="left")
            rank = np.arange(self.n) - starts
            ok = sc >= 0
            if self.capacity is not None:
                ok &= rank < self.capacity
            found[t, self.order[t][ok]] = True
        return found

    def query(self, codes: np.ndarray, probes: np.ndarray, policy: str, budget: int):
        """Chosen nodes per query as ``(counts, indices)`` and ``[visited, buckets, empty]``."""
        nq = codes.shape[0]
        out_idx = np.empty(nq * budget, dtype=np.int32)
        out_cnt = np.empty(nq, dtype=np.int64)
        stats = np.zeros(3, dtype=np.int64)
        cap = self.capacity if self.capacity is not None else self.n
        K.query_tables(codes, probes, self.sorted_codes, self.order, cap, budget,
                       _POLICY_CODE[policy], self.n, out_idx, out_cnt, stats)
        return out_cnt, out_idx, stats


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
