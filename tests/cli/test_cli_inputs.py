"""Hostile inputs to the commands besides ``lshprof run``: output files that cannot be
written (a folder where a file should be, a path under a file, a read-only or full file
system) and text that looks like rich markup. Each write error is one line naming the
file and the fix, exit status 2, and nothing half-written is left behind.

The tests run as root here, where permissions do not stop a write: a read-only or full
file system is a small tmpfs mounted for the test (skipped, with the reason, where
mounting is not permitted) and unmounted after it.
"""

import errno
import json
import os
import subprocess

import pytest

from lshprof.cli import app as cli
from fake_sysfs import make_tree

PAGE = 4096  # a tmpfs gives out whole pages


# -- file systems that refuse writes --------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(name, options)``: a tmpfs mounted at ``tmp_path/name`` for this test."""
    mounted = []

    def mount(name, options):
        d = tmp_path / name
        d.mkdir()
        if getattr(os, "geteuid", lambda: -1)() != 0:
            pytest.skip("mounting a tmpfs (a full or read-only file system) needs root")
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)],
                               capture_output=True, text=True, timeout=30)
        except OSError as exc:
            pytest.skip(f"cannot run mount: {exc}")
        if r.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip()}")
        mounted.append(d)
        return d

    yield mount
    for d in reversed(mounted):
        subprocess.run(["umount", str(d)], capture_output=True, timeout=30)


def fill(folder, free_pages=0):
    """Fill the file system of ``folder`` with page-sized files, then free ``free_pages``."""
    n = 0
    while True:
        try:
            (folder / f".fill{n}").write_bytes(b"\0" * PAGE)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            (folder / f".fill{n}").unlink(missing_ok=True)
            break
        n += 1
    for i in range(free_pages):
        (folder / f".fill{n - 1 - i}").unlink()
    assert os.statvfs(folder).f_bavail == free_pages


@pytest.fixture
def target(tmp_path, tmpfs):
    """``target(kind, name)``: ``(path to give, folder to watch)`` for an output that
    cannot be written: ``under_file`` (a part of the path is a file), ``folder`` (a folder
    of that name exists), ``file`` (a file of that name exists, where a folder should be),
    ``readonly`` (a read-only file system), ``full`` (no space left) or ``nospace`` (one
    page left, too little for the file)."""
    def make(kind, name):
        if kind == "under_file":
            (tmp_path / "a-file").write_text("x")
            return tmp_path / "a-file" / name, tmp_path
        if kind == "folder":
            (tmp_path / name).mkdir()
            return tmp_path / name, tmp_path
        if kind == "file":
            (tmp_path / name).write_text("x")
            return tmp_path / name, tmp_path
        if kind == "readonly":
            d = tmpfs("ro", "ro,size=64k")
            return d / name, d
        d = tmpfs("small", "size=64k")
        fill(d, 0 if kind == "full" else 1)
        return d / name, d
    return make


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def one_line_error(rc, err, path):
    """What every write error gives: exit 2, one line (after any banner) naming the path."""
    assert rc == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lshprof ") and ": error: " in last and str(path) in last, err
    return last


# -- inputs for the commands ----------------------------------------------------------------------
EPOCHS = 3
SETTINGS = {"data": {"dataset": "gaussian"}, "network": {"hidden": [16]},
            "training": {"epochs": EPOCHS}}


def baseline_dict(n_sparse=2, labels=("wta", "lsh")):
    """A baseline file's content: dense and ``n_sparse`` cells of each label."""
    def cell(label, kind, fraction, seed):
        return {"label": label, "kind": kind, "fraction": fraction, "seed": seed,
                "threads": 1, "epochs": EPOCHS, "accuracy": 0.9,
                "counts": {"macs_total": 1000 * (seed + 1), "bytes_moved": 8000},
                "active_fraction": [fraction or 1.0], "time_s": [0.01, 0.011, 0.012],
                "energy_j": None, "energy_source": "estimated", "reference_s": 0.0005}

    cells = {"dense|fraction=-|seed=0|threads=1": cell("dense", "dense", None, 0)}
    for label in labels:
        for i in range(n_sparse):
            cells[f"{label}|fraction=0.125|seed={i}|threads=1"] = cell(label, label, 0.125, i)
    return {"format": "lshprof-baseline", "version": 1, "created_at": "2026-01-01T00:00:00",
            "source_run": "hand", "scenario": "hand", "settings": SETTINGS, "check": {},
            "lshprof_version": "0.1.0", "machine": "test CPU", "energy_source": "estimated",
            "cells": cells}


def make_run(folder, n_cells):
    """A complete run folder of ``n_cells`` lsh cells and one dense cell."""
    from lshprof.experiment.results import RunWriter

    meta = {"scenario": {"name": "hand", "settings": SETTINGS},
            "machine": {"cpu_model": "test CPU"}}
    with RunWriter(folder, meta) as w:
        for i in range(n_cells + 1):
            method = "dense" if i == 0 else "lsh"
            cell_id = f"{method}|fraction={'-' if i == 0 else 0.125}|seed={i}|threads=1"
            w.add_cell(cell_id, [
                {"cell": cell_id, "method": method, "layer_method": method, "seed": i,
                 "threads": 1, "fraction": None if i == 0 else 0.125, "epoch": e,
                 "eval_accuracy": 0.9, "macs_total": 1000, "wall_elapsed_s": 0.01 * e,
                 "energy_source": "estimated", "layer_active_fraction": [0.125]}
                for e in range(1, EPOCHS + 1)])
    return folder


