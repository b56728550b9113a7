"""The results store: run folders of one file per finished cell, written once, read back
checked; version-1 folders (measurements.csv) still read as before."""

import builtins
import json
import math
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lshprof.errors import ResultsError
from lshprof.experiment.results import (CELL_FORMAT, CELLS_DIR, FORMAT, FORMAT_VERSION,
                                        FORMAT_VERSIONS, HOLDER_FILE, LOCK_FILE, RUN_FILE,
                                        TABLE_FILE, RunWriter, cell_filename, load_results,
                                        lock_holder, machine_id, read_run)

DATA = Path(__file__).resolve().parents[1] / "data"  # tests/data: fixture files
V1 = DATA / "results-v1"          # made by tests/data/make_results_v1.py with the version-1 code


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def write_run(folder, rows, meta=None, status="complete"):
    """A finished run folder with one cell per row (each row gets method/seed/epoch)."""
    w = RunWriter(folder, meta or {"scenario": {"name": folder.name}})
    for i, r in enumerate(rows):
        w.add_cell(f"c{i}", [{"method": "m", "seed": 0, "epoch": i + 1, **r}])
    if status != "running":
        w.finish(status)
    return folder


def cell_files(folder):
    return sorted(p.name for p in (folder / CELLS_DIR).iterdir() if not p.name.startswith("."))


def temp_files(folder):
    return [p.name for d in (folder, folder / CELLS_DIR) if d.is_dir() for p in d.iterdir()
            if p.name.startswith(".") and ".tmp-" in p.name]


def snapshot(folder):
    """Every file of a run folder: relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def v1_copy(tmp_path):
    folder = tmp_path / "v1" / "run"
    shutil.copytree(V1 / "run", folder)
    return folder


def fixture_rows():
    """The fixture run's rows as the runner made them, grouped by cell in order."""
    cells = {}
    for r in pickle.loads((V1 / "rows.pickle").read_bytes()):
        cells.setdefault(r["cell"], []).append(r)
    return cells


def strict_json(text):
    def refuse(name):
        raise ValueError(f"not plain JSON: {name}")
    return json.loads(text, parse_constant=refuse)


# -- format versions -------------------------------------------------------------------------------
def test_format_versions_history():
    assert FORMAT_VERSION == 2 == max(FORMAT_VERSIONS)
    assert sorted(FORMAT_VERSIONS) == [1, 2]
    assert all(isinstance(v, str) and v and "\n" not in v for v in FORMAT_VERSIONS.values())
    assert TABLE_FILE == "measurements.csv"


# -- round trip ---------------------------------------------------------------------------------
FLOATS = [0.1 + 0.2, 1 / 3, 2.0 ** -1074, 1.7976931348623157e308, -0.0, 123456789.12345679,
          6.02214076e23, 1e-300, math.pi, math.inf, -math.inf]


def test_round_trip_values_and_run_columns(tmp_path):
    folder = tmp_path / "run1"
    meta = {"scenario": {"name": "rt", "n": 3}, "note": "hello"}
    rows = []
    for i, f in enumerate(FLOATS):
        rows.append({"method": "dense" if i % 2 else "lsh", "seed": i, "epoch": i + 1,
                     "big": 2 ** 62 + i, "x": f, "none": None, "flag": i % 3 == 0,
                     "lst": [1, 2.5, None], "dct": {"b": 1, "a": [True]}, "nan": math.nan,
                     "text": 'a,b "q"\nline é'})
    with RunWriter(folder, meta) as w:
        p0 = w.add_cell("first", rows[:1])
        p1 = w.add_cell("rest", rows[1:])
        assert p0 == folder / CELLS_DIR / cell_filename("first") and p1.exists()
        assert read_run(folder)["status"] == "running"
        assert read_run(folder)["cells"] == 2 and read_run(folder)["rows"] == len(rows)

    df = load_results(folder)
    assert len(df) == len(rows)
    assert list(df.columns[:5]) == ["run", "run_path", "run_status", "machine_key", "machine_id"]
    assert set(df["run"]) == {"run1"}
    assert set(df["run_path"]) == {str(folder)}
    assert set(df["run_status"]) == {"complete"}
    assert list(df["method"]) == [r["method"] for r in rows]
    assert list(df["seed"]) == [r["seed"] for r in rows]
    assert list(df["epoch"]) == [r["epoch"] for r in rows]
    assert [int(v) for v in df["big"]] == [r["big"] for r in rows]
    assert [bits(float(v)) for v in df["x"]] == [bits(f) for f in FLOATS]  # bit-exact
    assert repr(float(df["x"][0])) == repr(0.1 + 0.2) == "0.30000000000000004"
    assert df["none"].isna().all()
    assert df["nan"].isna().all()
    assert [bool(v) for v in df["flag"]] == [r["flag"] for r in rows]
    assert [json.loads(v) for v in df["lst"]] == [[1, 2.5, None]] * len(rows)
    assert [json.loads(v) for v in df["dct"]] == [{"a": [True], "b": 1}] * len(rows)
    assert list(df["text"]) == [r["text"] for r in rows]

    run = df.attrs["runs"]["run1"]
    assert run == json.loads((folder / RUN_FILE).read_text())
    assert run["format"] == FORMAT and run["version"] == FORMAT_VERSION
    assert run["status"] == "complete" and run["complete"] is True
    assert run["cells"] == 2 and run["rows"] == len(rows)
    assert run["scenario"] == meta["scenario"] and run["note"] == "hello"
    assert run["started_at"] and run["ended_at"] and run["ended_at"] >= run["started_at"]
    # a run.json path reads the same run
    df2 = load_results(folder / RUN_FILE)
    assert len(df2) == len(df) and [bits(v) for v in df2["x"]] == [bits(v) for v in df["x"]]
    assert read_run(folder / RUN_FILE) == run


def test_cell_file_content(tmp_path):
    folder = tmp_path / "r"
    rows = [{"epoch": 1, "x": 0.1 + 0.2, "nan": math.nan, "inf": math.inf, "ninf": -math.inf,
             "nested": [math.nan, 1.5, {"k": math.inf}], "big": 2 ** 70, "s": "é\n\"q\""},
            {"epoch": 2}]
    with RunWriter(folder, {}) as w:
        w.add_cell("a", [])
        path = w.add_cell("lsh|fraction=0.05|seed=0|threads=1", rows,
                          machine={"cpu_model": "cpu", "machine_key": "h"}, info={"wall_s": 1.25})
    text = path.read_text(encoding="utf-8")
    doc = strict_json(text)                  # no NaN or Infinity tokens
    assert list(doc) == ["format", "version", "cell", "seq", "written_at", "machine", "info",
                         "rows"]
    assert doc["format"] == CELL_FORMAT and doc["version"] == FORMAT_VERSION
    assert doc["cell"] == "lsh|fraction=0.05|seed=0|threads=1" and doc["seq"] == 1
    assert doc["machine"] == {"cpu_model": "cpu", "machine_key": "h"}
    assert doc["info"] == {"wall_s": 1.25} and doc["written_at"]
    r = doc["rows"][0]
    assert r["x"] == 0.1 + 0.2 and "0.30000000000000004" in text
    assert r["nan"] is None and r["inf"] == math.inf and r["ninf"] == -math.inf
    assert r["nested"] == [None, 1.5, {"k": math.inf}]
    assert r["big"] == 2 ** 70 and r["s"] == "é\n\"q\""
    assert doc["rows"][1] == {"epoch": 2}
    assert len(text.splitlines()) == 8 + 2 + 1        # header fields, one line a row, "]}"


