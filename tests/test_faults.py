"""Fault injection (issue 18): ``lshprof run`` as a hostile world treats it.

Every fault is made against a real ``lshprof run`` of a tiny scenario (9 cells of 2 epochs,
a few seconds), started as a user starts it (a subprocess), and after each one
:func:`assert_consistent` checks the folder it left: every cell file that was on disk before
the fault is still there, byte for byte (nothing finished was lost); no cell id is stored
twice, nor an epoch twice within a cell (nothing duplicated); ``load_results`` reads it;
``lshprof report`` and ``lshprof check`` (the run against itself) end with exit 0, or 2 and
one line, never a traceback; and resuming it (``lshprof run F -o DIR``) completes, the final
folder holding each planned cell once with the same rows as an uninterrupted run (in every
deterministic column: MAC and work counts, losses and accuracies at a fixed seed).

The faults: ``kill -9`` at seeded random instants of a run and of a resume, and at the worst
instants exactly (a new ``run.json`` or cell file whole under its temporary name, not yet
renamed into place); two writers in one folder (one stopped with SIGSTOP while the other
starts, and two started together); a stale lock; a full disk (a tiny tmpfs, where the tests
run as root); SIGTERM; RAPL counters that step back, leap forward, read above their range
or cannot be read, under a running sweep (a fake powercap tree); a truncated cell file, a
copied one and a truncated ``run.json``.

The faulted runs are subprocesses; the reading commands after them (report, check) and the
resumes run in this process (:func:`cli`), which is quicker and sees the same exit status
and output.

The random instants come from ``random.Random(SEED)``, so a failure names the point it met;
each waits for an event of the run (its ``run.json``, its k-th cell) and then the seeded
delay, so that a busy machine moves the instant but not the stage of the run it falls in.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from fake_sysfs import BIG, make_tree
from lshprof import load_results
from lshprof.cli import main
from lshprof.errors import ResultsError
from lshprof.measure.system import machine_key
from lshprof.experiment.results import (CELLS_DIR, HOLDER_FILE, LOCK_FILE, RUN_FILE, lock_holder,
                                        read_run)

SCENARIO = """\
[scenario]
name = "faults"
description = "fault injection: a tiny sweep of three methods and three seeds"

[data]
dataset = "gaussian"
n_train = 300
n_test = 100
n_features = 16
n_classes = 4
noise = 0.5

[network]
hidden = [32]

[training]
epochs = 2
batch_size = 32

[sweep]
fractions = [0.25]
seeds = [0, 1, 2]

[measure]
threads = 1
energy = "estimate"

[methods.dense]
[methods.topk]
[methods.lsh]
method = "lsh"
family = "srp"
K = 4
L = 8
"""
N_CELLS = 9     # 3 methods x 3 seeds
EPOCHS = 2
#: the options every run of this module is given (the resume command repeats them)
OPTIONS = ("-q", "--no-report")
SEED = 18
_rng = random.Random(SEED)
#: the random kill points of a run: (name, the event waited for, then seconds of delay);
#: the event is a number of finished cells, or None for "as soon as it has started"
RUN_KILLS = [
    ("very-early", None, round(_rng.uniform(0.0, 0.15), 3)),        # before run.json exists
    ("after-run-json", 0, round(_rng.uniform(0.0, 0.25), 3)),
    ("mid-run", _rng.randint(1, N_CELLS - 2), round(_rng.uniform(0.0, 0.05), 3)),
    ("last-cell", N_CELLS - 1, round(_rng.uniform(0.0, 0.01), 3)),   # during the last cell
]
#: a run killed after this many cells, then its resume killed at these points
RESUME_AFTER = _rng.randint(2, 4)
RESUME_KILLS = [
    ("resume-very-early", None, round(_rng.uniform(0.0, 0.2), 3)),
    ("resume-mid", RESUME_AFTER + _rng.randint(1, 3), round(_rng.uniform(0.0, 0.05), 3)),
]


def _deterministic(columns) -> list[str]:
    """The columns a rerun of a cell reproduces exactly (threads = 1): work counts, losses,
    accuracies; not times, energies or the machine's load."""
    fixed = ("method", "fraction", "seed", "threads", "loss", "train_accuracy",
             "eval_accuracy", "mac_share", "layer_active_fraction", "bytes_moved",
             "eval_bytes_moved", "layer_selection")
    return [c for c in columns
            if c in fixed or c.startswith(("macs_", "eval_macs_", "hash_", "rehash_"))]


