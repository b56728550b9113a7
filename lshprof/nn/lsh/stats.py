"""What hashing cost (:class:`HashCost`) and what an LSH layer's selection did
(:class:`SelectionStats`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["HashCost", "SelectionStats"]


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
