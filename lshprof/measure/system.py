"""What a run records about the machine and the process.

:func:`machine_info` and :func:`thread_info` are taken once per run;
:func:`sample_resources` is cheap enough to take at every epoch boundary (a few
small ``/proc`` reads), and :func:`usage_between` turns two samples into CPU
utilisation and memory figures.

The hostname is deliberately never recorded: results files get shared. A one-way
fingerprint (``machine_key``) tells machines apart.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lshprof.errors import ConfigError

__all__ = ["PACKAGES", "available_cores", "machine_key", "THREAD_ENV_VARS", "machine_info", "thread_info", "git_commit", "git_dirty",
           "ResourceSample", "sample_resources", "usage_between"]

#: Distributions whose versions :func:`machine_info` records (None when not installed).
PACKAGES = ("lshprof", "numpy", "numba", "threadpoolctl", "psutil", "pandas", "pyRAPL")

#: Environment variables that set thread-pool sizes.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "NUMBA_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT")

#: The folder holding the ``lshprof`` package (a checkout's root in an editable install).
_SOURCE_ROOT = Path(__file__).resolve().parent.parent
_GIT_TIMEOUT_S = 3.0


# ---- machine ------------------------------------------------------------------------


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _mhz(value: Any) -> float | None:
    """A frequency psutil reports, or None where it reports 0 (unknown, as in most VMs)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _cpu_freq() -> tuple[float | None, float | None, float | None]:
    import psutil

    try:
        freq = psutil.cpu_freq()
    except Exception:      # psutil raises on some containers without cpufreq or cpuinfo
        freq = None
    if freq is None:
        return None, None, None
    return _mhz(freq.current), _mhz(freq.min), _mhz(freq.max)


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _os_name() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except (OSError, AttributeError):
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    """``git args`` in ``cwd``: its stdout, or None on any failure (no git, not a repo, timeout)."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")   # never take the index lock
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)                                        # ask about cwd, nothing else
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=_GIT_TIMEOUT_S, check=False, text=True)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _checkout(path: str | os.PathLike | None) -> Path | None:
    """The folder to ask git about: ``path``, or lshprof's source root when it is tracked
    in a repository (not merely a site-packages folder inside someone's checkout)."""
    if path is not None:
        return Path(path)
    marker = f"{Path(__file__).resolve().parent.name}/__init__.py"
    if _git(["ls-files", "--error-unmatch", "--", marker], _SOURCE_ROOT) is None:
        return None
    return _SOURCE_ROOT


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit (40 hex digits) checked out at ``path`` (default: lshprof's own source
    tree); None when that is not a git checkout or git is missing or slow."""
    where = _checkout(path)
    if where is None:
        return None
    out = _git(["rev-parse", "--verify", "--quiet", "HEAD"], where)
    commit = out.strip() if out else ""
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        return commit
    return None


def git_dirty(path: str | os.PathLike | None = None) -> bool | None:
    """Whether the code at ``path`` differs from its commit: a tracked file changed, or an
    untracked ``.py`` file present (new code that ran). None when unknown."""
    where = _checkout(path)
    if where is None:
        return None
    out = _git(["status", "--porcelain", "--untracked-files=all"], where)
    if out is None:
        return None
    for line in out.splitlines():
        if not line.startswith("??"):
            return True
        if line[3:].strip('"').endswith(".py"):
            return True
    return False


def machine_info() -> dict[str, Any]:
    """The machine, the interpreter and the versions that produced a result.

    No hostname, user name or path outside the package is recorded.
    """
    import psutil

    cur, low, high = _cpu_freq()
    commit = git_commit()
    return {
        "cpu_model": _cpu_model(),
        "cpu_arch": platform.machine() or None,
        "cpu_logical": psutil.cpu_count(logical=True),
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpu_freq_current_mhz": cur,
        "cpu_freq_min_mhz": low,
        "cpu_freq_max_mhz": high,
        "memory_total_bytes": int(psutil.virtual_memory().total),
        "os": platform.system(),
        "os_name": _os_name(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": {name: _dist_version(name) for name in PACKAGES},
        "git_commit": commit,
        "git_dirty": git_dirty() if commit else None,
        "machine_key": machine_key(),
    }


def machine_key() -> str:
    """A one-way fingerprint that tells this machine from others without naming it: 16 hex
    digits of the sha256 of the OS's machine id (``/etc/machine-id``) or, where there is
    none, of the network name, salted. Results of a run that spans machines are told apart
    by it (:func:`lshprof.experiment.results.machine_id`); the name itself is not recorded."""
    import hashlib
    import socket

    ident = ""
    for f in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            ident = Path(f).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if ident:
            break
    ident = ident or socket.gethostname()
    return hashlib.sha256(f"lshprof machine {ident}".encode()).hexdigest()[:16]


# ---- threads ------------------------------------------------------------------------

def thread_info() -> dict[str, Any]:
    """The thread pools as they stand now: numba's and every loaded BLAS library's.

    numba's thread count is per calling thread (``numba.set_num_threads`` is thread
    local), so call this from the thread that runs the kernels. It does not start
    numba's threading layer: before the layer is up, the count is the configured
    maximum and the layer reads ``"not chosen yet"``.
    """
    import importlib

    import numba
    from threadpoolctl import threadpool_info

    importlib.import_module("numpy")    # threadpoolctl sees only loaded BLAS libraries

    try:
        layer = numba.threading_layer()
    except ValueError:           # raised until the first parallel launch
        layer = None
    configured = int(numba.config.NUMBA_NUM_THREADS)
    blas = [{
        "user_api": pool.get("user_api"),
        "internal_api": pool.get("internal_api"),
        "version": pool.get("version"),
        "num_threads": pool.get("num_threads"),
        "library": os.path.basename(pool.get("filepath") or "") or None,
        "threading_layer": pool.get("threading_layer"),
        "architecture": pool.get("architecture"),
    } for pool in threadpool_info()]
    return {
        "numba_threads": numba.get_num_threads() if layer is not None else configured,
        "numba_max_threads": configured,
        "numba_threading_layer": layer if layer is not None else "not chosen yet",
        "blas": blas,
        "env": {var: os.environ.get(var) for var in THREAD_ENV_VARS},
    }


# ---- resources ----------------------------------------------------------------------

_PROCESS = None   # psutil.Process of this pid, made once (a fork gets its own)


def _process():
    global _PROCESS
    import psutil

    if _PROCESS is None or _PROCESS.pid != os.getpid():
        _PROCESS = psutil.Process()
    return _PROCESS


_RSS_UNIT = 1 if sys.platform == "darwin" else 1024   # ru_maxrss: bytes on macOS, KiB on Linux


@dataclass(frozen=True)
class ResourceSample:
    """The process and the machine at one moment; two of them make :func:`usage_between`."""

    t_ns: int                      #: time.monotonic_ns()
    process_cpu_s: float           #: user + system CPU of this process (children excluded)
    rss_bytes: int                 #: resident set size now
    peak_rss_bytes: int            #: highest resident set size so far (getrusage)
    cpu_freq_mhz: float | None     #: current CPU frequency, None when unknown
    system_cpu_busy_s: float       #: all cores' busy time since boot (psutil.cpu_times)
    system_cpu_total_s: float      #: all cores' total time since boot

    @property
    def system_cpu_times(self) -> tuple[float, float]:
        """``(busy_s, total_s)`` of all cores since boot."""
        return self.system_cpu_busy_s, self.system_cpu_total_s


def _system_cpu_times() -> tuple[float, float]:
    import psutil

    t = psutil.cpu_times()
    total = sum(t)
    # Linux counts guest time inside user/nice as well: take it out once (as psutil does)
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return total - idle, total


def sample_resources() -> ResourceSample:
    """One :class:`ResourceSample` of this process and machine (tens of microseconds)."""
    proc = _process()
    t_ns = time.monotonic_ns()
    cpu = proc.cpu_times()
    rss = proc.memory_info().rss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT
    busy, total = _system_cpu_times()
    freq, _, _ = _cpu_freq()
    return ResourceSample(t_ns=t_ns, process_cpu_s=cpu.user + cpu.system, rss_bytes=int(rss),
                          peak_rss_bytes=int(max(peak, rss)), cpu_freq_mhz=freq,
                          system_cpu_busy_s=busy, system_cpu_total_s=total)


def usage_between(a: ResourceSample, b: ResourceSample) -> dict[str, Any]:
    """What happened between samples ``a`` and ``b`` (``b`` taken later).

    ``process_cpu_util`` is process CPU seconds per wall second (1.0: one core busy;
    up to the core count); ``system_cpu_util_percent`` is the busy share of all cores
    (0-100), this process and every other; ``other_cpu_cores`` is how many cores every
    other process kept busy on average (the machine's busy core-seconds less this
    process's, per wall second: a busy neighbour), of ``machine_cores`` logical cores;
    ``load_avg_1m`` is the one-minute load average at ``b``. Memory and frequency are as
    at ``b``. CPU times tick every 10 ms or so, so over a short interval ``other_cpu_cores``
    is uncertain by a few tenths of a core.
    """
    wall_ns = b.t_ns - a.t_ns
    if wall_ns < 0:
        raise ConfigError("usage_between: the second sample was taken before the first")
    wall_s = wall_ns / 1e9
    cpu_s = max(0.0, b.process_cpu_s - a.process_cpu_s)
    d_total = b.system_cpu_total_s - a.system_cpu_total_s
    d_busy = b.system_cpu_busy_s - a.system_cpu_busy_s
    system_util = min(100.0, max(0.0, 100.0 * d_busy / d_total)) if d_total > 0 else None
    other = max(0.0, (d_busy - cpu_s) / wall_s) if wall_s > 0 and d_total > 0 else None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return {
        "wall_s": wall_s,
        "process_cpu_s": cpu_s,
        "process_cpu_util": cpu_s / wall_s if wall_s > 0 else None,
        "system_cpu_util_percent": system_util,
        "other_cpu_cores": other,
        "machine_cores": os.cpu_count(),
        "load_avg_1m": load,
        "rss_bytes": b.rss_bytes,
        "peak_rss_bytes": b.peak_rss_bytes,
        "cpu_freq_mhz": b.cpu_freq_mhz,
    }