# -- the scenario, a reference run, and running the command line -------------------------------
class World:
    """What every fault test needs: the scenario file, the rows of an uninterrupted run,
    and the command line (as a subprocess, or in this process for report and check)."""

    def __init__(self, base: Path, cmd: list[str], env: dict[str, str]):
        self.base, self.cmd, self.env = base, cmd, env
        self.scenario = base / "faults.toml"
        self.scenario.write_text(SCENARIO)
        ref = base / "reference"
        r = self.run("-o", ref)
        assert r.returncode == 0, r.stderr
        self.plan = read_run(ref)["plan"]
        assert len(self.plan) == N_CELLS
        self.rows = _rows(load_results(ref))
        assert len(self.rows) == N_CELLS * EPOCHS

    def argv(self, *args) -> list[str]:
        return [*self.cmd, "run", str(self.scenario), *map(str, args), *OPTIONS]

    def run(self, *args, timeout=300) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env,
                              timeout=timeout)

    def resume(self, folder: Path, *options) -> tuple[int, str, str]:
        """``lshprof run F -o FOLDER`` in this process (the same command as :meth:`run`,
        quicker: its imports and compiled kernels are warm): exit status, stdout, stderr."""
        return cli(*self.argv("-o", folder, *options)[len(self.cmd):])

    def spawn(self, *args, argv=None, logs: Path) -> subprocess.Popen:
        """``lshprof run`` started in the background, its output in files beside ``logs``."""
        logs.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{logs}.out", "w") as out, open(f"{logs}.err", "w") as err:
            return subprocess.Popen(argv or self.argv(*args), stdout=out, stderr=err,
                                    env=self.env, text=True)


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    cols = _deterministic(df.columns)
    return df.set_index(["cell", "epoch"])[cols].sort_index()


@pytest.fixture(scope="module")
def world(tmp_path_factory, lshprof_cmd):
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return World(tmp_path_factory.mktemp("faults"), lshprof_cmd, env)


