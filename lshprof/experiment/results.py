"""The results store: one folder per run, one file per finished cell, each written once.

Results format version 2 (the one this lshprof writes). A run folder holds

``run.json``
    ``format`` (``"lshprof-run"``) and ``version`` (2); ``status`` (``running``,
    ``complete``, ``interrupted`` or ``failed``) and ``complete``; ``started_at``,
    ``ended_at`` and, for a resumed run, ``resumed_at``; what the runner gives it (the
    scenario, the ``plan`` of cell ids, lshprof and library versions, the machine and
    thread settings, the energy backend and its source, the ``measurement`` settings and
    the ``data_digest`` that a resume must match, run-level totals); ``cells``
    and ``rows``, the number of finished cells and of their rows. One process writes it:
    the one running the sweep.
``cells/``
    one JSON file per finished cell, named by a readable slug of the cell's id and the
    first 8 hex digits of the id's sha256
    (``lsh-fraction-0.05-seed-0-threads-1-3f2a9c1b.json``)::

        {"format": "lshprof-cell", "version": 2, "cell": "lsh|fraction=0.05|seed=0|threads=1",
         "seq": 7, "written_at": "2025-01-01T12:00:00+00:00", "machine": {...}, "info": {...},
         "rows": [{"method": "lsh", "epoch": 1, "wall_forward_s": 0.0123, ...}, ...]}

    ``seq`` numbers the cells in the order they were written, from 0; ``machine`` is the
    machine that measured the cell; ``rows`` holds one row per epoch, columns named with
    their units (``wall_forward_s``, ``energy_j``, ``macs_forward``, ...). Numbers are
    written at full precision, NaN as ``null`` and infinities as ``1e999`` / ``-1e999``
    (plain JSON, which every reader of doubles reads as infinity); numpy scalars and
    arrays as numbers and lists.

What a reader can count on:

- a cell file is written to a hidden temporary file beside it (``.NAME.tmp-PID``),
  flushed to disk, renamed into place, and the folder flushed: a reader sees the whole
  file or none, and a temporary file left by a killed writer is ignored;
- a cell file is never rewritten, and a second file for the same cell id is refused;
- adding a cell writes its file and ``run.json`` and reads or writes no other file, so a
  run's writing is linear in its size;
- ``run.json`` is updated after the cell file, so its ``cells`` count never exceeds the
  files; a run stopped by Ctrl-C, a crash or ``kill -9`` keeps every finished cell, and
  its ``run.json`` says it is not complete;
- a folder has one writer at a time: :class:`RunWriter` holds an OS lock on ``.lock`` in
  the folder (``flock``, through the ``filelock`` library) from before its first write
  until it finishes, and records its pid, start time and command in
  ``.lock-holder.json`` (removed when it finishes), so that a second writer is refused
  with a line naming the live one (:func:`lock_holder`). A writer killed with ``kill -9``
  leaves ``.lock`` behind, but the OS no longer holds it: the next writer takes it. The
  lock files are hidden; readers ignore them, and read a folder that is being written
  (they see its finished cells);
- an OS error while writing (a full disk, a read-only file system) is a
  :class:`~lshprof.errors.ResultsError` of one line naming the file and the fix; the
  files written before it stay whole.

What a reader refuses, rather than guess (each a one-line
:class:`~lshprof.errors.ResultsError` naming the file and the key or column):

- a ``run.json`` that is not UTF-8 JSON, or whose keys have the wrong type (``"rows":
  NaN``, ``"scenario": "oops"``);
- text where a number belongs: a cell's value, or a version-1 table's cell, in a numeric
  column (see :func:`numeric_column`: MAC counts, times, energies, accuracies, the epoch,
  seed and thread count). A missing value (``null``, an empty CSV cell, ``NaN``) stays
  NaN, an infinity stays infinite: the loader never turns one into a number;
- the same epoch of the same cell twice (a copied cell file, a row repeated in a cell
  file or a version-1 table), even when the two are identical: a table that holds a row
  twice was damaged, and which copy is right cannot be told.

:func:`load_results` reads one run or many into a pandas DataFrame. Without lshprof::

    import json, pathlib, pandas as pd
    cells = [json.loads(f.read_text()) for f in pathlib.Path("runs/x/cells").glob("*.json")]
    df = pd.DataFrame([r for c in sorted(cells, key=lambda c: c["seq"]) for r in c["rows"]])

:func:`load_results` gives the DataFrame a version-1 table gave for the same rows (lists
and dicts as JSON text, missing values as NaN, the same dtypes), but for one thing: a NaN
inside a list or dict reads as ``null`` in that text, where version 1 wrote ``NaN``.

Version 1 folders (``run.json`` and ``measurements.csv``, one CSV table rewritten
after every row) still load, as before; they cannot be resumed. :data:`FORMAT_VERSIONS`
lists every version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from lshprof.errors import ResultsError
from lshprof.files import fsync_folder, json_default, write_error_message, write_text_atomic

__all__ = ["stored_cells", "FORMAT", "FORMAT_VERSION", "FORMAT_VERSIONS", "CELL_FORMAT", "RUN_FILE", "CELLS_DIR",
           "TABLE_FILE", "LOCK_FILE", "HOLDER_FILE", "LOCK_FILES", "RunWriter", "cell_filename",
           "machine_id", "load_results", "lock_holder", "check_not_busy", "holds_only_leftovers",
           "numeric_column", "run_folder", "read_run", "utc_now", "RUN_KEYS", "SCENARIO_KEYS",
           "NUMERIC_NAMES", "NUMERIC_PREFIXES", "NUMERIC_SUFFIXES"]

FORMAT = "lshprof-run"
CELL_FORMAT = "lshprof-cell"
#: The results format versions, oldest first, and what each changed.
FORMAT_VERSIONS = {
    1: "run.json and measurements.csv, one CSV table rewritten whole after every row",
    2: "run.json and cells/, one JSON file per finished cell, written once and never "
       "rewritten; rows keep their JSON types; each cell records its machine",
}
#: The version this lshprof writes.
FORMAT_VERSION = 2
RUN_FILE = "run.json"
CELLS_DIR = "cells"
#: The version-1 table (read, never written).
TABLE_FILE = "measurements.csv"
STATUSES = ("running", "complete", "interrupted", "failed")
#: The machine record's fields that identify a machine (not its frequency or software).
MACHINE_IDENTITY = ("machine_key", "cpu_model", "cpu_logical", "cpu_physical", "memory_total_bytes")
#: The one-writer lock of a run folder (held with flock while a writer lives) and the
#: record of who holds it; both hidden, both ignored by readers.
LOCK_FILE = ".lock"
HOLDER_FILE = ".lock-holder.json"
LOCK_FILES = (LOCK_FILE, HOLDER_FILE)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cell(v: Any) -> str:
    """A CSV cell: numbers at full precision, None as empty, containers as JSON."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):  # numpy float64 too
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=json_default)
    if hasattr(v, "item"):  # numpy scalar
        return _cell(v.item())
    return str(v)


