"""``lshprof bench --suite speed``: the table, the goal verdicts and bad input.

Timings are never asserted (they vary); the structure, the MAC ratio (exact counts)
and the verdict rule are.
"""

import json

import pytest

from lshprof.bench import speed
from lshprof.cli import main


def test_one_small_case_prints_the_goal_table(tmp_path, capsys):
    out = tmp_path / "speed.json"
    rc = main(["bench", "--suite", "speed", "--cases", "hidden 784 b1", "--repeats", "2",
               "--skip", "memory", "threads", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "hidden 784 b1" in text and ("PASS" in text or "MISS" in text)
    assert "Dense layer (forward + backward) against bare numpy products" in text
    res = json.loads(out.read_text())
    (case,) = res["cases"]
    assert case["repeats"] == 2
    # MACs are exact: dense does 3 * B * n_in * n_out per step (forward, two backward)
    assert case["dense_macs"] == 3 * 1 * 784 * 1000
    assert case["mac_ratio"] == pytest.approx(case["dense_macs"] / case["lsh_macs"])
    assert case["realized"] == pytest.approx(case["speed_ratio"] / case["mac_ratio"])
    assert {r["shape"] for r in res["dense"]} >= {"b1 784->1000", "b128 128->100000"}


def test_report_verdicts_follow_the_goals():
    case = {"case": "wide b128 1t", "threads": 1, "batch": 128, "n_in": 128, "n_out": 100_000,
            "dense_s": 0.16, "lsh_s": 0.02, "mac_ratio": 20.0, "speed_ratio": 8.0,
            "realized": 0.4, "active_fraction": 0.05, "goal": 8.0, "saving_goal": 0.5,
            "select_s": 0.005, "select_share": 0.25,
            "lsh_phases_s": {"forward": 0.01, "backward": 0.005, "update": 0.003, "rehash": 0.002}}
    mem = {"dense": {"parts": {"weights": 100}, "peak_rss_kib": 1024, "import_rss_kib": 512},
           "lsh": {"parts": {"weights": 100, "tables": 60}, "peak_rss_kib": 2048,
                   "import_rss_kib": 512,
                   "bytes_per_node_per_table": 6.0, "L": 50}}
    res = {"machine": "test", "cases": [case],
           "dense": [{"shape": "b1", "layer_s": 1.0, "numpy_s": 0.79, "efficiency": 0.79}],
           "memory": mem,
           "threads": [{"kernel": "k", "t1_s": 1.0, "t2_s": 1.06, "ratio": 1 / 1.06,
                        "median_ratio": 1.0}]}
    import io

    buf = io.StringIO()
    missed = speed.report(res, buf)
    text = buf.getvalue()
    # speed 8 >= 8 passes; saving 0.4 < 0.5, select 25% >= 20%, dense 0.79 < 0.8 and
    # 2 threads 6% slower miss; memory 1.6x > 1.5x misses
    assert "speed >= 8x PASS" in text and "saving >= 0.5 MISS" in text
    assert missed == 5
    assert "table bytes per node per table: 6.00 (L = 50)" in text
    assert "speedup 0.94x (medians 1.00x)  MISS" in text  # judged on the fastest repeats


def test_memory_is_measured_in_fresh_processes():
    m = speed.memory(16, 400, 4)
    for method in ("dense", "lsh"):
        assert m[method]["peak_rss_kib"] >= m[method]["import_rss_kib"] > 0
        assert m[method]["parts"]["weights"] == (16 * 400 + 400) * 4
        assert m[method]["parts"]["optimizer_state"] == 2 * (16 * 400 + 400) * 4
    assert m["lsh"]["parts"]["tables"] > 0 and m["lsh"]["bytes_per_node_per_table"] > 0


@pytest.mark.parametrize("argv,msg", [
    (["--cases", "nope"], "unknown case 'nope'"),
    (["--repeats", "0"], "--repeats must be >= 1"),
])
def test_bad_options_are_one_line_errors(argv, msg, capsys):
    rc = main(["bench", "--suite", "speed", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1
