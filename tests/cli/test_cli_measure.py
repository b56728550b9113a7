"""The measuring commands as a user runs them: sysinfo, calibrate, and demo writing a run folder."""

import json
import signal
import subprocess
import time

import pytest

from lshprof.experiment.results import load_results, read_run
from fake_sysfs import make_tree


def fake_rapl(tmp_path):
    """A one-socket powercap tree: package-0 with a core subzone, and dram."""
    return make_tree(tmp_path, [("intel-rapl:0", "package-0", 5_000_000),
                                ("intel-rapl:0:0", "core", 2_000_000),
                                ("intel-rapl:0:1", "dram", 1_000_000)]).root


SMALL = ["--n-train", "200", "--n-test", "50", "--epochs", "2", "--hidden", "32",
         "--methods", "dense", "lsh", "--fraction", "0.25"]


def test_sysinfo_reports_each_backend_and_why(lshprof_run, tmp_path):
    missing = tmp_path / "nothing"
    r = lshprof_run("sysinfo", "--powercap-root", str(missing), "--json",
                    str(tmp_path / "si.json"))
    assert r.returncode == 0, r.stderr
    assert "energy backends" in r.stdout
    assert "not present" in r.stdout
    assert "--energy auto would use: estimate" in r.stdout
    d = json.loads((tmp_path / "si.json").read_text())["results"]
    by_name = {e["backend"]: e for e in d["energy"]}
    assert set(by_name) == {"powercap", "pyrapl", "estimate", "none"}
    assert not by_name["powercap"]["usable"] and by_name["estimate"]["usable"]
    assert d["machine"]["cpu_logical"] >= 1
    assert d["threads"]["numba_threads"] == 1


def test_sysinfo_sees_a_readable_tree(lshprof_run, tmp_path):
    root = fake_rapl(tmp_path)
    r = lshprof_run("sysinfo", "--powercap-root", str(root))
    assert r.returncode == 0, r.stderr
    assert "package-0" in r.stdout and "dram" in r.stdout
    assert "--energy auto would use: powercap" in r.stdout


def test_calibrate_without_rapl_is_one_clear_line(lshprof_run, tmp_path):
    out = tmp_path / "model.json"
    r = lshprof_run("calibrate", "--powercap-root", str(tmp_path / "none"),
                    "-o", str(out))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "not present" in r.stderr and "LSHPROF_POWERCAP_ROOT" in r.stderr
    assert not out.exists()


def test_demo_with_unavailable_powercap_fails_before_writing(lshprof_run, tmp_path):
    out = tmp_path / "run"
    r = lshprof_run("demo", *SMALL, "--energy", "powercap", "--powercap-root",
                    str(tmp_path / "none"), "-o", str(out))
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]  # the error is one line, after the banner
    assert last.startswith("lshprof demo: error:") and "not present" in last
    assert not out.exists()


def test_demo_auto_falls_back_says_why_once_and_writes_the_run(lshprof_run, tmp_path):
    out = tmp_path / "run"
    r = lshprof_run("demo", *SMALL, "--powercap-root", str(tmp_path / "none"),
                    "-o", str(out), "--idle-baseline", "0.05")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("powercap unavailable (not present)") == 1
    assert "idle baseline not measured" in r.stderr
    assert "energy J (est.)" in r.stdout and "ESTIMATED" in r.stdout
    df = load_results(out)
    assert list(df["method"]) == ["dense", "dense", "lsh", "lsh"]
    assert list(df["epoch"]) == [1, 2, 1, 2]
    assert (df["energy_source"] == "estimated").all()
    meta = read_run(out)
    assert meta["status"] == "complete" and meta["rows"] == 4
    assert meta["energy"]["backend"] == "estimate"
    assert "not present" in meta["energy"]["fallback_reasons"][0]
    assert meta["scenario"]["name"] == "demo"


def test_demo_refuses_to_overwrite_a_run(lshprof_run, tmp_path):
    out = tmp_path / "run"
    assert lshprof_run("demo", *SMALL, "--energy", "none", "-o", str(out)).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = lshprof_run("demo", *SMALL, "--energy", "none", "-o", str(out))
    assert r.returncode == 2 and "already holds a run" in r.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_ctrl_c_keeps_finished_rows_and_marks_the_run(lshprof_cmd, cli_env, tmp_path):
    """SIGINT while the second cell (lsh) runs: the finished first cell (dense) is kept; a
    cell is stored whole or not at all."""
    out = tmp_path / "run"
    p = subprocess.Popen([*lshprof_cmd, "demo", "--n-train", "2000", "--epochs", "200",
                          "--hidden", "64", "--methods", "dense", "lsh", "--energy", "none",
                          "-o", str(out)], env=cli_env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    meta_file = out / "run.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (meta_file.exists() and read_run(out)["rows"] >= 2):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    meta = read_run(out)
    assert meta["status"] == "interrupted" and meta["complete"] is False
    df = load_results(out)
    assert len(df) >= 2 and (df["run_status"] == "interrupted").all()
    assert list(df["epoch"]) == list(range(1, len(df) + 1))
    assert load_results(out, complete_only=True).empty


def test_demo_with_a_missing_energy_model_fails_cleanly(lshprof_run, tmp_path):
    out = tmp_path / "run"
    r = lshprof_run("demo", *SMALL, "--energy", "estimate", "--energy-model",
                    str(tmp_path / "nope.json"), "-o", str(out))
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert "energy model file" in last and "not found" in last and "lshprof calibrate" in last
    assert not out.exists()


@pytest.mark.parametrize("args,match", [
    (["calibrate", "--seconds", "0"], "--seconds"),
    (["demo", "--idle-baseline", "-1"], "--idle-baseline"),
    (["demo", "--energy", "rapl"], "--energy"),
])
def test_bad_measuring_options_are_usage_errors(lshprof_run, args, match):
    r = lshprof_run(*args)
    assert r.returncode == 2 and match in r.stderr


def test_sysinfo_does_not_hang_on_a_fifo_counter(lshprof_run, tmp_path):
    """An ``energy_uj`` that is a FIFO (nothing ever writes it) would block a plain read
    forever: sysinfo ends, says the zone cannot be read, and falls back to the estimate.
    The subprocess has a timeout, so a hang fails the test instead of blocking the suite."""
    import os

    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 5_000_000)])
    fifo = tree.dirs["intel-rapl:0"] / "energy_uj"
    fifo.unlink()
    os.mkfifo(fifo)
    r = lshprof_run("sysinfo", "--powercap-root", str(tree.root), "--json",
                    str(tmp_path / "si.json"), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    d = json.loads((tmp_path / "si.json").read_text())["results"]
    powercap = {e["backend"]: e for e in d["energy"]}["powercap"]
    assert not powercap["usable"] and "energy_uj" in powercap["detail"]
    assert "--energy auto would use: estimate" in r.stdout