# -- writing ----------------------------------------------------------------------------------
def _json(v: Any) -> str:
    """``v`` as strict JSON: floats at full precision, NaN as null, infinities as +-1e999;
    numpy scalars and arrays, tuples and sets as their Python values."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "null"
        if math.isinf(v):
            return "1e999" if v > 0 else "-1e999"
        return float.__repr__(float(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_json_key(k)}: {_json(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_json(x) for x in v) + "]"
    return _json(json_default(v))   # numpy, sets; anything else raises TypeError


def _json_key(k: Any) -> str:
    if isinstance(k, str):
        return json.dumps(k, ensure_ascii=False)
    if k is None or isinstance(k, (bool, int, float)):
        return json.dumps(json.dumps(k))   # as json.dumps writes such keys
    if hasattr(k, "item"):
        return _json_key(k.item())
    raise TypeError(f"cannot write a {type(k).__name__} key as JSON")


def _encode_cell(doc: dict[str, Any]) -> str:
    """A cell file's text: the header fields one a line, then one row a line."""
    head = [f"{_json_key(k)}: {_json(v)}" for k, v in doc.items() if k != "rows"]
    rows = ",\n".join(_json(r) for r in doc["rows"])
    return "{" + ",\n".join(head) + ',\n"rows": [' + (f"\n{rows}\n" if rows else "") + "]}\n"


def _is_temp(name: str) -> bool:
    """A temporary file that :func:`lshprof.files.write_text_atomic` leaves when killed."""
    return name.startswith(".") and ".tmp-" in name


def cell_filename(cell_id: str) -> str:
    """The file name of a cell: a readable slug of its id and 8 hex digits of the id's
    sha256, so that ids the slug makes equal still get files of their own."""
    slug = re.sub(r"[^a-z0-9._]+", "-", cell_id.lower()).strip("-._")[:80].strip("-._")
    digest = hashlib.sha256(cell_id.encode("utf-8")).hexdigest()[:8]
    return f"{slug or 'cell'}-{digest}.json"


def _lock_of(path: Path):
    """A :class:`filelock.FileLock` on ``path`` that is tried once (never waited for), and
    that any thread of this process may release."""
    import filelock

    return filelock.FileLock(str(path), timeout=0, thread_local=False)


def _command_line() -> str:
    """This process's command line as its user typed it (``lshprof run ...``)."""
    argv = list(sys.argv)
    if argv and (Path(argv[0]).name in ("lshprof", "__main__.py")):
        argv = ["lshprof", *argv[1:]]
    elif not argv or argv[0] in ("", "-c", "-m"):
        argv = [Path(sys.executable).name, *argv]
    return shlex.join(argv)


def _machine_key() -> str:
    from lshprof.measure.system import machine_key

    return machine_key()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError, ValueError):
        return True
    return True


