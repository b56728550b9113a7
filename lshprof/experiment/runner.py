"""The instrumented runner: every training run measured the same way, written to one store.

For each cell (method x fraction x seed) the runner

1. warms the method's kernels up on a tiny batch, so numba compilation (or its
   cache loading) is timed apart (``warmup_s``, ``warmup_jit_s``) and never lands
   in a measured phase;
2. times a fixed BLAS product, the machine's yardstick at the cell's thread count
   (``reference_blas_s``, and in CPU time ``reference_blas_cpu_s``;
   :func:`lshprof.measure.timing.blas_reference_s`), so that the dense cell's time can be
   compared between machines as a ratio;
3. trains and evaluates with :func:`lshprof.nn.mlp.train`, which times every phase
   with a monotonic nanosecond clock, counts MACs and modelled bytes exactly,
   and reads the energy meter around each epoch's training and evaluation passes;
4. writes one row per epoch to the run folder (:mod:`lshprof.experiment.results`) as soon as
   the cell ends.

Around the whole run it records the machine, the thread settings and process
usage at start and end, the energy backend (and why a better one was passed
over), an optional idle-power baseline, and run-level energy.

Instrumentation overhead is reported per row: ``clock_calls`` pushes and pops of
the phase clock times their measured cost (``clock_cost_ns``, measured at the
start of the run) gives ``instrumentation_s`` and its share of the epoch.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

from lshprof import __version__
from lshprof.measure.threads import limit_threads
from lshprof.measure.energy import EnergyReading, Work, measure_idle, open_meter
from lshprof.errors import ConfigError
from lshprof.measure.macs import PHASES, MacCounts
from lshprof.experiment.results import RunWriter, utc_now
from lshprof.measure.system import machine_info, sample_resources, thread_info, usage_between
from lshprof.measure.timing import TIME_PHASES, blas_reference_s, clock_overhead_ns

__all__ = ["Runner", "epoch_row", "rows_macs", "MAC_COLUMNS"]

#: MacCounts field -> measurements column (the training passes)
MAC_COLUMNS = {**{p: f"macs_{p}" for p in PHASES}, "dense_equivalent": "macs_dense_equivalent",
               "hash_adds": "hash_adds", "rehash_adds": "rehash_adds",
               "hash_compares": "hash_compares", "rehash_compares": "rehash_compares",
               "quality": "macs_quality", "bytes_moved": "bytes_moved"}


def _reading_columns(prefix: str, r: EnergyReading | None, idle_w: float | None) -> dict[str, Any]:
    """``energy_j``, its source and backend, and one column per domain (``energy_dram_j``)."""
    if r is None:
        return {}
    out = {f"{prefix}energy_j": r.energy_j}
    if not prefix:
        out.update(energy_source=r.source, energy_backend=r.backend, energy_note=r.note or None)
        for d, j in sorted(r.domains.items()):
            out[f"energy_{d}_j"] = j
        if idle_w is not None and r.energy_j is not None:
            out["energy_dynamic_j"] = r.energy_j - idle_w * r.wall_s
            out["idle_power_w"] = idle_w
    return out


def epoch_row(stats, cell: dict[str, Any], *, clock_cost_ns: float | None = None,
              idle_power_w: float | None = None) -> dict[str, Any]:
    """One row of the measurements table from an :class:`~lshprof.nn.mlp.EpochStats`."""
    m: MacCounts = stats.train_macs
    e: MacCounts = stats.eval_macs
    row = dict(cell)
    row.update(epoch=stats.epoch, loss=stats.loss, train_accuracy=stats.train_accuracy,
               eval_accuracy=stats.eval_accuracy)
    # time
    for prefix, phase_s, jit_s, elapsed_s in (
            ("", stats.train_phase_s, stats.train_jit_s, stats.train_wall_s),
            ("eval_", stats.eval_phase_s, stats.eval_jit_s, stats.eval_wall_s)):
        if phase_s:
            row[f"{prefix}wall_total_s"] = sum(phase_s.values())
            for p in TIME_PHASES:
                row[f"{prefix}wall_{p}_s"] = phase_s[p]
            row[f"{prefix}jit_s"] = jit_s
        row[f"{prefix}wall_elapsed_s"] = elapsed_s
    # process CPU time of the training pass (all threads), and of its quality measurement
    row["cpu_elapsed_s"] = stats.train_cpu_s
    row["cpu_quality_s"] = stats.train_quality_cpu_s
    # throughput: training samples per second of the training pass's wall time (every mode)
    row["samples_per_s"] = getattr(stats, "samples_per_s", math.nan)
    # hogwild: no per-phase wall time (the workers' phases overlap), but each phase's
    # thread-seconds summed over the workers' own clocks, and what the workers held apart
    if getattr(stats, "train_thread_phase_s", None):
        for p in TIME_PHASES:
            row[f"worker_{p}_s"] = stats.train_thread_phase_s[p]
    if getattr(stats, "worker_samples", ()):
        row["worker_samples"] = list(stats.worker_samples)
        row["worker_private_bytes"] = stats.worker_private_bytes
    # work
    for f, col in MAC_COLUMNS.items():
        row[col] = getattr(m, f)
    row["macs_total"] = m.total
    row["mac_share"] = m.share
    row["eval_macs_total"] = e.total
    row["eval_macs_dense_equivalent"] = e.dense_equivalent
    row["eval_bytes_moved"] = e.bytes_moved
    # energy
    row.update(_reading_columns("", stats.train_energy, idle_power_w))
    row.update(_reading_columns("eval_", stats.eval_energy, None))
    # system
    if stats.train_usage:
        u = stats.train_usage
        for k in ("process_cpu_util", "system_cpu_util_percent", "rss_bytes", "peak_rss_bytes",
                  "cpu_freq_mhz"):
            row[k] = u.get(k)
    # layers
    row["layer_active_fraction"] = list(stats.layer_active_fraction)
    if any(s is not None for s in stats.layer_selection):
        row["layer_selection"] = list(stats.layer_selection)
    # instrumentation
    row["clock_calls"] = stats.clock_calls
    if clock_cost_ns is not None and stats.train_phase_s:
        row["instrumentation_s"] = stats.clock_calls * clock_cost_ns / 1e9
        row["instrumentation_share"] = (row["instrumentation_s"] / stats.train_wall_s
                                        if stats.train_wall_s > 0 else math.nan)
    return row


def rows_macs(rows) -> MacCounts:
    """The training MACs of ``rows`` (measurement rows), summed: the inverse of
    :func:`epoch_row`'s work columns."""
    return MacCounts(**{f: sum(int(r[col]) for r in rows) for f, col in MAC_COLUMNS.items()})


