"""Slow subprocesses that a test needs, started when the session starts.

A test whose work is one long subprocess (compiling every kernel in a fresh process,
say) marks itself with :func:`starts_early`; ``tests/conftest.py`` starts the subprocess
of every selected test so marked before the first test runs, so that it runs on a core
the test process leaves idle, and the test takes its result with :func:`result` (waiting
for it if it has not ended yet). Deselected tests start nothing.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["starts_early", "start_marked", "result", "stop_all"]

_PROCS: dict[str, tuple[subprocess.Popen, Path]] = {}
_BASES: list[Path] = []


def starts_early(start: Callable[[Path], tuple[list[str], dict[str, str]]]):
    """Decorator for a test: ``start(folder)`` returns ``(argv, env)`` of the subprocess the
    test needs (``folder``: an empty folder of its own)."""
    def mark(test):
        test.starts_early = start
        return test
    return mark


def start_marked(items, base: Path) -> None:
    """Start the subprocess of every item (a pytest item) marked :func:`starts_early`, each
    in a folder of its own under ``base`` (removed by :func:`stop_all`)."""
    _BASES.append(Path(base))
    for item in items:
        start = getattr(getattr(item, "function", None), "starts_early", None)
        if start is None or item.nodeid in _PROCS:
            continue
        folder = Path(tempfile.mkdtemp(prefix="early-", dir=base))
        argv, env = start(folder)
        out = open(folder / "stdout", "w+", encoding="utf-8")
        err = open(folder / "stderr", "w+", encoding="utf-8")
        try:
            _PROCS[item.nodeid] = (subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                                    text=True), folder)
        finally:  # the child has its own copies of the files
            out.close()
            err.close()


def result(nodeid: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The ended subprocess of test ``nodeid`` (``request.node.nodeid``): its exit status and
    output."""
    proc, folder = _PROCS[nodeid]
    proc.wait(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       (folder / "stdout").read_text(encoding="utf-8"),
                                       (folder / "stderr").read_text(encoding="utf-8"))


def stop_all() -> None:
    """Stop what is still running and remove the folders."""
    import shutil

    for proc, _ in _PROCS.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _PROCS.clear()
    for base in _BASES:
        shutil.rmtree(base, ignore_errors=True)
    _BASES.clear()
