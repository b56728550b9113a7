"""Training and evaluation of an :class:`~lshprof.nn.mlp.MLP`: :func:`train` (synchronous
mini-batches, or Hogwild workers through :mod:`lshprof.nn.hogwild`), :func:`evaluate` and
the per-epoch statistics :class:`EpochStats`.

A model here is anything with the :class:`~lshprof.nn.mlp.MLP` interface; this module
does not import :mod:`lshprof.nn.mlp` (which re-exports :func:`train`, :func:`evaluate`
and :class:`EpochStats` for its callers).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from lshprof.errors import ConfigError, InputTypeError
from lshprof.measure.energy import Work
from lshprof.measure.macs import MacCounts
from lshprof.measure.system import sample_resources, usage_between
from lshprof.measure.threads import limit_threads
from lshprof.measure.timing import NULL_CLOCK, TIME_PHASES, PhaseClock, attached
from lshprof.names import MODES
from lshprof.nn.hogwild import HogwildTrainer, jit_timer
from lshprof.nn.optim import make_optimizer
from lshprof.nn.step import train_step

if TYPE_CHECKING:
    from lshprof.measure.energy import EnergyMeter

__all__ = ["EpochStats", "train", "evaluate", "train_step", "MODES"]


@dataclass(frozen=True)
class EpochStats:
    """One epoch of training, then an evaluation pass."""

    epoch: int
    loss: float
    train_accuracy: float  # on the training batches, in training mode
    eval_accuracy: float  # inference mode on the evaluation set (nan without one)
    train_macs: MacCounts  # all layers, this epoch's training passes
    eval_macs: MacCounts  # all layers, this epoch's evaluation pass
    layer_train_macs: tuple[MacCounts, ...] = field(default=())
    #: per layer: active nodes / (samples * width) over this epoch's training passes
    layer_active_fraction: tuple[float, ...] = field(default=())
    train_wall_s: float = 0.0
    eval_wall_s: float = 0.0
    #: process CPU seconds of the training pass (every thread), and of its quality phase
    train_cpu_s: float = 0.0
    train_quality_cpu_s: float = 0.0
    #: per layer: what an LSH layer's tables returned this epoch (training passes) and,
    #: when it measures quality, recall / mass against the exact top-k and a random
    #: set (:meth:`lshprof.nn.lsh.SelectionStats.summary`), and the layer's facts that
    #: explain them (:meth:`lshprof.nn.lsh.layer.LSH.selection_facts`); None for other methods
    layer_selection: tuple[dict | None, ...] = field(default=())
    #: exclusive wall time per phase (:data:`lshprof.measure.timing.TIME_PHASES`), seconds,
    #: of the training passes and of the evaluation pass; JIT time kept apart
    train_phase_s: dict[str, float] = field(default_factory=dict)
    eval_phase_s: dict[str, float] = field(default_factory=dict)
    train_jit_s: float = 0.0
    eval_jit_s: float = 0.0
    #: pushes and pops of the phase clock this epoch (its overhead is calls x cost per call)
    clock_calls: int = 0
    #: energy of the training passes and of the evaluation pass (None without a meter)
    train_energy: Any = None
    eval_energy: Any = None
    #: CPU utilisation, RSS and frequency over the training passes (None without a meter)
    train_usage: dict | None = None
    #: "sync" or "hogwild" (:mod:`lshprof.nn.hogwild`) and the threads the epoch trained with
    #: (hogwild: workers; None: the thread pools as they were)
    mode: str = "sync"
    threads: int | None = None
    #: training samples of the epoch (all workers)
    train_samples: int = 0
    #: hogwild only: per phase, seconds of the workers' own phase clocks summed over the
    #: workers (thread-seconds; per-phase wall time is not measured in that mode), each
    #: worker's samples, and the bytes of the workers' private gradient arrays
    train_thread_phase_s: dict[str, float] = field(default_factory=dict)
    worker_samples: tuple[int, ...] = field(default=())
    worker_private_bytes: int = 0

    @property
    def samples_per_s(self) -> float:
        """Training samples per second of the epoch's training wall time."""
        return self.train_samples / self.train_wall_s if self.train_wall_s > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "loss": self.loss, "train_accuracy": self.train_accuracy,
            "eval_accuracy": self.eval_accuracy, "train_macs": self.train_macs.as_dict(),
            "eval_macs": self.eval_macs.as_dict(),
            "layer_train_macs": [m.as_dict() for m in self.layer_train_macs],
            "layer_active_fraction": list(self.layer_active_fraction),
            "train_wall_s": self.train_wall_s, "eval_wall_s": self.eval_wall_s,
            "train_cpu_s": self.train_cpu_s, "train_quality_cpu_s": self.train_quality_cpu_s,
            "layer_selection": list(self.layer_selection),
            "train_phase_s": dict(self.train_phase_s), "eval_phase_s": dict(self.eval_phase_s),
            "train_jit_s": self.train_jit_s, "eval_jit_s": self.eval_jit_s,
            "clock_calls": self.clock_calls,
            "train_energy": None if self.train_energy is None else self.train_energy.as_dict(),
            "eval_energy": None if self.eval_energy is None else self.eval_energy.as_dict(),
            "train_usage": self.train_usage,
            "mode": self.mode, "threads": self.threads, "train_samples": self.train_samples,
            "samples_per_s": self.samples_per_s,
            "train_thread_phase_s": dict(self.train_thread_phase_s),
            "worker_samples": list(self.worker_samples),
            "worker_private_bytes": self.worker_private_bytes,
        }