def _holder_text(folder: Path, wait_s: float = 1.0) -> str:
    """Who holds ``folder``'s lock, in words, from its holder record (when the process it
    names lives, or lives on another host). A writer records itself just after it takes
    the lock: a record that is missing, or names a process that has ended (the record of
    a killed writer), is read again for up to ``wait_s`` seconds."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        text = _holder_record(folder)
        if not text.startswith("a process") or time.monotonic() >= deadline:
            return text
        time.sleep(0.02)


def _holder_record(folder: Path) -> str:
    try:
        d = json.loads((folder / HOLDER_FILE).read_bytes().decode("utf-8"))
        pid = d["pid"]
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded its pid"
    # the machine as a one-way key (its name is never recorded, as in every other file)
    here = d.get("machine") in (None, _machine_key())
    if here and not _pid_alive(pid):
        return f"a process that has not recorded its pid; pid {pid} recorded before has ended"
    text = f"pid {pid}" + ("" if here else " on another machine")
    if isinstance(d.get("started_at"), str):
        text += f", started {d['started_at']}"
    if isinstance(d.get("command"), str):
        text += f": {d['command']}"
    return text


def lock_holder(path: str | os.PathLike, *, wait_s: float = 1.0) -> str | None:
    """The live writer of run folder ``path``, in words (``pid 1234, started
    2025-01-01T12:00:00+00:00: lshprof run ci -o runs/x``), or None when no process
    holds its lock. Writes nothing (a folder without ``.lock`` has no writer); a lock
    that cannot be tried (a folder this user may not write) answers None, and the writer
    that opens the folder finds out. ``wait_s``: how long to wait for the record of a
    writer that has just taken the lock."""
    import filelock

    folder = run_folder(Path(path))
    if not (folder / LOCK_FILE).is_file():
        return None
    lock = _lock_of(folder / LOCK_FILE)
    try:
        lock.acquire()
    except filelock.Timeout:
        return _holder_text(folder, wait_s)
    except OSError:
        return None
    lock.release()
    return None


def holds_only_leftovers(path: str | os.PathLike) -> bool:
    """Whether folder ``path`` holds nothing but what a writer killed before its first
    ``run.json`` leaves: the lock files, its temporary files, an empty ``cells/``. Such a
    folder is as good as empty: a new run may be written into it."""
    folder = Path(path)
    for p in folder.iterdir():
        if p.name in LOCK_FILES or (_is_temp(p.name) and p.is_file()):
            continue
        if p.name == CELLS_DIR and p.is_dir() and all(_is_temp(q.name) for q in p.iterdir()):
            continue
        return False
    return True


def _busy(folder: Path, holder: str) -> ResultsError:
    return ResultsError(f"{folder} is being written by another lshprof run ({holder}); "
                        "nothing was written: wait for it to end, or choose another folder "
                        "with -o")


def check_not_busy(path: str | os.PathLike) -> None:
    """Raise :class:`~lshprof.errors.ResultsError` (one line naming the live process) when
    another process writes run folder ``path`` (see :func:`lock_holder`)."""
    holder = lock_holder(path)
    if holder:
        raise _busy(run_folder(Path(path)), holder)


class RunWriter:
    """Writes one run folder of results format 2. Use as a context manager: leaving the
    block marks the run ``complete``; Ctrl-C marks it ``interrupted`` and an exception
    ``failed`` (with the error), keeping every cell written so far.

    ``meta`` goes into ``run.json`` as is (scenario, plan, versions, machine, energy,
    ...). A folder that already holds a run is refused unless ``resume=True``, which
    keeps its cells and adds new ones after them; a version-1 folder cannot be resumed.

    The writer holds the folder's lock (``.lock``) from before its first write until
    :meth:`finish` (or :meth:`close`): a folder that another live process writes is
    refused with a :class:`~lshprof.errors.ResultsError` naming it, before anything is
    written. A writer that cannot open the folder (a file in the way, a full disk)
    removes the folders it created. OS errors while writing are
    :class:`~lshprof.errors.ResultsError` lines naming the file.
    """

    def __init__(self, folder: str | os.PathLike, meta: dict[str, Any], *, resume: bool = False):
        self.folder = Path(folder)
        self.run_path = self.folder / RUN_FILE
        self.cells_path = self.folder / CELLS_DIR
        self._cells: dict[str, int] = {}
        self._next_seq = 0
        self._lock = None
        self._pid = os.getpid()
        # refusals that need no lock come first, and write nothing
        if self.folder.is_dir():
            check_not_busy(self.folder)
        self._refuse(resume)
        if self.run_path.exists():
            self._check_resumable(read_run(self.folder))
        created = self._make_folder()
        try:
            self._take_lock()
            self._refuse(resume)   # again, now that no other writer can change the folder
            self._open(meta)
        except BaseException:
            # with the lock held no other writer is in the folders this one made: they go,
            # with the lock files; without it (another writer's), only empty ones
            self._remove(created, files=self._lock is not None)
            self._release()
            raise

    def _refuse(self, resume: bool) -> None:
        if self.run_path.exists():
            if not resume:
                raise ResultsError(f"{self.folder} already holds a run; choose another output "
                                   "folder, delete this one, or resume it")
        elif self.cells_path.is_dir() and any(p.suffix == ".json" and not p.name.startswith(".")
                                              for p in self.cells_path.iterdir()):
            raise ResultsError(f"{self.folder} holds cell files but no {RUN_FILE}; choose "
                               "another output folder or delete this one")

    def _check_resumable(self, old: dict[str, Any]) -> None:
        if old["version"] != FORMAT_VERSION:
            raise ResultsError(
                f"{self.folder} holds a version-{old['version']} run ({TABLE_FILE}), which "
                f"this lshprof reads but cannot resume (it writes version {FORMAT_VERSION}); "
                "run the scenario again into a new folder")

    def _open(self, meta: dict[str, Any]) -> None:
        for f in (self.folder, self.cells_path):   # left by a killed writer
            for p in (f.iterdir() if f.is_dir() else ()):
                if _is_temp(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
        if self.run_path.exists():
            old = read_run(self.folder)
            self._check_resumable(old)
            for _, doc in _scan_cells(self.folder):
                self._cells[doc["cell"]] = len(doc["rows"])
                self._next_seq = max(self._next_seq, doc["seq"] + 1)
            old.pop("error", None)
            base = {**old, **meta, "started_at": old.get("started_at"),
                    "resumed_at": [*(old.get("resumed_at") or []), utc_now()]}
        else:
            base = {**meta, "started_at": utc_now()}
        try:
            self.cells_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create results folder {self.cells_path}: "
                               f"{exc.strerror}; choose another with -o") from None
        self.meta: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION}
        self.meta.update((k, v) for k, v in base.items() if k not in ("format", "version"))
        self.meta.update(status="running", complete=False, ended_at=None,
                         cells=len(self._cells), rows=sum(self._cells.values()))
        self._write_meta()
        self._fsync(self.folder)

    # -- the folder, its lock, and writing --------------------------------------------------------
    def _make_folder(self) -> list[Path]:
        """Create the run folder and its missing parents, each with an exclusive mkdir (one
        that another process made is not this writer's); return those it created, the
        deepest first."""
        missing, p = [], self.folder
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        created: list[Path] = []
        try:
            for d in reversed(missing):
                try:
                    d.mkdir()
                    created.insert(0, d)
                except FileExistsError:
                    pass
            if not self.folder.is_dir():
                raise NotADirectoryError(20, os.strerror(20))
        except OSError as exc:
            self._remove(created, files=False)
            raise ResultsError(f"cannot create results folder {self.folder}: "
                               f"{exc.strerror}; choose another with -o") from None
        return created

    def _remove(self, created: list[Path], *, files: bool = True) -> None:
        """Remove the folders this writer created (when it failed to open); with ``files``
        (it holds the lock), the lock files and empty cells folder it put in the run
        folder too. Anything else in them stays."""
        for d in created:
            if d == self.folder and files:
                for name in LOCK_FILES:
                    try:
                        (d / name).unlink(missing_ok=True)
                    except OSError:
                        pass
                try:
                    self.cells_path.rmdir()
                except OSError:
                    pass
            try:
                d.rmdir()
            except OSError:
                return

    def _take_lock(self) -> None:
        import filelock

        lock = _lock_of(self.folder / LOCK_FILE)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise _busy(self.folder, _holder_text(self.folder)) from None
        except OSError as exc:
            raise ResultsError(write_error_message(self.folder / LOCK_FILE, exc, kind="folder",
                                                   option="-o")) from None
        self._lock = lock
        record = {"pid": os.getpid(), "machine": _machine_key(), "started_at": utc_now(),
                  "command": _command_line()}
        try:   # only words for a refusal: a folder that cannot take it fails at run.json
            write_text_atomic(self.folder / HOLDER_FILE, json.dumps(record) + "\n")
        except OSError:
            pass

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            (self.folder / HOLDER_FILE).unlink(missing_ok=True)
        except OSError:
            pass
        try:
            lock.release()
        except Exception:   # an fd the OS already closed: the lock is gone with it
            pass

    def close(self) -> None:
        """Release the folder's lock without marking the run (its ``run.json`` keeps the
        status it has: ``running`` reads as a run that stopped); :meth:`finish` calls it."""
        self._release()

    def __del__(self):
        try:   # a writer dropped unfinished lets the folder go (not in a forked child)
            if self._pid == os.getpid():
                self._release()
        except Exception:
            pass

    def _write(self, path: Path, text: str) -> None:
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise ResultsError(write_error_message(path, exc, kind="folder", option="-o")) from None

    def _fsync(self, folder: Path) -> None:
        try:
            fsync_folder(folder)
        except OSError as exc:
            raise ResultsError(write_error_message(folder, exc, kind="folder", option="-o")) from None

    def _write_meta(self) -> None:
        self._write(self.run_path, json.dumps(self.meta, indent=2, default=json_default) + "\n")

    def finished_cells(self) -> dict[str, int]:
        """Cell id -> number of rows of every cell in the folder: those on disk when the
        writer opened it (it reads them once) and those it has written since."""
        return dict(self._cells)

    def add_cell(self, cell_id: str, rows: list[dict[str, Any]], *,
                 machine: dict[str, Any] | None = None,
                 info: dict[str, Any] | None = None) -> Path:
        """Write one finished cell's file (atomically) and count it in ``run.json``;
        return the file's path. ``machine`` is the machine that measured it (default:
        the run's ``machine``); ``info`` is anything else to keep with the cell. A cell
        id already stored raises :class:`~lshprof.errors.ResultsError` and overwrites
        nothing; so does a file that cannot be written (the disk is full: nothing of the
        cell is left behind)."""
        if not isinstance(cell_id, str) or not cell_id:
            raise ResultsError(f"a cell id is a non-empty string, not {cell_id!r}")
        rows = list(rows)
        for r in rows:
            if not isinstance(r, dict):
                raise ResultsError(f"cell {cell_id!r}: a row is a dict, not {type(r).__name__}")
        path = self.cells_path / cell_filename(cell_id)
        if cell_id in self._cells or os.path.lexists(path):
            raise ResultsError(f"cell {cell_id!r} is already stored in {path}; a cell is "
                               "written once (nothing was overwritten)")
        doc = {"format": CELL_FORMAT, "version": FORMAT_VERSION, "cell": cell_id,
               "seq": self._next_seq, "written_at": utc_now(),
               "machine": dict(self.meta.get("machine") or {}) if machine is None else machine,
               "info": info or {}, "rows": rows}
        self._write(path, _encode_cell(doc))
        self._cells[cell_id] = len(rows)
        self._next_seq += 1
        self._fsync(self.cells_path)
        self.meta.update(cells=len(self._cells), rows=sum(self._cells.values()))
        self._write_meta()
        return path

    def update(self, **meta: Any) -> None:
        """Merge ``meta`` into ``run.json`` (e.g. run-level totals) and rewrite it."""
        self.meta.update(meta)
        self._write_meta()

    def finish(self, status: str = "complete", error: str | None = None) -> None:
        """Mark the run ``status`` in ``run.json`` and release the folder."""
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of {STATUSES[1:]}")
        self.meta.update(status=status, complete=status == "complete", ended_at=utc_now())
        if error:
            self.meta["error"] = error
        try:
            self._write_meta()
        finally:
            self._release()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("complete")
            return
        try:   # the error that ended the run is the one to see, even if run.json
            if issubclass(exc_type, KeyboardInterrupt):   # cannot be written either
                self.finish("interrupted")
            else:
                self.finish("failed", error=f"{exc_type.__name__}: {exc}")
        except ResultsError:
            pass


# -- reading ---------------------------------------------------------------------------------
def run_folder(path: Path) -> Path:
    return path.parent if path.name == RUN_FILE else path


def _versions() -> str:
    return ", ".join(str(v) for v in _READERS)


def read_run(path: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` of a run folder, checked for format and version, and each key that
    lshprof reads for its type (see :data:`RUN_KEYS`)."""
    folder = run_folder(Path(path))
    f = folder / RUN_FILE
    try:
        data = f.read_bytes()
    except FileNotFoundError:
        raise ResultsError(f"{folder} is not an lshprof run folder (no {RUN_FILE})") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {f}: {exc.strerror}") from None
    try:
        meta = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        kept = folder / (CELLS_DIR if (folder / CELLS_DIR).is_dir() else TABLE_FILE)
        raise ResultsError(f"{f} is corrupt (not UTF-8 text: byte {exc.start} is "
                           f"0x{data[exc.start]:02x}); the run's rows may still be in "
                           f"{kept}") from None
    except ValueError as exc:
        kept = folder / (CELLS_DIR if (folder / CELLS_DIR).is_dir() else TABLE_FILE)
        raise ResultsError(f"{f} is corrupt (not valid JSON: {exc}); the run's rows may still be "
                           f"in {kept}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ResultsError(f"{f} is not an lshprof run file (no \"format\": \"{FORMAT}\")")
    version = meta.get("version")
    if isinstance(version, bool) or version not in _READERS:
        raise ResultsError(f"{f} has results format version {version!r}; this lshprof "
                           f"({_version()}) reads versions {_versions()}; use the lshprof "
                           "version that wrote it")
    if meta.get("status") not in STATUSES:
        raise ResultsError(f"{f}: unknown status {meta.get('status')!r}")
    _check_keys(f, meta, RUN_KEYS)
    if isinstance(meta.get("scenario"), dict):
        _check_keys(f, meta["scenario"], SCENARIO_KEYS, "scenario.")
    return meta


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


#: The keys of ``run.json`` that lshprof reads, each with its test and what it should be;
#: a key may be missing or null (older runs lack some), but not of another type.
RUN_KEYS: dict[str, tuple[Any, str]] = {
    "complete": (lambda v: isinstance(v, bool), "true or false"),
    "cells": (_count, "a count of cells (a whole number >= 0)"),
    "rows": (_count, "a count of rows (a whole number >= 0)"),
    "scenario": (lambda v: isinstance(v, dict), "an object (the scenario's name, settings "
                                                "and fingerprint)"),
    "plan": (_strings, "a list of cell ids"),
    "machine": (lambda v: isinstance(v, dict), "an object (the machine's record)"),
    "energy": (lambda v: isinstance(v, dict), "an object (the energy backend's record)"),
    "threads": (lambda v: isinstance(v, dict), "an object (the thread settings)"),
    "totals": (lambda v: isinstance(v, dict), "an object (the run's totals)"),
    "measurement": (lambda v: isinstance(v, dict), "an object (the measurement settings)"),
    "data_digest": (lambda v: isinstance(v, str), "a text (the data's sha256)"),
    "resumed_at": (_strings, "a list of times"),
    "resumes": (lambda v: isinstance(v, list), "a list"),
    "started_at": (lambda v: isinstance(v, str), "a time"),
    "ended_at": (lambda v: isinstance(v, str), "a time"),
    "error": (lambda v: isinstance(v, str), "a text"),
}
#: The keys of ``run.json``'s ``scenario`` that lshprof reads.
SCENARIO_KEYS: dict[str, tuple[Any, str]] = {
    "name": (lambda v: isinstance(v, str), "a text"),
    "fingerprint": (lambda v: isinstance(v, str), "a text (the settings' fingerprint)"),
    "settings": (lambda v: isinstance(v, dict), "an object (the scenario's settings)"),
}


def _check_keys(f: Path, d: dict[str, Any], keys: dict[str, tuple[Any, str]],
                prefix: str = "") -> None:
    for key, (ok, expect) in keys.items():
        v = d.get(key)
        if v is not None and not ok(v):
            shown = json.dumps(v, default=repr)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ResultsError(f"{f} is damaged: \"{prefix}{key}\" is {shown}, not {expect}; "
                               "restore the file from a copy, or run the scenario again into "
                               "another folder")


def _version() -> str:
    from lshprof import __version__

    return __version__


def _ends_with_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return True
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


def _read_table(table: Path, text: str | None = None):
    """A measurements table as pandas reads it: only empty cells are missing values, so
    a string such as "NA" or "None" stays a string."""
    import pandas as pd

    return pd.read_csv(table if text is None else io.StringIO(text), keep_default_na=False,
                       na_values=[""])


def _load_v1(folder: Path, meta: dict[str, Any]):
    """Version 1: the rows of ``measurements.csv``; no machine columns."""
    import pandas as pd

    table = folder / TABLE_FILE
    if not table.exists():
        if meta.get("rows"):
            raise ResultsError(f"{table} is missing but {folder / RUN_FILE} records "
                               f"{meta['rows']} rows")
        return None, {}
    try:
        if not _ends_with_newline(table):  # lshprof ends every table with one
            raise ResultsError(f"{table} is truncated (its last row is cut off); "
                               "the run was damaged after it was written")
        df = _read_table(table)
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{table} is empty or corrupt (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"{table} is corrupt: {str(exc).splitlines()[0]}") from None
    for col in ("method", "seed", "epoch"):
        if col not in df.columns:
            raise ResultsError(f"{table} is not an lshprof measurements table "
                               f"(no '{col}' column)")
    if len(df) < int(meta.get("rows") or 0):
        raise ResultsError(f"{table} holds {len(df)} rows but {folder / RUN_FILE} records "
                           f"{meta['rows']}; the table was truncated")
    _check_table(table, df)
    return df, {}


def _check_table(table: Path, df) -> None:
    """A version-1 table: numbers (or empty cells) in its numeric columns, read as numbers
    ("NaN" text too, as a missing value), and no row of a cell's epoch twice."""
    import pandas as pd

    fix = ("the table was edited or damaged: correct that cell (an empty cell is a missing "
           "value), or run the scenario again")
    for col in df.columns:
        if not numeric_column(str(col)):
            continue
        c = df[col]
        if pd.api.types.is_numeric_dtype(c) and not pd.api.types.is_bool_dtype(c):
            continue
        num = pd.to_numeric(c.astype(object).where(c.notna(), None), errors="coerce") \
            if not pd.api.types.is_bool_dtype(c) else pd.Series(math.nan, index=c.index)
        bad = c.notna() & num.isna() & ~c.astype(str).str.strip().str.lower().eq("nan")
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            shown = repr(c.iloc[i])
            raise ResultsError(f"{table}: column {col} holds {shown[:40]} in row {i + 1}, "
                               f"not a number; {fix}")
        df[col] = num
    key = ["cell", "epoch"] if "cell" in df.columns else \
        [k for k in ("method", "fraction", "seed", "threads", "mode", "epoch") if k in df.columns]
    twice = df.duplicated(subset=key, keep="first")
    if twice.any():
        j = int(twice.to_numpy().nonzero()[0][0])
        same = (df[key] == df[key].iloc[j]) | (df[key].isna() & df[key].iloc[j].isna())
        i = int(same.all(axis=1).to_numpy().nonzero()[0][0])
        what = (f"epoch {df['epoch'].iloc[j]} of cell {df['cell'].iloc[j]!r}" if "cell" in key
                else ", ".join(f"{k} {df[k].iloc[j]}" for k in key))
        raise ResultsError(f"{table} holds {what} twice (rows {i + 1} and {j + 1}); a row is "
                           "written once per epoch: delete the repeated line, or run the "
                           "scenario again")


def stored_cells(path: str | os.PathLike) -> dict[str, int]:
    """Cell id -> number of rows of every finished cell in run folder ``path`` (any format
    version), without opening it for writing."""
    folder = run_folder(Path(path))
    meta = read_run(folder)
    if meta.get("version") == 1:
        df = load_results(folder)
        if "cell" not in df.columns:
            return {}
        return {str(k): int(n) for k, n in df.groupby("cell").size().items()}
    return {doc["cell"]: len(doc["rows"]) for _, doc in _scan_cells(folder)}


def _scan_cells(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every cell file of a version-2 run folder, read and checked, in name order.
    Hidden files (a killed writer's temporary files) and other names are skipped."""
    cells = folder / CELLS_DIR
    if not cells.is_dir():
        return []
    fix = f"delete it and resume the run (lshprof run SCENARIO -o {folder}) to measure the cell again"
    out: list[tuple[Path, dict[str, Any]]] = []
    seen: dict[str, Path] = {}
    for f in sorted(cells.iterdir()):
        if f.name.startswith(".") or f.suffix != ".json" or not f.is_file():
            continue
        try:
            doc = json.loads(f.read_bytes().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResultsError(f"{f} is corrupt (not valid JSON: {exc}); {fix}") from None
        except OSError as exc:
            raise ResultsError(f"cannot read {f}: {exc.strerror}") from None
        if not isinstance(doc, dict) or doc.get("format") != CELL_FORMAT:
            raise ResultsError(f"{f} is not an lshprof cell file (no \"format\": "
                               f"\"{CELL_FORMAT}\"); move it out of {cells}")
        version = doc.get("version")
        if isinstance(version, bool) or version not in _CELL_VERSIONS:
            raise ResultsError(f"{f} has cell format version {version!r}; this lshprof "
                               f"({_version()}) reads cell files of version "
                               f"{', '.join(map(str, _CELL_VERSIONS))}; use the lshprof "
                               "version that wrote it")
        cell_id, seq, rows = doc.get("cell"), doc.get("seq"), doc.get("rows")
        problem = ("no cell id" if not isinstance(cell_id, str) or not cell_id else
                   "no seq number" if isinstance(seq, bool) or not isinstance(seq, int) else
                   "its rows are not a list of objects"
                   if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows)
                   else "its machine is not an object"
                   if not isinstance(doc.get("machine", {}), dict)
                   else "its info is not an object"
                   if not isinstance(doc.get("info", {}), dict) else None)
        if problem:
            raise ResultsError(f"{f} is damaged ({problem}); {fix}")
        if cell_id in seen:
            raise ResultsError(f"{seen[cell_id]} and {f} both hold cell {cell_id!r}; a cell "
                               "is written once: delete the one that does not belong")
        _check_rows(f, cell_id, rows, fix)
        seen[cell_id] = f
        out.append((f, doc))
    return out


#: Columns that hold numbers by their name (see :func:`numeric_column`).
NUMERIC_NAMES = ("epoch", "seed", "threads", "batch_size", "n_train", "n_eval", "fraction",
                 "loss", "mac_share", "clock_calls")
NUMERIC_PREFIXES = ("macs_", "eval_macs_")
NUMERIC_SUFFIXES = ("_s", "_j", "_accuracy")


def numeric_column(name: str) -> bool:
    """Whether column ``name`` holds numbers (or missing values) only: the MAC counts
    (``macs_*``, ``eval_macs_*``), times (``*_s``), energies (``*_j``), accuracies
    (``*_accuracy``), and ``epoch``, ``seed``, ``threads``, ``batch_size``, ``n_train``,
    ``n_eval``, ``fraction``, ``loss``, ``mac_share``, ``clock_calls``. The loaders refuse
    text in these columns rather than let it pass as a string or a number."""
    return (name in NUMERIC_NAMES or name.startswith(NUMERIC_PREFIXES)
            or name.endswith(NUMERIC_SUFFIXES))


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _check_rows(f: Path, cell_id: str, rows: list[dict[str, Any]], fix: str) -> None:
    """A cell file's rows: numbers (or null) in the numeric columns, each epoch once."""
    epochs: set[Any] = set()
    for i, r in enumerate(rows):
        for k, v in r.items():
            if not _is_number(v) and numeric_column(str(k)):
                shown = json.dumps(v, default=repr)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise ResultsError(f"{f} is damaged (row {i + 1} of cell {cell_id!r}: column "
                                   f"{k} holds {shown}, not a number); {fix}")
        e = r.get("epoch")
        if e is None:
            continue
        if e in epochs:
            raise ResultsError(f"{f} holds epoch {e} of cell {cell_id!r} twice (rows are "
                               f"written once per epoch); {fix}")
        epochs.add(e)


def machine_id(machine: dict[str, Any] | None) -> str | None:
    """A short stable id of a machine record: 12 hex digits of the sha256 of its
    identity (its machine_key, CPU model, core counts, memory; not the frequency or software).
    None when the record has none of these."""
    ident = {k: (machine or {}).get(k) for k in MACHINE_IDENTITY}
    if all(v is None for v in ident.values()):
        return None
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _load_v2(folder: Path, meta: dict[str, Any]):
    """Version 2: the rows of every cell file, as the version-1 table held them, in
    ``plan`` order (cells not in the plan after, by ``seq``); ``machine_key`` and
    ``machine_id`` columns from each cell's machine."""
    cells = _scan_cells(folder)
    recorded = meta.get("cells") or 0
    if isinstance(recorded, int) and recorded > len(cells):
        raise ResultsError(f"{folder / RUN_FILE} records {recorded} finished cells but "
                           f"{folder / CELLS_DIR} holds {len(cells)}; cell files were deleted: "
                           f"resume the run (lshprof run SCENARIO -o {folder}) to measure "
                           "them again")
    plan = meta.get("plan")
    pos: dict[str, int] = {}
    if isinstance(plan, list):
        for i, c in enumerate(plan):
            pos.setdefault(str(c), i)
    cells.sort(key=lambda fd: (pos.get(fd[1]["cell"], len(pos)), fd[1]["seq"]))
    machines: dict[str, dict[str, Any]] = {}
    columns: dict[str, None] = {}
    rows: list[dict[str, str]] = []
    keys: list[Any] = []
    ids: list[Any] = []
    for _, doc in cells:
        machine = doc.get("machine") or {}
        mid = machine_id(machine)
        if mid is not None:
            machines.setdefault(mid, machine)
        for r in doc["rows"]:
            row = {str(k): _cell(v) for k, v in r.items()}
            columns.update(dict.fromkeys(row))
            rows.append(row)
            keys.append(machine.get("machine_key"))
            ids.append(mid)
    if not rows:
        return None, machines
    # the rows as the version-1 writer wrote them, read as its reader read them
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    df = _read_table(folder / CELLS_DIR, buf.getvalue())
    for i, (col, values) in enumerate((("machine_key", keys), ("machine_id", ids))):
        if col not in df.columns:
            df.insert(i, col, values)
    return df, machines


_READERS = {1: _load_v1, 2: _load_v2}
_CELL_VERSIONS = (2,)
assert set(_READERS) == set(FORMAT_VERSIONS) and FORMAT_VERSION == max(FORMAT_VERSIONS)


def _discover(paths: Sequence[str | os.PathLike]) -> list[Path]:
    folders: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ResultsError(f"no results at {p}: no such file or folder")
        if p.is_file() and p.name != RUN_FILE:
            raise ResultsError(f"{p} is not a run folder or a {RUN_FILE}")
        folder = run_folder(p)
        if (folder / RUN_FILE).exists():
            folders.append(folder)
            continue
        subs = sorted(d for d in folder.iterdir() if (d / RUN_FILE).exists())
        if not subs:
            raise ResultsError(f"{p} holds no lshprof run (no {RUN_FILE} in it or its subfolders)")
        folders.extend(subs)
    return folders


def load_results(path: str | os.PathLike | Sequence[str | os.PathLike], *,
                 complete_only: bool = False):
    """A pandas DataFrame of the measurements of one run or many.

    ``path``: a run folder, its ``run.json``, a folder of run folders, or a list of
    any of these. Adds ``run`` (the folder name), ``run_path`` and ``run_status``
    columns, and for version-2 runs ``machine_key`` and ``machine_id`` (see :func:`machine_id`)
    from the machine that measured each cell; ``df.attrs["runs"]`` maps each run's
    folder name to its ``run.json``, ``df.attrs["machines"]`` each machine id to its
    record. A run's rows come in its ``plan``'s cell order (else the order the cells
    were written), each cell's rows in their order. Values look as the version-1 table
    held them: lists and dicts as JSON text, missing values as NaN, integers, floats and
    booleans as pandas reads them from CSV. Incomplete runs are loaded with their
    finished rows (their ``run_status`` says so) unless ``complete_only``. Unknown
    format versions and corrupt files raise :class:`~lshprof.errors.ResultsError`.
    """
    import pandas as pd

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    frames, runs, machines = [], {}, {}
    for folder in _discover(paths):
        meta = read_run(folder)
        if complete_only and not meta.get("complete"):
            continue
        key = folder.name if folder.name not in runs else str(folder)
        runs[key] = meta
        df, found = _READERS[meta["version"]](folder, meta)
        for mid, record in found.items():
            machines.setdefault(mid, record)
        if df is None:
            continue
        df.insert(0, "run", key)
        df.insert(1, "run_path", str(folder))
        df.insert(2, "run_status", meta["status"])
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs["runs"] = runs
    out.attrs["machines"] = machines
    return out
