"""What hashing cost (:class:`HashCost`), what an LSH layer's selection did
(:class:`SelectionStats`), and why it returned fewer nodes than its budget
(:func:`selection_diagnosis`, from the facts :func:`expected_candidates` models)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = ["HashCost", "SelectionStats", "expected_candidates", "selection_diagnosis",
           "DIAGNOSE_BELOW", "RANK_ENTRIES", "rank_queries", "average_ranks", "roc_auc_ap",
           "rank_correlation", "topk_truth", "ranking_quality"]

#: :func:`selection_diagnosis` explains a selection whose tables returned, on average,
#: fewer nodes per query than this share of the budget
DIAGNOSE_BELOW = 0.5


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


@dataclass(frozen=True)
class SelectionStats:
    """Sums over the queries an LSH layer answered; :meth:`summary` gives means.

    Quality fields are filled only when the layer measures quality (``quality=True``);
    ``mass`` fields only over queries with some positive pre-activation. The ranking
    fields (``rank_queries`` onwards) score the tables' own score of every node (the
    collision counts of :meth:`~lshprof.nn.lsh.HashTables.collisions`) with
    :func:`ranking_quality`, over the queries :func:`rank_queries` picks of each batch;
    each AUC/AP pair sums over the queries where its truth has both classes, the rank
    correlation over those where neither ranking is constant.
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
    # the hash's own ranking (collision counts) over the queries :func:`rank_queries` picks:
    # sums of per-query measures, each over the queries where it is defined
    rank_queries: int = 0
    active_fraction: float = 0.0  # share of nodes with positive pre-activation
    auc_topk_queries: int = 0  # both classes present: some node in, some out of the top-k
    auc_topk: float = 0.0
    ap_topk: float = 0.0
    auc_active_queries: int = 0  # some node active, some not
    auc_active: float = 0.0
    ap_active: float = 0.0
    spearman_queries: int = 0  # neither the scores nor the pre-activations all tied
    spearman: float = 0.0

    def __add__(self, other: "SelectionStats") -> "SelectionStats":
        return SelectionStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                                 for f in fields(self)})

    def __sub__(self, other: "SelectionStats") -> "SelectionStats":
        return SelectionStats(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                                 for f in fields(self)})

    @classmethod
    def of_ranking(cls, measures: dict[str, np.ndarray]) -> "SelectionStats":
        """The sums of :func:`ranking_quality`'s per-query measures, each over the
        queries where it is defined (not NaN)."""
        def part(key):
            v = measures[key]
            ok = ~np.isnan(v)
            return int(ok.sum()), float(v[ok].sum())

        nt, auc_t = part("auc_topk")
        na, auc_a = part("auc_active")
        ns, rho = part("spearman")
        nf, act = part("active_fraction")
        return cls(rank_queries=nf, active_fraction=act,
                   auc_topk_queries=nt, auc_topk=auc_t, ap_topk=part("ap_topk")[1],
                   auc_active_queries=na, auc_active=auc_a, ap_active=part("ap_active")[1],
                   spearman_queries=ns, spearman=rho)

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
            "rank_queries": self.rank_queries,
            "active_fraction": (self.active_fraction / self.rank_queries
                                if self.rank_queries else nan),
            "auc_topk": self.auc_topk / self.auc_topk_queries if self.auc_topk_queries else nan,
            "ap_topk": self.ap_topk / self.auc_topk_queries if self.auc_topk_queries else nan,
            "auc_topk_queries": self.auc_topk_queries,
            "auc_active": (self.auc_active / self.auc_active_queries
                           if self.auc_active_queries else nan),
            "ap_active": (self.ap_active / self.auc_active_queries
                          if self.auc_active_queries else nan),
            "auc_active_queries": self.auc_active_queries,
            "spearman": self.spearman / self.spearman_queries if self.spearman_queries else nan,
            "spearman_queries": self.spearman_queries,
        }


