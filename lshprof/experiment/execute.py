"""Running cells: one anywhere (:func:`run_cell`), many through any executor (:func:`run_cells`).

:func:`run_cell` runs one :class:`~lshprof.experiment.sweep.Cell` and returns a
:class:`CellResult`; it prints nothing, so it can run in a worker process or on another
machine. In order, it

1. warms up every kernel the cell's training and evaluation may call
   (:func:`lshprof.nn.warmup.warm_up`: both kernel forms, a re-hash, a partial batch),
   on copies of the model, so numba compilation (or its cache loading) is timed apart
   (``warmup_s``, ``warmup_jit_s``) and never lands in a measured epoch; an epoch that
   compiles anyway is flagged and its compilation left out of every time figure
   (:mod:`lshprof.analysis.flags`);
2. times a fixed BLAS product, the machine's yardstick at the cell's thread count
   (``reference_blas_s``, and in CPU time ``reference_blas_cpu_s``;
   :func:`lshprof.measure.timing.blas_reference_s`), so that the dense cell's time can
   be compared between machines as a ratio;
3. trains and evaluates with :func:`lshprof.nn.mlp.train`, which times every phase with
   a monotonic nanosecond clock, counts MACs and modelled bytes exactly, and reads the
   energy meter around each epoch's training and evaluation passes;
4. returns one row per epoch (:func:`epoch_row`), the machine it ran on and the work it
   did (for run-level energy estimates).

:func:`run_cells` drives an *executor*: a callable ``executor(cells, on_progress)``
that yields a :class:`CellResult` per cell, in any order, as each finishes.
:func:`serial` runs them one after another in this process; the caller's
``on_progress`` receives :class:`Progress` events (a progress bar is one consumer).
Every result is written to the run's store (:class:`~lshprof.experiment.results.RunWriter`)
by the caller's process as it arrives, so the store has one writer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from lshprof.errors import ConfigError
from lshprof.experiment.results import utc_now
from lshprof.experiment.sweep import Cell
from lshprof.measure.energy import EnergyReading
from lshprof.measure.macs import PHASES, MacCounts
from lshprof.measure.timing import TIME_PHASES

__all__ = ["CellResult", "Progress", "run_cell", "run_cells", "serial", "epoch_row", "rows_macs",
           "MAC_COLUMNS", "cell_machine"]

#: MacCounts field -> measurements column (the training passes)
MAC_COLUMNS = {**{p: f"macs_{p}" for p in PHASES}, "dense_equivalent": "macs_dense_equivalent",
               "hash_adds": "hash_adds", "rehash_adds": "rehash_adds",
               "hash_compares": "hash_compares", "rehash_compares": "rehash_compares",
               "quality": "macs_quality", "bytes_moved": "bytes_moved"}


@dataclass
class CellResult:
    """What one cell produced: its rows (one per epoch), the machine it ran on, the work
    it did including warm-up (``work``: training and evaluation MACs, for run-level
    energy estimates), when it started and ended, and the trained model if asked for."""

    cell: Cell
    rows: list[dict[str, Any]]
    machine: dict[str, Any]
    work: MacCounts
    started_at: str
    ended_at: str
    model: Any = None

    @property
    def info(self) -> dict[str, Any]:
        """What the store keeps beside the rows."""
        return {"started_at": self.started_at, "ended_at": self.ended_at,
                "work": self.work.as_dict()}


@dataclass(frozen=True)
class Progress:
    """An event of a sweep, for progress displays.

    ``event``: ``"start"`` (the sweep; ``done`` cells are already finished, of ``total``),
    ``"cell"`` (a cell starts), ``"batch"`` (``samples`` of ``samples_total`` done in
    epoch ``epoch`` of ``epochs``), ``"done"`` (a cell finished: ``result``)."""

    event: str
    done: int = 0
    total: int = 0
    cell: Cell | None = None
    result: CellResult | None = None
    samples: int = 0
    samples_total: int = 0
    epoch: int = 0
    epochs: int = 0


# -- rows ------------------------------------------------------------------------------------------
def _reading_columns(prefix: str, r: EnergyReading | None, idle_w: float | None) -> dict[str, Any]:
    """``energy_j``, its source and backend, and one column per domain (``energy_dram_j``)."""
    if r is None:
        return {}
    out = {f"{prefix}energy_j": r.energy_j}
    if prefix:
        out[f"{prefix}energy_note"] = r.note or None
    else:
        out.update(energy_source=r.source, energy_backend=r.backend, energy_note=r.note or None)
        for d, j in sorted(r.domains.items()):
            out[f"energy_{d}_j"] = j
        if idle_w is not None and r.energy_j is not None:
            out["energy_dynamic_j"] = r.energy_j - idle_w * r.wall_s
            out["idle_power_w"] = idle_w
    return out


def epoch_row(stats, cell: dict[str, Any], *, clock_cost_ns: float | None = None,
              idle_power_w: float | None = None) -> dict[str, Any]:
    """One row of the measurements table from an :class:`~lshprof.nn.mlp.EpochStats`;
    ``cell`` holds the columns every row of the cell shares."""
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
        elif prefix == "" and stats.mode == "hogwild":
            # no phase split, but compilation in any worker is measured: it must be seen
            row["jit_s"] = jit_s
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
        for k in ("process_cpu_util", "system_cpu_util_percent", "other_cpu_cores",
                  "machine_cores", "load_avg_1m", "rss_bytes", "peak_rss_bytes", "cpu_freq_mhz"):
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


# -- one cell ----------------------------------------------------------------------------------------
_MACHINE: dict[str, Any] = {}
_DATA: dict[Any, Any] = {}


def cell_machine() -> dict[str, Any]:
    """The machine record of this process, read once per process: the run's record and
    every cell the process runs carry it (so a run can span machines)."""
    if not _MACHINE:
        from lshprof.measure.system import machine_info

        _MACHINE.update(machine_info())
    return dict(_MACHINE)


def _cell_data(cell: Cell):
    """The cell's data set, built from its spec once per process (the last one is kept)."""
    if cell.data is None:
        raise ConfigError(f"cell {cell.id} has no data spec; pass the data to run_cell")
    key = (cell.data.dataset, json.dumps(cell.data.options, sort_keys=True, default=str),
           cell.data.seed)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = cell.data.load()
    return _DATA[key]


