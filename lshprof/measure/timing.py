"""Wall time by phase: a stack clock with exclusive accounting, and JIT time kept apart.

The trainer opens a phase (``clock.push("other")``) and the layers open nested
phases inside it (``select`` inside ``forward``, ``hash`` inside ``select``...).
Each stretch of time is charged to exactly one phase, the innermost one open, so
the phases of an interval never overlap and add up to the time the clock ran,
short only of the clock's own calls. One ``time.perf_counter_ns`` call per push
and per pop is all the bookkeeping costs.

Numba compilation, and loading compiled code from numba's cache, is charged to
``jit``: while a clock is attached, a listener on numba's ``numba:compiler_lock``
event pushes ``jit`` when the compiler starts and pops it when it ends, so JIT
time never lands in a phase. Runs warm every kernel up first; ``jit`` in a
measured epoch means something compiled that the warm-up missed.

Phases
------
``select``   choosing nodes: the full product of adaptive dropout, WTA and top-k;
             LSH table queries and de-duplication
``hash``     hashing layer inputs (LSH)
``rehash``   building tables and re-hashing weight rows (LSH)
``forward``  computing the chosen nodes' outputs
``backward`` input and weight gradients
``update``   the optimizer step
``quality``  measuring LSH selection quality (a cost of measuring, not of the method)
``other``    everything else in the training loop: batch gathering, the loss
``jit``      numba compilation and cache loading (never part of ``total``)
"""

from __future__ import annotations

import contextlib
from time import perf_counter_ns, process_time_ns
from typing import Iterator
from lshprof.names import TIME_PHASES

__all__ = ["TIME_PHASES", "PhaseClock", "NULL_CLOCK", "clock_overhead_ns", "blas_reference_s",
           "REFERENCE_N"]

#: Phases that make up an interval's ``total`` (``jit`` is kept apart).


#: the phase whose process CPU time is also kept (``quality_cpu_ns``), so that CPU time
#: of training can leave out lshprof's own measurement as wall time does
CPU_PHASE = "quality"


class PhaseClock:
    """Exclusive wall time per phase, in integer nanoseconds (``ns``), and a call count;
    also the process CPU time spent in the ``quality`` phase (``quality_cpu_ns``)."""

    __slots__ = ("ns", "calls", "quality_cpu_ns", "_stack", "_last", "_cpu0")

    def __init__(self) -> None:
        self.ns: dict[str, int] = dict.fromkeys(TIME_PHASES + ("jit",), 0)
        self.calls = 0
        self.quality_cpu_ns = 0
        self._stack: list[str] = []
        self._last = 0
        self._cpu0 = 0

    def push(self, phase: str) -> None:
        """Open ``phase``; time until the matching :meth:`pop` (less nested phases) is its."""
        t = perf_counter_ns()
        if self._stack:
            self.ns[self._stack[-1]] += t - self._last
        self._stack.append(phase)
        self._last = t
        self.calls += 1
        if phase == CPU_PHASE:
            self._cpu0 = process_time_ns()

    def pop(self) -> None:
        """Close the innermost phase."""
        t = perf_counter_ns()
        phase = self._stack.pop()
        self.ns[phase] += t - self._last
        self._last = t
        self.calls += 1
        if phase == CPU_PHASE:
            self.quality_cpu_ns += process_time_ns() - self._cpu0

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.push(name)
        try:
            yield
        finally:
            self.pop()

    @property
    def depth(self) -> int:
        return len(self._stack)

    def snapshot(self) -> dict[str, int]:
        """A copy of the per-phase nanoseconds so far (open phases up to their last charge)."""
        return dict(self.ns)

    def total_ns(self) -> int:
        """Sum of every phase but ``jit``."""
        return sum(self.ns[p] for p in TIME_PHASES)


class _NullClock:
    """What layers hold when nobody is timing: push and pop do nothing."""

    __slots__ = ()
    quality_cpu_ns = 0  # nothing measured

    def push(self, phase: str) -> None:
        pass

    def pop(self) -> None:
        pass

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        yield


NULL_CLOCK = _NullClock()


@contextlib.contextmanager
def attached(clock: PhaseClock, owners, *, jit=None) -> Iterator[PhaseClock]:
    """Give ``clock`` to every object in ``owners`` (layers, optimizer: anything with a
    ``clock`` attribute) and charge numba compilation to ``jit`` while the block runs;
    restore the previous clocks afterwards. ``jit``: an object whose ``start()`` and
    ``end()`` are called around each compilation instead (Hogwild's thread-safe timer)."""
    from numba.core import event

    if jit is None:
        start, end = (lambda: clock.push("jit")), clock.pop
    else:
        start, end = jit.start, jit.end

    class _JitListener(event.Listener):
        def on_start(self, ev):
            start()

        def on_end(self, ev):
            end()

    owners = list(owners)
    old = [o.clock for o in owners]
    for o in owners:
        o.clock = clock
    with event.install_listener("numba:compiler_lock", _JitListener()):
        try:
            yield clock
        finally:
            for o, c in zip(owners, old):
                o.clock = c


def clock_overhead_ns(n: int = 20000) -> float:
    """Measured cost of one push or pop on this machine, in nanoseconds (median of 5)."""
    costs = []
    for _ in range(5):
        c = PhaseClock()
        c.push("other")
        t0 = perf_counter_ns()
        for _ in range(n // 2):
            c.push("forward")
            c.pop()
        t1 = perf_counter_ns()
        costs.append((t1 - t0) / n)
    costs.sort()
    return costs[2]


#: side of the square float32 matrices of the BLAS yardstick (256: 16.8 M MACs per product)
REFERENCE_N = 256


def blas_reference_s(repeats: int = 20) -> tuple[float, float]:
    """The fastest of ``repeats`` timings of one ``REFERENCE_N``-square float32 matrix
    product through numpy's BLAS at the thread count in force: ``(wall seconds,
    process CPU seconds)``, each the fastest of its own.

    A yardstick of the machine: every cell measures it just before it trains, so the
    dense cell's epoch time over it is a ratio that a slower machine leaves unchanged
    (``lshprof check`` compares the other methods with dense, and dense with this).
    The fastest timing is kept because other work on the machine only ever adds time.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((REFERENCE_N, REFERENCE_N), dtype=np.float32)
    b = rng.standard_normal((REFERENCE_N, REFERENCE_N), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # the first call pays for BLAS's thread start-up and buffers
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = perf_counter_ns(), process_time_ns()
        np.matmul(a, b, out=out)
        c1, t1 = process_time_ns(), perf_counter_ns()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return min(wall) / 1e9, min(cpu) / 1e9
