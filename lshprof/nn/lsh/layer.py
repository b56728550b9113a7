"""The hash-selected layer :class:`LSH` (Spring & Shrivastava 2017).

Its parts are the other modules of :mod:`lshprof.nn.lsh`: the hash families
(:mod:`~lshprof.nn.lsh.families`), the row and query transforms and pooling
(:mod:`~lshprof.nn.lsh.transforms`), the tables (:mod:`~lshprof.nn.lsh.tables`), the
re-hash schedule (:mod:`~lshprof.nn.lsh.schedule`) and what the selection did
(:mod:`~lshprof.nn.lsh.stats`). The layer is registered as method ``lsh`` in
:data:`lshprof.nn.layers.LAYERS`.
"""

from __future__ import annotations

import numpy as np

from lshprof import kernels as kern
from lshprof.errors import ConfigError
from lshprof.names import FAMILIES, POLICIES, REPLACEMENTS, SCHEDULES, TRANSFORMS
from lshprof.nn.active import ActiveSet
from lshprof.nn.checks import check_choice, check_fraction, check_int, check_real
from lshprof.nn.layers.base import Layer, LayerInput, active_budget
from lshprof.nn.lsh.families import FAMILY_PARAMS, FAMILY_REGISTRY, HashFunctions
from lshprof.nn.lsh.schedule import RehashSchedule
from lshprof.nn.lsh.stats import (HashCost, SelectionStats, expected_candidates, rank_queries,
                                  ranking_quality)
from lshprof.nn.lsh.tables import MAX_CODE_BITS, HashTables
from lshprof.nn.lsh.transforms import (TRANSFORM_REGISTRY, Transform, extra_dims, pool_queries,
                                       pool_rows, pooled_dims)

__all__ = ["LSH"]


