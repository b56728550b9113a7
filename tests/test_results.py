"""The results store: run folders written atomically row by row, and read back checked."""

import json
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap

import pytest

from lshprof.errors import ResultsError
from lshprof.experiment.results import (FORMAT, FORMAT_VERSION, RUN_FILE, TABLE_FILE, RunWriter,
                             load_results, read_run)


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def write_run(folder, rows, meta=None, status="complete"):
    """A finished run folder with ``rows`` (each gets method/seed/epoch if missing)."""
    w = RunWriter(folder, meta or {"scenario": {"name": folder.name}})
    for i, r in enumerate(rows):
        w.add_row({"method": "m", "seed": 0, "epoch": i + 1, **r})
    if status != "running":
        w.finish(status)
    return folder


def temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]


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
        w.add_row(rows[0])
        w.add_rows(rows[1:])
        assert read_run(folder)["status"] == "running"
        assert read_run(folder)["rows"] == len(rows)

    df = load_results(folder)
    assert len(df) == len(rows)
    assert list(df.columns[:3]) == ["run", "run_path", "run_status"]
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
    assert run["rows"] == len(rows)
    assert run["scenario"] == meta["scenario"] and run["note"] == "hello"
    assert run["started_at"] and run["ended_at"] and run["ended_at"] >= run["started_at"]
    # a run.json path reads the same run
    df2 = load_results(folder / RUN_FILE)
    assert len(df2) == len(df) and [bits(v) for v in df2["x"]] == [bits(v) for v in df["x"]]
    assert read_run(folder / RUN_FILE) == run


def test_rows_may_bring_new_columns(tmp_path):
    folder = write_run(tmp_path / "r", [{"a": 1}, {"a": 2, "b": 0.5}])
    df = load_results(folder)
    assert list(df["a"]) == [1, 2]
    assert math.isnan(df["b"][0]) and df["b"][1] == 0.5


def test_numpy_scalars_are_written_as_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    folder = write_run(tmp_path / "r", [{"i": np.int64(7), "f": np.float32(0.5),
                                        "b": np.bool_(True)}],
                       meta={"arr": np.arange(3), "n": np.int32(4)})
    df = load_results(folder)
    assert df["i"][0] == 7 and df["f"][0] == 0.5 and bool(df["b"][0]) is True
    run = read_run(folder)
    assert run["arr"] == [0, 1, 2] and run["n"] == 4


def test_numpy_float64_is_written_as_a_number(tmp_path):
    np = pytest.importorskip("numpy")
    folder = write_run(tmp_path / "r", [{"d": np.float64(0.1) + np.float64(0.2)}])
    assert (folder / TABLE_FILE).read_text().splitlines()[1].endswith(",0.30000000000000004")
    df = load_results(folder)
    assert bits(float(df["d"][0])) == bits(0.1 + 0.2)


# -- context manager status -------------------------------------------------------------------------
def test_context_manager_complete(tmp_path):
    with RunWriter(tmp_path / "r", {}) as w:
        w.add_row({"method": "m", "seed": 0, "epoch": 1})
    run = read_run(tmp_path / "r")
    assert run["status"] == "complete" and run["complete"] is True and "error" not in run


def test_context_manager_exception_marks_failed_and_keeps_rows(tmp_path):
    with pytest.raises(RuntimeError):
        with RunWriter(tmp_path / "r", {}) as w:
            w.add_row({"method": "m", "seed": 0, "epoch": 1, "x": 1.5})
            raise RuntimeError("boom in epoch 2")
    run = read_run(tmp_path / "r")
    assert run["status"] == "failed" and run["complete"] is False
    assert "RuntimeError" in run["error"] and "boom in epoch 2" in run["error"]
    assert run["ended_at"]
    df = load_results(tmp_path / "r")
    assert list(df["x"]) == [1.5] and list(df["run_status"]) == ["failed"]


def test_context_manager_keyboard_interrupt_marks_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(tmp_path / "r", {}) as w:
            w.add_row({"method": "m", "seed": 0, "epoch": 1})
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


