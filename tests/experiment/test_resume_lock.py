"""One writer per run folder: the OS lock a RunWriter holds, what a second writer is told,
and a lock that a killed writer leaves behind (issue 18, item 6)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lshprof.cli import main
from lshprof.errors import ResultsError
from lshprof.experiment.results import (HOLDER_FILE, LOCK_FILE, RunWriter, load_results,
                                        lock_holder, read_run)

WRITER = textwrap.dedent("""
    import json, sys, time
    from lshprof.errors import ResultsError
    from lshprof.experiment.results import RunWriter

    folder, start = sys.argv[1], float(sys.argv[2])
    while time.time() < start:          # both writers open the folder at the same instant
        time.sleep(0.001)
    try:
        w = RunWriter(folder, {"scenario": {"name": "race"}}, resume=True)
    except ResultsError as exc:
        print("refused", exc, flush=True)
        sys.exit(3)
    time.sleep(1.0)                     # held: the other writer meets the lock
    for i in range(5):
        if f"c{i}" not in w.finished_cells():
            w.add_cell(f"c{i}", [{"cell": f"c{i}", "epoch": 1, "writer": w._pid}])
    w.finish()
    print("done", flush=True)
""")


def test_two_writers_at_once_one_is_refused(tmp_path, cli_env):
    """Two processes open the same new folder at the same instant: one writes it, the other
    is refused with one line naming the first's pid, and the folder holds each cell once."""
    folder = tmp_path / "race"
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(start)],
                              env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    winner = next(p for p in procs if p.returncode == 0)
    (refusal,) = [o for p, (o, _) in zip(procs, outs) if p.returncode == 3]
    assert refusal.startswith(f"refused {folder} is being written by another lshprof run "
                              f"(pid {winner.pid}, started ")
    assert len(refusal.strip().splitlines()) == 1
    df = load_results(folder)
    assert sorted(df["cell"]) == [f"c{i}" for i in range(5)] and set(df["writer"]) == {winner.pid}
    assert read_run(folder)["complete"] and lock_holder(folder) is None


HOLDER = textwrap.dedent("""
    import sys, time
    from lshprof.experiment.results import RunWriter

    w = RunWriter(sys.argv[1], {"scenario": {"name": "killed"}})
    w.add_cell("a", [{"cell": "a", "epoch": 1}])
    print("ready", flush=True)
    time.sleep(120)
""")


