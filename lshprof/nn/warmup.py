"""Compiling every kernel a model's training and evaluation will call, before either is
measured: :func:`warm_up`.

numba compiles a kernel the first time it meets a combination of argument types (or
loads that compilation from its cache), and the phase clock charges that time to ``jit``
(:mod:`lshprof.measure.timing`): a measured epoch with ``jit`` above zero met a
combination the warm-up had not. What can differ between a short warm-up and a
measured epoch, and how the warm-up covers it:

* **the serial or the parallel form of a kernel**, chosen by the work of each call
  (:func:`lshprof.kernels.parallel`): a large batch runs ``*_par`` forms that a few
  samples never reach. Each pass below runs once with every call forced serial
  and, at more than one numba thread, once forced parallel (:func:`lshprof.kernels.forced`).
* **the layers' later steps**: a scheduled re-hash of the rows updated since the last
  one, a rebuild of every table, new hash functions (LSH). After each pass every
  layer runs them once (:meth:`lshprof.nn.layers.Layer.warm_up_paths`). The LSH tables
  keep one layout for good (:class:`lshprof.nn.lsh.HashTables` with ``code_bits``), so a
  re-hash meets the argument types of the first build.
* **partial batches and batches of one**: the warm-up trains on ``b + 1`` samples in
  batches of ``b = min(batch_size, 16)``, a full batch and a batch of one.
* **evaluation** (inference mode, where some methods compute every node and the layer
  above gets a dense input): each pass also evaluates.
* **the training mode**: a Hogwild cell warms up in Hogwild mode (its workers at one
  numba thread, as when measured), a synchronous one at its thread count.
* **the selection-quality measurement** (``quality = true``) is part of an LSH layer's
  forward pass, so the passes reach it.

Everything runs on copies of the model (:func:`copy.deepcopy`), so the model given is
left as it was: same weights, tables, random streams and counts.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from lshprof import kernels as kern
from lshprof.measure.macs import MacCounts
from lshprof.measure.threads import limit_threads
from lshprof.measure.timing import PhaseClock, attached
from lshprof.nn.training import train

__all__ = ["WarmUp", "warm_up", "WARMUP_BATCH"]

#: the largest batch the warm-up trains with (types do not depend on the batch size)
WARMUP_BATCH = 16


@dataclass(frozen=True)
class WarmUp:
    """What :func:`warm_up` did: its wall seconds, the seconds of them spent compiling
    (or loading compiled code; thread-seconds for Hogwild workers), the MACs of its
    training and evaluation passes and extra paths, and its passes' forms."""

    wall_s: float
    jit_s: float
    macs: MacCounts
    forms: tuple[str, ...] = field(default=())


def warm_up(model, X: np.ndarray, y: np.ndarray, *, X_eval: np.ndarray | None = None,
            y_eval: np.ndarray | None = None, batch_size: int = 32, optimizer: str = "adam",
            optimizer_params: dict | None = None, seed: int = 0, threads: int | None = None,
            mode: str = "sync") -> WarmUp:
    """Run every kernel that training ``model`` with these settings (those of
    :func:`lshprof.nn.training.train`) and evaluating it may call, on copies of it and
    a few samples of ``X``/``y`` (and of ``X_eval``/``y_eval``; default: the training
    samples), so that none compiles while a later ``train`` is measured. ``model`` is
    not changed. Raises what ``train`` raises for bad data or settings."""
    valid = isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1
    b = min(batch_size, WARMUP_BATCH) if valid else batch_size  # (train refuses a bad one)
    n = min(X.shape[0], b + 1) if valid else X.shape[0]
    Xw, yw = X[:n], y[:n]
    if X_eval is None:
        Xe, ye = Xw, yw
    else:
        m = min(X_eval.shape[0], b + 1) if valid else X_eval.shape[0]
        Xe, ye = X_eval[:m], y_eval[:m]
    hogwild = mode == "hogwild"
    forms = ["serial"]
    if not hogwild:  # a Hogwild run holds every pool at one thread: serial forms only
        with limit_threads(threads):
            import numba

            if numba.get_num_threads() > 1:
                forms.append("parallel")
    t0 = time.perf_counter_ns()
    jit_s = 0.0
    macs = MacCounts()
    fit = dict(epochs=1, batch_size=b, optimizer=optimizer, optimizer_params=optimizer_params,
               seed=seed, threads=threads, mode=mode, X_eval=Xe, y_eval=ye)
    for form in forms:
        net = copy.deepcopy(model)
        start = net.total_macs()
        with kern.forced(form):
            (stats,) = train(net, Xw, yw, **fit)
            jit_s += stats.train_jit_s + stats.eval_jit_s
            # the layers' later steps, at the thread count their training step runs at
            clock = PhaseClock()
            with limit_threads(1 if hogwild else threads), attached(clock, []):
                clock.push("other")
                for layer in net.layers:
                    layer.warm_up_paths()
                clock.pop()
            jit_s += clock.ns["jit"] / 1e9
        macs = macs + (net.total_macs() - start)
    return WarmUp((time.perf_counter_ns() - t0) / 1e9, jit_s, macs, tuple(forms))