def _check_data(model, X, y, name: str):
    if not isinstance(X, np.ndarray) or X.dtype.kind != "f":
        raise InputTypeError(f"{name}: X must be a float numpy array")
    if X.ndim != 2 or X.shape[1] != model.n_in:
        raise ConfigError(f"{name}: X must have shape [n, {model.n_in}], got {X.shape}")
    if X.shape[0] == 0:
        raise ConfigError(f"{name}: X has no samples (shape {X.shape}); give at least one")
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (X.shape[0],):
        raise ConfigError(f"{name}: y must be an int array of shape ({X.shape[0]},)")
    if y.size and (y.min() < 0 or y.max() >= model.n_classes):
        raise ConfigError(f"{name}: labels must lie in [0, {model.n_classes})")
    return np.ascontiguousarray(X, dtype=model.layers[0].dtype), y.astype(np.int64)


def _load_blas() -> None:
    """Load every BLAS library the layers call before the thread limits are set: a limit
    (threadpoolctl) reaches only libraries already loaded, and scipy's BLAS, which layers
    may import on first use, would otherwise run at its default thread count."""
    try:
        import scipy.linalg.blas  # noqa: F401
    except ImportError:
        pass


def evaluate(model, X: np.ndarray, y: np.ndarray, *, batch_size: int = 1024) -> float:
    """Accuracy of ``model`` (an :class:`~lshprof.nn.mlp.MLP`) in inference mode."""
    X, y = _check_data(model, X, y, "evaluate")
    return float((model.predict(X, batch_size=batch_size) == y).mean())