def test_lock_of_a_killed_writer_is_free(tmp_path, cli_env):
    """kill -9 leaves .lock and the holder's record, but the OS no longer holds the lock:
    the next writer takes it and resumes, and nobody is named as holding it."""
    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        assert lock_holder(folder).startswith(f"pid {proc.pid}, started ")
        with pytest.raises(ResultsError, match=f"pid {proc.pid}"):
            RunWriter(folder, {}, resume=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert (folder / LOCK_FILE).exists() and (folder / HOLDER_FILE).exists()   # left behind
    assert lock_holder(folder) is None
    with RunWriter(folder, {}, resume=True) as w:
        assert w.finished_cells() == {"a": 1}
        assert json.loads((folder / HOLDER_FILE).read_text())["pid"] == os.getpid()
        w.add_cell("b", [{"cell": "b", "epoch": 1}])
    assert list(load_results(folder)["cell"]) == ["a", "b"]
    assert not (folder / HOLDER_FILE).exists()


def test_holder_words_when_its_record_is_stale_or_foreign(tmp_path):
    import filelock

    folder = tmp_path / "r"
    folder.mkdir()
    lock = filelock.FileLock(str(folder / LOCK_FILE), timeout=0)
    lock.acquire()
    try:
        assert lock_holder(folder, wait_s=0) == "a process that has not recorded its pid"
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        (folder / HOLDER_FILE).write_text(json.dumps({"pid": gone.pid, "command": "x"}))
        assert lock_holder(folder, wait_s=0) == (f"a process that has not recorded its pid; pid "
                                       f"{gone.pid} recorded before has ended")
        (folder / HOLDER_FILE).write_text(json.dumps(
            {"pid": 4242, "machine": "0123456789abcdef", "started_at": "2025-01-01T00:00:00+00:00",
             "command": "lshprof run ci -o r"}))
        assert lock_holder(folder) == ("pid 4242 on another machine, started "
                                       "2025-01-01T00:00:00+00:00: lshprof run ci -o r")
        (folder / HOLDER_FILE).write_bytes(b"\xff not json")
        assert lock_holder(folder, wait_s=0) == "a process that has not recorded its pid"
    finally:
        lock.release()
    assert lock_holder(folder) is None
    assert lock_holder(tmp_path / "no-lock-here") is None
    assert not (tmp_path / "no-lock-here").exists()       # asking writes nothing


SLOW = """
[scenario]
name = "slow"
[data]
dataset = "gaussian"
n_train = 4000
n_test = 50
n_features = 8
[network]
hidden = [256]
[training]
epochs = 3
[sweep]
fractions = [0.25]
seeds = [0, 1, 2]
[methods.dense]
[methods.lsh]
K = 4
L = 4
"""


def test_lshprof_run_killed_with_kill_9_resumes(tmp_path, lshprof_cmd, cli_env, capsys):
    """kill -9 of a running lshprof run: the next lshprof run into the folder resumes it (the
    dead run's lock does not stand in the way) and completes it, each cell once."""
    f = tmp_path / "slow.toml"
    f.write_text(SLOW)
    out = tmp_path / "run"
    proc = subprocess.Popen([*lshprof_cmd, "run", str(f), "-q", "--no-report", "-o", str(out)],
                            env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "run.json").exists() and read_run(out)["cells"] >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the sweep finished before the signal arrived")
    assert read_run(out)["status"] == "running" and (out / LOCK_FILE).exists()
    kept = load_results(out)
    assert main(["run", str(f), "--no-report", "-o", str(out)]) == 0
    assert f"resuming {out}: {kept['cell'].nunique()} of 6 cells already finished" in \
        capsys.readouterr().err
    df = load_results(out)
    assert df["cell"].nunique() == 6 and len(df) == 18 and read_run(out)["complete"]
    assert not df.duplicated(["cell", "epoch"]).any()


def test_a_run_killed_before_its_first_run_json_is_started_again(tmp_path, capsys):
    """What a writer killed before its first run.json leaves (the lock files, an empty
    cells/ and its temporary run.json) is no run and nothing of the user's: lshprof run
    into that folder starts the run, and clears the temporary file."""
    out = tmp_path / "run"
    (out / "cells").mkdir(parents=True)
    (out / LOCK_FILE).touch()
    (out / HOLDER_FILE).write_text(json.dumps({"pid": 999999}))
    (out / ".run.json.tmp-999999").write_text('{"format": "lshprof-run", "vers')
    (out / "cells" / ".dense-x.json.tmp-999999").write_text("{")
    f = tmp_path / "s.toml"
    f.write_text(SLOW.replace("n_train = 4000", "n_train = 100").replace("epochs = 3", "epochs = 1")
                 .replace("seeds = [0, 1, 2]", "seeds = [0]").replace("hidden = [256]",
                                                                      "hidden = [16]"))
    assert main(["run", str(f), "-q", "--no-report", "-o", str(out)]) == 0
    assert read_run(out)["complete"] and len(load_results(out)) == 2
    assert not [p for p in out.rglob(".*tmp-*")]
    # anything else in the folder is the user's: refused
    (tmp_path / "other" / "cells").mkdir(parents=True)
    (tmp_path / "other" / "cells" / "notes.txt").write_text("mine")
    assert main(["run", str(f), "-q", "--no-report", "-o", str(tmp_path / "other")]) == 2
    assert "is not empty and holds no lshprof run" in capsys.readouterr().err