def cli(*args) -> tuple[int, str, str]:
    """``lshprof ARGS`` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1 and "Traceback" not in text


# -- what a folder holds ---------------------------------------------------------------------
def cell_files(folder: Path) -> dict[str, bytes]:
    """Every finished cell file of ``folder`` (name -> bytes); a writer's hidden temporary
    files are not finished cells."""
    d = Path(folder) / CELLS_DIR
    if not d.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())
            if p.suffix == ".json" and not p.name.startswith(".") and p.is_file()}


def assert_nothing_lost(folder: Path, seen: dict[str, bytes], when: str) -> None:
    now = cell_files(folder)
    lost = sorted(set(seen) - set(now))
    assert not lost, f"{when}: finished cell files lost: {lost}"
    changed = sorted(n for n in seen if now[n] != seen[n])
    assert not changed, f"{when}: finished cell files rewritten: {changed}"


def assert_nothing_twice(folder: Path, when: str) -> set[str]:
    """No cell id in two files, no seq number twice, no epoch twice in one cell: read as
    plain JSON, without lshprof. Returns the cell ids."""
    ids: dict[str, str] = {}
    seqs: dict[int, str] = {}
    for name, data in cell_files(folder).items():
        doc = json.loads(data)
        cell = doc["cell"]
        assert cell not in ids, f"{when}: cell {cell!r} in both {ids[cell]} and {name}"
        ids[cell] = name
        assert doc["seq"] not in seqs, f"{when}: seq {doc['seq']} in {seqs[doc['seq']]} and {name}"
        seqs[doc["seq"]] = name
        epochs = [r["epoch"] for r in doc["rows"]]
        assert len(epochs) == len(set(epochs)), f"{when}: {name} holds an epoch twice: {epochs}"
    return set(ids)


def assert_readable(folder: Path, when: str, tmp: Path) -> None:
    """Loads (or, without run.json, is refused in one line); report and check end with 0,
    or 2 and one line; never a traceback."""
    ids = assert_nothing_twice(folder, when)
    if (folder / RUN_FILE).exists():
        df = load_results(folder)
        got = set(df["cell"]) if len(df) else set()
        assert got == ids, f"{when}: load_results gives cells {sorted(got)}, files {sorted(ids)}"
        assert not df.duplicated(["cell", "epoch"]).any(), when
    else:
        with pytest.raises(ResultsError) as e:
            load_results(folder)
        assert one_line(str(e.value)), f"{when}: {e.value}"
    tmp.mkdir(parents=True, exist_ok=True)
    rc, out, err = cli("report", folder, "-o", tmp / "report.html", "--plotlyjs", "beside")
    assert "Traceback" not in out + err, f"{when}: report: {err}"
    assert rc == 0 or (rc == 2 and one_line(err)), f"{when}: report exit {rc}: {err}"
    if rc == 0:
        assert ids, f"{when}: report of a folder without finished cells passed"
    rc, out, err = cli("check", folder, "--baseline", folder, "-q")
    assert "Traceback" not in out + err, f"{when}: check: {err}"
    assert rc == 0 or (rc == 2 and one_line(err)), f"{when}: check exit {rc}: {out}{err}"


def assert_complete(world: World, folder: Path, seen: dict[str, bytes], when: str) -> None:
    """The final folder: each planned cell once, the rows of the uninterrupted run."""
    assert_nothing_lost(folder, seen, f"{when}, after the resume")
    ids = assert_nothing_twice(folder, f"{when}, after the resume")
    assert ids == set(world.plan), f"{when}: cells {sorted(ids ^ set(world.plan))} differ"
    assert len(cell_files(folder)) == N_CELLS
    left = [p.name for d in (folder, folder / CELLS_DIR) for p in d.iterdir() if ".tmp-" in p.name]
    assert not left, f"{when}: a killed writer's temporary files are still there: {left}"
    meta = read_run(folder)
    assert (meta["status"], meta["complete"], meta["cells"], meta["rows"]) == \
        ("complete", True, N_CELLS, N_CELLS * EPOCHS), when
    pd.testing.assert_frame_equal(_rows(load_results(folder)), world.rows, check_like=True,
                                  obj=f"{when}: rows vs the uninterrupted run")


def assert_consistent(world: World, folder: Path, seen: dict[str, bytes], tmp: Path, *,
                      when: str, options=(), resume=True) -> None:
    """The invariants after a fault (see the module's docstring). ``seen``: the cell files
    on disk before it. ``options``: added to the resume's command line."""
    assert_nothing_lost(folder, seen, when)
    assert_readable(folder, when, tmp)
    if not resume:
        return
    seen = {**seen, **cell_files(folder)}
    rc, out, err = world.resume(folder, *options)
    assert rc == 0 and "Traceback" not in err, f"{when}: the resume exited {rc}: {err}"
    assert_complete(world, folder, seen, when)


# -- killing a run at a point ------------------------------------------------------------------
def wait_for(proc: subprocess.Popen, folder: Path, cells: int | None, timeout=120) -> None:
    """Until ``folder`` holds run.json and ``cells`` finished cells (None: at once), or the
    process ended."""
    if cells is None:
        return
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if (folder / RUN_FILE).exists() and len(cell_files(folder)) >= cells:
            return
        time.sleep(0.005)


def kill_at(proc: subprocess.Popen, folder: Path, cells: int | None, delay: float,
            sig=signal.SIGKILL) -> dict[str, bytes]:
    """Send ``sig`` when ``folder`` holds ``cells`` finished cells, after ``delay`` seconds
    (None: send nothing, wait for the process to end: it kills itself); returns the cell
    files on disk just before it (a cell file appears whole, by a rename)."""
    try:
        wait_for(proc, folder, cells)
        time.sleep(delay)
        if sig is None:
            proc.wait(timeout=120)
        seen = cell_files(folder)
        if proc.poll() is None:
            proc.send_signal(sig)
        proc.wait(timeout=120)
        return seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


#: ``python -c DIE_AT WHAT N lshprof-args...``: lshprof with a ``kill -9`` of itself at the
#: N-th rename of WHAT into place (``run.json``, or ``cell``: a cell file), the new file
#: whole on disk under its temporary name: the worst instants of a write, made certain
DIE_AT = r"""
import os, signal, sys
from pathlib import Path
what, nth = sys.argv[1], int(sys.argv[2])
real, count = os.replace, [0]
def replace(src, dst, *a, **k):
    d = Path(dst)
    if (d.name == "run.json") if what == "run.json" else (d.parent.name == "cells"):
        count[0] += 1
        if count[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from lshprof.cli import main
sys.argv = ["lshprof", *sys.argv[3:]]
sys.exit(main(sys.argv[1:]))
"""


def die_at(world: World, what: str, nth: int, folder: Path, logs: Path) -> subprocess.Popen:
    argv = [sys.executable, "-c", DIE_AT, what, str(nth),
            *world.argv("-o", folder)[len(world.cmd):]]
    return world.spawn(argv=argv, logs=logs)


# == (1) kill -9 at random points of a run ====================================================
@pytest.mark.parametrize("name, cells, delay", RUN_KILLS, ids=[k[0] for k in RUN_KILLS])
def test_kill_9_at_a_random_point_of_a_run(world, tmp_path, name, cells, delay):
    out = tmp_path / "run"
    proc = world.spawn("-o", out, logs=tmp_path / "log")
    seen = kill_at(proc, out, cells, delay)
    when = f"kill -9 {name} (after {cells} cells + {delay} s)"
    assert proc.returncode == -signal.SIGKILL, f"{when}: the run ended first ({proc.returncode})"
    if name == "very-early":
        assert not (out / RUN_FILE).exists(), f"{when}: run.json existed already"
    if (out / LOCK_FILE).exists():   # left behind, and held by no one
        assert lock_holder(out) is None, when
    assert_consistent(world, out, seen, tmp_path / "x", when=when)


@pytest.mark.parametrize("what, nth, cells", [("run.json", 1, 0), ("cell", 3, 2),
                                              ("run.json", 3, 1), ("cell", N_CELLS, N_CELLS - 1)],
                         ids=["first-run-json-not-renamed", "third-cell-not-renamed",
                              "first-cell-kept-run-json-not-renamed", "last-cell-not-renamed"])
def test_kill_9_at_the_worst_instant_of_a_write(world, tmp_path, what, nth, cells):
    """The new file is whole on disk under its temporary name, not yet renamed: the first
    run.json (the folder holds its lock files, cells/ and that temporary file), a cell, or
    the run.json that counts the first cell (renamed into place already)."""
    out = tmp_path / "run"
    proc = die_at(world, what, nth, out, tmp_path / "log")
    seen = kill_at(proc, out, None, 0.0, sig=None)   # it kills itself
    when = f"kill -9 before the rename of {what} #{nth}"
    assert proc.returncode == -signal.SIGKILL, f"{when}: {Path(f'{tmp_path}/log.err').read_text()}"
    assert any(".tmp-" in p.name for p in out.rglob(".*")), f"{when}: no temporary file left"
    assert len(seen) == cells, f"{when}: {len(seen)} cells on disk"
    assert_consistent(world, out, seen, tmp_path / "x", when=when)


# == (2) kill -9 during a resume ==============================================================
def test_kill_9_during_resumes(world, tmp_path):
    """A run killed after some cells, its resume killed at random points (and once at the
    resume's first rewrite of run.json), each time checked, and then resumed to the end."""
    out = tmp_path / "run"
    seen = kill_at(world.spawn("-o", out, logs=tmp_path / "log0"), out, RESUME_AFTER,
                   0.0)
    assert_consistent(world, out, seen, tmp_path / "x0", when="run killed", resume=False)
    for i, (name, cells, delay) in enumerate(RESUME_KILLS, 1):
        before = cell_files(out)
        seen = kill_at(world.spawn("-o", out, logs=tmp_path / f"log{i}"), out, cells, delay)
        when = f"kill -9 of a resume, {name} (after {cells} cells + {delay} s)"
        assert_nothing_lost(out, before, when)
        assert_consistent(world, out, seen, tmp_path / f"x{i}", when=when, resume=False)
    # the resume killed as it rewrites run.json the first time (its new temporary file whole)
    seen = cell_files(out)
    proc = die_at(world, "run.json", 1, out, tmp_path / "log-die")
    kill_at(proc, out, None, 0.0, sig=None)
    assert proc.returncode == -signal.SIGKILL
    assert_consistent(world, out, seen, tmp_path / "x-die", when="kill -9 at a resume's "
                      "first run.json rename")


# == (3) two writers, one folder ==============================================================
def test_a_second_writer_is_refused_naming_the_live_one(world, tmp_path):
    """The first writer is stopped (SIGSTOP) after its first cell, so that it is surely
    alive, and holds its lock, while the second starts; then it goes on (SIGCONT)."""
    out = tmp_path / "run"
    first = world.spawn("-o", out, logs=tmp_path / "first")
    try:
        wait_for(first, out, 1)
        first.send_signal(signal.SIGSTOP)
        assert first.poll() is None, "the first run ended before the second started"
        seen = cell_files(out)
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        second = world.run("-o", out)
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert_readable(out, "a live run's folder, read", tmp_path / "live")   # as a reader may
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2, second.stdout + second.stderr
        assert one_line(second.stderr), second.stderr
        assert f"is being written by another lshprof run (pid {first.pid}" in second.stderr
        assert after == before, "the refused writer changed the folder"
        assert first.wait(timeout=120) == 0, Path(f"{tmp_path}/first.err").read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "resumed_at" not in read_run(out)          # the second did not resume it
    assert_complete(world, out, seen, "two writers")
    assert_consistent(world, out, seen, tmp_path / "x", when="two writers")


def test_two_writers_started_together(world, tmp_path):
    """Started at the same instant into a new folder: one runs, the other is refused with
    one line naming it (or, when the first finished before the second looked, finds
    nothing to run)."""
    out = tmp_path / "run"
    procs = [world.spawn("-o", out, logs=tmp_path / f"w{i}") for i in (0, 1)]
    for p in procs:
        p.wait(timeout=300)
    errs = [Path(f"{tmp_path}/w{i}.err").read_text() for i in (0, 1)]
    codes = [p.returncode for p in procs]
    assert sorted(codes) in ([0, 2], [0, 0]), (codes, errs)
    if codes == [0, 0]:   # the second looked after the first had ended: nothing to run
        assert "resumed_at" not in read_run(out), "both wrote the folder"
    else:
        loser = codes.index(2)
        assert one_line(errs[loser]), errs[loser]
        assert f"(pid {procs[1 - loser].pid}" in errs[loser], errs[loser]
    assert_complete(world, out, {}, "two writers started together")


# == (4) a stale lock ==========================================================================
def test_a_stale_lock_does_not_block_the_resume(world, tmp_path):
    """kill -9 leaves .lock (and the holder's record); no process holds the lock, so the
    next writer takes it, even when the record names a live process (a reused pid)."""
    out = tmp_path / "run"
    seen = kill_at(world.spawn("-o", out, logs=tmp_path / "log"), out, 2, 0.0)
    assert (out / LOCK_FILE).exists()
    assert lock_holder(out) is None
    (out / HOLDER_FILE).write_text(json.dumps({"pid": os.getpid(), "machine": machine_key(),
                                               "started_at": "2025-01-01T00:00:00+00:00",
                                               "command": "lshprof run ci"}) + "\n")
    assert lock_holder(out) is None
    assert_consistent(world, out, seen, tmp_path / "x", when="stale lock, live pid recorded")


# == (5) a full disk ===========================================================================
@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size)``: a tmpfs of ``size`` at a folder of ``tmp_path`` (remounted when
    called again); skipped where mounting is not allowed; always unmounted."""
    d = tmp_path / "disk"
    d.mkdir()
    mounted = []

    def mount(size: str) -> Path:
        opts = f"remount,size={size}" if mounted else f"size={size}"
        cmd = ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)] if not mounted \
            else ["mount", "-o", opts, str(d)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            why = r.stderr.strip() or f"exit {r.returncode}"
            if not mounted:
                pytest.skip(f"cannot mount a tmpfs here ({why}; euid {os.geteuid()}): a full "
                            "disk is made with a tiny tmpfs, which needs root")
            raise AssertionError(f"{' '.join(cmd)}: {why}")
        mounted.append(size)
        return d

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("not root: a full disk is made with a tiny tmpfs, which needs root")
    yield mount
    if mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.parametrize("size", ["16k", "40k"], ids=["run-json-fits-no-cell", "a-few-cells"])
def test_a_full_disk_ends_in_one_line_and_resumes(world, tmp_path, tmpfs, size):
    out = tmpfs(size) / "run"
    r = world.run("-o", out)
    when = f"a full disk ({size} tmpfs)"
    assert r.returncode != 0, f"{when}: the run passed: {r.stderr}"
    assert one_line(r.stderr), f"{when}: {r.stderr}"
    assert "No space left on device" in r.stderr, r.stderr
    kept = cell_files(out)
    if kept:
        assert f"{len(kept)} of {N_CELLS} cells finished and are kept" in r.stderr, r.stderr
        assert "resume with: lshprof run " in r.stderr, r.stderr
    assert_readable(out, when, tmp_path / "x")
    # resumed while the disk is still full: the same line, nothing lost
    rc, o, err = world.resume(out)
    assert rc == 2 and one_line(err) and "No space left on device" in err, (rc, err)
    assert_nothing_lost(out, kept, f"{when}, resumed on the full disk")
    # a copy elsewhere resumes; so does the folder, once the disk is larger
    copy = shutil.copytree(out, tmp_path / "copy")
    assert_consistent(world, copy, kept, tmp_path / "y", when=f"{when}, copied elsewhere")
    tmpfs("4m")
    assert_consistent(world, out, kept, tmp_path / "z", when=f"{when}, remounted larger")


# == (6) SIGTERM ===============================================================================
def test_sigterm_mid_run_marks_it_interrupted_and_prints_the_resume(world, tmp_path):
    out = tmp_path / "run"
    proc = world.spawn("-o", out, logs=tmp_path / "log")
    seen = kill_at(proc, out, 2, 0.0, sig=signal.SIGTERM)
    err = Path(f"{tmp_path}/log.err").read_text()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated (SIGTERM): " in err, err
    meta = read_run(out)
    assert meta["status"] == "interrupted" and not meta["complete"]
    command = err.split("resume with: ")[1].splitlines()[0].split()
    assert command[:2] == ["lshprof", "run"] and str(out) in command, command
    assert_readable(out, "SIGTERM", tmp_path / "x")
    seen = {**seen, **cell_files(out)}
    rc, o, e = cli(*command[1:])
    assert rc == 0, e
    assert_complete(world, out, seen, "SIGTERM, resumed with the printed command")


def test_sigterm_before_the_sweep_leaves_nothing_half_written(world, tmp_path):
    out = tmp_path / "run"
    proc = world.spawn("-o", out, logs=tmp_path / "log")
    seen = kill_at(proc, out, None, 0.05, sig=signal.SIGTERM)
    assert proc.returncode in (-signal.SIGTERM, 143), proc.returncode
    assert_consistent(world, out, seen, tmp_path / "x", when="SIGTERM before the sweep")


# == (7) RAPL counters that step back or leap ===================================================
class Counter(threading.Thread):
    """Drives a fake package counter while a run reads it: 2.5 W (5 mJ every 2 ms) and, every
    third step, the fault: ``back`` (12 mJ less: a reset, a glitch; more than the steps
    between add, so an epoch that spans one sees the counter fall) or ``leap`` (100 kJ more:
    modulo the counter's range, some leaps read as a fall too); ``over``: the package counter
    reads 3 ranges above its true value (above its max_energy_range_uj); ``overdraw``: the
    package counts 6 J a step, 3 kW, three times the 1000 W assumed when a zone advertises
    no maximum. The dram counter runs steadily. Each value is written whole (a rename), as
    sysfs shows it."""

    def __init__(self, tree, fault: str):
        super().__init__(daemon=True)
        self.tree, self.fault, self.stop = tree, fault, threading.Event()
        self.uj = {z: tree.get(z) for z in tree.dirs}
        self.faults = 0

    def write(self, zone, uj):
        path = self.tree.dirs[zone] / "energy_uj"
        tmp = path.with_name(".energy_uj.new")
        tmp.write_text(f"{uj}\n")
        os.replace(tmp, path)

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            for zone in self.uj:
                package = zone == "intel-rapl:0"
                step = 6_000_000 if package and self.fault == "overdraw" else 5_000
                self.faults += package and self.fault == "overdraw"
                self.uj[zone] = (self.uj[zone] + step) % BIG
                if zone == "intel-rapl:0" and i % 3 == 0 and self.fault in ("back", "leap"):
                    step = -12_000 if self.fault == "back" else 100_000_000_000
                    self.uj[zone] = (self.uj[zone] + step) % BIG
                    self.faults += 1
                shown = self.uj[zone]
                if zone == "intel-rapl:0" and self.fault == "over":   # above its range
                    shown += 3 * BIG
                    self.faults += 1
                self.write(zone, shown)
            time.sleep(0.002)


FELL, ROSE = "counter reset or stepped back on package-0", "counter jumped on package-0"


def run_with_counter(world, tmp_path, fault, *, first_fault=False):
    """The scenario run with ``--energy powercap`` on a fake package + dram tree whose
    package counter a :class:`Counter` thread drives as ``fault`` says, for the whole run
    (``first_fault``: from its first fault on). Returns ``(CompletedProcess, counter, run
    folder, the energy options)``."""
    tree = make_tree(tmp_path / "rapl", [("intel-rapl:0", "package-0", 10**9),
                                         ("intel-rapl:0:0", "dram", 10**9)])
    options = ("--energy", "powercap", "--powercap-root", tree.root)
    out = tmp_path / "run"
    counter = Counter(tree, fault)
    counter.start()
    try:
        while first_fault and not counter.faults:
            time.sleep(0.001)
        r = world.run("-o", out, *options)
    finally:
        counter.stop.set()
        counter.join()
    return r, counter, out, options


@pytest.mark.parametrize("fault, notes", [("back", (FELL,)), ("leap", (ROSE, FELL))])
def test_counters_that_step_back_or_leap_are_not_figures(world, tmp_path, fault, notes):
    r, counter, out, options = run_with_counter(world, tmp_path, fault)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert counter.faults > 0
    df = load_results(out)
    assert set(df["energy_source"]) == {"measured"}
    for energy, wall in (("energy_j", "wall_elapsed_s"), ("eval_energy_j", "eval_wall_elapsed_s")):
        watts = df[energy] / df[wall]
        assert not (watts > 1000).any(), \
            f"{energy}: {df.loc[watts > 1000, ['cell', 'epoch', energy, wall]].to_string()}"
    missing = df["energy_j"].isna()
    assert missing.any(), "no epoch spanned a counter fault"
    for energy, note in (("energy_j", "energy_note"), ("eval_energy_j", "eval_energy_note")):
        said = df.loc[df[energy].isna(), note].astype(str)
        assert said.map(lambda t: any(n in t for n in notes)).all(), said.tolist()
        assert said.str.contains(": no measurement for this interval").all(), said.tolist()
    # a cell's energy is the sum of its epochs', or missing when one is: never a partial sum
    from lshprof.analysis.summary import cell_table

    cells = cell_table(df).set_index(["method", "seed"])["energy_j"]
    for (method, seed), rows in df.groupby(["method", "seed"]):
        if rows["energy_j"].isna().any():
            assert pd.isna(cells[(method, seed)]), (method, seed, cells[(method, seed)])
        else:
            assert cells[(method, seed)] == pytest.approx(rows["energy_j"].sum())
    totals = read_run(out)["totals"]
    assert totals["energy_j"] is None or totals["energy_j"] <= 1000 * totals["wall_s"], totals
    assert_consistent(world, out, cell_files(out), tmp_path / "x", when=f"RAPL {fault}",
                      options=options)


def test_a_counter_above_its_range_is_not_a_silent_figure(world, tmp_path):
    """energy_uj counts from 0 to max_energy_range_uj; a package counter that reads above
    its range (a driver or firmware fault, or a range in the wrong unit) breaks the wrap
    rule every figure rests on: the run refuses it in one line, or its figures say so."""
    r, _, out, _ = run_with_counter(world, tmp_path, "over", first_fault=True)
    assert "Traceback" not in r.stderr, r.stderr
    if r.returncode != 0:
        assert r.returncode == 2 and one_line(r.stderr), r.stderr
        assert "energy_uj" in r.stderr, r.stderr
        return
    df = load_results(out)
    note = df["energy_note"]
    silent = df["energy_j"].notna() & (note.isna() | note.astype(str).str.strip().eq(""))
    assert not silent.any(), (
        f"{int(silent.sum())} of {len(df)} rows hold a measured energy figure with no note, "
        f"from a package counter that reads above its max_energy_range_uj ({BIG}): e.g. "
        f"{df.loc[silent, 'energy_j'].iloc[0]} J")


def test_a_counter_drawing_three_times_the_maximum_is_not_a_silent_figure(world, tmp_path):
    """A package counter that counts 3 kW the whole run, where 1000 W is the most any zone
    without an advertised limit is taken to draw: no epoch's figure may imply more than
    1000 W without a note saying so (short intervals included: the meter's allowance for
    poll timing must not let 3x its ceiling pass as measured)."""
    r, _, out, _ = run_with_counter(world, tmp_path, "overdraw")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    df = load_results(out)
    for energy, wall, note in (("energy_j", "wall_elapsed_s", "energy_note"),
                               ("eval_energy_j", "eval_wall_elapsed_s", "eval_energy_note")):
        said = df[note]
        bad = (df[energy] / df[wall] > 1000) & (said.isna() | said.astype(str).str.strip().eq(""))
        assert not bad.any(), (
            f"{int(bad.sum())} of {len(df)} rows hold a measured {energy} implying more than "
            f"1000 W, with no note:\n"
            + df.loc[bad, ["cell", "epoch", energy, wall]].assign(
                watts=df[energy] / df[wall]).to_string())


def test_a_counter_that_cannot_be_read_mid_run(world, tmp_path):
    """energy_uj unreadable for a moment (text where the number belongs) after some cells:
    the run ends in one line with exit 2, the finished cells kept; the resume completes."""
    tree = make_tree(tmp_path / "rapl", [("intel-rapl:0", "package-0", 10**9)])
    options = ("--energy", "powercap", "--powercap-root", tree.root)
    out = tmp_path / "run"
    proc = world.spawn("-o", out, *options, logs=tmp_path / "log")
    counter = tree.dirs["intel-rapl:0"] / "energy_uj"
    try:
        wait_for(proc, out, 2)
        seen = cell_files(out)
        counter.write_text("unreadable\n")
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    counter.write_text(f"{10**9}\n")
    err = Path(f"{tmp_path}/log.err").read_text()
    assert proc.returncode == 2 and one_line(err) and "energy_uj" in err, (proc.returncode, err)
    assert read_run(out)["status"] == "failed"
    assert_consistent(world, out, seen, tmp_path / "x", when="an unreadable counter",
                      options=options)


# == (8) damaged files ===========================================================================
def _copy_of_reference(world: World, to: Path) -> Path:
    shutil.copytree(world.base / "reference", to)
    return to


def test_a_truncated_cell_file(world, tmp_path):
    out = _copy_of_reference(world, tmp_path / "run")
    files = cell_files(out)
    victim = sorted(files)[4]
    data = files[victim]
    (out / CELLS_DIR / victim).write_bytes(data[:len(data) // 2])
    with pytest.raises(ResultsError) as e:
        load_results(out)
    assert one_line(str(e.value)) and victim in str(e.value) and "corrupt" in str(e.value)
    for args in (("report", out, "-o", tmp_path / "r.html"), ("check", out, "--baseline", out)):
        rc, o, err = cli(*args)
        assert rc == 2 and one_line(err) and victim in err, (args, rc, o, err)
    # the resume is refused, naming the file and the fix; the fix works
    rc, o, err = world.resume(out)
    assert rc == 2 and one_line(err), err
    assert f"cannot resume {out}" in err and victim in err, err
    assert "delete it and resume the run" in err, err
    (out / CELLS_DIR / victim).unlink()
    del files[victim]
    # with it deleted, the folder is one whose cells were deleted: load says to resume
    with pytest.raises(ResultsError) as e:
        load_results(out)
    assert one_line(str(e.value)) and "resume the run" in str(e.value), e.value
    rc, o, err = world.resume(out)
    assert rc == 0, err
    assert_complete(world, out, files, "a truncated cell, deleted, resumed")


def test_a_copied_cell_file(world, tmp_path):
    out = _copy_of_reference(world, tmp_path / "run")
    files = cell_files(out)
    victim = sorted(files)[0]
    (out / CELLS_DIR / f"copy-of-{victim}").write_bytes(files[victim])
    with pytest.raises(ResultsError) as e:
        load_results(out)
    assert one_line(str(e.value)) and "both hold cell" in str(e.value)
    rc, o, err = world.resume(out)
    assert rc == 2 and one_line(err) and "both hold cell" in err, err
    (out / CELLS_DIR / f"copy-of-{victim}").unlink()
    assert_consistent(world, out, files, tmp_path / "x", when="a copied cell, deleted")


def test_a_truncated_run_json(world, tmp_path):
    """Refused everywhere in one line; a resume too (the code documents no way to rebuild
    run.json from the cells: the message says the rows may still be in cells/)."""
    out = _copy_of_reference(world, tmp_path / "run")
    files = cell_files(out)
    data = (out / RUN_FILE).read_bytes()
    (out / RUN_FILE).write_bytes(data[:len(data) // 2])
    with pytest.raises(ResultsError) as e:
        load_results(out)
    assert one_line(str(e.value)) and "corrupt" in str(e.value) and RUN_FILE in str(e.value)
    for args in (("report", out, "-o", tmp_path / "r.html"), ("check", out, "--baseline", out)):
        rc, o, err = cli(*args)
        assert rc == 2 and one_line(err), (args, rc, o, err)
    rc, o, err = world.resume(out)
    assert rc == 2 and one_line(err) and RUN_FILE in err, err
    assert_nothing_lost(out, files, "a truncated run.json, after the refused resume")
