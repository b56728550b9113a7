"""Writing result files: check the folder first, then write atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lshprof.errors import ConfigError

__all__ = ["check_json_target", "check_output_target", "write_text_atomic", "fsync_folder", "write_json_atomic", "write_results_json",
           "json_default", "write_error_message"]


def check_json_target(path: str | None, option: str = "--json") -> None:
    """Fail before any work when ``path``'s folder does not exist."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ConfigError(f"{option}: folder of {path!r} does not exist; create it first")


def check_output_target(path: str | os.PathLike, option: str) -> Path:
    """Fail before any work when an output file cannot be written at ``path`` (given by
    command-line ``option``): it names a folder, or its folder does not exist."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {p} is a folder; give a file name")
    if not p.parent.is_dir():
        raise ConfigError(f"{option} {p}: folder {p.parent} does not exist; create it first")
    return p


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a hidden temporary file beside ``path``, flush it to disk and
    rename it over ``path``: a reader never sees half a file, and a failed write
    leaves the old file and no temporary behind. A target that exists and is not a regular
    file (a device such as /dev/null, a FIFO, a folder) is refused with ``IsADirectoryError``
    or ``FileExistsError``, never renamed over (as root, a rename would replace a device)."""
    import stat

    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError:
        mode = None  # a loop or an unreadable part: the open below says what it is
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        raise FileExistsError(17, "exists and is not a regular file (a device or FIFO)",
                              str(path))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # the clean-up never hides the error that stopped the write (a full disk, a folder
        # that is a file, a read-only file system): it may fail the same way, and is skipped
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def write_error_message(path: str | os.PathLike, exc: OSError, *, kind: str = "path",
                        option: str | None = None) -> str:
    """One line for an OS error met while writing ``path``: ``cannot write PATH: REASON; FIX``,
    the fix chosen by the error (a full disk, a read-only file system, no permission, a part
    of the path that is a file). ``kind`` is what to choose instead (``"folder"``, ``"file"``),
    ``option`` the command-line option that names it (``"-o"``)::

        cannot write runs/x/run.json: No space left on device; free space or choose another
        folder with -o
    """
    import errno

    other = f"choose another {kind}" + (f" with {option}" if option else "")
    fixes = {"ENOSPC": f"free space or {other}",
             "EDQUOT": f"free space (your disk quota is full) or {other}",
             "EROFS": f"{other}, on a writable file system",
             "EACCES": f"{other}, one you may write to",
             "EPERM": f"{other}, one you may write to",
             "ENOTDIR": f"a part of the path is a file, not a folder; {other}",
             "EISDIR": f"a folder is in the way; {other}",
             "EEXIST": f"something that is not a file is in the way; {other}",
             "ELOOP": f"the path is a loop of symbolic links; {other}",
             "ENAMETOOLONG": f"{other}, with a shorter name"}
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot write {os.fspath(path)}: {reason}; " \
           f"{fixes.get(errno.errorcode.get(exc.errno or 0, ''), other)}"


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the OS allows it."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON with :func:`write_text_atomic`."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def write_results_json(args, results: Any) -> None:
    """A command's ``--json`` file: its arguments and its results."""
    write_json_atomic(args.json, {"args": {k: v for k, v in vars(args).items() if k != "func"},
                                  "results": results})


def json_default(o):
    """JSON for numpy scalars and arrays, sets and tuples (as lists)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} as JSON")