def test_cell_filename_is_readable_and_unique():
    name = cell_filename("lsh|fraction=0.05|seed=0|threads=1")
    assert name.startswith("lsh-fraction-0.05-seed-0-threads-1-") and name.endswith(".json")
    assert len(name) == len("lsh-fraction-0.05-seed-0-threads-1-") + 8 + len(".json")
    ids = ["lsh|fraction=0.05|seed=0|threads=1", "LSH|fraction=0.05|seed=0|threads=1",
           "lsh fraction 0.05 seed 0 threads 1", "lsh|fraction=0.05|seed=0|threads=1|mode=hogwild",
           "", "...", "../../etc/passwd", "x" * 500, "é"]
    names = [cell_filename(i) for i in ids]
    assert len(set(names)) == len(ids)
    for n in names:
        assert not n.startswith(".") and "/" not in n and len(n) < 100
    assert cell_filename("lsh|fraction=0.05|seed=0|threads=1") == name   # stable


def test_rows_may_bring_new_columns(tmp_path):
    folder = write_run(tmp_path / "r", [{"a": 1}, {"a": 2, "b": 0.5}])
    df = load_results(folder)
    assert list(df["a"]) == [1, 2]
    assert math.isnan(df["b"][0]) and df["b"][1] == 0.5


def test_numpy_scalars_and_arrays_are_written_as_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    folder = write_run(tmp_path / "r", [{"i": np.int64(7), "f": np.float32(0.5),
                                        "b": np.bool_(True), "a": np.arange(3),
                                        "l": [np.float32(0.25), np.int16(2)]}],
                       meta={"arr": np.arange(3), "n": np.int32(4)})
    df = load_results(folder)
    assert df["i"][0] == 7 and df["f"][0] == 0.5 and bool(df["b"][0]) is True
    assert json.loads(df["a"][0]) == [0, 1, 2] and json.loads(df["l"][0]) == [0.25, 2]
    run = read_run(folder)
    assert run["arr"] == [0, 1, 2] and run["n"] == 4


def test_numpy_float64_is_written_as_a_number(tmp_path):
    np = pytest.importorskip("numpy")
    folder = write_run(tmp_path / "r", [{"d": np.float64(0.1) + np.float64(0.2)}])
    (f,) = cell_files(folder)
    assert '"d": 0.30000000000000004}' in (folder / CELLS_DIR / f).read_text()
    df = load_results(folder)
    assert bits(float(df["d"][0])) == bits(0.1 + 0.2)


def test_unwritable_value_writes_nothing(tmp_path):
    folder = tmp_path / "r"
    w = RunWriter(folder, {})
    before = snapshot(folder)
    with pytest.raises(TypeError):
        w.add_cell("c", [{"epoch": 1, "x": object()}])
    assert snapshot(folder) == before and w.finished_cells() == {}
    w.add_cell("c", [{"epoch": 1}])                        # the id is still free
    assert w.finished_cells() == {"c": 1}


# -- version 1 folders -------------------------------------------------------------------------------
def test_v1_fixture_loads_as_before(tmp_path):
    """The DataFrame the version-1 load_results read from the fixture (expected.json,
    written by that code) is the one this one reads."""
    folder = v1_copy(tmp_path)
    expected = json.loads((V1 / "expected.json").read_text())
    df = load_results(folder)
    assert list(df.columns) == expected["columns"]
    assert {c: str(t) for c, t in df.dtypes.items()} == expected["dtypes"]

    def cell(v):
        if isinstance(v, float):
            return None if math.isnan(v) else repr(v)
        return v.item() if hasattr(v, "item") else v

    for c, values in expected["values"].items():
        assert [cell(v) for v in df[c]] == values, c
    assert set(df["run_path"]) == {str(folder)}
    assert df.attrs["runs"]["run"]["version"] == 1 and df.attrs["machines"] == {}
    assert "machine_key" not in df.columns and "machine_id" not in df.columns
    assert json.loads(df["layer_active_fraction"].iloc[-1])          # JSON text, as before


def test_version_2_reads_as_version_1_did_for_the_same_rows(tmp_path):
    """The fixture's rows written as format 2 load into the DataFrame format 1 gave."""
    import pandas as pd

    v1 = load_results(v1_copy(tmp_path))
    folder = tmp_path / "v2" / "run"
    with RunWriter(folder, {"scenario": {"name": "v1-fixture"}}) as w:
        for cell_id, rows in fixture_rows().items():
            w.add_cell(cell_id, rows)
    v2 = load_results(folder)
    assert list(v2.columns) == [*v1.columns[:3], "machine_key", "machine_id", *v1.columns[3:]]
    # one difference: a NaN inside a list or dict is null in a cell file (plain JSON)
    nested_nan = [c for c in v1.columns if v1[c].astype(str).str.contains("NaN").any()]
    assert nested_nan == ["layer_selection"]
    v1_null = v1.copy()
    v1_null["layer_selection"] = [
        x if not isinstance(x, str) else
        json.dumps(json.loads(x, parse_constant=lambda c: None), sort_keys=True)
        for x in v1["layer_selection"]]
    pd.testing.assert_frame_equal(v2.drop(columns=["run_path", "machine_key", "machine_id"]),
                                  v1_null.drop(columns=["run_path"]), check_exact=True)
    for c in ("layer_active_fraction", "hidden", "params"):
        assert [json.loads(x) for x in v2[c]] == [json.loads(x) for x in v1[c]]


def test_v1_folder_is_not_resumed(tmp_path):
    folder = v1_copy(tmp_path)
    before = snapshot(folder)
    with pytest.raises(ResultsError) as ei:
        RunWriter(folder, {}, resume=True)
    msg = str(ei.value)
    assert "\n" not in msg and str(folder) in msg and "version-1" in msg
    assert "new folder" in msg
    with pytest.raises(ResultsError, match="already holds a run"):
        RunWriter(folder, {})
    assert snapshot(folder) == before


def test_v1_truncated_table(tmp_path):
    folder = v1_copy(tmp_path)
    table = folder / TABLE_FILE
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(lines[:-1]))  # the last row gone
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    msg = str(ei.value)
    assert str(table) in msg and "truncated" in msg and "3 rows" in msg and "4" in msg


def test_v1_table_truncated_mid_row(tmp_path):
    folder = v1_copy(tmp_path)
    table = folder / TABLE_FILE
    table.write_text(table.read_text()[:-8])
    with pytest.raises(ResultsError, match="truncated"):
        load_results(folder)


def test_v1_missing_table_with_rows_recorded(tmp_path):
    folder = v1_copy(tmp_path)
    (folder / TABLE_FILE).unlink()
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    assert str(folder / TABLE_FILE) in str(ei.value) and "missing" in str(ei.value)


@pytest.mark.parametrize("garbage", [
    b"\x00\xff\xfe\x80\x81\x9c garbage\n\x01\x02",
    b"hello world\nno table here\n",
    b"a,b\n1,2,3,4\n5\n",
    b"",
    b"\n\n\n",
], ids=["binary", "text", "ragged", "empty", "blank-lines"])
def test_v1_unparsable_table(tmp_path, garbage):
    folder = v1_copy(tmp_path)
    (folder / TABLE_FILE).write_bytes(garbage)
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    assert str(folder / TABLE_FILE) in str(ei.value)


