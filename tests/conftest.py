"""Fixtures the whole suite shares.

The command line as a user runs it: ``lshprof_cmd``, ``cli_env`` and ``lshprof_run`` (a
subprocess: its exit code and output); ``lshprof_run_session`` is the same for session- and
module-scoped fixtures.

Stored runs of the ``ci`` scenario, made once per session in a folder of
``tmp_path_factory``, each by ``lshprof run ci -o DIR ...`` in a subprocess, as a user runs
it; those the session's tests use start together as the session starts, and the tests that
read them run last:

``ci_run``
    ``-q``: the whole scenario (18 cells, three seeds), its report written; ``ci_run_output``
    is what the command printed.
``ci_run_default``
    no option: ``(folder, CompletedProcess)``.
``ci_run_two_seeds``
    ``-q --no-report --seeds 0 1``.
``ci_dense_run``
    ``-q --no-report --methods dense --energy none``.

They are shared: read them, and copy one (``shutil.copytree``) before changing anything in it.
"""

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def lshprof_cmd() -> list[str]:
    """The CLI as a user runs it: the interpreter of this test run with -m lshprof."""
    return [sys.executable, "-m", "lshprof"]


def _with(env: dict[str, str], extra: dict | None) -> dict[str, str]:
    """A copy of ``env`` with the variables of ``extra`` set (a value of None unsets one)."""
    env = dict(env)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def _env() -> dict[str, str]:
    """This process's environment with the checkout first on PYTHONPATH."""
    return _with(os.environ, {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})


def _run(cmd, env, args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, *(str(a) for a in args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


@pytest.fixture
def cli_env(tmp_path):
    return _env()


@pytest.fixture
def lshprof_run(lshprof_cmd, cli_env):
    """``lshprof_run(*args, cwd=None, timeout=300, env=None)``: ``python -m lshprof ARGS`` in a
    subprocess, with ``cli_env`` and ``env`` (variables to set on top; a value of None
    unsets one). Returns the CompletedProcess, its output as text. Arguments may be paths."""

    def run(*args, cwd=None, timeout=300, env=None) -> subprocess.CompletedProcess:
        return _run(lshprof_cmd, _with(cli_env, env), args, cwd=cwd, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def lshprof_run_session(lshprof_cmd):
    """``lshprof_run`` for session- and module-scoped fixtures (``cli_env`` is per test)."""

    def run(*args, cwd=None, timeout=300, env=None) -> subprocess.CompletedProcess:
        return _run(lshprof_cmd, _with(_env(), env), args, cwd=cwd, timeout=timeout)

    return run


# -- stored runs of the ci scenario, one of each per session ------------------------------------
#: The shared runs: the options of ``lshprof run ci -o DIR ...`` for each.
CI_RUNS = {
    "ci_run": ["-q"],
    "ci_run_default": [],
    "ci_run_two_seeds": ["-q", "--no-report", "--seeds", "0", "1"],
    "ci_dense_run": ["-q", "--no-report", "--methods", "dense", "--energy", "none"],
}
#: The fixtures that read each run, where they are more than the run's own.
READERS = {"ci_run": ("ci_run", "ci_run_output")}


class _CiRuns:
    """The runs of CI_RUNS that this session's tests use, each a subprocess, all started
    when the first is needed and run side by side on every CPU (this process mostly waits
    for them)."""

    def __init__(self, base: Path, run, names):
        self.base, self.run = base, run
        self.pool = concurrent.futures.ThreadPoolExecutor(len(os.sched_getaffinity(0)))
        self.futures = {}
        for name in names:
            self._start(name)

    def _start(self, name):
        out = self.base / name / "ci"
        self.futures[name] = self.pool.submit(self.run, "run", "ci", "-o", out, *CI_RUNS[name])

    def result(self, name) -> tuple[Path, subprocess.CompletedProcess]:
        """``(folder, CompletedProcess)`` of run ``name``, once it has ended."""
        if name not in self.futures:
            self._start(name)
        return self.base / name / "ci", self.futures[name].result()

    def finished(self, name) -> Path:
        out, r = self.result(name)
        command = " ".join(["lshprof run ci -o", str(out), *CI_RUNS[name]])
        assert r.returncode == 0, f"{command}:\n{r.stderr}"
        return out


@pytest.fixture(scope="session")
def _ci_runs(request, tmp_path_factory, lshprof_run_session):
    used = set().union(*(_shared_runs_read(item) for item in request.session.items))
    runs = _CiRuns(tmp_path_factory.mktemp("ci-runs"), lshprof_run_session,
                   [name for name in CI_RUNS if name in used])
    yield runs
    runs.pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def ci_run(_ci_runs) -> Path:
    """``lshprof run ci -q``: the whole scenario (18 cells, three seeds), its report written."""
    return _ci_runs.finished("ci_run")


@pytest.fixture(scope="session")
def ci_run_output(_ci_runs) -> subprocess.CompletedProcess:
    """What ``lshprof run ci -q`` (``ci_run``) printed, and its exit status."""
    return _ci_runs.result("ci_run")[1]


@pytest.fixture(scope="session")
def ci_run_default(_ci_runs) -> tuple[Path, subprocess.CompletedProcess]:
    """``lshprof run ci -o DIR``, every option at its default: the folder and the
    CompletedProcess (its exit status is the test's to check)."""
    return _ci_runs.result("ci_run_default")


@pytest.fixture(scope="session")
def ci_run_two_seeds(_ci_runs) -> Path:
    """``lshprof run ci -q --no-report --seeds 0 1``: two seeds, so error bars."""
    return _ci_runs.finished("ci_run_two_seeds")


@pytest.fixture(scope="session")
def ci_dense_run(_ci_runs) -> Path:
    """``lshprof run ci -q --no-report --methods dense --energy none``: dense cells only
    (three seeds, six epochs), no energy measured."""
    return _ci_runs.finished("ci_dense_run")


# -- slow subprocesses that start with the session (tests/background.py) -------------------------
def pytest_collection_finish(session):
    import tempfile

    import background

    if getattr(session.config.option, "collectonly", False):
        return
    background.start_marked(session.items, Path(tempfile.mkdtemp(prefix="lshprof-early-")))


def pytest_sessionfinish(session):
    import background

    background.stop_all()



def _shared_runs_read(item) -> set[str]:
    """The shared runs (names of CI_RUNS) that test ``item`` reads."""
    names = set(getattr(item, "fixturenames", ()))
    return {name for name in CI_RUNS if set(READERS.get(name, (name,))) & names}


def _uses_shared_runs(item) -> bool:
    return bool(_shared_runs_read(item))


def pytest_collection_modifyitems(session, config, items):
    """The tests that read the shared ci runs go last (in their order), so that the runs,
    started with the session, are made beside the other tests rather than waited for."""
    items[:] = [i for i in items if not _uses_shared_runs(i)] + \
        [i for i in items if _uses_shared_runs(i)]


@pytest.fixture(scope="session", autouse=True)
def _start_shared_runs_early(request):
    """Start the shared ci runs that selected tests read as the session starts."""
    if any(_uses_shared_runs(item) for item in request.session.items):
        request.getfixturevalue("_ci_runs")
