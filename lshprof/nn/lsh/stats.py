"""What hashing cost (:class:`HashCost`), what an LSH layer's selection did
(:class:`SelectionStats`), and why it returned fewer nodes than its budget
(:func:`selection_diagnosis`, from the facts :func:`expected_candidates` models)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["HashCost", "SelectionStats", "expected_candidates", "selection_diagnosis",
           "DIAGNOSE_BELOW"]

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