def _chance_accuracy(y) -> float:
    """The accuracy of always answering the most common label of ``y``."""
    import numpy as np

    y = np.asarray(y)
    if y.size == 0:
        return math.nan
    return float(np.bincount(y.astype(np.int64, copy=False)).max() / y.size)


def run_cell(cell: Cell, *, data=None, meter=None, clock_cost_ns: float | None = None,
             idle_power_w: float | None = None,
             on_batch: Callable[[int, int], None] | None = None,
             keep_model: bool = False) -> CellResult:
    """Train and measure one cell; print nothing.

    ``data``: a :class:`~lshprof.data.Split` (default: built from ``cell.data``).
    ``meter``: an open energy meter shared by the caller's cells (default: one opened
    from ``cell.measure`` for this cell alone, and closed after). ``clock_cost_ns``: the
    measured cost of one phase-clock call (default: measured now), for the rows'
    ``instrumentation_s``. ``idle_power_w``: idle power, for ``energy_dynamic_j``.
    ``on_batch``: :func:`lshprof.nn.mlp.train`'s progress hook. ``keep_model``: return
    the trained model in the result (it stays in this process).
    """
    from lshprof.measure.threads import limit_threads
    from lshprof.measure.timing import blas_reference_s, clock_overhead_ns
    from lshprof.nn.mlp import MLP, train

    started = utc_now()
    if data is None:
        data = _cell_data(cell)
    own_meter = meter is None
    if own_meter:
        from lshprof.measure.energy import open_meter

        meter, _ = open_meter(cell.measure.energy, powercap_root=cell.measure.powercap_root,
                              model=cell.measure.energy_model)
        meter.start()
    try:
        if clock_cost_ns is None:
            clock_cost_ns = clock_overhead_ns()
        net, tr, layers = cell.network, cell.training, cell.layers
        hidden = list(net.hidden)
        n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1

        def build():
            return MLP.build(data.X_train.shape[1], hidden, n_classes, method=layers["method"],
                             params=layers["params"], activation=net.activation, seed=cell.seed,
                             output_method=layers["output_method"],
                             output_params=layers["output_params"])

        fit = dict(batch_size=tr.batch_size, optimizer=tr.optimizer,
                   optimizer_params=cell.optimizer_params, seed=cell.seed, threads=cell.threads,
                   mode=cell.mode)
        work = MacCounts()
        warm_s = warm_jit_s = 0.0
        if cell.measure.warmup:  # every kernel the cell's training and evaluation may call
            from lshprof.nn.warmup import warm_up

            w = warm_up(build(), data.X_train, data.y_train, X_eval=data.X_test,
                        y_eval=data.y_test, **fit)
            warm_s, warm_jit_s = w.wall_s, w.jit_s
            work = work + w.macs
        with limit_threads(cell.threads):  # the machine's yardstick, just before this cell trains
            reference_s, reference_cpu_s = blas_reference_s()
        model = build()
        columns = {
            "method": cell.label, "layer_method": layers["method"], "fraction": cell.fraction,
            "seed": cell.seed, "params": json.dumps(layers["params"], sort_keys=True),
            "hidden": json.dumps(hidden), "output_method": layers["output_method"],
            "batch_size": tr.batch_size, "optimizer": tr.optimizer, "threads": cell.threads,
            "mode": cell.mode, "n_train": int(data.X_train.shape[0]),
            "n_eval": int(data.X_test.shape[0]),
            # the test set's majority-class share: an accuracy at this level learned nothing
            "chance_accuracy": _chance_accuracy(data.y_test),
            "warmup_s": warm_s, "warmup_jit_s": warm_jit_s,
            "reference_blas_s": reference_s, "reference_blas_cpu_s": reference_cpu_s,
            "cell": cell.id,
        }
        if cell.data is not None:
            columns["dataset"] = cell.data.dataset
        if cell.scenario is not None:
            columns["scenario"] = cell.scenario
        columns["applied_to"] = net.apply_to  # which layers the method replaced: a row's kind
        columns.update(cell.grid_columns)  # a grid's settings as columns: grid_family, grid_K
        rows: list[dict[str, Any]] = []

        def finished(stats) -> None:
            nonlocal work
            rows.append(epoch_row(stats, columns, clock_cost_ns=clock_cost_ns,
                                  idle_power_w=idle_power_w))
            work = work + stats.train_macs + stats.eval_macs

        train(model, data.X_train, data.y_train, epochs=tr.epochs, X_eval=data.X_test,
              y_eval=data.y_test, meter=meter, on_epoch=finished, on_batch=on_batch, **fit)
    finally:
        if own_meter:
            meter.close()
    return CellResult(cell, rows, cell_machine(), work, started, utc_now(),
                      model if keep_model else None)