def test_killed_run_keeps_finished_rows(tmp_path, root):
    folder = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import os, signal
        from lshprof.experiment.results import RunWriter
        w = RunWriter({str(folder)!r}, {{"scenario": {{"name": "killed"}}}})
        w.add_row({{"method": "dense", "seed": 0, "epoch": 1, "loss": 0.5}})
        w.add_row({{"method": "dense", "seed": 0, "epoch": 2, "loss": 0.25}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    df = load_results(folder)
    assert list(df["epoch"]) == [1, 2] and list(df["loss"]) == [0.5, 0.25]
    assert set(df["run_status"]) == {"running"}
    run = df.attrs["runs"]["killed"]
    assert run["status"] == "running" and run["complete"] is False and run["ended_at"] is None
    assert run["rows"] == 2
    assert temp_files(folder) == []
    assert load_results(folder, complete_only=True).empty


# -- atomicity ---------------------------------------------------------------------------------------
def test_writes_leave_no_temp_files(tmp_path):
    folder = tmp_path / "r"
    with RunWriter(folder, {}) as w:
        for i in range(3):
            w.add_row({"method": "m", "seed": 0, "epoch": i + 1})
            assert temp_files(folder) == []
        w.update(totals={"x": 1})
        assert temp_files(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted([RUN_FILE, TABLE_FILE])
    assert read_run(folder)["totals"] == {"x": 1}


def _fail_second_row(tmp_path, monkeypatch):
    folder = tmp_path / "r"
    w = RunWriter(folder, {})
    w.add_row({"method": "m", "seed": 0, "epoch": 1, "x": 0.1})
    table_before = (folder / TABLE_FILE).read_bytes()
    run_before = (folder / RUN_FILE).read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        w.add_row({"method": "m", "seed": 0, "epoch": 2, "x": 0.2})
    monkeypatch.undo()
    return folder, table_before, run_before


def test_failed_replace_leaves_earlier_table_intact(tmp_path, monkeypatch):
    folder, table_before, run_before = _fail_second_row(tmp_path, monkeypatch)
    assert (folder / TABLE_FILE).read_bytes() == table_before
    assert (folder / RUN_FILE).read_bytes() == run_before
    df = load_results(folder)
    assert list(df["epoch"]) == [1] and list(df["x"]) == [0.1]
    assert set(df["run_status"]) == {"running"}


def test_failed_replace_cleans_up_temp_file(tmp_path, monkeypatch):
    folder, _, _ = _fail_second_row(tmp_path, monkeypatch)
    assert temp_files(folder) == []


# -- refusals and errors --------------------------------------------------------------------------------
def test_existing_run_is_refused_without_resume(tmp_path):
    folder = write_run(tmp_path / "r", [{"x": 1}])
    before = (folder / TABLE_FILE).read_bytes()
    with pytest.raises(ResultsError) as ei:
        RunWriter(folder, {})
    msg = str(ei.value)
    assert str(folder) in msg and "already holds a run" in msg and "resume" in msg
    assert (folder / TABLE_FILE).read_bytes() == before
    assert read_run(folder)["status"] == "complete"


def test_resume_keeps_rows_and_appends(tmp_path):
    folder = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(folder, {"scenario": {"name": "a"}}) as w:
            w.add_row({"method": "m", "seed": 0, "epoch": 1, "x": 0.1 + 0.2, "s": "keep"})
            raise KeyboardInterrupt
    first = read_run(folder)
    with RunWriter(folder, {"scenario": {"name": "a"}, "extra": 1}, resume=True) as w:
        assert read_run(folder)["status"] == "running"
        w.add_row({"method": "m", "seed": 0, "epoch": 2, "x": 0.5, "new": 7})
    run = read_run(folder)
    assert run["status"] == "complete" and run["complete"] is True
    assert run["rows"] == 2 and run["extra"] == 1
    assert run["started_at"] == first["started_at"]
    assert isinstance(run["resumed_at"], list) and len(run["resumed_at"]) == 1
    df = load_results(folder)
    assert list(df["epoch"]) == [1, 2]
    assert bits(df["x"][0]) == bits(0.1 + 0.2) and df["x"][1] == 0.5
    assert df["s"][0] == "keep" and math.isnan(df["new"][0]) and df["new"][1] == 7
    # a second resume adds a second timestamp
    RunWriter(folder, {}, resume=True).finish()
    assert len(read_run(folder)["resumed_at"]) == 2
    assert len(load_results(folder)) == 2


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
        w.add_row({"method": "m", "seed": 0, "epoch": 1})
    assert "resumed_at" not in read_run(tmp_path / "new")


def _rewrite_run(folder, **changes):
    meta = json.loads((folder / RUN_FILE).read_text())
    meta.update(changes)
    (folder / RUN_FILE).write_text(json.dumps(meta))


def test_corrupt_run_json(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    (folder / RUN_FILE).write_text('{"format": "lshprof-run", "vers')
    for call in (load_results, read_run, lambda p: RunWriter(p, {}, resume=True)):
        with pytest.raises(ResultsError) as ei:
            call(folder)
        assert str(folder / RUN_FILE) in str(ei.value) and "corrupt" in str(ei.value)


def test_unknown_version(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    _rewrite_run(folder, version=999)
    for call in (load_results, read_run):
        with pytest.raises(ResultsError) as ei:
            call(folder)
        msg = str(ei.value)
        assert str(folder / RUN_FILE) in msg and "version" in msg and "999" in msg
        assert str(FORMAT_VERSION) in msg


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


def test_truncated_table(tmp_path):
    folder = write_run(tmp_path / "r", [{"x": i} for i in range(3)])
    table = folder / TABLE_FILE
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(lines[:-1]))  # the last row gone
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    msg = str(ei.value)
    assert str(table) in msg and "truncated" in msg and "2 rows" in msg and "3" in msg


def test_table_truncated_mid_row(tmp_path):
    folder = write_run(tmp_path / "r", [{"x": 1.25, "y": 2.5, "z": "abc"} for _ in range(2)])
    table = folder / TABLE_FILE
    text = table.read_text()
    table.write_text(text[:-8])  # "...,1,1.25,2" : the last row lost its tail
    with pytest.raises(ResultsError):
        load_results(folder)


def test_missing_table_with_rows_recorded(tmp_path):
    folder = write_run(tmp_path / "r", [{}])
    (folder / TABLE_FILE).unlink()
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    assert str(folder / TABLE_FILE) in str(ei.value) and "missing" in str(ei.value)


def test_run_without_rows_loads_empty(tmp_path):
    RunWriter(tmp_path / "r", {}).finish()
    df = load_results(tmp_path / "r")
    assert df.empty and df.attrs["runs"]["r"]["rows"] == 0


@pytest.mark.parametrize("garbage", [
    b"\x00\xff\xfe\x80\x81\x9c garbage\n\x01\x02",
    b"hello world\nno table here\n",
    b"a,b\n1,2,3,4\n5\n",
    b"",
    b"\n\n\n",
], ids=["binary", "text", "ragged", "empty", "blank-lines"])
def test_unparsable_table(tmp_path, garbage):
    folder = write_run(tmp_path / "r", [{"x": 1}])
    (folder / TABLE_FILE).write_bytes(garbage)
    with pytest.raises(ResultsError) as ei:
        load_results(folder)
    assert str(folder / TABLE_FILE) in str(ei.value)


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
    for f in (folder / TABLE_FILE, tmp_path / "other.json"):
        f.touch()
        with pytest.raises(ResultsError) as ei:
            load_results(f)
        assert str(f) in str(ei.value) and "not a run folder" in str(ei.value)


def test_strings_that_look_like_missing_values_round_trip(tmp_path):
    labels = ["None", "NA", "null", "n/a", "nan"]
    folder = write_run(tmp_path / "r", [{"label": s} for s in labels])
    assert list(load_results(folder)["label"]) == labels


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


@pytest.fixture(scope="module")
def runner_run(tmp_path_factory):
    from lshprof.data import gaussian_clusters
    from lshprof.experiment.runner import Runner

    data = gaussian_clusters(200, 50, n_features=16, seed=1)
    folder = tmp_path_factory.mktemp("units") / "run"
    with Runner(folder, scenario={"name": "units"}, energy="estimate") as runner:
        runner.run_cell("dense", "dense", {}, data, hidden=[32], epochs=1, batch_size=32)
        runner.run_cell("lsh", "lsh", {"fraction": 0.25}, data, hidden=[32], epochs=1,
                        batch_size=32, fraction=0.25)
    return folder


def test_runner_columns_carry_units(runner_run):
    import pandas as pd

    df = load_results(runner_run)
    assert len(df) == 2
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
