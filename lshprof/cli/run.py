"""``lshprof run [SCENARIO]``: the main job, from a scenario file to a results folder.

Order of work, so that a mistake costs nothing: read and check the scenario,
apply the command line's overrides, look for the data files, decide the output
folder (and whether it resumes one), build the data, check the layers against
the data's real widths; only then open the run folder and run the sweep's cells
(:func:`lshprof.experiment.execute.run_cells`, with the progress display as its
``on_progress`` consumer). Every cell is on disk, in a file of its own, as soon as it
ends; Ctrl-C marks the run ``interrupted`` and prints the command that resumes it,
which skips every finished cell and runs the one that was cut short again. SIGTERM
(``kill``, a batch system's time limit) during the sweep does the same, and the command
exits with status 143 (128 + 15, as a process that SIGTERM ended), where Ctrl-C gives 130.

A folder is resumed only by a run that measures as it did: the same scenario settings,
data of the same digest (:func:`lshprof.data.digest.split_digest`) and the same
measurement settings (energy backend, powercap folder, energy model, idle baseline; see
:func:`lshprof.experiment.runner.check_resume`); anything else is refused, naming the
difference, before anything is written. A folder that another live ``lshprof run`` writes
is refused naming its process. An OS error writing the results (a full disk) is one line
naming the file, with the command that resumes the run when cells were already kept.
Scenario text (names, descriptions, method labels) is printed as text, never as markup.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from lshprof.errors import ConfigError, LshprofError, ResultsError

__all__ = ["run_scenario", "default_out", "print_summary", "write_run_report"]

RUNS_DIR = "runs"
REPORT_FILE = "report.html"


def default_out(name: str) -> Path:
    """``runs/NAME-YYYYmmdd-HHMMSS`` (UTC), made unique with a suffix if it exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path(RUNS_DIR) / f"{name}-{stamp}"
    out, n = base, 2
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def _check_writable(out: Path) -> None:
    """Refuse, before any work, an output folder that cannot be made or written: a file
    where a folder of its path belongs, a read-only file system or folder, a full disk."""
    base = out
    while not base.exists() and base != base.parent:   # the nearest part that exists
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"output {out}: {base} is a file, not a folder; choose another "
                          "with -o")
    if not os.access(base, os.W_OK):
        raise ConfigError(f"output {out}: cannot write in {base} (a read-only file system "
                          "or no permission); choose another folder with -o")
    try:
        vfs = os.statvfs(base)
    except (AttributeError, OSError):   # not on every OS
        return
    free = vfs.f_bfree if getattr(os, "geteuid", lambda: -1)() == 0 else vfs.f_bavail
    if vfs.f_blocks and free == 0:
        raise ConfigError(f"output {out}: no space left on the device of {base}; free space "
                          "or choose another folder with -o")


def _resume_state(out: Path, scenario) -> tuple[bool, dict | None]:
    """``(resume, old run.json)`` for output folder ``out``; refuses a folder that holds
    something else, a run of different settings, or that another live run writes."""
    from lshprof.experiment.results import (RUN_FILE, check_not_busy, holds_only_leftovers,
                                            read_run)
    from lshprof.experiment.scenario import first_difference

    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} is a file, not a folder; choose another with -o")
    if out.is_dir():
        check_not_busy(out)
    if not (out / RUN_FILE).exists():
        if out.exists() and not holds_only_leftovers(out):   # a run killed at its start
            raise ConfigError(f"output folder {out} is not empty and holds no lshprof run; "
                              "choose another with -o")
        return False, None
    old = read_run(out)
    theirs = old.get("scenario") or {}
    if theirs.get("fingerprint") != scenario.fingerprint():
        diff = first_difference(theirs.get("settings", {}), scenario.as_dict())
        raise ConfigError(f"{out} holds a run with other settings ({diff or 'scenario differs'}"
                          "); resume it with the same scenario and options, or choose another "
                          "folder with -o")
    return True, old


def _measure_options(args, m) -> dict:
    """The run's measurement options: the command line's, else the scenario's."""
    return {"energy": m.measure.energy,
            "powercap_root": args.powercap_root or m.measure.powercap_root,
            "energy_model": args.energy_model or m.measure.energy_model,
            "idle_s": args.idle_baseline if args.idle_baseline is not None
            else m.measure.idle_baseline}