def expected_candidates(nodes: int, code_space: int, L: int, capacity: int | None = None) -> float:
    """Distinct nodes a query's ``L`` buckets hold on average if every node's code in every
    table were uniform over ``code_space`` codes and independent: ``nodes * (1 - (1 -
    1/code_space)**L)``, at most ``L * capacity``. Real codes are not uniform (the measured
    ``empty_bucket_fraction`` and ``chosen_per_query`` say how far); the model tells
    whether the tables *could* fill a budget at all."""
    if nodes <= 0 or code_space <= 0 or L <= 0:
        return 0.0
    share = 1.0 if code_space <= 1 else -math.expm1(L * math.log1p(-1.0 / code_space))
    got = nodes * share
    return float(got if capacity is None else min(got, L * capacity))


def _num(d: dict, key: str) -> float:
    try:
        v = float(d.get(key))
    except (TypeError, ValueError):
        return math.nan
    return v


def selection_diagnosis(summary: dict, fraction: float | None = None) -> str | None:
    """The likely cause of an LSH layer's tables returning far fewer nodes than its budget,
    and its fix, in one line naming the layer's parameters; None when they returned at
    least :data:`DIAGNOSE_BELOW` of the budget on average, or ``summary`` lacks the facts.

    ``summary``: an entry of a row's ``layer_selection`` (the layer's
    :meth:`~lshprof.nn.lsh.layer.LSH.selection_summary`: means of the selection and the
    layer's facts: code bits, ``K``, ``L``, nodes, budget, ``capacity``, ``shortfall``...).
    ``fraction``: the budget as a fraction of the layer's nodes, used only when the
    summary has no ``budget`` of its own.

    The causes, in the order they are tried: buckets too small to hold the budget
    (``L * capacity`` below it); codes so long that the expected buckets are nearly
    empty (:func:`expected_candidates` below the budget; the fix names the largest
    ``K`` that would fill it); query buckets empty although the code space is not too
    large (the inputs and the weight rows hash to different codes); buckets that hold
    few distinct nodes (codes concentrated in few buckets)."""
    if not isinstance(summary, dict):
        return None
    chosen, nodes = _num(summary, "chosen_per_query"), _num(summary, "nodes")
    L, K, space = _num(summary, "L"), _num(summary, "K"), _num(summary, "code_space")
    budget = _num(summary, "budget")
    if not math.isfinite(budget) and fraction is not None and math.isfinite(nodes):
        budget = max(1.0, min(nodes, math.floor(float(fraction) * nodes + 0.5)))
    if not all(math.isfinite(v) and v > 0 for v in (nodes, L, K, space, budget)):
        return None
    if not math.isfinite(chosen) or chosen >= DIAGNOSE_BELOW * budget:
        return None
    n, L, K, b = int(nodes), int(L), int(K), int(budget)
    cap = summary.get("capacity")
    cap = int(cap) if isinstance(cap, (int, float)) and math.isfinite(cap) else None
    bits = summary.get("code_bits", "?")
    empty = _num(summary, "empty_bucket_fraction")
    empty_txt = f", {empty:.1%} of the probed buckets empty" if math.isfinite(empty) else ""
    pad = ', or set shortfall = "pad"' if summary.get("shortfall") != "pad" else \
        "; shortfall = \"pad\" fills the rest with random nodes"
    if cap is not None and L * cap < b:
        return (f"buckets of capacity = {cap} in L = {L} tables hold at most {L * cap} "
                f"nodes per query: raise capacity or L{pad}")
    if expected_candidates(n, int(space), L, cap) < b:
        values = _num(summary, "digit_values")  # the values one digit takes
        if not math.isfinite(values):
            values = space ** (1.0 / K)
        fix = "lower K and raise L"
        for k2 in range(K - 1, 0, -1):
            s2 = int(round(values ** k2))
            if expected_candidates(n, s2, L, cap) >= b:
                fix = f"lower K (K = {k2} gives {n / s2:.3g} nodes per bucket)"
                break
        return (f"codes of {bits} bits for {n} nodes leave buckets empty "
                f"({n / space:.3g} nodes per bucket{empty_txt}): {fix}{pad}")
    family, transform = summary.get("family", "?"), summary.get("transform", "?")
    if math.isfinite(empty) and empty >= 0.5:
        return (f"{empty:.1%} of the probed buckets were empty though {bits}-bit codes "
                f"give {n / space:.3g} nodes per bucket: the inputs hash where few weight rows "
                f"do (family = {family!r}, transform = {transform!r}); try policy = "
                f'"multiprobe", another family or transform{pad}')
    visited = _num(summary, "visited_per_query")
    return (f"the probed buckets held few distinct nodes ({visited:.3g} entries read per "
            f"query): the weight rows' codes crowd into few buckets; raise L or lower K{pad}")


