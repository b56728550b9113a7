"""``lshprof bench``: pyperf benchmarks of the layer kernels, run as a user runs them.

pyperf allows one Runner per process, so every call is a subprocess. The timed runs
use pyperf's quickest setting (one worker, one value of one loop per benchmark) at
the small shape, and are shared by the tests of this file.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"batch": 32, "n_in": 128, "n_out": 1024}
FAST = ("--debug-single-value", "--shapes", "small")
DENSE_LSH = ["small/dense/forward", "small/dense/backward", "small/lsh/forward",
             "small/lsh/backward", "small/lsh/select", "small/lsh/rehash", "small/lsh/rebuild"]


def bench(cmd, env, *args):
    return subprocess.run([*cmd, "bench", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def metadata(path):
    suite = pyperf.BenchmarkSuite.load(str(path))
    return {b.get_name(): b.get_metadata() for b in suite.get_benchmarks()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, lshprof_cmd):
    """Two timed runs of dense and lsh: the defaults, and other worker-side options."""
    d = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NUMBA_NUM_THREADS", None)
    # NUMBA_NUM_THREADS caps numba's pool; pyperf passes it on only if we ask it to
    env_b = {**env, "NUMBA_NUM_THREADS": "1"}
    # the two runs side by side (their timings are not what these tests check)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        fa = pool.submit(bench, lshprof_cmd, env, *FAST, "--methods", "dense", "lsh", "-o",
                         str(d / "a.json"))
        fb = pool.submit(bench, lshprof_cmd, env_b, *FAST, "--methods", "dense", "lsh",
                         "--threads", "2", "--fraction", "0.1", "-o", str(d / "b.json"))
        a, b = fa.result(), fb.result()
    for r in (a, b):
        assert r.returncode == 0, r.stdout + r.stderr
    return {"a": d / "a.json", "b": d / "b.json", "a_run": a, "env": env}


def test_run_writes_each_benchmark_with_exact_macs(runs):
    suite = pyperf.BenchmarkSuite.load(str(runs["a"]))
    assert suite.get_benchmark_names() == DENSE_LSH
    for b in suite.get_benchmarks():
        assert b.get_nvalue() >= 1 and all(v > 0 for v in b.get_values()), b.get_name()
    meta = metadata(runs["a"])
    F = SMALL["batch"] * SMALL["n_in"] * SMALL["n_out"]
    assert meta["small/dense/forward"]["macs"] == F
    assert meta["small/dense/backward"]["macs"] == 2 * F
    assert meta["small/dense/backward"]["macs_dense_equivalent"] == 2 * F
    assert "fraction" not in meta["small/dense/forward"]
    assert 0 < meta["small/lsh/forward"]["macs"] < F
    for name in DENSE_LSH:
        m = meta[name]
        shape, method, phase = name.split("/")
        assert (m["shape"], m["method"], m["phase"]) == (shape, method, phase)
        assert {k: m[k] for k in SMALL} == SMALL
        assert m["threads"] == 1 and m["seed"] == 0
        assert m["macs"] > 0 and m["description"] and m["lshprof_version"]
        if method == "lsh":
            assert m["fraction"] == 0.05


def test_worker_side_options_reach_the_workers(runs):
    a, b = metadata(runs["a"]), metadata(runs["b"])
    assert list(b) == DENSE_LSH
    for name in DENSE_LSH:
        assert b[name]["threads"] == 2  # recorded by the worker from its own command line
        assert b[name]["numba_threads"] == 1  # the worker saw NUMBA_NUM_THREADS=1
    assert b["small/lsh/forward"]["fraction"] == 0.1
    assert b["small/lsh/forward"]["macs"] > a["small/lsh/forward"]["macs"]
    assert b["small/dense/forward"]["macs"] == a["small/dense/forward"]["macs"]


def test_hint_printed_once_by_the_main_process(runs):
    err = runs["a_run"].stderr
    assert err.count("python -m pyperf compare_to OLD.json NEW.json") == 1
    assert "1 BLAS and numba thread" in err
    assert "Traceback" not in err


def test_pyperf_compare_to_and_show_read_the_files(runs):
    r = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", str(runs["a"]),
                        str(runs["b"]), "--table"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert all(name in out for name in DENSE_LSH)
    r = subprocess.run([sys.executable, "-m", "pyperf", "show", str(runs["a"])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "small/lsh/select" in r.stdout


def _listing(r):
    assert r.returncode == 0, r.stderr
    rows = {}
    for line in r.stdout.splitlines():
        name, macs, unit = line.split()
        assert unit == "MACs"
        rows[name] = int(macs)
    return rows


def test_list_prints_names_and_the_workers_macs(runs, lshprof_cmd):
    env = runs["env"]
    r = bench(lshprof_cmd, env, "--shapes", "small", "--methods", "dense", "lsh", "--list")
    rows = _listing(r)
    assert list(rows) == DENSE_LSH
    assert "Mean" not in r.stdout and "compare_to" not in r.stderr  # nothing timed
    # a fixed seed gives the same MACs in this process as in pyperf's workers
    assert rows == {k: m["macs"] for k, m in metadata(runs["a"]).items()}


def test_list_is_deterministic_and_skips_phases_a_method_lacks(lshprof_cmd, cli_env):
    args = ("--shapes", "small", "--list", "--methods", "dense", "dropout", "topk",
            "adaptive_dropout", "--phases", "select", "backward", "rebuild", "--seed", "3")
    first, second = bench(lshprof_cmd, cli_env, *args), bench(lshprof_cmd, cli_env, *args)
    assert _listing(first) == _listing(second)
    assert first.stdout == second.stdout
    assert list(_listing(first)) == [
        "small/dense/backward", "small/dropout/backward", "small/topk/select",
        "small/topk/backward", "small/adaptive_dropout/select",
        "small/adaptive_dropout/backward"]


def test_help_shows_pyperf_and_lshprof_options(lshprof_cmd, cli_env):
    r = bench(lshprof_cmd, cli_env, "--help")
    assert r.returncode == 0
    for opt in ("--processes", "--fast", "--shapes", "--methods", "--phases", "--fraction",
                "--threads", "--seed", "--list"):
        assert opt in r.stdout


@pytest.mark.parametrize("args, words", [
    (("--shapes", "huge"), ("'huge'", "small, hidden, wide")),
    (("--methods", "dense", "magic"), ("'magic'", "adaptive_dropout")),
    (("--phases", "sideways"), ("'sideways'", "rehash, rebuild")),
    (("--fraction", "0"), ("--fraction", "(0, 1]")),
    (("--fraction", "1.5"), ("--fraction", "(0, 1]")),
    (("--threads", "0"), ("--threads", ">= 1")),
])
def test_bad_input_is_one_line_and_writes_nothing(lshprof_cmd, cli_env, tmp_path, args, words):
    out = tmp_path / "out.json"
    r = bench(lshprof_cmd, cli_env, *FAST, *args, "-o", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lshprof bench: error:"), r.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_fraction_one_gives_lsh_only_forward_and_backward(lshprof_cmd, cli_env):
    r = bench(lshprof_cmd, cli_env, "--shapes", "small", "--methods", "dense", "lsh",
              "--fraction", "1", "--list")
    rows = _listing(r)
    assert list(rows) == DENSE_LSH[:4]
    assert rows["small/lsh/forward"] == rows["small/dense/forward"]


def test_json_metadata_is_plain(runs):
    # every value pyperf stores is an int, float or non-empty string
    data = json.loads(runs["a"].read_text())
    for b in data["benchmarks"]:
        for run in b["runs"]:
            for k, v in run.get("metadata", {}).items():
                assert isinstance(v, (int, float, str)) and v != "", k