# -- write errors ---------------------------------------------------------------------------------
KINDS = ["under_file", "folder", "readonly", "full"]


def baseline_file(tmp_path, n_sparse=2):
    p = tmp_path / "inputs" / "baseline.json"
    p.parent.mkdir(exist_ok=True)
    p.write_text(json.dumps(baseline_dict(n_sparse)))
    return p


@pytest.mark.parametrize("kind", KINDS + ["nospace"])
@pytest.mark.parametrize("option", ["--markdown", "--junit"])
def test_check_outputs_that_cannot_be_written(tmp_path, target, capsys, kind, option):
    """The check is printed, then the report file fails whole: one line, exit 2 (not 1,
    and not the pass it found), no file and no temporary file."""
    base = baseline_file(tmp_path, n_sparse=12)  # outputs larger than the one free page
    path, watch = target(kind, "check.out")
    before = listing(watch)
    rc = cli.main(["check", str(base), "--baseline", str(base), option, str(path)])
    last = one_line_error(rc, capsys.readouterr().err, path)
    assert listing(watch) == before
    expect = {"under_file": "a part of it is a file, not a folder",
              "folder": "is a folder; give a file name",
              "readonly": "read-only file system", "full": "no space left on the device",
              "nospace": "No space left on device; free space or choose another file with "
                         f"{option}"}[kind]
    assert expect in last


@pytest.mark.parametrize("kind", KINDS + ["nospace"])
def test_baseline_output_that_cannot_be_written(tmp_path, target, capsys, kind):
    run = make_run(tmp_path / "inputs" / "run", n_cells=20)
    path, watch = target(kind, "baseline.json")
    before = listing(watch)
    rc = cli.main(["baseline", str(run), "-o", str(path)])
    one_line_error(rc, capsys.readouterr().err, path)
    assert listing(watch) == before


def test_an_old_baseline_survives_a_full_disk(tmp_path, tmpfs, capsys):
    """Writing over an existing file on a full disk keeps the old file whole."""
    run = make_run(tmp_path / "run", n_cells=20)
    d = tmpfs("small", "size=64k")
    old = d / "baseline.json"
    old.write_text("old\n")
    fill(d, 1)
    rc = cli.main(["baseline", str(run), "-o", str(old)])
    one_line_error(rc, capsys.readouterr().err, old)
    assert old.read_text() == "old\n"
    assert not [p for p in d.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", [
    ["sysinfo", "--powercap-root", "/nonexistent", "--json"],
    ["quality", "--n-in", "8", "--n-out", "20", "--n-train", "50", "--n-queries", "5",
     "--families", "srp", "--policies", "union", "--json"],
    ["demo", "--n-train", "60", "--n-test", "20", "--epochs", "1", "--hidden", "8",
     "--energy", "none", "--json"],
    ["calibrate", "--powercap-root", "/nonexistent", "-o"],
    ["bench", "--suite", "speed", "--json"],
], ids=["sysinfo", "quality", "demo", "calibrate", "speed"])
def test_json_outputs_are_checked_before_any_work(target, capsys, kind, command):
    """Every output file option is checked before the command works: a target it could
    never write is one line, before any measurement."""
    path, watch = target(kind, "out.json")
    before = listing(watch)
    rc = cli.main([*command, str(path)])
    captured = capsys.readouterr()
    one_line_error(rc, captured.err, path)
    assert captured.out == ""  # nothing ran
    assert listing(watch) == before


@pytest.mark.parametrize("command", [
    ["quality", "--n-in", "8", "--n-out", "20", "--n-train", "50", "--n-queries", "5",
     "--json"],
    ["demo", "--n-train", "60", "--n-test", "20", "--epochs", "1", "--hidden", "8",
     "--energy", "none", "--json"],
], ids=["quality", "demo"])
def test_json_output_on_a_disk_that_fills(target, capsys, command):
    """The disk has a page left, the results need more: after the work, one line, no file."""
    path, watch = target("nospace", "out.json")
    before = listing(watch)
    rc = cli.main([*command, str(path)])
    last = one_line_error(rc, capsys.readouterr().err, path)
    assert "No space left on device; free space or choose another file with --json" in last
    assert listing(watch) == before


@pytest.mark.parametrize("kind", ["under_file", "file", "readonly", "full"])
def test_demo_run_folder_that_cannot_be_written(tmp_path, target, capsys, kind):
    path, watch = target(kind, "run")
    before = listing(watch)
    rc = cli.main(["demo", "--n-train", "60", "--n-test", "20", "--epochs", "1", "--hidden",
                   "8", "--methods", "dense", "--energy", "none", "-o", str(path)])
    captured = capsys.readouterr()
    one_line_error(rc, captured.err, path)
    assert captured.out == "" and listing(watch) == before


