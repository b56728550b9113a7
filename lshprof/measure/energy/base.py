"""The energy-backend interface: a meter hands out marks, and turns two marks into a reading.

A *mark* is taken at the start and at the end of every measured interval (an
epoch, an evaluation pass, a whole run). Marks are cheap and intervals may nest
or overlap: a reading is always the difference between two marks, so the run's
reading and its epochs' readings come from the same counters.

Every reading says where its joules came from: ``measured`` (hardware counters),
``estimated`` (a model of the work done; never to be shown as measured) or
``none`` (no figure at all, and ``energy_j`` is None rather than 0).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, NamedTuple
from lshprof.names import ENERGY_SOURCES

__all__ = ["SOURCES", "Work", "Mark", "EnergyReading", "EnergyMeter"]

#: Where a figure came from.
SOURCES = ENERGY_SOURCES


@dataclass(frozen=True)
class Work:
    """What was computed during an interval: the input of the ``estimate`` backend.

    ``macs`` multiply-accumulates, ``adds`` additions that are not part of a MAC
    (sparse +-1 hashing, pooling), ``compares`` comparisons (winner-take-all hashing),
    ``bytes_moved`` modelled memory traffic (see :mod:`lshprof.measure.macs`).
    """

    macs: int = 0
    adds: int = 0
    compares: int = 0
    bytes_moved: int = 0

    @classmethod
    def from_counts(cls, counts) -> "Work":
        """From a :class:`~lshprof.measure.macs.MacCounts` (MACs of every phase, quality included,
        since the hardware did that work too)."""
        return cls(macs=counts.total + counts.quality,
                   adds=counts.hash_adds + counts.rehash_adds,
                   compares=counts.hash_compares + counts.rehash_compares,
                   bytes_moved=counts.bytes_moved)


class Mark(NamedTuple):
    """A point in time (monotonic ns) and the backend's counter state there."""

    t_ns: int
    state: Any = None


@dataclass(frozen=True)
class EnergyReading:
    """Joules between two marks, and where they came from.

    ``energy_j`` is the total (for RAPL: every package or die plus DRAM; psys,
    which already contains them, is reported in ``domains`` but never added);
    ``domains`` splits it by kind (``package``, ``core``, ``uncore``, ``dram``,
    ``psys`` when measured; one entry per model term when estimated) and ``zones``
    by counter. A zone or domain whose counter could not measure the interval (a
    counter that stepped back, say) is None there, and so is ``energy_j`` when it
    needed that zone. ``note`` carries anything a reader must know (e.g. a counter
    that may have wrapped unseen, or one that was reset); it becomes the
    ``energy_note`` column of the results rows.
    """

    backend: str
    source: str
    wall_s: float
    energy_j: float | None
    domains: Mapping[str, float | None] = field(default_factory=dict)
    zones: Mapping[str, float | None] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "source": self.source, "wall_s": self.wall_s,
                "energy_j": self.energy_j, "domains": dict(self.domains),
                "zones": dict(self.zones), "note": self.note}

    @property
    def power_w(self) -> float | None:
        """Mean power over the interval (None without a figure or a duration)."""
        if self.energy_j is None or self.wall_s <= 0:
            return None
        return self.energy_j / self.wall_s


class EnergyMeter(ABC):
    """One energy backend. Use as a context manager (or call :meth:`start` / :meth:`close`)."""

    #: backend name, as chosen on the command line
    name: ClassVar[str] = ""
    #: what its readings are: one of :data:`SOURCES`
    source: ClassVar[str] = "none"

    def start(self) -> "EnergyMeter":
        """Begin whatever the backend runs in the background (e.g. a polling thread)."""
        return self

    def close(self) -> None:
        """Stop background work; marks taken before stay valid for :meth:`interval`."""

    def __enter__(self) -> "EnergyMeter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def mark(self) -> Mark:
        """The current time and counter state."""

    @abstractmethod
    def interval(self, start: Mark, end: Mark, work: Work | None = None) -> EnergyReading:
        """The energy between two marks of this meter. ``work`` is what was computed in
        between; only the estimate backend needs it."""

    def describe(self) -> dict[str, Any]:
        """What a results file records about this backend (zones, model coefficients, ...)."""
        return {"backend": self.name, "source": self.source}


def now_ns() -> int:
    return time.monotonic_ns()