class Runner:
    """Runs training cells under one energy meter and writes them to one run folder.

    ``out``: the run folder (None: measure, but write nothing). ``energy``: a
    backend name from :data:`lshprof.measure.energy.BACKENDS`. ``idle_s``: seconds of
    idle-power measurement before the first cell (0: none); with a measuring
    backend every row then also gets ``energy_dynamic_j``, the energy above idle.
    ``threads``: BLAS and numba threads for every cell. ``notify``: called with
    each one-line notice (e.g. why energy is estimated), once.

    Use as a context manager::

        with Runner("runs/x", scenario={"name": "x"}, energy="auto") as runner:
            rows = runner.run_cell("lsh", "lsh", {"fraction": 0.05}, data, ...)
    """

    def __init__(self, out=None, *, scenario: dict[str, Any] | None = None, energy: str = "auto",
                 powercap_root: str | None = None, energy_model: Any = None, idle_s: float = 0.0,
                 threads: int = 1, resume: bool = False,
                 notify: Callable[[str], None] | None = None):
        if (isinstance(idle_s, bool) or not isinstance(idle_s, (int, float))
                or not math.isfinite(idle_s) or idle_s < 0):
            raise ConfigError(f"idle baseline seconds must be >= 0, got {idle_s!r}")
        self.out = out
        self.scenario = dict(scenario or {})
        self.energy_name = energy
        self.powercap_root = powercap_root
        self.energy_model = energy_model
        self.idle_s = float(idle_s)
        self.threads = threads
        self.resume = resume
        self.notify = notify or (lambda msg: None)
        self.writer: RunWriter | None = None
        self.meter = None
        self.idle_power_w: float | None = None
        self.work = MacCounts()
        self.rows: list[dict[str, Any]] = []

    # -- the run -------------------------------------------------------------------------------
    def __enter__(self) -> "Runner":
        self.meter, self.reasons = open_meter(self.energy_name, powercap_root=self.powercap_root,
                                              model=self.energy_model)
        try:
            self._open()
        except BaseException:
            self.meter.close()
            raise
        return self

    def _open(self) -> None:
        self.meter.start()
        for reason in self.reasons:
            self.notify(f"energy: {reason}; using the estimate backend (figures are "
                        "estimated, not measured)")
        with limit_threads(self.threads):
            threads = thread_info()
        self.clock_cost_ns = clock_overhead_ns()
        energy = {"backend": self.meter.name, "source": self.meter.source,
                  "requested": self.energy_name, "fallback_reasons": list(self.reasons),
                  **self.meter.describe()}
        if self.idle_s > 0:
            energy["idle"] = self._idle_baseline()
        meta = {
            "scenario": self.scenario,
            "lshprof_version": __version__,
            "machine": machine_info(),
            "threads": {"requested": self.threads, "at_start": threads},
            "energy": energy,
            "clock_cost_ns": self.clock_cost_ns,
        }
        if self.out is not None:
            self.writer = RunWriter(self.out, meta, resume=self.resume)
        self.meta = meta
        self._usage0 = sample_resources()
        self._mark0 = self.meter.mark()

    def _idle_baseline(self) -> dict[str, Any]:
        if self.meter.source != "measured":
            note = (f"not measured: the {self.meter.name} backend does not measure power, so "
                    "there is no idle baseline")
            self.notify(f"idle baseline {note}")
            return {"seconds": self.idle_s, "power_w": None, "note": note}
        r = measure_idle(self.meter, self.idle_s)
        self.idle_power_w = r.power_w
        return {"seconds": r.wall_s, "power_w": r.power_w, "energy_j": r.energy_j,
                "domains": dict(r.domains), "note": r.note}

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            reading = self.meter.interval(self._mark0, self.meter.mark(), Work.from_counts(self.work))
            usage = usage_between(self._usage0, sample_resources())
            totals = {"wall_s": reading.wall_s, "energy_j": reading.energy_j,
                      "energy_source": reading.source, "energy_domains": dict(reading.domains),
                      "energy_note": reading.note, "macs": self.work.as_dict(),
                      "usage": usage, "ended_at": utc_now()}
            if self.idle_power_w is not None and reading.energy_j is not None:
                totals["energy_dynamic_j"] = reading.energy_j - self.idle_power_w * reading.wall_s
            with limit_threads(self.threads):
                threads_end = thread_info()
            if self.writer is not None:
                self.writer.update(totals=totals,
                                   threads={**self.meta["threads"], "at_end": threads_end})
            self.totals = totals
        finally:
            self.meter.close()
            if self.writer is not None:
                self.writer.__exit__(exc_type, exc, tb)

    # -- cells ------------------------------------------------------------------------------------
    def run_cell(self, label: str, method: str, params: dict[str, Any], data, *,
                 hidden: Sequence[int], epochs: int, batch_size: int, seed: int = 0,
                 fraction: float | None = None, optimizer: str = "adam",
                 optimizer_params: dict | None = None, activation: str = "relu",
                 output_method: str = "dense", output_params: dict | None = None,
                 warmup: bool = True, threads: int | None = None,
                 extra: dict[str, Any] | None = None,
                 on_batch: Callable[[int, int], None] | None = None,
                 mode: str = "sync",
                 ) -> tuple[Any, list[dict[str, Any]]]:
        """Train one model per the arguments on ``data`` (a :class:`~lshprof.data.Split`),
        write a row per epoch, and return ``(model, rows)``.

        ``threads`` overrides the runner's thread count for this cell (a thread sweep);
        ``mode`` is :func:`lshprof.nn.mlp.train`'s (``"hogwild"``: ``threads`` lock-free
        workers, each on one BLAS and numba thread);
        ``extra`` adds columns to every row (e.g. the cell's id); ``on_batch`` is
        :func:`lshprof.nn.mlp.train`'s progress hook."""
        from lshprof.nn.mlp import MLP, train

        threads = self.threads if threads is None else threads

        n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1

        def build():
            return MLP.build(data.X_train.shape[1], hidden, n_classes, method=method,
                             params=params, activation=activation, seed=seed,
                             output_method=output_method, output_params=output_params)

        fit = dict(batch_size=batch_size, optimizer=optimizer,
                   optimizer_params=optimizer_params, seed=seed, threads=threads, mode=mode)
        warm_s = warm_jit_s = 0.0
        if warmup:
            tiny = slice(0, min(8, data.X_train.shape[0]))
            warm_model = build()
            (w,) = train(warm_model, data.X_train[tiny], data.y_train[tiny], epochs=1,
                         X_eval=data.X_test[tiny], y_eval=data.y_test[tiny], **fit)
            warm_s = w.train_wall_s + w.eval_wall_s
            warm_jit_s = w.train_jit_s + w.eval_jit_s
            self.work = self.work + w.train_macs + w.eval_macs
        with limit_threads(threads):  # the machine's yardstick, just before this cell trains
            reference_s, reference_cpu_s = blas_reference_s()
        model = build()
        cell = {
            "method": label, "layer_method": method, "fraction": fraction, "seed": seed,
            "params": json.dumps(params, sort_keys=True), "hidden": json.dumps(list(hidden)),
            "output_method": output_method, "batch_size": batch_size, "optimizer": optimizer,
            "threads": threads, "mode": mode, "n_train": int(data.X_train.shape[0]),
            "n_eval": int(data.X_test.shape[0]), "warmup_s": warm_s, "warmup_jit_s": warm_jit_s,
            "reference_blas_s": reference_s, "reference_blas_cpu_s": reference_cpu_s,
            **(extra or {}),
        }
        rows: list[dict[str, Any]] = []

        def finished(stats) -> None:  # each epoch's row is on disk as soon as it ends
            row = epoch_row(stats, cell, clock_cost_ns=self.clock_cost_ns,
                            idle_power_w=self.idle_power_w)
            self.work = self.work + stats.train_macs + stats.eval_macs
            if self.writer is not None:
                self.writer.add_row(row)
            rows.append(row)
            self.rows.append(row)

        train(model, data.X_train, data.y_train, epochs=epochs, X_eval=data.X_test,
              y_eval=data.y_test, meter=self.meter, on_epoch=finished, on_batch=on_batch, **fit)
        return model, rows
