"""What the runner records about the machine, its thread pools and the process's resources."""

import dataclasses
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lshprof import limit_threads
from lshprof.errors import ConfigError
from lshprof.measure.system import (PACKAGES, THREAD_ENV_VARS, ResourceSample, git_commit, git_dirty,
                            machine_info, sample_resources, thread_info, usage_between)

ROOT = Path(__file__).resolve().parents[2]


def _optional(value, kind):
    return value is None or isinstance(value, kind)


# ---- machine_info --------------------------------------------------------------------

def test_machine_info_fields_and_types():
    info = machine_info()
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert isinstance(info["cpu_logical"], int) and info["cpu_logical"] >= 1
    assert _optional(info["cpu_physical"], int)
    for key in ("cpu_freq_current_mhz", "cpu_freq_min_mhz", "cpu_freq_max_mhz"):
        assert _optional(info[key], float)
        assert info[key] is None or info[key] > 0
    assert isinstance(info["memory_total_bytes"], int) and info["memory_total_bytes"] > 0
    assert info["os"] == platform.system()
    assert info["kernel"] == platform.release()
    assert info["python_version"] == platform.python_version()
    assert info["python_implementation"] == platform.python_implementation()
    assert set(info["packages"]) == set(PACKAGES)
    for name in ("lshprof", "numpy", "numba", "threadpoolctl", "psutil"):
        assert isinstance(info["packages"][name], str), name
    assert all(_optional(v, str) for v in info["packages"].values())
    assert _optional(info["git_commit"], str) and _optional(info["git_dirty"], bool)
    json.dumps(info)                                     # a results file can hold it


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_machine_info_has_no_hostname():
    info = machine_info()
    text = json.dumps(info)
    assert not re.search(r'"[^"]*(host|node)[^"]*":', text)   # no such key at all
    host = socket.gethostname()
    assert host not in set(_strings(info))                     # never a whole value
    # A short or generic hostname ("vm", "debian", "x86") can occur inside other fields by
    # chance: check the substring only for a distinctive one. The sentinel test below
    # covers the code paths whatever this machine is called.
    legit = " ".join([platform.platform(), platform.version(), platform.system(), platform.machine(),
                      info["cpu_model"], info["os_name"] or "", json.dumps(info["packages"])])
    distinctive = len(host) >= 6 and host not in legit and not re.fullmatch(
        r"(localhost|debian|ubuntu|fedora|centos|alpine)", host, re.I)
    if distinctive:
        assert host not in text


def test_machine_info_ignores_every_hostname_source(monkeypatch):
    sentinel = "zq-sentinel-host-7731"
    real = platform.uname()
    monkeypatch.setattr(socket, "gethostname", lambda: sentinel)
    monkeypatch.setattr(platform, "node", lambda: sentinel)
    monkeypatch.setattr(platform, "uname", lambda: real._replace(node=sentinel))
    r = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result((r.sysname, sentinel, r.release,
                                                              r.version, r.machine)))
    monkeypatch.setenv("HOSTNAME", sentinel)
    assert sentinel not in json.dumps(machine_info())


def test_git_commit_of_this_checkout():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    commit = git_commit()
    assert commit is not None and re.fullmatch(r"[0-9a-f]{40}", commit)
    assert git_commit(ROOT) == commit
    assert isinstance(git_dirty(), bool)


def test_git_commit_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit(tmp_path) is None
    assert git_dirty(tmp_path) is None
    assert git_commit(tmp_path / "does-not-exist") is None


# ---- thread_info ---------------------------------------------------------------------

def test_thread_info_fields():
    info = thread_info()
    assert isinstance(info["numba_threads"], int) and info["numba_threads"] >= 1
    assert isinstance(info["numba_max_threads"], int)
    assert isinstance(info["numba_threading_layer"], str)
    assert set(info["env"]) == set(THREAD_ENV_VARS)
    assert all(_optional(v, str) for v in info["env"].values())
    for pool in info["blas"]:
        assert {"user_api", "internal_api", "version", "num_threads", "library"} <= set(pool)
        assert pool["library"] is None or "/" not in pool["library"]


def test_thread_info_sees_limit_threads():
    with limit_threads(1):
        info = thread_info()
        assert info["numba_threads"] == 1
        assert info["numba_threading_layer"] != "not chosen yet"
        assert all(pool["num_threads"] == 1 for pool in info["blas"])
    import numba

    assert thread_info()["numba_threads"] == numba.get_num_threads()


