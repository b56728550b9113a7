"""The results store: one folder per run, one file per finished cell, each written once.

Results format version 2 (the one this lshprof writes). A run folder holds

``run.json``
    ``format`` (``"lshprof-run"``) and ``version`` (2); ``status`` (``running``,
    ``complete``, ``interrupted`` or ``failed``) and ``complete``; ``started_at``,
    ``ended_at`` and, for a resumed run, ``resumed_at``; what the runner gives it (the
    scenario, the ``plan`` of cell ids, lshprof and library versions, the machine and
    thread settings, the energy backend and its source, run-level totals); ``cells``
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
  its ``run.json`` says it is not complete.

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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from lshprof.errors import ResultsError
from lshprof.files import fsync_folder, json_default, write_text_atomic

__all__ = ["stored_cells", "FORMAT", "FORMAT_VERSION", "FORMAT_VERSIONS", "CELL_FORMAT", "RUN_FILE", "CELLS_DIR",
           "TABLE_FILE", "RunWriter", "cell_filename", "machine_id", "load_results",
           "run_folder", "read_run", "utc_now"]

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


class RunWriter:
    """Writes one run folder of results format 2. Use as a context manager: leaving the
    block marks the run ``complete``; Ctrl-C marks it ``interrupted`` and an exception
    ``failed`` (with the error), keeping every cell written so far.

    ``meta`` goes into ``run.json`` as is (scenario, plan, versions, machine, energy,
    ...). A folder that already holds a run is refused unless ``resume=True``, which
    keeps its cells and adds new ones after them; a version-1 folder cannot be resumed.
    """

    def __init__(self, folder: str | os.PathLike, meta: dict[str, Any], *, resume: bool = False):
        self.folder = Path(folder)
        self.run_path = self.folder / RUN_FILE
        self.cells_path = self.folder / CELLS_DIR
        self._cells: dict[str, int] = {}
        self._next_seq = 0
        if self.run_path.exists():
            if not resume:
                raise ResultsError(f"{self.folder} already holds a run; choose another output "
                                   "folder, delete this one, or resume it")
            old = read_run(self.folder)
            if old["version"] != FORMAT_VERSION:
                raise ResultsError(
                    f"{self.folder} holds a version-{old['version']} run ({TABLE_FILE}), which "
                    f"this lshprof reads but cannot resume (it writes version {FORMAT_VERSION}); "
                    "run the scenario again into a new folder")
            for _, doc in _scan_cells(self.folder):
                self._cells[doc["cell"]] = len(doc["rows"])
                self._next_seq = max(self._next_seq, doc["seq"] + 1)
            for f in (self.folder, self.cells_path):   # left by a killed writer
                for p in (f.iterdir() if f.is_dir() else ()):
                    if _is_temp(p.name) and p.is_file():
                        p.unlink(missing_ok=True)
            old.pop("error", None)
            base = {**old, **meta, "started_at": old.get("started_at"),
                    "resumed_at": [*old.get("resumed_at", []), utc_now()]}
        else:
            if self.cells_path.is_dir() and any(p.suffix == ".json" and not p.name.startswith(".")
                                                for p in self.cells_path.iterdir()):
                raise ResultsError(f"{self.folder} holds cell files but no {RUN_FILE}; choose "
                                   "another output folder or delete this one")
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
        fsync_folder(self.folder)

    def _write_meta(self) -> None:
        write_text_atomic(self.run_path, json.dumps(self.meta, indent=2, default=json_default) + "\n")

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
        nothing."""
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
        write_text_atomic(path, _encode_cell(doc))
        self._cells[cell_id] = len(rows)
        self._next_seq += 1
        fsync_folder(self.cells_path)
        self.meta.update(cells=len(self._cells), rows=sum(self._cells.values()))
        self._write_meta()
        return path

    def update(self, **meta: Any) -> None:
        """Merge ``meta`` into ``run.json`` (e.g. run-level totals) and rewrite it."""
        self.meta.update(meta)
        self._write_meta()

    def finish(self, status: str = "complete", error: str | None = None) -> None:
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of {STATUSES[1:]}")
        self.meta.update(status=status, complete=status == "complete", ended_at=utc_now())
        if error:
            self.meta["error"] = error
        self._write_meta()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("complete")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed", error=f"{exc_type.__name__}: {exc}")


# -- reading ---------------------------------------------------------------------------------
def run_folder(path: Path) -> Path:
    return path.parent if path.name == RUN_FILE else path


def _versions() -> str:
    return ", ".join(str(v) for v in _READERS)


def read_run(path: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` of a run folder, checked for format and version."""
    folder = run_folder(Path(path))
    f = folder / RUN_FILE
    try:
        text = f.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{folder} is not an lshprof run folder (no {RUN_FILE})") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {f}: {exc.strerror}") from None
    try:
        meta = json.loads(text)
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
    return meta


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
    return df, {}


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
                   if not isinstance(doc.get("machine", {}), dict) else None)
        if problem:
            raise ResultsError(f"{f} is damaged ({problem}); {fix}")
        if cell_id in seen:
            raise ResultsError(f"{seen[cell_id]} and {f} both hold cell {cell_id!r}; a cell "
                               "is written once: delete the one that does not belong")
        seen[cell_id] = f
        out.append((f, doc))
    return out


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
