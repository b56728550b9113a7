"""The command line, run as a user runs it: a subprocess, its exit code and output."""

import json
import subprocess
import sys

import pytest


def test_help_lists_commands(lshprof_run):
    r = lshprof_run("--help")
    assert r.returncode == 0
    for command in ("demo", "quality", "methods"):
        assert command in r.stdout


def test_no_command_prints_help_and_fails(lshprof_run):
    r = lshprof_run()
    assert r.returncode == 2
    assert "usage: lshprof" in r.stdout


def test_help_does_not_import_numba(cli_env):
    code = (
        "import sys\n"
        "from lshprof.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "try:\n    main(['demo', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('numba' in sys.modules, 'numpy' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False False"


def test_version(lshprof_run):
    import lshprof

    r = lshprof_run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"lshprof {lshprof.__version__}"


def test_methods_lists_every_method(lshprof_run):
    from lshprof.nn.layers import LAYERS

    r = lshprof_run("methods")
    assert r.returncode == 0, r.stderr
    for name in LAYERS:
        assert name in r.stdout


def test_demo_small_run_writes_table_and_json(lshprof_run, tmp_path):
    out = tmp_path / "demo.json"
    r = lshprof_run("demo", "--n-train", "300", "--n-test", "100", "--epochs", "1",
            "--hidden", "40", "--fraction", "0.1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    labels = [row["method"] for row in data["results"]]
    assert labels == ["dense", "dropout", "adaptive_dropout", "wta", "wta-lifetime", "topk", "lsh"]
    for label in labels:
        assert label in r.stdout
    rows = {row["method"]: row for row in data["results"]}
    # exact counts for this configuration: 128 -> 40 -> 10, batch 32, 300 samples, 1 epoch
    n, n_in, h, c = 300, 128, 40, 10
    assert rows["dense"]["train_macs"]["total"] == n * (2 * n_in * h + 3 * h * c)
    assert rows["dense"]["train_macs"]["dense_equivalent"] == rows["dense"]["train_macs"]["total"]
    k = 4  # active_budget(0.1, 40)
    # select every pre-activation, weight gradient of k rows, no input gradient for layer 1
    assert rows["topk"]["train_macs"]["total"] == n * (n_in * h + n_in * k + 3 * h * c)
    assert rows["topk"]["hidden_active_fraction_measured"] == [k / h]
    for row in rows.values():
        assert 0.0 <= row["test_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--fraction", "0"], "expected a number in (0, 1]"),
        (["demo", "--fraction", "1.5"], "expected a number in (0, 1]"),
        (["demo", "--epochs", "0"], "expected a positive integer"),
        (["demo", "--methods", "bogus"], "unknown demo method 'bogus'"),
        (["demo", "--optimizer", "bogus", "--n-train", "50", "--methods", "dense"],
         "unknown optimizer 'bogus'; valid: sgd, adagrad, adam"),
        (["frobnicate"], "invalid choice"),
        (["demo", "--json", "missing/out.json"], "--json missing/out.json: folder missing does "
                                                 "not exist; create it first"),
        (["demo", "--lr", "-1", "--n-train", "50", "--methods", "dense"], "optimizer adam: lr must be"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(lshprof_run, tmp_path, args, message):
    r = lshprof_run(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_quality_scores_every_family_and_policy(lshprof_run, tmp_path):
    out = tmp_path / "q.json"
    r = lshprof_run("quality", "--n-in", "24", "--n-out", "80", "--n-train", "200",
            "--n-queries", "40", "--train-epochs", "1", "--L", "4", "--K", "3",
            "--fractions", "0.1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["results"]
    combos = {(row["family"], row["policy"]) for row in rows}
    assert combos == {(f, p) for f in ("srp", "srp_sparse", "wta", "dwta")
                      for p in ("union", "histogram", "multiprobe")}
    for row in rows:
        assert row["quality_queries"] == 40
        assert 0.0 <= row["random_recall"] <= 1.0 and 0.0 <= row["recall"] <= 1.0
        assert row["mass"] <= row["topk_mass"] + 1e-9
        assert row["family"] in r.stdout


@pytest.mark.parametrize("args, msg", [
    (["--families", "md5"], "unknown family 'md5'; valid: srp, srp_sparse, wta, dwta"),
    (["--policies", "best"], "unknown policy 'best'"),
    (["--json", "/nonexistent-dir/q.json"], "does not exist"),
])
def test_quality_bad_arguments_exit_2(lshprof_run, args, msg):
    r = lshprof_run("quality", "--n-in", "8", "--n-out", "20", "--n-train", "50",
            "--n-queries", "5", *args)
    assert r.returncode == 2
    assert msg in r.stderr and r.stderr.count("\n") == 1