def train(model, X: np.ndarray, y: np.ndarray, *, epochs: int = 1, batch_size: int = 32,
          optimizer: str = "adam", optimizer_params: dict | None = None,
          X_eval: np.ndarray | None = None, y_eval: np.ndarray | None = None,
          seed: int = 0, threads: int | None = None,
          on_epoch: Callable[[EpochStats], None] | None = None,
          meter: "EnergyMeter | None" = None, timing: bool = True,
          on_batch: Callable[[int, int], None] | None = None,
          mode: str = "sync") -> list[EpochStats]:
    """Train ``model`` with mini-batches (size down to 1) and return per-epoch statistics.

    ``mode="sync"`` (default) trains one mini-batch after another; ``threads`` limits
    BLAS and numba threads for the whole run (None leaves them as they are); compare
    methods at the same thread count.

    ``mode="hogwild"`` trains with ``threads`` lock-free asynchronous workers (None:
    one per available core) that share the weights and optimizer state, each running
    its own slice of the epoch's samples in mini-batches of ``batch_size``, every kernel
    on one thread (:mod:`lshprof.nn.hogwild`). One worker gives exactly the results of sync
    training at one thread; more vary from run to run. Per-phase wall time is not
    measured in this mode (``train_phase_s`` is empty); ``train_thread_phase_s`` has the
    workers' own phase times summed, in thread-seconds.

    Every epoch is timed by phase (:mod:`lshprof.measure.timing`; ``timing=False`` detaches
    the phase clock, to measure its overhead). With an energy ``meter``
    (:mod:`lshprof.measure.energy`), the training passes and the evaluation pass of each
    epoch are also measured in joules, and CPU use and memory are sampled around
    the training passes.

    ``on_batch(done, total)`` (for progress bars) is called with the samples done in
    the epoch about a hundred times per epoch and once at its end; its time is
    charged to the ``other`` phase. In hogwild mode the workers call it (one at a time,
    with the samples all workers have done) and the calling thread makes the last call.
    """
    X, y = _check_data(model, X, y, "train")
    if X_eval is not None:
        X_eval, y_eval = _check_data(model, X_eval, y_eval, "eval")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    if mode not in MODES:
        raise ConfigError(f"unknown training mode {mode!r}; valid: {', '.join(MODES)}")
    hogwild = mode == "hogwild"
    if hogwild and threads is None:
        from lshprof.measure.system import available_cores

        threads = available_cores()
    if hogwild and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    opt = make_optimizer(optimizer, model.layers, **(optimizer_params or {}))
    _load_blas()
    rng = np.random.default_rng(seed)
    sparse_out = model.layers[-1].method != "dense"
    history = []
    clock = PhaseClock() if timing else NULL_CLOCK
    trainer = None
    if hogwild:
        trainer = HogwildTrainer(model, opt, threads, batch_size=batch_size, timing=timing)
        # kernels on one thread in every worker; BLAS on one thread for the whole run
        pools, watch = limit_threads(1), jit_timer(clock, model.layers)
    else:
        pools, watch = limit_threads(threads), attached(clock, model.layers)
    with pools, watch as jit:
        n_batches = (trainer.n_batches(X.shape[0]) if hogwild
                     else -(-X.shape[0] // batch_size))
        report_every = max(1, n_batches // 100)
        for epoch in range(1, epochs + 1):
            for layer in model.layers:
                layer.start_epoch(epoch - 1, n_batches)
            before = model.macs()
            sel0 = [layer.selection_stats() for layer in model.layers]
            seen0 = [(layer.samples_seen, layer.active_seen) for layer in model.layers]
            if meter is not None:
                usage0 = sample_resources()
                mark0 = meter.mark()
            calls0 = clock.calls if timing else 0
            ns0 = clock.snapshot() if timing else None
            q0 = clock.quality_cpu_ns
            jit0 = jit.worker_ns if hogwild else 0
            t0, c0 = time.perf_counter_ns(), time.process_time_ns()
            if hogwild:
                order = rng.permutation(X.shape[0])
                work = trainer.run_epoch(order, X, y, sparse_out=sparse_out, on_batch=on_batch)
                loss_sum, correct = work.loss_sum, work.correct
                if on_batch is not None:
                    on_batch(X.shape[0], X.shape[0])
            else:
                clock.push("other")
                order = rng.permutation(X.shape[0])
                loss_sum = 0.0
                correct = 0
                for s in range(0, X.shape[0], batch_size):
                    idx = order[s:s + batch_size]
                    loss, ok = train_step(model, opt, clock, X[idx], y[idx], sparse_out)
                    loss_sum += loss * idx.size
                    correct += ok
                    if on_batch is not None and ((s // batch_size + 1) % report_every == 0
                                                 or s + batch_size >= X.shape[0]):
                        on_batch(min(s + batch_size, X.shape[0]), X.shape[0])
                clock.pop()
            c1, t1 = time.process_time_ns(), time.perf_counter_ns()
            ns1 = clock.snapshot() if timing else None
            if meter is not None:
                mark1 = meter.mark()
                usage = usage_between(usage0, sample_resources())
            mid = model.macs()
            selection = tuple(None if s0 is None
                              else layer.selection_summary(layer.selection_stats() - s0)
                              for layer, s0 in zip(model.layers, sel0))
            active_frac = tuple(
                (layer.active_seen - a0) / ((layer.samples_seen - s0) * layer.n_out)
                for layer, (s0, a0) in zip(model.layers, seen0))
            eval_acc = float("nan")
            t1e = time.perf_counter_ns()
            if X_eval is not None:
                clock.push("other")
                eval_acc = float((model.predict(X_eval) == y_eval).mean())
                clock.pop()
            t2 = time.perf_counter_ns()
            ns2 = clock.snapshot() if timing else None
            after = model.macs()
            layer_train = tuple(m - b for m, b in zip(mid, before))
            train_macs = sum(layer_train, MacCounts())
            eval_macs = sum((a - m for a, m in zip(after, mid)), MacCounts())
            measured = {}  # energy, usage and phase times, when measured
            if meter is not None:
                mark2 = meter.mark()
                measured = {"train_energy": meter.interval(mark0, mark1, Work.from_counts(train_macs)),
                          "eval_energy": meter.interval(mark1, mark2, Work.from_counts(eval_macs)),
                          "train_usage": usage}
            if timing:
                tr = {p: (ns1[p] - ns0[p]) / 1e9 for p in ns1}
                ev = {p: (ns2[p] - ns1[p]) / 1e9 for p in ns2}
                measured.update(train_phase_s={p: tr[p] for p in TIME_PHASES},
                              eval_phase_s={p: ev[p] for p in TIME_PHASES},
                              train_jit_s=tr["jit"], eval_jit_s=ev["jit"],
                              clock_calls=clock.calls - calls0)
            quality_cpu_s = (clock.quality_cpu_ns - q0) / 1e9
            if hogwild:
                # the workers' phases overlap in time: no per-phase wall split, but their
                # own clocks' sums (thread-seconds); numba compilation in any thread
                measured.update(train_phase_s={}, train_thread_phase_s=work.thread_phase_s,
                                clock_calls=work.clock_calls + measured.get("clock_calls", 0),
                                worker_samples=work.worker_samples,
                                worker_private_bytes=trainer.private_bytes)
                if timing:
                    measured["train_jit_s"] = tr["jit"] + (jit.worker_ns - jit0) / 1e9
                # the quality phase's process CPU time cannot be told apart from the other
                # workers' CPU time: not measured when there was a quality phase
                quality_cpu_s = math.nan if work.quality_s > 0 else 0.0
            stats = EpochStats(
                epoch=epoch, loss=loss_sum / X.shape[0], train_accuracy=correct / X.shape[0],
                eval_accuracy=eval_acc, train_macs=train_macs, eval_macs=eval_macs,
                layer_train_macs=layer_train, layer_active_fraction=active_frac,
                train_wall_s=(t1 - t0) / 1e9, eval_wall_s=(t2 - t1e) / 1e9,
                train_cpu_s=(c1 - c0) / 1e9,
                train_quality_cpu_s=quality_cpu_s,
                layer_selection=selection, mode=mode, threads=threads,
                train_samples=int(X.shape[0]), **measured,
            )
            history.append(stats)
            if on_epoch is not None:
                on_epoch(stats)
    return history
