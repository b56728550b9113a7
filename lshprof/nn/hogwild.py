"""Lock-free asynchronous training, Hogwild-style (Recht et al. 2011), of an :class:`~lshprof.MLP`.

The LSH paper (Spring & Shrivastava 2017) argues that since each sample updates only
the few weight rows its active nodes own, workers that update shared weights without
any lock rarely collide, so asynchronous SGD scales almost linearly with threads.
``train(..., mode="hogwild", threads=T)`` measures that claim:

* ``T`` worker threads (Python threads: the numba kernels are compiled ``nogil`` and
  BLAS releases the GIL) each take their own contiguous slice of the epoch's shuffled
  samples (``np.array_split``) and run mini-batches of ``batch_size`` through forward,
  loss, backward and an optimizer update of the rows they touched, on weights and
  optimizer state shared with every other worker, with no lock: two workers may
  update the same row at once, and one may read a row while another writes it. That
  is Hogwild; with ``batch_size = 1`` it is the paper's per-sample SGD.
* Each worker has private per-batch state: a *view* of every layer (:func:`layer_view`)
  and of the optimizer (:func:`optimizer_view`). What a view shares and what it owns is
  what the layer's and the optimizer's classes declare, nothing else is assumed here:

  - ``HOGWILD_SHARED``: the real object's, the same objects (weights, parameters; for
    LSH also the re-hash schedule);
  - ``HOGWILD_THROUGH``: shared and re-assigned while training, so read and written
    through to the real object (LSH: hash functions, tables, MIPS scale, counters);
  - ``HOGWILD_COUNTERS``: shared counts that views increment under a lock (the
    optimizer's step count);
  - ``HOGWILD_PRIVATE``: the view's own, fresh from the object's ``fresh_private_state``
    (forward cache, gradient accumulators ``grad_W``, ``grad_b``, ``touched``, MAC
    counter, phase clock, activity counts; for LSH selection statistics and marks);
  - ``HOGWILD_PRIVATE_RNGS``: the object's generators for the first worker, streams of
    its own for every other.

  A view refuses an object with an attribute in none of these. The private gradient
  arrays are one copy of the model's weights per worker: memory grows with ``T``
  (``EpochStats.worker_private_bytes``).
* After every epoch each layer's ``merge_worker`` adds its views' MAC counts, samples and
  active nodes seen (and LSH selection statistics) into it, so every per-epoch figure
  (MACs by phase, active fraction, selection quality) means what it means in sync mode.
* LSH re-hashing: the tables are built before the first epoch's workers start. A
  view's ``after_step`` (schedule, re-hash of the rows marked since the last one, new
  projections) runs under a per-layer lock, so one worker at a time re-hashes; queries
  never lock. The lock is there because a re-hash writes several things at once (the
  tables, the updated-row marks, the schedule's counters, the hash functions); two at
  once would interleave those writes, and a skipped or doubled schedule step would
  change when re-hashes happen. Readers need no lock: the tables publish a re-hash
  atomically, so a query sees the old tables or the new ones, and a few rows whose codes
  lag their weights by a re-hash are the same kind of staleness Hogwild accepts for
  the weights themselves. Each worker first adds its own marks (the layer's
  ``HOGWILD_MARKS``: updated rows) to the layer's, under the same lock, so a re-hash
  covers every worker's updates.
* Threads inside kernels: every worker calls ``numba.set_num_threads(1)`` first
  (numba's setting is per thread) and BLAS is held at one thread for the whole run,
  since kernels choose their parallel versions only when ``numba.get_num_threads() >
  1`` and parallel launches from several threads at once are not allowed.

Determinism: with ``T = 1`` the single worker sees exactly the batches, random streams
and updates of ``mode="sync"`` at one thread, so the two give identical losses, MACs
and weights. With ``T > 1`` results vary from run to run (which worker wins a race,
which rows a query finds); total samples, and for dense layers total MACs, do not.

Timing: the phase clock measures one thread. Per-phase *wall* time is not measured in
this mode (``train_phase_s`` is empty, the rows' ``wall_<phase>_s`` columns are
missing); what is measured is the epoch's wall and process CPU time, and each worker's
own phase clock, summed over workers in thread-seconds (``train_thread_phase_s``: it
adds up to about ``T`` times the wall time, and says where the workers' time went, not
how long the epoch took). numba compilation in a worker is timed by a thread-safe
listener (``train_jit_s``, thread-seconds).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from lshprof.measure.timing import NULL_CLOCK, TIME_PHASES, PhaseClock, attached
from lshprof.nn.layers.base import Layer
from lshprof.nn.step import train_step

__all__ = ["HogwildTrainer", "EpochWork", "layer_view", "optimizer_view", "merge_view",
           "private_bytes", "jit_timer", "check_declared"]

#: spawn key of the workers' random streams (apart from the layer's own streams 0..3)
_STREAM_KEY = 0x4057

#: the class attributes that declare what a view shares and owns, as the classes hold them
_DECLARATIONS = ("HOGWILD_SHARED", "HOGWILD_THROUGH", "HOGWILD_COUNTERS", "HOGWILD_PRIVATE",
                 "HOGWILD_PRIVATE_RNGS")


# -- the declared contract -------------------------------------------------------------------------
def _declared(cls: type) -> dict[str, tuple[str, ...]]:
    return {d: tuple(getattr(cls, d, ())) for d in _DECLARATIONS}


def check_declared(obj) -> None:
    """Raise a ``TypeError`` unless every instance attribute of ``obj`` (a layer or an
    optimizer) is declared in exactly one of its class's ``HOGWILD_SHARED``,
    ``HOGWILD_THROUGH``, ``HOGWILD_COUNTERS``, ``HOGWILD_PRIVATE`` and
    ``HOGWILD_PRIVATE_RNGS``: a view would not know whether to share an undeclared
    attribute or to own it."""
    cls = type(obj)
    decl = _declared(cls)
    seen: dict[str, str] = {}
    for kind, names in decl.items():
        for n in names:
            if n in seen:
                raise TypeError(f"{cls.__name__} declares {n!r} in both {seen[n]} and {kind}")
            seen[n] = kind
    missing = sorted(set(vars(obj)) - set(seen))
    if missing:
        raise TypeError(
            f"{cls.__name__} has attributes {missing} that are in none of {', '.join(decl)}: "
            "declare whether Hogwild workers share them or own them (lshprof.nn.hogwild)")
    marks = set(getattr(cls, "HOGWILD_MARKS", ()))
    if not marks <= set(decl["HOGWILD_PRIVATE"]):
        raise TypeError(f"{cls.__name__}.HOGWILD_MARKS must be private: "
                        f"{sorted(marks - set(decl['HOGWILD_PRIVATE']))}")


def _view_dict(obj, fresh: dict[str, Any], seed: np.random.SeedSequence | None) -> dict[str, Any]:
    """A view's attributes: the object's ``HOGWILD_SHARED`` ones (the same objects),
    ``fresh`` (the object's ``fresh_private_state``) and its random generators (the
    object's, or new streams from ``seed``). ``HOGWILD_THROUGH`` and ``HOGWILD_COUNTERS``
    are properties of the view's class."""
    cls = type(obj)
    want = set(cls.HOGWILD_PRIVATE)
    if set(fresh) != want:
        raise TypeError(f"{cls.__name__}.fresh_private_state gives {sorted(fresh)}, but "
                        f"HOGWILD_PRIVATE is {sorted(want)}")
    own = vars(obj)
    d = {n: own[n] for n in cls.HOGWILD_SHARED if n in own}  # the same objects
    d.update(fresh)
    rngs = tuple(cls.HOGWILD_PRIVATE_RNGS)
    for name in rngs:
        if name in own:
            d[name] = own[name]
    if seed is not None:
        for name, ss in zip(rngs, seed.spawn(len(rngs))):
            if isinstance(d.get(name), np.random.Generator):
                d[name] = np.random.default_rng(ss)
    return d


def _through(name: str) -> property:
    def get(self):
        return getattr(self.__dict__["_hw_owner"], name)

    def put(self, value):
        setattr(self.__dict__["_hw_owner"], name, value)

    return property(get, put, doc=f"the shared object's ``{name}``")


def _counter(name: str) -> property:
    seen_key = f"_hw_seen_{name}"

    def get(self):
        s = getattr(self.__dict__["_hw_owner"], name)
        self.__dict__[seen_key] = s
        return s

    def put(self, value):
        # ``self.n += 1`` reads, then writes: the write adds its difference from what this
        # view read to the shared count under a lock, so no worker's increment is ever lost
        d = self.__dict__
        owner = d["_hw_owner"]
        seen = d.pop(seen_key, None)
        with d["_hw_counter_lock"]:
            setattr(owner, name, value if seen is None else getattr(owner, name) + (value - seen))

    return property(get, put, doc=f"the shared object's ``{name}`` count")


_VIEW_CLASSES: dict[type, type] = {}


def _view_class(cls: type, what: str, extra: dict[str, Any]) -> type:
    got = _VIEW_CLASSES.get(cls)
    if got is None:
        ns: dict[str, Any] = {name: _through(name) for name in cls.HOGWILD_THROUGH}
        ns.update({name: _counter(name) for name in getattr(cls, "HOGWILD_COUNTERS", ())})
        ns.update(extra)
        ns["__doc__"] = (f"A Hogwild worker's view of a {cls.__name__} {what} "
                         f"(:func:`lshprof.nn.hogwild.{what}_view`).")
        got = _VIEW_CLASSES[cls] = type(f"{cls.__name__}HogwildView", (cls,), ns)
    return got


def _new_view(vcls: type, d: dict[str, Any]):
    view = object.__new__(vcls)
    view.__dict__.update(d)
    return view


# -- layer views -----------------------------------------------------------------------------------
def _view_after_step(self) -> None:
    """The layer's ``after_step`` (re-hash on schedule), one worker at a time: this
    worker's marks (``HOGWILD_MARKS``) are added to the layer's, and the step runs on those."""
    d = self.__dict__
    base = d["_hw_base_after_step"]
    if base is None:  # the layer keeps no weight-dependent state: nothing to do, no lock
        return
    with d["_hw_lock"]:
        owner = d["_hw_owner"]
        own = {n: d[n] for n in type(owner).HOGWILD_MARKS}
        for n, mine in own.items():
            shared = getattr(owner, n)
            np.logical_or(shared, mine, out=shared)
            mine.fill(False)
            d[n] = shared
        try:
            base(self)
        finally:
            d.update(own)


def layer_view(layer, *, lock: threading.Lock | None = None,
               seed: np.random.SeedSequence | None = None):
    """A worker's view of ``layer``: it shares what the layer's class declares shared
    (``HOGWILD_SHARED``: weights, parameters; ``HOGWILD_THROUGH``: e.g. LSH tables, read
    and written through to the layer) and owns the rest
    (``HOGWILD_PRIVATE``, fresh from ``layer.fresh_private_state()``: forward cache,
    gradient accumulators, MAC counter, clock, sample counts, ...).

    ``lock`` serializes the view's ``after_step`` with every other view's of the same
    layer (one lock per layer). ``seed``: the view draws its random choices
    (``HOGWILD_PRIVATE_RNGS``: dropout masks, LSH padding and quality sets) from its own
    streams; None shares the layer's generators (the first worker, so that one worker
    reproduces sync training).
    """
    check_declared(layer)
    cls = type(layer)
    d = _view_dict(layer, layer.fresh_private_state(), seed)
    base_after = cls.after_step
    d["_hw_owner"] = layer
    d["_hw_lock"] = lock if lock is not None else threading.Lock()
    d["_hw_base_after_step"] = None if base_after is Layer.after_step else base_after
    return _new_view(_view_class(cls, "layer", {"after_step": _view_after_step}), d)


def private_bytes(view) -> int:
    """Bytes of the arrays a view holds of its own (gradients, touched rows, marks)."""
    d = view.__dict__
    cls = type(d["_hw_owner"])
    return int(sum(d[n].nbytes for n in cls.HOGWILD_PRIVATE if isinstance(d.get(n), np.ndarray)))


def merge_view(view) -> None:
    """Add what ``view`` counted (``merge_worker``: MACs, samples and active nodes seen,
    selection statistics) and its leftover marks into its layer, and zero the view's."""
    owner = view.__dict__["_hw_owner"]
    owner.merge_worker(view)
    for n in type(owner).HOGWILD_MARKS:
        mine = view.__dict__[n]
        shared = getattr(owner, n)
        np.logical_or(shared, mine, out=shared)
        mine.fill(False)


# -- optimizer views -------------------------------------------------------------------------------
def optimizer_view(opt, layers: Sequence, *, lock: threading.Lock):
    """A worker's view of optimizer ``opt``: it updates the rows ``layers`` (the worker's
    layer views, in ``opt.layers``' order) touched, in the shared weights and the shared
    state arrays (``HOGWILD_SHARED``, the same arrays); its step count is the optimizer's
    (``HOGWILD_COUNTERS``: Adam's bias correction follows the global step). ``lock``
    guards only the counts."""
    check_declared(opt)
    d = _view_dict(opt, opt.fresh_private_state(layers), None)
    d.update(_hw_owner=opt, _hw_counter_lock=lock)
    return _new_view(_view_class(type(opt), "optimizer", {}), d)


# -- numba compilation in any thread -----------------------------------------------------------
class _JitTimer:
    """Compilation time by thread: on the main thread into its phase clock (as
    :func:`lshprof.measure.timing.attached` does), on any other thread into ``worker_ns``."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.main = threading.get_ident()
        self.worker_ns = 0
        self._open: dict[int, list[int]] = {}  # thread -> [depth, start]
        self._lock = threading.Lock()

    def start(self) -> None:
        tid = threading.get_ident()
        if tid == self.main:
            self.clock.push("jit")
            return
        with self._lock:
            st = self._open.setdefault(tid, [0, 0])
            if st[0] == 0:
                st[1] = perf_counter_ns()
            st[0] += 1

    def end(self) -> None:
        tid = threading.get_ident()
        if tid == self.main:
            self.clock.pop()
            return
        with self._lock:
            st = self._open.get(tid)
            if st is None:
                return
            st[0] -= 1
            if st[0] == 0:
                self.worker_ns += perf_counter_ns() - st[1]
                del self._open[tid]


@contextlib.contextmanager
def jit_timer(clock, owners) -> Iterator[_JitTimer]:
    """Like :func:`lshprof.measure.timing.attached` (give ``clock`` to ``owners``, charge the main
    thread's numba compilation to ``jit``) and safe with worker threads: their compilation
    is summed apart (``timer.worker_ns``), never pushed onto the main thread's clock.
    (numba announces a compilation before it takes its compiler lock, so two threads'
    announcements can overlap.)"""
    timer = _JitTimer(clock)
    with attached(clock, owners, jit=timer):
        yield timer


# -- the trainer -----------------------------------------------------------------------------------
@dataclass
class EpochWork:
    """What the workers did in one epoch."""

    loss_sum: float = 0.0  # sum over samples of the batch's mean loss
    correct: int = 0
    samples: int = 0
    worker_samples: tuple[int, ...] = ()
    #: per phase, seconds summed over the workers' own clocks (thread-seconds)
    thread_phase_s: dict[str, float] = field(default_factory=dict)
    clock_calls: int = 0
    #: thread-seconds the quality phase took (its CPU time cannot be split per thread)
    quality_s: float = 0.0


class HogwildTrainer:
    """``workers`` Hogwild workers over ``model`` and ``opt`` (one view of each per
    worker, made once and reused every epoch). :meth:`run_epoch` trains one epoch;
    ``lshprof.nn.training.train(mode="hogwild")`` is the usual way in."""

    def __init__(self, model, opt, workers: int, *, batch_size: int, timing: bool = True):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"hogwild workers must be a positive integer, got {workers!r}")
        self.model, self.opt = model, opt
        self.workers, self.batch_size, self.timing = workers, batch_size, timing
        self.locks = [threading.Lock() for _ in model.layers]
        self.steps_lock = threading.Lock()
        self.nets, self.opts = [], []
        for w in range(workers):
            views = [layer_view(layer, lock=lock,
                                seed=None if w == 0 else np.random.SeedSequence(
                                    layer.seed, spawn_key=(_STREAM_KEY, w)))
                     for layer, lock in zip(model.layers, self.locks)]
            self.nets.append(type(model)(views))  # the model's class, on the views
            by_layer = {id(layer): v for layer, v in zip(model.layers, views)}
            self.opts.append(optimizer_view(opt, [by_layer[id(layer)] for layer in opt.layers],
                                            lock=self.steps_lock))
        #: bytes of gradient arrays and marks the workers hold of their own (all of them)
        self.private_bytes = sum(private_bytes(v) for net in self.nets for v in net.layers)
        self._progress_lock = threading.Lock()

    def parts(self, order: np.ndarray) -> list[np.ndarray]:
        """Each worker's slice of the epoch's sample order."""
        return np.array_split(order, self.workers)

    def n_batches(self, n: int) -> int:
        """Optimizer steps of one epoch of ``n`` samples, all workers together."""
        return sum(-(-int(p) // self.batch_size) for p in
                   (len(a) for a in np.array_split(np.empty(n), self.workers)))

    def prepare(self) -> None:
        """Build what layers build on their first pass (``Layer.build``: LSH tables), on
        this thread and counted as that pass would count it, so that workers never race
        to build it."""
        for layer in self.model.layers:
            layer.build()

    def run_epoch(self, order: np.ndarray, X: np.ndarray, y: np.ndarray, *,
                  sparse_out: bool = False,
                  on_batch: Callable[[int, int], None] | None = None) -> EpochWork:
        """Train one epoch over ``order`` (the shuffled sample indices) with every worker,
        wait for all of them, and merge their counts into the layers. ``on_batch(done,
        total)`` is called from the workers (one at a time) about a hundred times, never
        with ``done == total``: the caller reports the end."""
        self.prepare()
        parts = self.parts(order)
        n_total = int(order.size)
        clocks = [PhaseClock() if self.timing else NULL_CLOCK for _ in range(self.workers)]
        for net, clock in zip(self.nets, clocks):
            for v in net.layers:
                v.clock = clock
        results: list[tuple[float, int, int] | None] = [None] * self.workers
        done = [0] * self.workers
        errors: list[BaseException] = []
        stop = threading.Event()
        every = max(1, -(-n_total // self.batch_size) // 100)

        def work(w: int) -> None:
            try:
                results[w] = self._work(w, parts[w], X, y, sparse_out, clocks[w], stop, done,
                                        on_batch, n_total, every)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=work, args=(w,), name=f"lshprof-hogwild-{w}",
                                    daemon=True) for w in range(self.workers)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except BaseException:  # Ctrl-C: stop the workers after their batch, then re-raise
            stop.set()
            for t in threads:
                t.join()
            raise
        finally:
            for net in self.nets:
                for v in net.layers:
                    merge_view(v)
                    v.clock = NULL_CLOCK
        if errors:
            raise errors[0]
        out = EpochWork()
        for r in results:
            out.loss_sum += r[0]
            out.correct += r[1]
        out.worker_samples = tuple(r[2] for r in results)
        out.samples = sum(out.worker_samples)
        if self.timing:
            out.thread_phase_s = {p: sum(c.ns[p] for c in clocks) / 1e9 for p in TIME_PHASES}
            out.clock_calls = sum(c.calls for c in clocks)
            out.quality_s = out.thread_phase_s["quality"]
        return out

    def _work(self, w, part, X, y, sparse_out, clock, stop, done, on_batch, n_total, every):
        import numba

        numba.set_num_threads(1)  # per thread: this worker's kernels run serially
        net, opt, bs = self.nets[w], self.opts[w], self.batch_size
        loss_sum, correct, seen = 0.0, 0, 0
        clock.push("other")
        try:
            for i, s in enumerate(range(0, part.size, bs)):
                if stop.is_set():
                    break
                idx = part[s:s + bs]
                loss, ok = train_step(net, opt, clock, X[idx], y[idx], sparse_out)
                loss_sum += loss * idx.size
                correct += ok
                seen += idx.size
                done[w] = seen
                if on_batch is not None and (i + 1) % every == 0:
                    total = sum(done)
                    if total < n_total and self._progress_lock.acquire(blocking=False):
                        try:
                            on_batch(total, n_total)
                        finally:
                            self._progress_lock.release()
        finally:
            clock.pop()
        return loss_sum, correct, seen
