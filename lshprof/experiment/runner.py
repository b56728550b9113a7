"""The instrumented runner: a run's cells measured the same way, written to one run folder.

The runner is the run-level context around :mod:`lshprof.experiment.execute`, which runs
each cell (warm-up, the BLAS yardstick, measured epochs). Around the whole run it opens
one energy meter that every cell in this process shares, and records the machine, the
thread settings and process usage at start and end, the energy backend (and why a
better one was passed over), an optional idle-power baseline, and run-level energy.
Each finished cell is written to the run folder (:mod:`lshprof.experiment.results`) with
the machine it ran on, by this process only.

Instrumentation overhead is reported per row: ``clock_calls`` pushes and pops of
the phase clock times their measured cost (``clock_cost_ns``, measured at the
start of the run) gives ``instrumentation_s`` and its share of the epoch.

A run's cells are measured alike, so a resumed run must measure as the run it adds to:
``run.json`` records the :func:`measurement_settings` (energy backend requested, powercap
folder, energy model, idle-baseline seconds) and the digest of the data
(:func:`lshprof.data.digest.split_digest`), and :func:`check_resume` refuses a resume
that differs in any of them, or whose energy backend would now be another one (``auto``
falling back to the estimate where the first cells were measured), before anything is
measured or written. A run written before these were recorded resumes, with a notice
that they cannot be checked; from then on the values of the resume are recorded (and
checked at the next one).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Callable

from lshprof import __version__
from lshprof.errors import ConfigError, ResultsError
from lshprof.experiment.execute import (MAC_COLUMNS, CellResult, Progress, cell_machine,
                                        epoch_row, rows_macs, run_cell, run_cells, serial)
from lshprof.experiment.results import RUN_FILE, RunWriter, read_run, utc_now
from lshprof.experiment.sweep import Cell
from lshprof.measure.energy import Work, measure_idle, open_meter
from lshprof.measure.macs import MacCounts
from lshprof.measure.system import sample_resources, thread_info, usage_between
from lshprof.measure.threads import limit_threads
from lshprof.measure.timing import clock_overhead_ns

__all__ = ["Runner", "epoch_row", "rows_macs", "MAC_COLUMNS", "measurement_settings",
           "check_resume"]


def measurement_settings(energy: str = "auto", *, powercap_root: str | None = None,
                         energy_model: Any = None, idle_s: float = 0.0) -> dict[str, Any]:
    """What decides how a run measures, the same for all its cells: ``energy``, the backend
    requested; ``powercap_root``, the powercap folder read (for ``auto`` and ``powercap``:
    the option, else ``$LSHPROF_POWERCAP_ROOT``, else the system's); ``energy_model``, the
    estimate's model (for ``auto`` and ``estimate``: the file as an absolute path, else
    ``$LSHPROF_ENERGY_MODEL``'s; None: the published figures); ``idle_baseline_s``."""
    root = model = None
    if energy in ("auto", "powercap"):
        from lshprof.measure.energy.powercap import resolve_root

        root = os.path.abspath(resolve_root(powercap_root))
    if energy in ("auto", "estimate"):
        from lshprof.measure.energy.estimate import ENV_MODEL

        if energy_model is None:
            energy_model = os.environ.get(ENV_MODEL) or None
        if isinstance(energy_model, (str, os.PathLike)):
            model = os.path.abspath(os.fspath(energy_model))
        elif energy_model is not None:   # a model object: its origin
            model = str(getattr(energy_model, "origin", None) or type(energy_model).__name__)
    return {"energy": energy, "powercap_root": root, "energy_model": model,
            "idle_baseline_s": float(idle_s)}


_MEASURED_WITH = {
    "energy": lambda v: f"energy backend {v}",
    "powercap_root": lambda v: f"powercap root {v}" if v else "no powercap root",
    "energy_model": lambda v: f"energy model {v}" if v else "the published energy figures "
                                                               "(no model file)",
    "idle_baseline_s": lambda v: f"an idle baseline of {v:g} s",
}


def check_resume(folder, old: dict[str, Any], *, measurement: dict[str, Any] | None = None,
                 data_digest: str | None = None, data_note: str | None = None,
                 backend: str | None = None, backend_note: str | None = None) -> list[str]:
    """Refuse (:class:`~lshprof.errors.ConfigError`, one line naming the difference) a resume
    of the run in ``folder`` (``old``: its ``run.json``) that would measure otherwise than
    its finished cells were: other ``measurement`` settings (:func:`measurement_settings`),
    data of another ``data_digest`` (``data_note`` says what changed, e.g. "the file
    data.npz changed"), or another energy ``backend`` than the one that measured them
    (``backend_note``: why, e.g. the reason ``auto`` fell back). A value given as None is
    not checked. Returns the notices for what ``old`` does not record (a run written
    before lshprof recorded it): those cannot be checked."""
    notes = []
    if measurement is not None:
        then = old.get("measurement")
        if not isinstance(then, dict):
            notes.append(f"{folder} was written before lshprof recorded its measurement "
                         "settings; they cannot be checked against this run's")
        else:
            for key, say in _MEASURED_WITH.items():
                a, b = then.get(key), measurement.get(key)
                if key in then and a != b:
                    try:
                        was, now = say(a), say(b)
                    except (TypeError, ValueError):
                        was, now = f"{key} {a!r}", f"{key} {b!r}"
                    raise ConfigError(f"{folder} holds a run measured with {was}, now {now}; "
                                      "resume it with the same measurement settings, or "
                                      "choose another folder with -o")
    if data_digest is not None:
        then = old.get("data_digest")
        if not isinstance(then, str):
            notes.append(f"{folder} was written before lshprof recorded a digest of its "
                         "data; the data of its finished cells cannot be checked against "
                         "this run's")
        elif then != data_digest:
            raise ConfigError(f"{folder} holds a run whose data differ (data digest "
                              f"{then[:12]} then, {data_digest[:12]} now: "
                              f"{data_note or 'the data set changed'}); resume with the same "
                              "data or choose another folder with -o")
    energy = old.get("energy") if isinstance(old.get("energy"), dict) else {}
    was = energy.get("backend")
    if backend is not None and isinstance(was, str) and was != backend:
        raise ConfigError(f"{folder} holds a run whose energy the {was} backend gave "
                          f"({energy.get('source', 'unknown')}), but the {backend} backend "
                          f"would give it now{f' ({backend_note})' if backend_note else ''}; "
                          f"resume where {was} works, or choose another folder with -o")
    return notes


class Runner:
    """Runs training cells under one energy meter and writes them to one run folder.

    ``out``: the run folder (None: measure, but write nothing). ``energy``: a
    backend name from :data:`lshprof.measure.energy.BACKENDS`. ``idle_s``: seconds of
    idle-power measurement before the first cell (0: none); with a measuring
    backend every row then also gets ``energy_dynamic_j``, the energy above idle.
    ``threads``: BLAS and numba threads for every cell. ``data_digest``: the
    :func:`~lshprof.data.digest.split_digest` of the data the cells train on, recorded
    in ``run.json``. ``resume``: add to the run in ``out``, refused by
    :func:`check_resume` when it would measure otherwise. ``notify``: called with
    each one-line notice (e.g. why energy is estimated), once.

    Use as a context manager::

        with Runner("runs/x", scenario={"name": "x"}, energy="auto") as runner:
            result = runner.run(Cell("lsh", "lsh", {"fraction": 0.05}, 0.05), data=data)
            runner.run_cells(scenario.cells())
    """

    def __init__(self, out=None, *, scenario: dict[str, Any] | None = None, energy: str = "auto",
                 powercap_root: str | None = None, energy_model: Any = None, idle_s: float = 0.0,
                 threads: int = 1, resume: bool = False, data_digest: str | None = None,
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
        self.data_digest = data_digest
        self.notify = notify or (lambda msg: None)
        self.writer: RunWriter | None = None
        self.meter = None
        self.idle_power_w: float | None = None
        self.work = MacCounts()
        self.rows: list[dict[str, Any]] = []

    # -- the run -------------------------------------------------------------------------------
    def __enter__(self) -> "Runner":
        self.measurement = measurement_settings(self.energy_name, powercap_root=self.powercap_root,
                                                energy_model=self.energy_model, idle_s=self.idle_s)
        old = None
        if self.out is not None and self.resume and (Path(self.out) / RUN_FILE).exists():
            old = read_run(self.out)   # a resume that would measure otherwise: before any work
            check_resume(self.out, old, measurement=self.measurement,
                         data_digest=self.data_digest)
        self.meter, self.reasons = open_meter(self.energy_name, powercap_root=self.powercap_root,
                                              model=self.energy_model)
        try:
            if old is not None:
                check_resume(self.out, old, backend=self.meter.name,
                             backend_note="; ".join(self.reasons) or None)
            self._open()
        except BaseException as exc:
            self.meter.close()
            if self.writer is not None:   # opened: let the folder go, marked
                self.writer.__exit__(type(exc), exc, exc.__traceback__)
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
            "machine": cell_machine(),
            "threads": {"requested": self.threads, "at_start": threads},
            "energy": energy,
            "measurement": self.measurement,
            "clock_cost_ns": self.clock_cost_ns,
        }
        if self.data_digest is not None:
            meta["data_digest"] = self.data_digest
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
        failed = None   # run.json could not take the totals (a full disk) on a clean exit
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
            self.totals = totals
            if self.writer is not None:
                try:
                    self.writer.update(totals=totals,
                                       threads={**self.meta["threads"], "at_end": threads_end})
                except ResultsError as e:   # the error that ended the run stays the one seen
                    if exc_type is None:
                        failed = e
        finally:
            self.meter.close()
            if self.writer is not None:
                if failed is not None:
                    self.writer.__exit__(type(failed), failed, None)
                else:
                    self.writer.__exit__(exc_type, exc, tb)
        if failed is not None:
            raise failed

    # -- cells ------------------------------------------------------------------------------------
    def executor(self, data=None):
        """The in-process executor for :func:`~lshprof.experiment.execute.run_cells`, with this
        run's meter, clock cost and idle power (``data``: arrays every cell trains on)."""
        return functools.partial(serial, meter=self.meter, clock_cost_ns=self.clock_cost_ns,
                                 idle_power_w=self.idle_power_w, data=data)

    def _record(self, result: CellResult) -> None:
        self.work = self.work + result.work
        self.rows.extend(result.rows)

    def run_cells(self, cells: list[Cell], *, executor=None, data=None,
                  on_progress: Callable[[Progress], None] | None = None) -> list[CellResult]:
        """Run the ``cells`` the run folder does not hold yet (default executor: this
        process, :meth:`executor`) and write each to the run folder as it finishes."""
        return run_cells(cells, self.writer, executor=executor or self.executor(data),
                         on_progress=on_progress, on_result=self._record)

    def run(self, cell: Cell, *, data=None, on_batch: Callable[[int, int], None] | None = None,
            keep_model: bool = False) -> CellResult:
        """Run one cell in this process with this run's meter (``data``: a
        :class:`~lshprof.data.Split`, default built from ``cell.data``), write it to the run
        folder, and return its result (with the trained model if ``keep_model``)."""
        result = run_cell(cell, data=data, meter=self.meter, clock_cost_ns=self.clock_cost_ns,
                          idle_power_w=self.idle_power_w, on_batch=on_batch,
                          keep_model=keep_model)
        if self.writer is not None:
            self.writer.add_cell(cell.id, result.rows, machine=result.machine, info=result.info)
        self._record(result)
        return result