def test_thread_info_does_not_start_numba_threads():
    code = ("import numba; from lshprof.measure.system import thread_info; info = thread_info(); "
            "print(info['numba_threading_layer']); print(info['numba_threads'] == numba.config.NUMBA_NUM_THREADS); "
            "numba.threading_layer()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["not chosen yet", "True"], proc.stderr
    assert "not initialized" in proc.stderr                  # still not launched afterwards


def test_thread_info_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    env = thread_info()["env"]
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] is None


# ---- resources -----------------------------------------------------------------------

def test_sample_fields_and_types():
    s = sample_resources()
    assert isinstance(s, ResourceSample)
    assert isinstance(s.t_ns, int)
    assert isinstance(s.process_cpu_s, float) and s.process_cpu_s > 0
    assert isinstance(s.rss_bytes, int) and s.rss_bytes > 0
    assert isinstance(s.peak_rss_bytes, int) and s.peak_rss_bytes >= s.rss_bytes
    assert _optional(s.cpu_freq_mhz, float)
    busy, total = s.system_cpu_times
    assert 0 <= busy <= total
    with pytest.raises(AttributeError):
        s.rss_bytes = 0                                   # frozen


def test_usage_between_busy_loop():
    a = sample_resources()
    t0 = time.perf_counter()
    x = 0
    while time.perf_counter() - t0 < 0.2:
        x += 1
    b = sample_resources()
    u = usage_between(a, b)
    assert set(u) == {"wall_s", "process_cpu_s", "process_cpu_util", "system_cpu_util_percent",
                      "other_cpu_cores", "machine_cores", "load_avg_1m",
                      "rss_bytes", "peak_rss_bytes", "cpu_freq_mhz"}
    assert u["other_cpu_cores"] is None or u["other_cpu_cores"] >= 0
    assert u["wall_s"] > 0.15
    # a busy loop on one thread: some CPU, at most a core (other processes may take the
    # core away for a while, so no lower bound but > 0)
    assert 0 < u["process_cpu_util"] <= 1.5
    assert u["system_cpu_util_percent"] is None or 0 <= u["system_cpu_util_percent"] <= 100
    assert u["rss_bytes"] == b.rss_bytes and u["peak_rss_bytes"] == b.peak_rss_bytes


def test_peak_rss_grows_with_a_touched_array():
    a = sample_resources()
    # 200 MB above the high-water mark already reached (earlier tests may have set it)
    size = 200_000_000 + max(0, a.peak_rss_bytes - a.rss_bytes)
    block = np.ones(size, dtype=np.uint8)                 # ones: every page is written
    b = sample_resources()
    del block
    assert b.peak_rss_bytes - a.peak_rss_bytes >= 150e6
    assert usage_between(a, b)["peak_rss_bytes"] == b.peak_rss_bytes


def test_usage_between_refuses_reversed_samples():
    a = sample_resources()
    with pytest.raises(ConfigError, match="before"):
        usage_between(a, dataclasses.replace(a, t_ns=a.t_ns - 1))


def test_usage_between_zero_interval():
    a = sample_resources()
    u = usage_between(a, a)
    assert u["wall_s"] == 0 and u["process_cpu_util"] is None
    assert u["system_cpu_util_percent"] is None


def test_other_processes_cpu_is_the_machines_busy_time_less_this_process():
    """A neighbour's CPU use (the busy-machine flag's input), exactly, from two samples 2 s
    apart: the machine's cores were busy 3.5 core-seconds, this process 1.5 of them."""
    a = sample_resources()
    b = dataclasses.replace(a, t_ns=a.t_ns + 2_000_000_000,
                            process_cpu_s=a.process_cpu_s + 1.5,
                            system_cpu_busy_s=a.system_cpu_busy_s + 3.5,
                            system_cpu_total_s=a.system_cpu_total_s + 8.0)
    u = usage_between(a, b)
    assert u["other_cpu_cores"] == pytest.approx(1.0)
    assert u["process_cpu_util"] == pytest.approx(0.75)
    assert u["system_cpu_util_percent"] == pytest.approx(100 * 3.5 / 8.0)
    # the process's own CPU time is never counted as a neighbour's, even when counters tick
    # unevenly
    c = dataclasses.replace(b, system_cpu_busy_s=a.system_cpu_busy_s + 1.0)
    assert usage_between(a, c)["other_cpu_cores"] == 0.0