def test_outputs_that_are_devices_are_refused(tmp_path, capsys):
    """An atomic write renames a new file over the target: over a device (as root, over
    /dev/null itself, for every process) or a FIFO. A target that exists and is not a
    regular file is refused. (The device is a copy of /dev/null made here: a regression
    must not be able to break the machine's own.)"""
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    targets = [fifo]
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets.append(tmp_path / "null")
    except (OSError, AttributeError):  # not root, or no device nodes here: the FIFO only
        pass
    for path in targets:
        rc = cli.main(["sysinfo", "--powercap-root", "/nonexistent", "--json", str(path)])
        last = one_line_error(rc, capsys.readouterr().err, path)
        assert "is not a regular file" in last
        assert not path.is_file()  # still the FIFO or device


# -- pyperf's output file -------------------------------------------------------------------------
BENCH = ["bench", "--methods", "dense", "--phases", "forward", "--shapes", "small",
         "--processes", "1", "--values", "1", "--loops", "1", "--warmups", "0"]


@pytest.mark.parametrize("kind, words", [
    ("folder", "is a folder; give a file name"),
    ("readonly", "read-only file system"),
    ("under_file", "a part of it is a file, not a folder"),
])
def test_bench_output_that_cannot_be_written(lshprof_run, target, kind, words):
    path, watch = target(kind, "bench.json")
    before = listing(watch)
    r = lshprof_run(*BENCH, "-o", path)
    assert words in one_line_error(r.returncode, r.stderr, path)
    assert listing(watch) == before


def test_bench_refuses_an_existing_output_as_a_usage_error(lshprof_run, tmp_path):
    """pyperf itself says "already exists" and exits 1 (a failure); it is a usage error."""
    old = tmp_path / "old.json"
    old.write_text("{}")
    r = lshprof_run(*BENCH, "-o", old)
    assert "already exists" in one_line_error(r.returncode, r.stderr, old)
    assert old.read_text() == "{}"


def test_bench_append_on_a_full_disk_keeps_the_old_file(lshprof_run, tmpfs):
    """pyperf rewrites an --append file in place after each benchmark: on a full disk that
    truncated it. It now writes a copy and renames it over the old file at the end, so the
    old results survive the error whole."""
    import pyperf

    d = tmpfs("small", "size=64k")
    old = d / "results.json"
    run = pyperf.Run([1.0], metadata={"name": "padding", "note": "x" * 3000, "loops": 1},
                     collect_metadata=False)
    pyperf.Benchmark([run]).dump(str(old))
    text = old.read_text()
    assert PAGE // 2 < len(text) < PAGE  # one page; with one more benchmark, two
    fill(d, 1)  # room for the copy, not for the copy with a new benchmark
    r = lshprof_run(*BENCH, "--append", old)
    last = one_line_error(r.returncode, r.stderr, old)
    assert "No space left on device" in last
    assert old.read_text() == text
    assert not [p for p in d.iterdir() if ".tmp-" in p.name]


# -- text that looks like markup ------------------------------------------------------------------
def test_sysinfo_prints_a_path_with_brackets_as_written(tmp_path, capsys):
    """A powercap root named like rich markup: printed as written, no crash."""
    root = tmp_path / "tree[/bold]" / "lsh[/]"
    rc = cli.main(["sysinfo", "--powercap-root", str(root)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"powercap root {root})" in out.replace("\n", "")
    real = make_tree(tmp_path / "[blink red]dense", [("intel-rapl:0", "package-0", 5)])
    assert cli.main(["sysinfo", "--powercap-root", str(real.root)]) == 0
    assert "[blink red]dense" in capsys.readouterr().out


def test_demo_notes_with_brackets_do_not_crash(tmp_path, capsys):
    """The energy fallback note names the powercap root: printed as text."""
    rc = cli.main(["demo", "--n-train", "60", "--n-test", "20", "--epochs", "1", "--hidden",
                   "8", "--methods", "dense", "--powercap-root", str(tmp_path / "x[/]"),
                   "-o", str(tmp_path / "run[/bold]")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{tmp_path / 'x[/]'}" in captured.err.replace("\n", "")
    assert f"measurements written to {tmp_path / 'run[/bold]'}" in captured.out.replace("\n", "")


@pytest.mark.parametrize("label", ["[/bold]", "lsh[/]", "[blink red]dense", "a\\[b]", "x\\"])
def test_check_prints_labels_as_written(tmp_path, capsys, label):
    """A method label is printed as written in the check's table: no crash, no style, no
    lost characters."""
    d = baseline_dict(1, labels=("wta",))
    d["cells"]["wta|fraction=0.125|seed=0|threads=1"]["label"] = label
    base = tmp_path / "b.json"
    base.write_text(json.dumps(d))
    assert cli.main(["check", str(base), "--baseline", str(base)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "work" in line and "@0.125" in line]
    assert len(rows) == 1 and f"│ {label} @0.125, seed 0, 1 thread " in rows[0], out