def _data_note(scen) -> str:
    """What changed when the data's digest did, in the scenario's words."""
    from lshprof.data import DATASETS

    name = scen.model.data.dataset
    opts = scen.data_options
    files = [str(opts[k]) for k in ("path", "train", "test") if isinstance(opts.get(k), str)
             and opts[k]]
    if len(files) == 1:
        return f"the file {files[0]} changed"
    if files:
        return f"one of the files {', '.join(files)} changed"
    origin = getattr(DATASETS.get(name), "origin", "generated")
    if origin == "file":
        return f"the {name} files changed"
    if origin == "package":
        return f"the {name} data of the installed package changed"
    return (f"the generated {name} data came out otherwise (another lshprof or numpy "
            "version?)")


def run_scenario(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from lshprof import data as D
    from lshprof.data.digest import split_digest
    from lshprof.experiment.runner import check_resume, measurement_settings
    from lshprof.experiment.scenario import DEFAULT_SCENARIO, load_scenario

    err = Console(stderr=True, highlight=False, soft_wrap=True)  # whole lines in logs
    quiet = args.quiet
    say = (lambda *a, **k: None) if quiet else err.print

    scen = load_scenario(args.scenario or DEFAULT_SCENARIO).with_overrides(
        energy=args.energy, threads=args.threads, seeds=args.seeds, epochs=args.epochs,
        fractions=args.fractions, methods=args.methods, quick=args.quick)
    m = scen.model
    scen.check_data()
    out = Path(args.out) if args.out else default_out(scen.name)
    resume, old = _resume_state(out, scen)
    cells = scen.cells()
    epochs = m.training.epochs

    skipped = None  # cells a resumed run already holds
    notes: list[str] = []
    if resume:
        from lshprof.experiment.results import stored_cells

        try:
            finished = stored_cells(out)
        except ResultsError as exc:
            raise ResultsError(f"cannot resume {out}: {exc}") from None
        skipped = sum(1 for c in cells if c.id in finished)
        if skipped == len(cells) and old.get("complete"):
            say(escape(f"{out} already holds every cell of this sweep ({len(cells)}); "
                       "nothing to run"))
            print_summary(out, quiet=quiet)
            return write_run_report(args, out)
        notes += check_resume(out, old, measurement=measurement_settings(
            **_measure_options(args, m)))
    _check_writable(out)   # (a complete run in a read-only folder is only shown, above)

    with err.status(escape(f"preparing data set {m.data.dataset} ..."), spinner="dots") \
            if not quiet and err.is_terminal else contextlib.nullcontext():
        t0 = time.perf_counter()
        data = D.load(m.data.dataset, scen.data_options, seed=m.data.seed)
        data_s = time.perf_counter() - t0
    digest = split_digest(data)
    if resume:
        notes += check_resume(out, old, data_digest=digest, data_note=_data_note(scen))
        say(escape(f"resuming {out}: {skipped} of {len(cells)} cells already finished"))
    for note in notes:
        say(escape(f"note: {note}"))
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    scen.check_widths(data.X_train.shape[1], n_classes, n_train=data.X_train.shape[0])
    say(f"[bold]{escape(scen.name)}[/bold]: {escape(scen.description)}" if scen.description
        else escape(scen.name))
    say(escape(f"data: {m.data.dataset}, {data.X_train.shape[0]} train / "
               f"{data.X_test.shape[0]} test, {data.X_train.shape[1]} features, {n_classes} "
               f"classes ({data_s:.1f} s); {len(cells)} cells x {epochs} epochs, batch "
               f"{m.training.batch_size}, {m.training.optimizer}"))
    thread_note = scen.thread_note()
    if thread_note:
        say(escape(thread_note))
    if scen.quick:
        say("[bold red]smoke run (--quick)[/bold red]: sizes reduced; verdicts are not evidence")
    return _train_cells(args, scen, data, out, cells, skipped, err, say, digest=digest)


class _Terminated(KeyboardInterrupt):
    """SIGTERM during the sweep: stops it as Ctrl-C does (the run is marked
    ``interrupted``), and the command exits with 143."""


@contextlib.contextmanager
def _sigterm_stops_the_sweep():
    """While the block runs, SIGTERM raises :class:`_Terminated` in the main thread; a
    second SIGTERM, while the run is being marked, ends the process as SIGTERM does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train_cells(args, scen, data, out: Path, cells, skipped: int | None, err, say, *,
                 digest: str | None = None) -> int:
    """Run the sweep's ``cells`` into ``out``: a new run, or a resumed one that already
    holds ``skipped`` of them (None: not resuming); ``digest``: the data's."""
    from rich.markup import escape

    from lshprof.experiment.runner import Runner

    m = scen.model
    meta = {"name": scen.name, "description": scen.description, "source": scen.source,
            "fingerprint": scen.fingerprint(), "settings": scen.as_dict(),
            "data_shape": {"n_train": int(data.X_train.shape[0]),
                           "n_test": int(data.X_test.shape[0]),
                           "n_features": int(data.X_train.shape[1])}}
    display = _SweepDisplay(err, say, quiet=args.quiet, n_train=data.X_train.shape[0])
    opened: list = []   # the runner, once open: what its folder holds when the sweep stops

    def kept() -> int:
        if not opened:   # stopped before the folder was open: what it held before
            return skipped or 0
        held = opened[0].writer.finished_cells()
        return sum(1 for c in cells if c.id in held)

    try:
        with _sigterm_stops_the_sweep(), \
                Runner(out, scenario=meta, **_measure_options(args, m),
                       threads=m.measure.threads, resume=skipped is not None,
                       data_digest=digest, notify=lambda msg: say(escape(msg))) as runner:
            opened.append(runner)
            update: dict = {"plan": [c.id for c in cells]}
            if skipped is not None:
                update["resumes"] = [*(runner.writer.meta.get("resumes") or []),
                                     {"skipped_cells": skipped}]
            runner.writer.update(**update)
            with display:
                runner.run_cells(cells, data=data, on_progress=display)
            from lshprof.experiment.results import load_results

            rows = load_results(out)  # every cell, those of earlier sessions too: read once
            runner.writer.update(flags=_flag_record(rows))
    except KeyboardInterrupt as exc:
        display.stop()
        what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        err.print(escape(f"{what}: {kept()} of {len(cells)} cells finished and kept "
                         f"in {out}; resume with: {_resume_command(args, out)}"))
        return 143 if isinstance(exc, _Terminated) else 130
    except LshprofError as exc:   # e.g. the disk filled up, a counter failed: what is on
        display.stop()            # disk stays, and the line says how to go on
        if kept():
            raise type(exc)(f"{exc}; {kept()} of {len(cells)} cells finished and are kept "
                            f"in {out}: resume with: {_resume_command(args, out)}") from None
        raise
    print_summary(out, quiet=args.quiet, rows=rows)
    return write_run_report(args, out)


def _flag_record(df) -> dict:
    """What run.json keeps of the cells' flags (:mod:`lshprof.analysis.flags`), from the run's
    rows ``df``: for each flagged cell, flag name -> note; the report and tables compute the
    same from the rows."""
    from lshprof.analysis.flags import cell_flags

    record = {}
    if "cell" in df.columns:
        for cell_id, g in df.groupby("cell", sort=False):
            flags = cell_flags(g)
            if flags:
                record[str(cell_id)] = {f.name: f.message for f in flags}
    return record


class _SweepDisplay:
    """The command line's view of a sweep: a consumer of
    :class:`~lshprof.experiment.execute.Progress` events. On a terminal, a bar of cells and one
    of the epoch's samples; elsewhere (and with progress bars off), one line per cell."""

    def __init__(self, console, say, *, quiet: bool, n_train: int):
        self.progress = _progress(console, quiet)
        self.say, self.quiet = say, quiet
        self.n_train = n_train
        self.done = 0
        self.total = 0
        self._sweep = self._epoch = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def stop(self) -> None:
        self.progress.stop()

    def __call__(self, p) -> None:
        pr = self.progress
        if p.event == "start":
            self.done, self.total = p.done, p.total
            self._sweep = pr.add_task("sweep", total=p.total, completed=p.done, what="cells")
            self._epoch = pr.add_task("epoch", total=self.n_train or 1, what="samples",
                                      visible=False)
        elif p.event == "cell":
            from rich.markup import escape

            pr.update(self._sweep, description=escape(p.cell.description))
        elif p.event == "batch":
            pr.update(self._epoch, completed=p.samples, total=p.samples_total, visible=True,
                      description=f"epoch {p.epoch}/{p.epochs}")
        elif p.event == "done":
            self.done = p.done
            pr.advance(self._sweep)
            if not pr.live.is_started and not self.quiet:
                import pandas as pd
                from rich.markup import escape

                from lshprof.analysis.flags import cell_flags, epoch_train_s

                rows = pd.DataFrame(p.result.rows)
                r = p.result.rows[-1]
                secs = epoch_train_s(rows)
                flags = [f.name for f in cell_flags(rows)]
                self.say(escape(
                    f"  [{p.done}/{p.total}] {p.cell.description}: test accuracy "
                    f"{r['eval_accuracy']:.3f}, MACs {r['mac_share']:.1%} of dense, "
                    + (f"{secs.sum():.2f} s" if secs.notna().all() else "time not measured")
                    + (f"; flagged: {', '.join(flags)}" if flags else "")))


def write_run_report(args, out: Path) -> int:
    """``OUT/report.html`` for a finished run (unless ``--no-report``). The results are on disk
    already, so a report that cannot be written costs nothing but the page: it is said in one
    line and the exit status is 1."""
    if not getattr(args, "report", True):
        return 0
    from lshprof.analysis.report import write_report

    try:
        page = write_report([out], out / REPORT_FILE)
    except (LshprofError, OSError) as exc:
        why = exc.strerror or str(exc) if isinstance(exc, OSError) else exc
        print(f"lshprof run: report not written: {why}; the results are kept in {out}; write it "
              f"later with: lshprof report {out}", file=sys.stderr)
        return 1
    print(f"report: {page}")
    return 0


def _resume_command(args, out: Path) -> str:
    """The command line that resumes this run: the same arguments with ``-o OUT``."""
    argv = list(getattr(args, "argv", None) or [])
    if "-o" not in argv and "--out" not in argv and not any(a.startswith("--out=")
                                                              for a in argv):
        argv += ["-o", str(out)]
    import shlex

    return "lshprof run " + " ".join(shlex.quote(a) for a in argv)


def _progress(console, quiet: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    # a live bar only on a terminal; redrawn 4 times a second, from a thread that
    # sleeps in between, so it takes almost nothing from the measured work
    return Progress(TextColumn("{task.description:<38}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[what]}"), TimeElapsedColumn(), console=console,
                    refresh_per_second=4, transient=False,
                    disable=quiet or not console.is_terminal)


def _fmt(v: float, spec: str, suffix: str = "") -> str:
    """``v`` formatted, or ``-`` when it is missing (None or NaN)."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec) + suffix


def _flag_lines(s) -> list[str]:
    """One line per flag of a summary table: the rows it applies to and its note (the first
    row's, marked "e.g." when the rows' notes differ)."""
    from lshprof.analysis.flags import split_flags
    from lshprof.names import CELL_FLAGS

    by_flag: dict[str, list[tuple[str, str]]] = {}
    for _, r in s.iterrows():
        label = str(r["method"]) + (f" @ {r['fraction']:g}" if not math.isnan(r["fraction"])
                                    else "")
        if "threads" in r and len(set(s["threads"])) > 1:
            label += f", {int(r['threads'])} thr"
        notes = {n.split(": ", 1)[0]: n.split(": ", 1)[-1]
                 for n in str(r.get("flag_notes") or "").split(" | ") if n}
        for name in split_flags(r.get("flags")):
            by_flag.setdefault(name, []).append((label, notes.get(name, "")))
    lines = []
    for name in CELL_FLAGS:
        if name not in by_flag:
            continue
        rows = by_flag[name]
        msgs = {m for _, m in rows}
        lines.append(f"{name} ({', '.join(lbl for lbl, _ in rows)}): "
                     f"{'e.g. ' if len(msgs) > 1 else ''}{rows[0][1]}")
    return lines


def print_summary(out: Path, *, quiet: bool = False, rows=None) -> None:
    """The final table (stdout) for the run in ``out``, and where it is (``rows``: its rows,
    already loaded with :func:`~lshprof.experiment.results.load_results`)."""
    from rich.console import Console
    from rich.table import Table

    from lshprof.experiment.results import load_results, read_run
    from lshprof.analysis.summary import summarize

    df = load_results(out) if rows is None else rows
    meta = read_run(out)
    s = summarize(df)
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    source = (meta.get("energy") or {}).get("source", "none")
    scen = (meta.get("scenario") or {})
    sweep_threads = len(set(s["threads"])) > 1 if len(s) else False
    modes = sorted(set(s["mode"])) if len(s) and "mode" in s.columns else ["sync"]
    show_mode = modes != ["sync"]
    from rich.markup import escape

    from lshprof.analysis.flags import smoke_note

    smoke = smoke_note(meta, df)
    table = Table(title=escape(f"lshprof run {scen.get('name', '')}: {meta.get('status')}, "
                               f"{meta.get('rows', 0)} rows")
                  + ("\n[bold red]SMOKE RUN (--quick): sizes reduced; verdicts are not evidence"
                     "[/bold red]" if smoke else ""))
    flagged = len(s) and "flags" in s.columns and (s["flags"].astype(str) != "").any()
    cols = ["method", "fraction"] + (["mode"] if show_mode else []) + (
        ["threads"] if sweep_threads else []) + [
        "seeds", "test accuracy", "vs dense", "MACs/sample", "MACs vs dense", "train s"] + (
        ["samples/s", "speedup"] if sweep_threads else []) + [
        "time vs dense", "energy J" + (" (est.)" if source == "estimated" else ""),
        "energy vs dense", "energy source"] + (["flags"] if flagged else [])
    for c in cols:
        table.add_column(c, justify="left" if c in ("method", "energy source") else "right",
                         no_wrap=c in ("method", "test accuracy"))
    for _, r in s.iterrows():
        acc = _fmt(r["accuracy"], ".3f")
        if not math.isnan(r["accuracy_sd"]):
            acc += f"±{r['accuracy_sd']:.3f}"
        cells = [escape(str(r["method"])), _fmt(r["fraction"], "g")]
        if show_mode:
            cells.append(str(r["mode"]))
        if sweep_threads:
            cells.append(str(int(r["threads"])))
        cells += [str(r["seeds"]), acc, _fmt(r["accuracy_gap"], "+.3f"),
                  _fmt(r["macs_per_sample"], ",.0f"), _fmt(r["mac_share"], ".1%"),
                  _fmt(r["train_s"], ".2f")]
        if sweep_threads:
            cells += [_fmt(r["samples_per_s"], ",.0f"), _fmt(r["speedup"], ".2f", "x")]
        cells += [_fmt(r["time_share"], ".2f", "x"),
                  _fmt(r["energy_j"], ".3g"), _fmt(r["energy_share"], ".2f", "x"),
                  escape(str(r["energy_source"]))]
        if flagged:
            cells.append(escape(str(r["flags"]).replace(";", ", ")))
        table.add_row(*cells)
    console.print(table)
    if smoke:
        console.print(f"[bold red]{escape(smoke)}[/bold red]")
    if flagged:
        # every flagged cell's notes, once each, even with -q: a figure is not read without them
        console.print(f"[bold]Flagged figures[/bold] ({sum(s['flags'].astype(str) != '')} of "
                      f"{len(s)} rows): read them with these notes:")
        for line in _flag_lines(s):
            console.print("  " + escape(line))
    if not quiet:
        console.print(
            "test accuracy: after the last epoch (mean ± deviation over seeds); 'vs dense': "
            "difference from dense. MACs: exact multiply-accumulates of training (forward, "
            "choosing, hashing, re-hashing, backward), per training sample and as a share of "
            "what dense layers of the same shapes perform. Times: wall clock of the training "
            "passes, warm-up and the selection-quality measurement excluded; 'time vs dense' "
            "divides by the dense cell's time at the same seed and threads.")
        if sweep_threads:
            console.print(
                "samples/s: training samples per second of wall time; 'speedup': samples/s over "
                "the same method's at the fewest threads. sync: the threads work inside each "
                "kernel; hogwild: the threads are lock-free workers sharing the weights, each "
                "kernel on one thread.")
            from lshprof.experiment.scenario import available_cores

            cores = available_cores()
            over = sorted({int(t) for t in s["threads"] if int(t) > cores})
            if over:
                console.print(f"Note: {', '.join(map(str, over))} thread(s) exceed the {cores} "
                              "cores available here; those cells share cores, so their "
                              "speedup is not a measure of scaling.")
        if source == "estimated":
            console.print("Energy is ESTIMATED from a per-operation model (lshprof.measure.energy."
                          "estimate), not measured: no readable RAPL counters here.")
    console.print(escape(f"results: {out}"))