# -- the hash's own ranking against the truth ----------------------------------------------------
#: the hash-ranking measures score at most this many (query, node) pairs per batch
#: (:func:`rank_queries`): all queries of a batch of 128 up to 8,192 nodes, 10 of 128 at
#: 100,000 nodes
RANK_ENTRIES = 1 << 20


def rank_queries(batch: int, nodes: int) -> np.ndarray:
    """The queries of a batch whose hash ranking is scored: every one when ``batch *
    nodes <= RANK_ENTRIES``, else ``max(1, RANK_ENTRIES // nodes)`` of them evenly spaced
    (``q = i * batch // m``), so a batch's cost stays bounded at any width; always the
    same ones for the same sizes."""
    m = min(batch, max(1, RANK_ENTRIES // max(nodes, 1)))
    return (np.arange(m, dtype=np.int64) * batch) // m


class _Groups:
    """The tied runs of each row of a ``[B, n]`` array: ``codes[b, j]`` numbers the distinct
    values of row ``b`` in ascending order (``0 .. V-1``), ``below[b, c]`` counts the
    row's entries below value ``c`` and ``avg[b, c]`` is value ``c``'s average rank
    (1-based). Small non-negative integers (the tables' collision counts) are their own
    codes, counted without sorting; anything else is sorted once."""

    def __init__(self, x: np.ndarray):
        B, n = x.shape
        self.n = n
        top = int(x.max()) if x.size else 0
        if x.dtype.kind in "biu" and x.size and int(x.min()) >= 0 and top < max(n, 1024):
            self.codes, V = x.astype(np.intp, copy=False), top + 1
        else:
            order = np.argsort(x, axis=1)
            xs = np.take_along_axis(x, order, axis=1)
            new = np.zeros((B, n), dtype=np.intp)
            new[:, 1:] = xs[:, 1:] != xs[:, :-1]
            self.codes = np.empty((B, n), dtype=np.intp)
            np.put_along_axis(self.codes, order, np.cumsum(new, axis=1), axis=1)
            V = max(n, 1)
        self.V = V
        self.key = (self.codes + (np.arange(B, dtype=np.intp) * V)[:, None]).reshape(-1)
        self.count = self._hist(None)
        self.below = np.cumsum(self.count, axis=1) - self.count
        self.avg = self.below + (self.count + 1) / 2.0

    def _hist(self, mask: np.ndarray | None) -> np.ndarray:
        key = self.key if mask is None else self.key[mask.reshape(-1)]
        B = self.codes.shape[0]
        return np.bincount(key, minlength=B * self.V).reshape(B, self.V)

    def ranks(self) -> np.ndarray:
        """Every entry's average rank, in place of the entry."""
        return np.take_along_axis(self.avg, self.codes, axis=1)

    def auc_ap(self, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ROC AUC and average precision of the ranking (higher first) against ``truth``."""
        n = self.n
        pos = self._hist(truth)
        P = pos.sum(axis=1).astype(np.float64)
        N = n - P
        both = (P > 0) & (N > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # Mann-Whitney: the positives' rank sum, ties counted half
            auc = np.where(both, ((pos * self.avg).sum(axis=1) - P * (P + 1) / 2.0) / (P * N),
                           np.nan)
            # average precision: each value's positives add the precision at its
            # threshold (the share of positives among the entries at or above it)
            tp_ge = P[:, None] - (np.cumsum(pos, axis=1) - pos)
            at_ge = n - self.below
            prec = np.where(pos > 0, tp_ge / np.maximum(at_ge, 1), 0.0)
            ap = np.where(both, (pos * prec).sum(axis=1) / P, np.nan)
        return auc, ap

    def top(self, k: int) -> np.ndarray:
        """``[B, n]`` bool: the ``k`` largest entries of each row, ties at the threshold to
        the lowest position."""
        B, n = self.codes.shape
        if k <= 0:
            return np.zeros((B, n), dtype=bool)
        k = min(k, n)
        # the threshold value: the highest code with at least k entries at or above it
        at_ge = n - self.below  # entries with a code >= c (0 for codes beyond the row's)
        thr = (np.where(at_ge >= k, np.arange(self.V), -1)).max(axis=1)[:, None]
        above = self.codes > thr
        tied = self.codes == thr
        need = k - above.sum(axis=1, keepdims=True)
        return above | (tied & (np.cumsum(tied, axis=1) <= need))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """``[B, n]`` ranks of each row of ``x`` (1 = smallest), tied values sharing the mean
    of their ranks (``scipy.stats.rankdata(method="average")`` row by row)."""
    return _Groups(np.atleast_2d(np.asarray(x))).ranks()


def roc_auc_ap(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` (``[B, n]``, higher = ranked first) against the boolean
    ``truth`` of the same shape: ROC AUC, ties counted half (the Mann-Whitney statistic
    over ``P * N``, as ``sklearn.metrics.roc_auc_score``), and average precision
    ``sum over thresholds of (R_t - R_{t-1}) * P_t`` with one threshold per distinct
    score (as ``sklearn.metrics.average_precision_score``). NaN in a row whose truth is
    all true or all false."""
    scores = np.atleast_2d(np.asarray(scores))
    truth = np.atleast_2d(np.asarray(truth, dtype=bool))
    return _Groups(scores).auc_ap(truth)


def _pearson_ranks(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    mid = (ra.shape[1] + 1) / 2.0  # the mean of average ranks
    da, db = ra - mid, rb - mid
    va, vb = np.einsum("ij,ij->i", da, da), np.einsum("ij,ij->i", db, db)
    ok = (va > 0) & (vb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, np.einsum("ij,ij->i", da, db) / np.sqrt(va * vb), np.nan)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each row of ``a`` with the same row of ``b``
    (Pearson's of their :func:`average_ranks`, as ``scipy.stats.spearmanr``); NaN in a
    row where either is constant."""
    return _pearson_ranks(average_ranks(a), average_ranks(b))


def topk_truth(z: np.ndarray, k: int) -> np.ndarray:
    """``[B, n]`` bool: the ``k`` largest entries of each row of ``z``, ties at the
    threshold to the lowest node number (what the ``topk`` layer and the recall of
    :class:`SelectionStats` take)."""
    return _Groups(np.atleast_2d(np.asarray(z))).top(k)


def ranking_quality(scores: np.ndarray, z: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """How well ``scores[q]`` (the hash's score of every node, higher first) ranks the
    nodes of query ``q`` whose pre-activations are ``z[q]`` (both ``[B, n]``): per query,
    :func:`roc_auc_ap` against the exact top-``k`` (:func:`topk_truth`: ``auc_topk``,
    ``ap_topk``) and against the active nodes ``z > 0`` (``auc_active``, ``ap_active``),
    :func:`rank_correlation` of the scores with ``z`` (``spearman``) and the share of
    active nodes (``active_fraction``, what a random ranking's average precision against
    the active nodes comes to). NaN where undefined (one class only, a constant row) and
    in every measure of a row of ``z`` that is not all finite.

    Cost per query of ``n`` nodes: one sort of ``z`` (``n log n``) and a few passes over
    the ``n`` nodes; integer scores below ``max(n, 1024)`` are counted, not sorted."""
    scores = np.atleast_2d(np.asarray(scores))
    z = np.atleast_2d(np.asarray(z))
    finite = np.isfinite(z).all(axis=1)
    if not finite.all():
        z = np.where(finite[:, None], z, 0.0)
    sg, zg = _Groups(scores), _Groups(z)
    active = z > 0
    auc_t, ap_t = sg.auc_ap(zg.top(k))
    auc_a, ap_a = sg.auc_ap(active)
    out = {"auc_topk": auc_t, "ap_topk": ap_t, "auc_active": auc_a, "ap_active": ap_a,
           "spearman": _pearson_ranks(sg.ranks(), zg.ranks()),
           "active_fraction": active.mean(axis=1)}
    return {key: np.where(finite, v, np.nan) for key, v in out.items()}