def test_v1_and_v2_runs_load_together(tmp_path):
    parent = tmp_path / "runs"
    shutil.copytree(V1 / "run", parent / "a-v1")
    write_run(parent / "b-v2", [{"x": 1}], meta={"machine": {"cpu_model": "c"}})
    df = load_results(parent)
    assert list(df["run"]) == ["a-v1"] * 4 + ["b-v2"]
    assert df["machine_id"].iloc[:4].isna().all() and df["machine_id"].iloc[4]
    assert {m["version"] for m in df.attrs["runs"].values()} == {1, 2}


# -- context manager status -------------------------------------------------------------------------
def test_context_manager_complete(tmp_path):
    with RunWriter(tmp_path / "r", {}) as w:
        w.add_cell("c", [{"method": "m", "seed": 0, "epoch": 1}])
    run = read_run(tmp_path / "r")
    assert run["status"] == "complete" and run["complete"] is True and "error" not in run


def test_context_manager_exception_marks_failed_and_keeps_cells(tmp_path):
    with pytest.raises(RuntimeError):
        with RunWriter(tmp_path / "r", {}) as w:
            w.add_cell("c", [{"method": "m", "seed": 0, "epoch": 1, "x": 1.5}])
            raise RuntimeError("boom in cell 2")
    run = read_run(tmp_path / "r")
    assert run["status"] == "failed" and run["complete"] is False
    assert "RuntimeError" in run["error"] and "boom in cell 2" in run["error"]
    assert run["ended_at"]
    df = load_results(tmp_path / "r")
    assert list(df["x"]) == [1.5] and list(df["run_status"]) == ["failed"]


def test_context_manager_keyboard_interrupt_marks_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(tmp_path / "r", {}) as w:
            w.add_cell("c", [{"method": "m", "seed": 0, "epoch": 1}])
            raise KeyboardInterrupt
    run = read_run(tmp_path / "r")
    assert run["status"] == "interrupted" and run["complete"] is False
    df = load_results(tmp_path / "r")
    assert len(df) == 1 and list(df["run_status"]) == ["interrupted"]
    assert load_results(tmp_path / "r", complete_only=True).empty