# -- many cells ------------------------------------------------------------------------------------
Executor = Callable[[list[Cell], Callable[[Progress], None]], Iterable[CellResult]]


def serial(cells: list[Cell], on_progress: Callable[[Progress], None], **run_kwargs
           ) -> Iterator[CellResult]:
    """The in-process executor: each cell in turn, with ``run_kwargs`` for
    :func:`run_cell` (a shared meter, data, ...); reports each batch."""
    for cell in cells:
        on_progress(Progress("cell", cell=cell))
        epoch = [0]

        def on_batch(n, total, _cell=cell):
            if n >= total:
                epoch[0] += 1
            on_progress(Progress("batch", cell=_cell, samples=n, samples_total=total,
                                 epoch=epoch[0] + (n < total), epochs=_cell.training.epochs))

        yield run_cell(cell, on_batch=on_batch, **run_kwargs)


def run_cells(cells: list[Cell], store=None, *, executor: Executor | None = None,
              on_progress: Callable[[Progress], None] | None = None,
              on_result: Callable[[CellResult], None] | None = None) -> list[CellResult]:
    """Run the ``cells`` that ``store`` does not hold yet, through ``executor`` (default:
    :func:`serial`), writing each result to ``store`` as it arrives.

    ``store``: a :class:`~lshprof.experiment.results.RunWriter` (None: keep nothing).
    ``on_progress``: called with every :class:`Progress` event. ``on_result``: called
    with each result after it is stored. Returns the results of the cells run now."""
    emit = on_progress or (lambda p: None)
    seen: set[str] = set()
    for c in cells:
        if c.id in seen:
            raise ConfigError(f"two cells of the sweep have the id {c.id!r}")
        seen.add(c.id)
    finished = store.finished_cells() if store is not None else {}
    todo = [c for c in cells if c.id not in finished]
    done = len(cells) - len(todo)
    emit(Progress("start", done=done, total=len(cells)))
    results = []
    for result in (executor or serial)(todo, emit):
        if store is not None:
            store.add_cell(result.cell.id, result.rows, machine=result.machine, info=result.info)
        done += 1
        results.append(result)
        if on_result is not None:
            on_result(result)
        emit(Progress("done", done=done, total=len(cells), cell=result.cell, result=result))
    return results