class LSH(Layer):
    """Hash-selected sparse layer (Spring & Shrivastava 2017): the active nodes come from
    ``L`` hash tables over the weight rows, queried with the hashed input, so choosing
    needs no pre-activation at all. Hash families, transforms, table layout and MAC
    formulas are described in :mod:`lshprof.nn.lsh`.

    Parameters (defaults in ``LSH.PARAMS``):

    * ``fraction`` (0, 1]: budget ``active_budget(fraction, n_out)`` nodes per sample.
      At 1.0 the layer hashes nothing and computes exactly what ``dense`` does.
    * ``family``: ``srp`` | ``srp_sparse`` | ``wta`` | ``dwta``; ``K`` digits per table
      (bits for srp, ``log2(bin_size)`` bits each for wta), ``L`` tables,
      ``bin_size`` (wta, a power of 2), ``density`` (srp_sparse).
    * ``transform``: ``none`` (cosine, as the paper's code) | ``norm_augment`` |
      ``sign_alsh``; ``pool``: mean-pool blocks of this many coordinates first.
    * ``policy``: ``union`` | ``histogram`` (paper's code) | ``multiprobe`` with
      ``probes`` extra buckets per table.
    * ``capacity`` (int or None for unlimited) and ``replacement`` (``fifo`` |
      ``reservoir``) of each bucket.
    * ``shortfall``: when the tables return fewer nodes than the budget, ``keep``
      fewer or ``pad`` with random nodes; counts of both are in :meth:`selection_stats`.
    * ``rehash``: ``every`` | ``paper`` | ``exponential`` | ``never`` (see
      :class:`lshprof.nn.lsh.schedule.RehashSchedule`), with ``rehash_every`` batches and
      ``rehash_growth``; ``rehash_rows``: ``updated`` (rows changed since the last
      re-hash) or ``all`` (clear and refill every table, as the paper's code);
      ``new_projections_every``: draw new hash functions every so many batches (0:
      never; also :meth:`new_projections`).
    * ``quality``: also compute the full product on every selection and score the
      chosen set against the exact top-k of the same size and a random set, and the
      tables' own ranking of the nodes (collision counts) by ROC AUC, average precision
      and rank correlation (:meth:`selection_stats`; definitions in
      :mod:`lshprof.nn.lsh`); its MACs go to ``quality``, its time to the ``quality``
      phase, not to the method.
    * ``inference``: ``lsh`` (select in inference mode too) or ``dense``.

    The tables are built on the first forward pass that chooses (or by :meth:`build`),
    counted as ``rehash``: every row is hashed with its current weights. A scheduled
    re-hash with ``rehash_rows="updated"`` then hashes the rows updated since the build
    or the last re-hash (their MACs per row: :mod:`lshprof.nn.lsh`), never a row the
    build already hashed and no step has changed since.
    """

    method = "lsh"
    #: the family's parameters come from the families (:data:`FAMILY_PARAMS`: ``bin_size``,
    #: ``density``); every one is checked whatever the family
    PARAMS = {
        "fraction": 0.05, "family": "srp", "K": 6, "L": 50, **FAMILY_PARAMS,
        "transform": "none", "pool": 1, "policy": "histogram",
        "probes": 4, "capacity": 128, "replacement": "fifo", "shortfall": "keep",
        "rehash": "every", "rehash_every": 50, "rehash_growth": 0.1,
        "rehash_rows": "updated", "new_projections_every": 0, "quality": False,
        "inference": "lsh",
    }
    #: choices of ``shortfall``, ``rehash_rows`` and ``inference``
    SHORTFALLS = ("keep", "pad")
    REHASH_ROWS = ("updated", "all")
    INFERENCE = ("lsh", "dense")

    #: Hogwild: the views share the sizes, the schedule, the hash generator, and (read
    #: and written through, as training re-assigns them) the hash functions, the tables,
    #: the MIPS scale ``M`` and the re-hash counters; each has its own updated-row marks
    #: and selection statistics, and (but the first) its own padding and quality streams
    HOGWILD_SHARED = Layer.HOGWILD_SHARED + (
        "budget", "pooled_dim", "hash_dim", "schedule", "_hash_rng")
    HOGWILD_THROUGH = Layer.HOGWILD_THROUGH + (
        "hashes", "tables", "_M", "rehash_count", "rows_rehashed")
    HOGWILD_PRIVATE = Layer.HOGWILD_PRIVATE + ("_dirty", "_stats")
    HOGWILD_MARKS = Layer.HOGWILD_MARKS + ("_dirty",)
    HOGWILD_PRIVATE_RNGS = Layer.HOGWILD_PRIVATE_RNGS + ("_quality_rng",)

    def __init__(self, n_in: int, n_out: int, **kwargs):
        super().__init__(n_in, n_out, **kwargs)
        p = self.params
        # streams 0 and 1 are the base class's (weights, choices); 2 hashes, 3 quality
        hash_ss, quality_ss = np.random.SeedSequence(self.seed).spawn(4)[2:]
        self._hash_rng = np.random.default_rng(hash_ss)
        self._quality_rng = np.random.default_rng(quality_ss)
        self.budget = active_budget(p["fraction"], self.n_out)
        self.pooled_dim = pooled_dims(self.n_in, p["pool"])
        self.hash_dim = self.pooled_dim + extra_dims(p["transform"])
        self.hashes: HashFunctions | None = None
        self.tables: HashTables | None = None
        self.schedule = RehashSchedule(p["rehash"], p["rehash_every"], p["rehash_growth"])
        self._M = 1.0
        #: re-hash events and (row, table) insertions made so far
        self.rehash_count = 0
        self.rows_rehashed = 0

    def fresh_private_state(self) -> dict:
        """The base layer's, and ``_dirty`` (rows updated since the last re-hash) and
        ``_stats`` (the running :class:`SelectionStats`)."""
        return {**super().fresh_private_state(),
                "_dirty": np.zeros(self.n_out, dtype=bool), "_stats": SelectionStats()}

    def merge_worker(self, view: "LSH") -> None:
        """The base layer's, and the view's selection statistics."""
        super().merge_worker(view)
        self._stats = self._stats + view._stats
        view._stats = SelectionStats()

    def _check_params(self):
        p, m = self.params, self.method
        p["fraction"] = check_fraction("fraction", p["fraction"], m)
        check_choice("family", p["family"], FAMILIES, m)
        check_choice("transform", p["transform"], TRANSFORMS, m)
        check_choice("policy", p["policy"], POLICIES, m)
        check_choice("replacement", p["replacement"], REPLACEMENTS, m)
        check_choice("shortfall", p["shortfall"], self.SHORTFALLS, m)
        check_choice("rehash", p["rehash"], SCHEDULES, m)
        check_choice("rehash_rows", p["rehash_rows"], self.REHASH_ROWS, m)
        check_choice("inference", p["inference"], self.INFERENCE, m)
        p["K"] = check_int("K", p["K"], m, 1)
        p["L"] = check_int("L", p["L"], m, 1)
        for family in FAMILY_REGISTRY.values():  # every family's parameters, whichever is used
            family.check_params(p, m)
        p["pool"] = check_int("pool", p["pool"], m, 1, self.n_in)
        p["probes"] = check_int("probes", p["probes"], m, 0)
        p["rehash_every"] = check_int("rehash_every", p["rehash_every"], m, 1)
        p["new_projections_every"] = check_int("new_projections_every",
                                               p["new_projections_every"], m, 0)
        if p["capacity"] is not None:
            p["capacity"] = check_int("capacity", p["capacity"], m, 1)
        p["rehash_growth"] = check_real("rehash_growth", p["rehash_growth"], m)
        if p["rehash_growth"] < 0:
            raise ConfigError(f"{m}: rehash_growth must be >= 0, got {p['rehash_growth']}")
        if not isinstance(p["quality"], bool):
            raise ConfigError(f"{m}: quality must be true or false, got {p['quality']!r}")
        bits = p["K"] * FAMILY_REGISTRY[p["family"]].digit_bits(p)
        if bits > MAX_CODE_BITS:
            raise ConfigError(
                f"{m}: K={p['K']} gives {bits}-bit codes for family {p['family']!r}; at most "
                f"{MAX_CODE_BITS} bits fit, lower K"
            )

    # -- the tables ----------------------------------------------------------------------------
    @property
    def dense_mode(self) -> bool:
        """True when the budget is every node: the layer computes exactly like dense."""
        return self.budget == self.n_out

    @property
    def transform(self) -> Transform:
        """The row and query transform (:data:`TRANSFORM_REGISTRY` entry)."""
        return TRANSFORM_REGISTRY[self.params["transform"]]

    def _new_hashes(self) -> None:
        p = self.params
        own = FAMILY_REGISTRY[p["family"]].PARAMS
        self.hashes = HashFunctions(p["family"], p["K"], p["L"], self.hash_dim, self._hash_rng,
                                    dtype=self.dtype, **{k: p[k] for k in own})

    def _ensure_tables(self) -> None:
        """The first build: new hash functions, tables laid out for their codes' width
        (one layout for good, :class:`HashTables`), every row hashed. Rows updated before
        it (a forward pass given ``active=`` builds nothing) are hashed by it with their
        current weights, so none is left marked for the next scheduled re-hash."""
        if self.tables is None:
            self._new_hashes()
            self.tables = HashTables(self.params["L"], self.n_out, self.params["capacity"],
                                     self.params["replacement"], self._hash_rng,
                                     code_bits=self.hashes.code_bits)
            self._rehash(None)
            self._dirty[:] = False

    def _row_vectors(self, rows: np.ndarray | None, cost: HashCost):
        """``(rows, vectors, full)``: what the tables store for ``rows`` (None: every row,
        with a new ``M``; ``full`` says every row was done, e.g. because one outgrew ``M``)."""
        full = rows is None
        idx = np.arange(self.n_out) if full else rows
        pooled = pool_rows(self.W[idx], self.params["pool"], self.pooled_dim, self.dtype, cost)
        V, M = self.transform.rows(pooled, self.b[idx], self._M, full, self.dtype, cost)
        if V is None:  # a row outgrew M: every row again
            return self._row_vectors(None, cost)
        self._M = M
        return idx, V, full

    def rehash(self, rows: np.ndarray | None = None) -> None:
        """Hash the weight rows ``rows`` now (None: every row, clearing the tables and
        setting a new MIPS scale) and update the tables, counted as ``rehash``. The
        tables must exist (:meth:`build`, or the first forward pass, makes them); the
        updated-row marks and the schedule are left as they are."""
        if self.tables is None:
            raise ConfigError(f"{self.method}: no tables yet; call build() or forward first")
        self._rehash(rows)

    def build(self) -> None:
        """Build the hash functions and tables now if they do not exist yet (counted as
        ``rehash``, as the first forward pass would count it)."""
        if self.tables is None:
            self.rebuild()

    def _rehash(self, rows: np.ndarray | None) -> None:
        """Hash ``rows`` (None: all, clearing the tables) and update the tables."""
        cost = HashCost()
        idx, V, full = self._row_vectors(rows, cost)
        codes, c2 = self.hashes.hash_codes(dense=np.ascontiguousarray(V))
        cost += c2
        self.rows_rehashed += self.tables.set_codes(idx, codes, clear=full)
        self.rehash_count += 1
        # traffic: row vectors and hash functions read; codes written, then every table's
        # arrays rewritten (their bytes as stored)
        cost.bytes_moved += V.nbytes + self.hashes.nbytes + 8 * codes.size + self.tables.nbytes
        self._count("rehash", cost)

    def _count(self, phase: str, cost: HashCost) -> None:
        """Add a hashing cost to ``phase`` (``hash`` or ``rehash``) and its adds/compares."""
        self.macs.add(phase, cost.macs)
        self.macs.add("bytes_moved", cost.bytes_moved)
        self.macs.add(f"{phase}_adds", cost.adds)
        self.macs.add(f"{phase}_compares", cost.compares)

    def new_projections(self) -> None:
        """Draw new hash functions and rebuild every table (counted as ``rehash``)."""
        if self.tables is not None:  # else the first build draws them
            self._new_hashes()
        self.rebuild()

    def rebuild(self) -> None:
        """Re-hash every row now and refill every table (counted as ``rehash``)."""
        if self.dense_mode:
            return
        if self.tables is None:
            self._ensure_tables()
            return
        self._rehash(None)
        self._dirty[:] = False

    # -- selection --------------------------------------------------------------------------------
    def _query_vectors(self, x: LayerInput, cost: HashCost):
        """``(dense, csr)``: what the batch ``x`` is hashed as, pooled and transformed."""
        p = self.params
        dense, csr = x.dense, None
        if x.sparse is not None:
            s = x.sparse
            csr = (s.indptr, s.indices, s.values)
        dense, csr = pool_queries(dense, csr, x.batch, self.n_in, p["pool"], self.pooled_dim,
                                  self.dtype, cost)
        dense, csr = self.transform.queries(dense, csr, x.batch, self.pooled_dim, self.dtype)
        return (np.ascontiguousarray(dense) if dense is not None else None), csr

    def _choose(self, x, train):
        p = self.params
        if self.dense_mode or (not train and p["inference"] == "dense"):
            return None, None
        if self.tables is None:
            self.clock.push("rehash")
            try:
                self._ensure_tables()
            finally:
                self.clock.pop()
        self.clock.push("hash")
        try:
            cost = HashCost()
            dense, csr = self._query_vectors(x, cost)
            digits, alts, margins, c2 = self.hashes.digits(dense, csr)
            cost += c2
            codes = self.hashes.codes(digits)
            n_probes = p["probes"] if p["policy"] == "multiprobe" else 0
            probes = self.hashes.probes(codes, digits, alts, margins, n_probes)
        finally:
            self.clock.pop()
        # traffic: query vectors and hash functions read, codes written
        nq = dense.size if dense is not None else 2 * csr[1].size
        cost.bytes_moved += self.dtype.itemsize * nq + self.hashes.nbytes + 8 * codes.size
        self._count("hash", cost)
        cnt, idx, qstats = self.tables.query(codes, probes, p["policy"], self.budget)
        # traffic: every table entry visited (a node id) and the chosen ids written
        self.macs.add("bytes_moved", 4 * (int(qstats[0]) + int(cnt.sum())))
        B, k = x.batch, self.budget
        chosen = int(cnt.sum())
        short = cnt < k
        padded = 0
        rows = idx.reshape(B, k)
        if p["shortfall"] == "pad" and short.any():
            rows = rows.copy()
            for q in np.flatnonzero(short):
                have = rows[q, :cnt[q]]
                free = np.setdiff1d(np.arange(self.n_out), have, assume_unique=True)
                extra = self.rng.choice(free, size=k - cnt[q], replace=False)
                rows[q] = np.sort(np.concatenate([have, extra]))
                padded += k - int(cnt[q])
            cnt = np.full(B, k, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
        if indptr[-1] == B * k:  # every query filled its budget: the rows are the CSR
            indices = rows.reshape(-1).astype(np.int32, copy=False)
        else:
            indices = rows[np.arange(k)[None, :] < cnt[:, None]].astype(np.int32)
        pattern = ActiveSet(indptr, indices, np.zeros(indices.size, dtype=self.dtype),
                            self.n_out, check=False)
        add = SelectionStats(queries=B, chosen=chosen, short_queries=int(short.sum()),
                                padded=padded, visited=int(qstats[0]), buckets=int(qstats[1]),
                                empty_buckets=int(qstats[2]))
        if p["quality"]:
            self.clock.push("quality")
            try:
                add = add + self._measure_quality(x, pattern, codes, probes)
            finally:
                self.clock.pop()
        self._stats = self._stats + add
        return pattern, None

    def _measure_quality(self, x: LayerInput, pattern: ActiveSet, codes: np.ndarray,
                         probes: np.ndarray) -> SelectionStats:
        """The chosen sets against the exact top-k and a random set (every query), and
        the tables' own ranking (:meth:`HashTables.collisions` of the queries' ``codes``
        and ``probes``) against the exact top-``budget`` and the active nodes, on the
        queries :func:`~lshprof.nn.lsh.stats.rank_queries` picks."""
        z2d = np.ascontiguousarray(self._preact_full(x, "quality"))
        keys = self._quality_rng.random((x.batch, self.n_out))
        out = np.empty((x.batch, 6), dtype=np.float64)
        kern.selection_quality(z2d, pattern.indptr, pattern.indices, keys, out)
        has_mass = out[:, 5] > 0
        sub = rank_queries(x.batch, self.n_out)
        scores = self.tables.collisions(codes[sub], probes[sub], self.params["policy"])
        ranking = SelectionStats.of_ranking(ranking_quality(scores, z2d[sub], self.budget))
        return ranking + SelectionStats(
            quality_queries=x.batch, mass_queries=int(has_mass.sum()),
            recall=float(out[:, 0].sum()), mass=float(out[has_mass, 1].sum()),
            random_recall=float(out[:, 2].sum()), random_mass=float(out[has_mass, 3].sum()),
            topk_mass=float(out[has_mass, 4].sum()))

    def selection_stats(self) -> SelectionStats:
        """Running sums of what the tables returned (and, with ``quality``, how good it was)."""
        return self._stats

    def selection_facts(self) -> dict:
        """The layer's facts that explain how many nodes its tables return: ``family``,
        ``transform``, ``K``, ``L``, ``digit_bits`` (bits per hash function: srp 1, wta
        and dwta ``log2(bin_size)``), ``code_bits`` (``K * digit_bits``), ``digit_values``
        (values one function takes), ``code_space`` (distinct codes of a table:
        ``digit_values ** K``), ``nodes``, ``nodes_per_bucket`` (``nodes / code_space``),
        ``budget`` (nodes per query), ``expected_candidates`` (distinct nodes of a query's
        buckets were codes uniform: :func:`~lshprof.nn.lsh.stats.expected_candidates`),
        ``policy``, ``probes`` (0 unless multiprobe), ``capacity`` and ``shortfall``."""
        p = self.params
        fam = FAMILY_REGISTRY[p["family"]]
        bits = fam.digit_bits(p)
        values = fam.digit_values(p, self.hash_dim)
        space = values ** p["K"]
        return {"family": p["family"], "transform": p["transform"], "K": p["K"], "L": p["L"],
                "digit_bits": bits, "code_bits": p["K"] * bits, "digit_values": values,
                "code_space": space, "nodes": self.n_out, "nodes_per_bucket": self.n_out / space,
                "budget": self.budget,
                "expected_candidates": expected_candidates(self.n_out, space, p["L"],
                                                           p["capacity"]),
                "policy": p["policy"],
                "probes": p["probes"] if p["policy"] == "multiprobe" else 0,
                "capacity": p["capacity"], "shortfall": p["shortfall"]}

    def selection_summary(self, stats: SelectionStats) -> dict:
        """A row's account of ``stats`` (what the tables returned over some passes): its
        means (:meth:`SelectionStats.summary`) and the layer's :meth:`selection_facts`;
        :func:`~lshprof.nn.lsh.selection_diagnosis` reads it."""
        return {**stats.summary(), **self.selection_facts()}

    # -- training hooks -----------------------------------------------------------------------------
    def _backward(self, grad, input_grad: bool):
        gx = super()._backward(grad, input_grad)
        self._dirty |= self.touched
        return gx

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self.schedule.start_epoch(epoch, n_batches)

    def after_step(self) -> None:
        """Re-hash on schedule (rows updated since the last re-hash, or all)."""
        due = self.schedule.step()
        if self.dense_mode or self.tables is None:
            return
        self.clock.push("rehash")
        try:
            self._after_step(due)
        finally:
            self.clock.pop()

    def _after_step(self, due: bool) -> None:
        npe = self.params["new_projections_every"]
        if npe and self.schedule.steps % npe == 0:
            self.new_projections()
        elif due:
            if self.params["rehash_rows"] == "all":
                self._rehash(None)
            else:
                rows = np.flatnonzero(self._dirty)
                if rows.size:
                    self._rehash(rows)
            self._dirty[:] = False

    def warm_up_paths(self) -> None:
        """Build the tables if need be, then run what later steps run: a re-hash of a few
        updated rows (``rehash_rows="updated"``), a rebuild of every table (``"all"``, a
        row that outgrew the MIPS scale) and, with ``new_projections_every``, new hash
        functions. Counted as ``rehash`` like any re-hash; for a warm-up's copy of the
        layer only (it changes the tables and the random streams)."""
        if self.dense_mode:
            return
        self.clock.push("rehash")
        try:
            self.build()
            self._dirty[:min(2, self.n_out)] = True
            self._rehash(np.flatnonzero(self._dirty))
            self._rehash(None)
            self._dirty[:] = False
            if self.params["new_projections_every"]:
                self.new_projections()
        finally:
            self.clock.pop()

    def memory_bytes(self) -> dict[str, int]:
        out = super().memory_bytes()
        out["hash_functions"] = self.hashes.nbytes if self.hashes is not None else 0
        out["tables"] = self.tables.nbytes if self.tables is not None else 0
        return out