def test_finish_rejects_unknown_status(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    with pytest.raises(ValueError):
        w.finish("running")
    with pytest.raises(ValueError):
        w.finish("done")


# -- kill -9 -------------------------------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import sys
    from lshprof.experiment.results import RunWriter

    def rows(i):
        return [{"method": "m", "seed": i, "epoch": e, "cell": f"cell-{i}", "i": i,
                 **{f"v{k}": (i * 1000 + e) / (k + 1) for k in range(40)},
                 "l": [i, e, None], "s": "x" * 200} for e in range(30)]

    w = RunWriter(sys.argv[1], {"scenario": {"name": "killed"}}, resume=True)
    done = w.finished_cells()
    print("ready", len(done), flush=True)
    for i in range(100000):
        if f"cell-{i}" not in done:
            w.add_cell(f"cell-{i}", rows(i))
            print("done", f"cell-{i}", flush=True)
""")


def test_killed_run_keeps_finished_cells(tmp_path, cli_env):
    folder = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import os, signal
        from lshprof.experiment.results import RunWriter
        w = RunWriter({str(folder)!r}, {{"scenario": {{"name": "killed"}}}})
        w.add_cell("a", [{{"method": "dense", "seed": 0, "epoch": 1, "loss": 0.5}}])
        w.add_cell("b", [{{"method": "dense", "seed": 0, "epoch": 2, "loss": 0.25}}])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", script], env=cli_env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    df = load_results(folder)
    assert list(df["epoch"]) == [1, 2] and list(df["loss"]) == [0.5, 0.25]
    assert set(df["run_status"]) == {"running"}
    run = df.attrs["runs"]["killed"]
    assert run["status"] == "running" and run["complete"] is False and run["ended_at"] is None
    assert run["cells"] == 2 and run["rows"] == 2
    assert temp_files(folder) == []
    assert load_results(folder, complete_only=True).empty


def test_kill_9_at_random_instants(tmp_path, cli_env):
    """A writer killed with SIGKILL at random instants, then resumed, each time: the
    folder loads, and what it loads is exactly the cell files that were completed."""
    folder = tmp_path / "run"
    rng = random.Random(int(os.environ.get("KILL_TEST_SEED", "20250101")))
    reported: set[str] = set()
    before: set[str] = set()
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(folder)], env=cli_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # the first line byte by byte from the pipe: a buffered readline could take the
            # next lines with it, where communicate() would no longer see them
            first = b""
            while not first.endswith(b"\n") and (ch := os.read(proc.stdout.fileno(), 1)):
                first += ch
            assert first.startswith(b"ready"), proc.stderr.read()
            time.sleep(rng.uniform(0.005, 0.25))
            proc.kill()                                      # SIGKILL
            out, err = (b.decode() for b in proc.communicate(timeout=60))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL, err
        # whole lines only: the kill can cut the last print short (its cell is written,
        # and counts as the one in flight below)
        now = {parts[1] for line in out.splitlines(keepends=True)
               if line.endswith("\n") and len(parts := line.split()) == 2 and parts[0] == "done"}
        reported |= now

        df = load_results(folder)
        loaded = list(dict.fromkeys(df["cell"])) if len(df) else []
        files = cell_files(folder)
        assert sorted(cell_filename(c) for c in loaded) == files       # exactly the files
        assert before | now <= set(loaded)           # every cell reported written is there
        assert len(set(loaded) - before - now) <= 1  # and at most the one in flight besides
        before = set(loaded)
        assert loaded == sorted(loaded, key=lambda c: int(c.split("-")[1]))   # seq order
        counts = df.groupby("cell").size()
        assert (counts == 30).all()                                     # whole cells only
        for c in loaded:                                                # their own values
            i = int(c.split("-")[1])
            g = df[df["cell"] == c]
            assert list(g["epoch"]) == list(range(30)) and set(g["i"]) == {i}
            assert list(g["v3"]) == [(i * 1000 + e) / 4 for e in range(30)]
        assert read_run(folder)["cells"] <= len(files)
        assert read_run(folder)["status"] == "running"
    assert len(reported) > 0
    # a resumed writer removes what killed ones left half-written
    RunWriter(folder, {}, resume=True).finish()
    assert temp_files(folder) == [] and read_run(folder)["cells"] == len(cell_files(folder))


def test_kill_9_between_write_and_rename(tmp_path, cli_env):
    """The worst instant, made certain: killed with the new cell's data on disk in its
    temporary file, just before the rename."""
    folder = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal
        from lshprof.experiment.results import RunWriter
        w = RunWriter({str(folder)!r}, {{}})
        w.add_cell("a", [{{"method": "m", "seed": 0, "epoch": 1}}])
        os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        w.add_cell("b", [{{"method": "m", "seed": 0, "epoch": 1}}] * 1000)
    """)
    r = subprocess.run([sys.executable, "-c", script], env=cli_env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    (tmp,) = temp_files(folder)
    assert tmp.startswith(f".{cell_filename('b')}.tmp-") and (folder / CELLS_DIR / tmp).stat().st_size
    df = load_results(folder)
    assert list(df["epoch"]) == [1]
    assert cell_files(folder) == [cell_filename("a")] and read_run(folder)["cells"] == 1
    with RunWriter(folder, {}, resume=True) as w:
        assert w.finished_cells() == {"a": 1} and temp_files(folder) == []
        w.add_cell("b", [{"method": "m", "seed": 0, "epoch": 1}])
    assert len(load_results(folder)) == 2


# -- atomicity ---------------------------------------------------------------------------------------
def test_writes_leave_no_temp_files(tmp_path):
    folder = tmp_path / "r"
    with RunWriter(folder, {}) as w:
        for i in range(3):
            w.add_cell(f"c{i}", [{"method": "m", "seed": 0, "epoch": 1}])
            assert temp_files(folder) == []
        w.update(totals={"x": 1})
        assert temp_files(folder) == []
    # the lock file stays (hidden, empty, no longer held); the holder's record is gone
    assert sorted(p.name for p in folder.iterdir()) == sorted([RUN_FILE, CELLS_DIR, LOCK_FILE])
    assert (folder / LOCK_FILE).stat().st_size == 0
    assert cell_files(folder) == sorted(cell_filename(f"c{i}") for i in range(3))
    assert read_run(folder)["totals"] == {"x": 1}


@pytest.mark.parametrize("fail", ["fsync", "replace", "write"])
def test_failed_write_leaves_no_partial_file_and_the_old_state(tmp_path, monkeypatch, fail):
    folder = tmp_path / "r"
    w = RunWriter(folder, {})
    w.add_cell("a", [{"method": "m", "seed": 0, "epoch": 1, "x": 0.1}])
    before = snapshot(folder)

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if fail == "write":    # half the file reaches the disk, then the disk is full
        real_open = builtins.open

        def half_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            if "w" in mode and ".tmp-" in str(file):
                real_write = fh.write

                def write(text):
                    real_write(text[: len(text) // 2])
                    fh.flush()
                    raise OSError(28, "No space left on device")
                fh.write = write
            return fh

        monkeypatch.setattr(builtins, "open", half_open)
    else:
        monkeypatch.setattr(os, fail, boom)
    with pytest.raises(ResultsError) as ei:     # one line: the file, the reason, the fix
        w.add_cell("b", [{"method": "m", "seed": 0, "epoch": 2, "x": 0.2}])
    assert str(ei.value) == (f"cannot write {folder / CELLS_DIR / cell_filename('b')}: No space "
                             "left on device; free space or choose another folder with -o")
    monkeypatch.undo()
    assert snapshot(folder) == before and temp_files(folder) == []
    assert w.finished_cells() == {"a": 1}
    df = load_results(folder)
    assert list(df["x"]) == [0.1] and set(df["run_status"]) == {"running"}
    w.add_cell("b", [{"method": "m", "seed": 0, "epoch": 2, "x": 0.2}])   # the retry works
    assert list(load_results(folder)["x"]) == [0.1, 0.2]


def test_cell_file_and_folder_are_flushed(tmp_path, monkeypatch):
    folder = tmp_path / "r"
    w = RunWriter(folder, {})
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd")
                      else fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    w.add_cell("c", [{"epoch": 1}])
    if os.path.exists("/proc/self/fd"):
        assert any(".tmp-" in str(s) and "c-" in str(s) for s in synced)   # the file's data
        assert str(folder / CELLS_DIR) in synced                           # its rename


def test_no_rewrite_and_linear_writing(tmp_path, monkeypatch):
    """Adding a cell never changes earlier cell files, and touches only its own file and
    run.json: no listing of the folder, no read or write of an earlier cell."""
    folder = tmp_path / "r"
    w = RunWriter(folder, {"plan": [f"c{i}" for i in range(40)]})
    touched = []
    real_open, real_os_open, real_replace = builtins.open, os.open, os.replace
    real_iterdir, real_scandir, real_listdir = Path.iterdir, os.scandir, os.listdir

    def spy_open(file, *a, **k):
        touched.append(("open", str(file)))
        return real_open(file, *a, **k)

    def spy_os_open(file, *a, **k):
        touched.append(("os.open", str(file)))
        return real_os_open(file, *a, **k)

    def spy_replace(src, dst):
        touched.append(("replace", str(dst)))
        return real_replace(src, dst)

    def spy_list(name, real):
        def f(*a, **k):
            touched.append((name, str(a[0]) if a else ""))
            return real(*a, **k)
        return f

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(Path, "iterdir", spy_list("iterdir", real_iterdir))
    monkeypatch.setattr(os, "scandir", spy_list("scandir", real_scandir))
    monkeypatch.setattr(os, "listdir", spy_list("listdir", real_listdir))
    earlier: dict[str, bytes] = {}
    for i in range(40):
        touched.clear()
        path = w.add_cell(f"c{i}", [{"epoch": e, "x": i + e / 10} for e in range(3)])
        allowed = {str(path), str(path.with_name(f".{path.name}.tmp-{os.getpid()}")),
                   str(folder / RUN_FILE), str(folder / f".{RUN_FILE}.tmp-{os.getpid()}"),
                   str(folder / CELLS_DIR)}
        assert {p for _, p in touched} <= allowed, touched
        assert not [t for t in touched if t[0] in ("iterdir", "scandir", "listdir")]
        assert len(touched) <= 6                       # the same few calls for every cell
        for name, data in earlier.items():             # earlier files byte for byte
            assert (folder / CELLS_DIR / name).read_bytes() == data
        earlier[path.name] = path.read_bytes()
    monkeypatch.undo()
    assert len(load_results(folder)) == 120


# -- refusals and errors --------------------------------------------------------------------------------
def test_existing_run_is_refused_without_resume(tmp_path):
    folder = write_run(tmp_path / "r", [{"x": 1}])
    before = snapshot(folder)
    with pytest.raises(ResultsError) as ei:
        RunWriter(folder, {})
    msg = str(ei.value)
    assert str(folder) in msg and "already holds a run" in msg and "resume" in msg
    assert snapshot(folder) == before
    assert read_run(folder)["status"] == "complete"


def test_duplicate_cell_is_refused(tmp_path):
    folder = tmp_path / "r"
    w = RunWriter(folder, {})
    path = w.add_cell("lsh|seed=0", [{"epoch": 1, "x": 1.0}])
    before = snapshot(folder)
    for rows in ([{"epoch": 1, "x": 2.0}], []):
        with pytest.raises(ResultsError) as ei:
            w.add_cell("lsh|seed=0", rows)
        assert "lsh|seed=0" in str(ei.value) and str(path) in str(ei.value)
        assert "already stored" in str(ei.value) and "nothing was overwritten" in str(ei.value)
    assert snapshot(folder) == before
    w.finish("interrupted")
    w2 = RunWriter(folder, {}, resume=True)       # a second writer sees it on disk too
    with pytest.raises(ResultsError, match="already stored"):
        w2.add_cell("lsh|seed=0", [{"epoch": 1}])
    assert path.read_bytes() == before[f"{CELLS_DIR}/{path.name}"]


def test_bad_cell_id_and_rows(tmp_path):
    w = RunWriter(tmp_path / "r", {})
    for bad in ("", None, 3):
        with pytest.raises(ResultsError, match="cell id"):
            w.add_cell(bad, [])
    with pytest.raises(ResultsError, match="a row is a dict"):
        w.add_cell("c", [[1, 2]])
    assert w.finished_cells() == {}


def test_resume_keeps_cells_and_appends(tmp_path):
    folder = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(folder, {"scenario": {"name": "a"}}) as w:
            w.add_cell("a", [{"method": "m", "seed": 0, "epoch": 1, "x": 0.1 + 0.2, "s": "keep"},
                             {"method": "m", "seed": 0, "epoch": 2, "x": 0.0, "s": "keep"}])
            w.add_cell("b", [])
            raise KeyboardInterrupt
    first = read_run(folder)
    old_files = snapshot(folder / CELLS_DIR)
    with RunWriter(folder, {"scenario": {"name": "a"}, "extra": 1}, resume=True) as w:
        assert read_run(folder)["status"] == "running"
        assert w.finished_cells() == {"a": 2, "b": 0}
        assert w.meta["cells"] == 2 and w.meta["rows"] == 2
        p = w.add_cell("c", [{"method": "m", "seed": 0, "epoch": 1, "x": 0.5, "new": 7}])
        assert strict_json(p.read_text())["seq"] == 2            # after the earlier cells
        assert w.finished_cells() == {"a": 2, "b": 0, "c": 1}
    run = read_run(folder)
    assert run["status"] == "complete" and run["complete"] is True
    assert run["cells"] == 3 and run["rows"] == 3 and run["extra"] == 1
    assert run["started_at"] == first["started_at"]
    assert isinstance(run["resumed_at"], list) and len(run["resumed_at"]) == 1
    assert {k: v for k, v in snapshot(folder / CELLS_DIR).items() if k in old_files} == old_files
    df = load_results(folder)
    assert list(df["epoch"]) == [1, 2, 1]
    assert bits(df["x"][0]) == bits(0.1 + 0.2) and df["x"][2] == 0.5
    assert df["s"][0] == "keep" and math.isnan(df["new"][0]) and df["new"][2] == 7
    # a second resume adds a second timestamp
    RunWriter(folder, {}, resume=True).finish()
    assert len(read_run(folder)["resumed_at"]) == 2
    assert len(load_results(folder)) == 3


def test_resumed_run_that_completes_drops_the_old_error(tmp_path):
    with pytest.raises(RuntimeError):
        with RunWriter(tmp_path / "r", {}):
            raise RuntimeError("first attempt")
    assert "first attempt" in read_run(tmp_path / "r")["error"]
    with RunWriter(tmp_path / "r", {}, resume=True):
        pass
    run = read_run(tmp_path / "r")
    assert run["status"] == "complete" and "error" not in run


def test_resume_without_a_run_starts_one(tmp_path):
    with RunWriter(tmp_path / "new", {}, resume=True) as w:
        w.add_cell("c", [{"method": "m", "seed": 0, "epoch": 1}])
    assert "resumed_at" not in read_run(tmp_path / "new")


def test_cell_files_without_run_json_are_refused(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    (folder / RUN_FILE).unlink()
    with pytest.raises(ResultsError, match="cell files but no run.json"):
        RunWriter(folder, {})


def test_temp_files_are_ignored_and_resume_removes_them(tmp_path):
    folder = write_run(tmp_path / "r", [{"x": 1}], status="interrupted")
    name = cell_filename("c1")
    (folder / CELLS_DIR / f".{name}.tmp-99999").write_text('{"format": "lshprof-cell", "vers')
    (folder / f".{RUN_FILE}.tmp-99999").write_text("{")
    assert list(load_results(folder)["x"]) == [1]
    w = RunWriter(folder, {}, resume=True)
    assert temp_files(folder) == [] and w.finished_cells() == {"c0": 1}


def _rewrite_run(folder, **changes):
    meta = json.loads((folder / RUN_FILE).read_text())
    meta.update(changes)
    (folder / RUN_FILE).write_text(json.dumps(meta))


def _rewrite_cell(folder, text=None, **changes):
    (f,) = [folder / CELLS_DIR / n for n in cell_files(folder)][:1]
    if text is None:
        doc = json.loads(f.read_text())
        doc.update(changes)
        text = json.dumps(doc)
    f.write_text(text)
    return f


def test_corrupt_run_json(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    (folder / RUN_FILE).write_text('{"format": "lshprof-run", "vers')
    for call in (load_results, read_run, lambda p: RunWriter(p, {}, resume=True)):
        with pytest.raises(ResultsError) as ei:
            call(folder)
        msg = str(ei.value)
        assert str(folder / RUN_FILE) in msg and "corrupt" in msg and str(folder / CELLS_DIR) in msg


@pytest.mark.parametrize("text", ['{"format": "lshprof-cell", "version": 2, "ce', "\x00\xff",
                                  "", "[1, 2"], ids=["cut", "binary", "empty", "list"])
def test_corrupt_cell_file_is_named(tmp_path, text):
    folder = write_run(tmp_path / "r", [{}, {}])
    f = _rewrite_cell(folder, text)
    for call in (load_results, lambda p: RunWriter(p, {}, resume=True)):
        with pytest.raises(ResultsError) as ei:
            call(folder)
        msg = str(ei.value)
        assert str(f) in msg and "corrupt" in msg and "delete it and resume" in msg
        assert "\n" not in msg


def test_deleted_corrupt_cell_runs_again_on_resume(tmp_path):
    folder = write_run(tmp_path / "r", [{"x": 1}, {"x": 2}], status="interrupted")
    f = _rewrite_cell(folder, "{oops")
    f.unlink()                                     # as the error message says
    with pytest.raises(ResultsError) as ei:        # run.json counts 2 cells, 1 is left
        load_results(folder)
    assert "records 2 finished cells" in str(ei.value) and "holds 1" in str(ei.value)
    assert "deleted" in str(ei.value)
    with RunWriter(folder, {}, resume=True) as w:
        assert w.finished_cells() == {"c1": 1} and w.meta["cells"] == 1
        w.add_cell("c0", [{"method": "m", "seed": 0, "epoch": 1, "x": 1}])
    assert sorted(load_results(folder)["x"]) == [1, 2]


@pytest.mark.parametrize("change, match", [
    ({"format": "something-else"}, "not an lshprof cell file"),
    ({"version": 999}, "cell format version 999"),
    ({"version": 1}, "cell format version 1"),
    ({"version": True}, "cell format version True"),
    ({"cell": None}, "no cell id"),
    ({"seq": "3"}, "no seq number"),
    ({"rows": {"a": 1}}, "rows are not a list"),
    ({"rows": [1, 2]}, "rows are not a list"),
    ({"machine": [1]}, "machine is not an object"),
])
def test_bad_cell_file_is_named(tmp_path, change, match):
    folder = write_run(tmp_path / "r", [{}])
    f = _rewrite_cell(folder, **change)
    with pytest.raises(ResultsError, match=match) as ei:
        load_results(folder)
    assert str(f) in str(ei.value)
    if "version" in change:
        assert "reads cell files of version 2" in str(ei.value)


def test_two_files_for_one_cell(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    (f,) = cell_files(folder)
    shutil.copy(folder / CELLS_DIR / f, folder / CELLS_DIR / ("copy-" + f))
    with pytest.raises(ResultsError, match="both hold cell 'c0'"):
        load_results(folder)


def test_other_files_in_cells_folder_are_skipped(tmp_path):
    folder = write_run(tmp_path / "r", [{"x": 1}])
    (folder / CELLS_DIR / "notes.txt").write_text("hello")
    (folder / CELLS_DIR / ".hidden.json").write_text("{")
    assert list(load_results(folder)["x"]) == [1]


def test_unknown_version(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    for bad in (999, 0, "2", None, True):
        _rewrite_run(folder, version=bad)
        for call in (load_results, read_run, lambda p: RunWriter(p, {}, resume=True)):
            with pytest.raises(ResultsError) as ei:
                call(folder)
            msg = str(ei.value)
            assert str(folder / RUN_FILE) in msg and f"version {bad!r}" in msg
            assert "reads versions 1, 2" in msg


def test_wrong_format(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    _rewrite_run(folder, format="something-else")
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    assert str(folder / RUN_FILE) in str(ei.value) and "format" in str(ei.value)
    (folder / RUN_FILE).write_text("[1, 2, 3]")
    with pytest.raises(ResultsError, match="not an lshprof run file"):
        read_run(folder)


def test_unknown_status(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    _rewrite_run(folder, status="weird")
    with pytest.raises(ResultsError, match="weird"):
        load_results(folder)


def test_missing_cells_folder_with_cells_recorded(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    shutil.rmtree(folder / CELLS_DIR)
    with pytest.raises(ResultsError, match="records 1 finished cells but .* holds 0"):
        load_results(folder)


def test_run_without_cells_loads_empty(tmp_path):
    RunWriter(tmp_path / "r", {}).finish()
    df = load_results(tmp_path / "r")
    assert df.empty and df.attrs["runs"]["r"]["cells"] == 0 and df.attrs["machines"] == {}
    w = RunWriter(tmp_path / "s", {})
    w.add_cell("empty", [])
    assert load_results(tmp_path / "s").empty


def test_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ResultsError) as ei:
        load_results(missing)
    assert str(missing) in str(ei.value) and "no such file or folder" in str(ei.value)
    with pytest.raises(ResultsError, match="no run.json"):
        read_run(missing)


def test_folder_with_no_runs(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(ResultsError) as ei:
        load_results(empty)
    assert str(empty) in str(ei.value) and "holds no lshprof run" in str(ei.value)


def test_plain_file_that_is_not_run_json(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    for f in (folder / CELLS_DIR / cell_files(folder)[0], tmp_path / "other.json"):
        f.touch()
        with pytest.raises(ResultsError) as ei:
            load_results(f)
        assert str(f) in str(ei.value) and "not a run folder" in str(ei.value)


def test_strings_that_look_like_missing_values_round_trip(tmp_path):
    labels = ["None", "NA", "null", "n/a", "nan"]
    folder = write_run(tmp_path / "r", [{"label": s} for s in labels])
    assert list(load_results(folder)["label"]) == labels


# -- machines and order ----------------------------------------------------------------------------------
def test_machine_columns(tmp_path):
    a = {"machine_key": "alpha", "cpu_model": "Xeon", "cpu_logical": 8, "cpu_physical": 4,
         "memory_total_bytes": 2 ** 34, "cpu_freq_current_mhz": 2100.0}
    a_faster = {**a, "cpu_freq_current_mhz": 3400.0, "packages": {"numpy": "2"}}
    b = {**a, "machine_key": "beta"}
    run_machine = {"cpu_model": "Run CPU", "cpu_logical": 2}
    folder = tmp_path / "r"
    with RunWriter(folder, {"machine": run_machine}) as w:
        w.add_cell("a1", [{"epoch": 1}, {"epoch": 2}], machine=a)
        w.add_cell("a2", [{"epoch": 1}], machine=a_faster)
        w.add_cell("b1", [{"epoch": 1}], machine=b)
        w.add_cell("run", [{"epoch": 1}])                 # the run's machine
        w.add_cell("none", [{"epoch": 1}], machine={})
    df = load_results(folder)
    assert list(df["machine_key"].iloc[:4]) == ["alpha", "alpha", "alpha", "beta"]
    assert df["machine_key"].iloc[4:].isna().all()
    ids = list(df["machine_id"])
    assert ids[0] == ids[1] == ids[2] == machine_id(a) == machine_id(a_faster)   # not the frequency
    assert ids[3] == machine_id(b) != ids[0]
    assert ids[4] == machine_id(run_machine) not in (ids[0], ids[3])
    assert df["machine_id"].iloc[5:].isna().all() and machine_id({}) is None
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids[:5])
    assert machine_id(dict(reversed(list(a.items())))) == machine_id(a)          # stable
    assert df.attrs["machines"] == {machine_id(a): a, machine_id(b): b,
                                    machine_id(run_machine): run_machine}
    doc = json.loads((folder / CELLS_DIR / cell_filename("run")).read_text())
    assert doc["machine"] == run_machine


def test_plan_order(tmp_path):
    folder = tmp_path / "r"
    plan = ["c", "a", "b"]
    with RunWriter(folder, {"plan": plan}) as w:
        for cid in ("b", "x", "a", "y", "c"):        # written out of plan order
            w.add_cell(cid, [{"cell": cid, "epoch": e} for e in (3, 1, 2)])
    df = load_results(folder)
    order = list(dict.fromkeys(df["cell"]))
    assert order == ["c", "a", "b", "x", "y"]          # the plan, then the rest by seq
    for cid in order:
        assert list(df[df["cell"] == cid]["epoch"]) == [3, 1, 2]   # a cell's rows as given
    # without a plan, the order the cells were written
    meta = json.loads((folder / RUN_FILE).read_text())
    del meta["plan"]
    (folder / RUN_FILE).write_text(json.dumps(meta))
    assert list(dict.fromkeys(load_results(folder)["cell"])) == ["b", "x", "a", "y", "c"]
    # and the same every time, whatever the files' names sort as
    assert load_results(folder).equals(load_results(folder))


# -- several runs ---------------------------------------------------------------------------------------
def test_folder_of_runs_and_list_of_paths(tmp_path):
    parent = tmp_path / "runs"
    a = write_run(parent / "a", [{"x": 1}, {"x": 2}])
    b = write_run(parent / "b", [{"x": 3}])
    c = write_run(parent / "c", [{"x": 4}, {"x": 5}], status="running")
    (parent / "not-a-run").mkdir()

    df = load_results(parent)
    assert list(df["run"]) == ["a", "a", "b", "c", "c"]
    assert list(df["x"]) == [1, 2, 3, 4, 5]
    assert list(df["run_status"]) == ["complete"] * 3 + ["running"] * 2
    assert set(df.attrs["runs"]) == {"a", "b", "c"}
    assert df.attrs["runs"]["c"]["complete"] is False

    df = load_results([b, a / RUN_FILE, str(c)])
    assert list(df["run"]) == ["b", "a", "a", "c", "c"]
    assert list(df["x"]) == [3, 1, 2, 4, 5]
    assert set(df["run_path"]) == {str(a), str(b), str(c)}

    done = load_results(parent, complete_only=True)
    assert list(done["run"]) == ["a", "a", "b"] and set(done.attrs["runs"]) == {"a", "b"}
    done = load_results([c, b], complete_only=True)
    assert list(done["run"]) == ["b"]
    assert load_results([c], complete_only=True).empty


def test_same_run_name_in_two_places_is_kept_apart(tmp_path):
    a = write_run(tmp_path / "one" / "run", [{"x": 1}])
    b = write_run(tmp_path / "two" / "run", [{"x": 2}])
    df = load_results([a, b])
    assert len(set(df["run"])) == 2 and list(df["x"]) == [1, 2]
    assert len(df.attrs["runs"]) == 2


def test_error_in_one_run_of_many_names_it(tmp_path):
    parent = tmp_path / "runs"
    write_run(parent / "good", [{"x": 1}])
    bad = write_run(parent / "bad", [{"x": 1}])
    _rewrite_run(bad, version=999)
    with pytest.raises(ResultsError) as ei:
        load_results(parent)
    assert str(bad / RUN_FILE) in str(ei.value)


# -- column names carry units ------------------------------------------------------------------------------
UNIT_COLUMNS = ["wall_total_s", "wall_select_s", "wall_hash_s", "wall_rehash_s", "wall_forward_s",
                "wall_backward_s", "wall_update_s", "wall_other_s", "jit_s", "energy_j",
                "energy_source", "macs_forward", "macs_total", "macs_dense_equivalent",
                "bytes_moved", "eval_accuracy", "loss", "peak_rss_bytes", "process_cpu_util",
                "instrumentation_s"]


def test_runner_columns_carry_units(tmp_path):
    """The runner's rows (the fixture's, from a real run) keep their units' types."""
    import pandas as pd

    folder = tmp_path / "run"
    with RunWriter(folder, {}) as w:
        for cell_id, rows in fixture_rows().items():
            w.add_cell(cell_id, rows)
    df = load_results(folder)
    assert len(df) == 4
    missing = [c for c in UNIT_COLUMNS if c not in df.columns]
    assert not missing
    for c in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
        if c.startswith(("wall_", "eval_wall_")) or c.endswith("jit_s"):
            assert c.endswith("_s") and numeric, c
        if numeric and "energy" in c:
            assert c.endswith("_j"), c
        if "rss" in c:
            assert c.endswith("_bytes"), c
    for c in ("energy_source", "energy_backend"):
        assert not pd.api.types.is_numeric_dtype(df[c])
    assert set(df["energy_source"]) == {"estimated"}
    for c in ("macs_forward", "macs_total", "macs_dense_equivalent", "bytes_moved",
              "peak_rss_bytes"):
        assert pd.api.types.is_integer_dtype(df[c]) and (df[c] > 0).all(), c
    assert ((df["eval_accuracy"] >= 0) & (df["eval_accuracy"] <= 1)).all()
    assert (df["energy_j"] > 0).all() and (df["wall_total_s"] > 0).all()


# -- what the loaders refuse rather than guess (issue 18) -------------------------------------------
def _cell_path(folder, cell_id):
    return folder / CELLS_DIR / cell_filename(cell_id)


def test_an_epoch_twice_in_a_cell_file_is_refused(tmp_path):
    """Duplicated rows double a method's time: a cell file holding an epoch twice (even two
    identical rows) is refused, naming the file, the cell and the epoch."""
    folder = write_run(tmp_path / "r", [{"wall_total_s": 1.0}, {"wall_total_s": 2.0}])
    f = _cell_path(folder, "c1")
    doc = json.loads(f.read_text())
    doc["rows"] = doc["rows"] * 2                       # the same row, twice
    f.write_text(json.dumps(doc))
    for call in (load_results, lambda p: RunWriter(p, {}, resume=True)):
        with pytest.raises(ResultsError) as ei:
            call(folder)
        msg = str(ei.value)
        assert str(f) in msg and "epoch 2 of cell 'c1' twice" in msg and "\n" not in msg


def test_a_copied_cell_file_is_refused(tmp_path):
    folder = write_run(tmp_path / "r", [{"wall_total_s": 1.0}])
    f = _cell_path(folder, "c0")
    copy = f.with_name("copy-of-" + f.name)
    shutil.copy(f, copy)
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    assert str(f) in str(ei.value) and str(copy) in str(ei.value) and "'c0'" in str(ei.value)


def test_v1_repeated_row_is_refused(tmp_path):
    folder = v1_copy(tmp_path)
    table = folder / TABLE_FILE
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(lines + [lines[2]]))       # the second row again, at the end
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    msg = str(ei.value)
    cell = json.loads(json.dumps(load_results(v1_copy(tmp_path / "clean"))["cell"][1]))
    assert str(table) in msg and f"of cell {cell!r} twice" in msg
    assert "rows 2 and 5" in msg and "delete the repeated line" in msg


@pytest.mark.parametrize("value, shown", [("many", "'many'"), ("12 MACs", "'12 MACs'"),
                                          ("true", None)])
def test_v1_text_in_a_numeric_column_is_refused(tmp_path, value, shown):
    import csv as csvmod

    folder = v1_copy(tmp_path)
    table = folder / TABLE_FILE
    rows = list(csvmod.reader(table.open(newline="")))
    col = rows[0].index("macs_forward")
    for r in rows[1:]:
        r[col] = value if value == "true" else r[col]
    rows[3][col] = value
    with table.open("w", newline="") as fh:
        csvmod.writer(fh, lineterminator="\n").writerows(rows)
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    msg = str(ei.value)
    assert str(table) in msg and "column macs_forward" in msg and "not a number" in msg
    assert ("row 3" in msg and shown in msg) if shown else "row 1" in msg


def test_v1_missing_and_nan_text_are_missing_never_zero(tmp_path):
    import csv as csvmod

    folder = v1_copy(tmp_path)
    table = folder / TABLE_FILE
    rows = list(csvmod.reader(table.open(newline="")))
    head = rows[0]
    rows[1][head.index("macs_forward")] = ""         # an empty MAC cell
    rows[2][head.index("macs_forward")] = "NaN"      # NaN written as text
    rows[3][head.index("wall_total_s")] = "inf"
    with table.open("w", newline="") as fh:
        csvmod.writer(fh, lineterminator="\n").writerows(rows)
    df = load_results(folder)
    assert df["macs_forward"].dtype.kind == "f"      # numbers, with NaN for the missing
    assert math.isnan(df["macs_forward"][0]) and math.isnan(df["macs_forward"][1])
    assert df["macs_forward"][2] > 0 and df["wall_total_s"][2] == math.inf


@pytest.mark.parametrize("column, value", [("macs_forward", "many"), ("wall_total_s", True),
                                           ("energy_j", [1.0]), ("epoch", "2"),
                                           ("eval_accuracy", {"v": 0.5})])
def test_text_in_a_numeric_column_of_a_cell_is_refused(tmp_path, column, value):
    folder = write_run(tmp_path / "r", [{"macs_forward": 10, "wall_total_s": 0.5}])
    f = _cell_path(folder, "c0")
    doc = json.loads(f.read_text())
    doc["rows"][0][column] = value
    f.write_text(json.dumps(doc))
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    msg = str(ei.value)
    assert str(f) in msg and f"column {column} holds" in msg and "not a number" in msg
    assert "row 1 of cell 'c0'" in msg and "delete it and resume" in msg


def test_missing_values_of_a_cell_stay_missing(tmp_path):
    """null (NaN as written) and a missing key stay NaN; infinities stay infinite: the loader
    never turns a missing MAC count or time into a number."""
    folder = write_run(tmp_path / "r", [
        {"macs_forward": None, "wall_total_s": math.inf, "energy_j": math.nan},
        {"wall_total_s": 0.5},
        {"macs_forward": 7, "wall_total_s": -math.inf, "energy_j": 1.5}])
    df = load_results(folder)
    assert df["macs_forward"].isna().tolist() == [True, True, False]
    assert df["macs_forward"][2] == 7
    assert df["wall_total_s"].tolist() == [math.inf, 0.5, -math.inf]
    assert df["energy_j"].isna().tolist() == [True, True, False]


def test_numeric_columns_by_name():
    from lshprof.experiment.results import numeric_column

    for c in ("macs_forward", "eval_macs_total", "wall_total_s", "eval_wall_select_s", "jit_s",
              "energy_j", "energy_macs_j", "eval_accuracy", "epoch", "seed", "threads",
              "fraction", "loss", "mac_share", "samples_per_s"):
        assert numeric_column(c), c
    for c in ("method", "cell", "energy_source", "energy_backend", "energy_note", "params",
              "layer_active_fraction", "worker_samples", "mode", "hidden"):
        assert not numeric_column(c), c


def test_binary_run_json_is_one_line(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    (folder / RUN_FILE).write_bytes(b'{"format": "lshprof-run", \xff\xfe binary')
    for call in (load_results, read_run, lambda p: RunWriter(p, {}, resume=True)):
        with pytest.raises(ResultsError) as ei:
            call(folder)
        msg = str(ei.value)
        assert str(folder / RUN_FILE) in msg and "not UTF-8" in msg and "\n" not in msg
        assert "0xff" in msg and str(folder / CELLS_DIR) in msg


@pytest.mark.parametrize("key, value, expect", [
    ("rows", math.nan, "count of rows"), ("rows", "many", "count of rows"),
    ("rows", -1, "count of rows"), ("rows", True, "count of rows"),
    ("cells", "3", "count of cells"), ("cells", 2.5, "count of cells"),
    ("scenario", "oops", "not an object"), ("scenario", [1], "not an object"),
    ("complete", "yes", "true or false"), ("plan", "a,b", "list of cell ids"),
    ("plan", [1, 2], "list of cell ids"), ("resumed_at", "2025-01-01", "list of times"),
    ("machine", "x", "not an object"), ("energy", 3, "not an object"),
    ("resumes", {}, "a list"), ("data_digest", 5, "a text"),
])
def test_bad_run_json_values_are_named(tmp_path, key, value, expect):
    folder = write_run(tmp_path / "r", [{"x": 1}])
    _rewrite_run(folder, **{key: value})
    for call in (load_results, read_run, lambda p: RunWriter(p, {}, resume=True)):
        with pytest.raises(ResultsError) as ei:
            call(folder)
        msg = str(ei.value)
        assert str(folder / RUN_FILE) in msg and f'"{key}" is ' in msg and expect in msg
        assert "\n" not in msg


@pytest.mark.parametrize("key, value", [("name", 3), ("fingerprint", ["x"]), ("settings", "s")])
def test_bad_scenario_values_are_named(tmp_path, key, value):
    folder = write_run(tmp_path / "r", [{"x": 1}])
    _rewrite_run(folder, scenario={"name": "r", key: value})
    with pytest.raises(ResultsError, match=f'"scenario.{key}" is '):
        load_results(folder)


def test_missing_or_null_run_keys_still_load(tmp_path):
    """Older run files lack keys; null stands for missing."""
    folder = write_run(tmp_path / "r", [{"x": 1}])
    meta = json.loads((folder / RUN_FILE).read_text())
    for k in ("cells", "rows", "complete", "started_at", "ended_at"):
        meta.pop(k)
    meta.update(scenario=None, plan=None, machine=None)
    (folder / RUN_FILE).write_text(json.dumps(meta))
    assert list(load_results(folder)["x"]) == [1]


# -- one writer per folder -----------------------------------------------------------------------------
def test_second_writer_is_refused_naming_the_first(tmp_path):
    folder = tmp_path / "r"
    w = RunWriter(folder, {"scenario": {"name": "first"}})
    w.add_cell("a", [{"epoch": 1, "x": 1.0}])
    holder = json.loads((folder / HOLDER_FILE).read_text())
    assert holder["pid"] == os.getpid() and holder["started_at"] and holder["command"]
    assert lock_holder(folder).startswith(f"pid {os.getpid()}, started ")
    before = snapshot(folder)
    with pytest.raises(ResultsError) as ei:
        RunWriter(folder, {}, resume=True)
    msg = str(ei.value)
    assert f"{folder} is being written by another lshprof run (pid {os.getpid()}" in msg
    assert "nothing was written" in msg and "\n" not in msg
    assert snapshot(folder) == before
    # a reader reads the live folder, and ignores the lock files
    df = load_results(folder)
    assert list(df["x"]) == [1.0] and set(df["run_status"]) == {"running"}
    w.finish("interrupted")
    assert lock_holder(folder) is None and not (folder / HOLDER_FILE).exists()
    with RunWriter(folder, {}, resume=True) as w2:
        assert w2.finished_cells() == {"a": 1}
        w2.add_cell("b", [{"epoch": 1, "x": 2.0}])
    assert list(load_results(folder)["x"]) == [1.0, 2.0]


@pytest.mark.parametrize("how", ["exception", "ctrl-c", "close", "dropped"])
def test_every_way_out_releases_the_folder(tmp_path, how):
    folder = tmp_path / "r"
    if how == "close":
        w = RunWriter(folder, {})
        w.close()
        assert read_run(folder)["status"] == "running"
    elif how == "dropped":
        RunWriter(folder, {})                        # no reference kept: released
    else:
        with pytest.raises((RuntimeError, KeyboardInterrupt)):
            with RunWriter(folder, {}):
                raise RuntimeError("x") if how == "exception" else KeyboardInterrupt
    assert lock_holder(folder) is None
    RunWriter(folder, {}, resume=True).finish()


def test_writer_that_cannot_open_leaves_nothing(tmp_path, monkeypatch):
    # a file where a folder of the path belongs
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsError) as ei:
        RunWriter(tmp_path / "file" / "run", {})
    assert "Not a directory" in str(ei.value) and "-o" in str(ei.value)
    assert (tmp_path / "file").read_text() == "x"
    # a full disk at run.json: the folders it made are gone again
    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(ResultsError) as ei:
        RunWriter(tmp_path / "a" / "b" / "run", {})
    monkeypatch.undo()
    assert str(ei.value) == (f"cannot write {tmp_path / 'a' / 'b' / 'run' / RUN_FILE}: No space "
                             "left on device; free space or choose another folder with -o")
    assert not (tmp_path / "a").exists()


def test_the_error_that_stopped_the_run_is_the_one_seen(tmp_path, monkeypatch):
    """A full disk at a cell: leaving the block cannot write run.json either, and the cell's
    error is the one raised (not a second one about run.json, chained onto it)."""
    folder = tmp_path / "r"

    def full(src, dst):
        raise OSError(28, "No space left on device")

    with pytest.raises(ResultsError) as ei:
        with RunWriter(folder, {}) as w:
            w.add_cell("a", [{"epoch": 1}])
            monkeypatch.setattr(os, "replace", full)
            w.add_cell("b", [{"epoch": 1}])
    monkeypatch.undo()
    assert cell_filename("b") in str(ei.value) and RUN_FILE not in str(ei.value)
    assert lock_holder(folder) is None
    assert read_run(folder)["status"] == "running" and list(load_results(folder)["epoch"]) == [1]


def test_atomic_writer_cleanup_keeps_the_first_error(tmp_path):
    from lshprof.files import write_error_message, write_text_atomic

    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "out.json"
    with pytest.raises(NotADirectoryError) as ei:
        write_text_atomic(target, "{}")
    assert ei.value.__context__ is None               # no clean-up error chained onto it
    assert write_error_message(target, ei.value, kind="folder", option="-o") == (
        f"cannot write {target}: Not a directory; a part of the path is a file, not a folder; "
        "choose another folder with -o")
    assert write_error_message("x.json", OSError(30, "Read-only file system"), kind="file",
                               option="--json") == ("cannot write x.json: Read-only file system; "
                                                    "choose another file with --json, on a "
                                                    "writable file system")


def test_atomic_writer_never_renames_over_a_device_or_fifo(tmp_path):
    """As root a rename replaces anything: a device (here a FIFO, made in the test's own
    folder; /dev/null is the real-life case) is refused, and stays what it was."""
    import stat

    from lshprof.files import write_error_message, write_text_atomic

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError) as ei:
        write_text_atomic(fifo, "{}")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]   # no temporary left
    assert write_error_message(fifo, ei.value, kind="file", option="--json").startswith(
        f"cannot write {fifo}: exists and is not a regular file (a device or FIFO)")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        write_text_atomic(tmp_path / "folder", "{}")
