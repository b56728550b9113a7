"""The results store: one folder per run, written atomically and row by row.

A run folder holds

``run.json``
    ``format`` (``"lshprof-run"``) and ``version``; ``status`` (``running``,
    ``complete``, ``interrupted`` or ``failed``) and ``complete``; start and end
    times; the scenario; lshprof and library versions and the git commit; the
    machine and thread settings; the energy backend, its source (``measured`` /
    ``estimated`` / ``none``) and the reasons a better backend was passed over;
    run-level totals. ``rows`` is the number of finished rows.
``measurements.csv``
    the tidy table: one row per method x fraction x seed x epoch, columns named
    with their units (``wall_forward_s``, ``energy_j``, ``macs_forward``, ...).

Both files are replaced by writing a temporary file beside them and renaming it,
so a reader never sees half a file. Every finished row is written at once, and
``run.json`` says ``running`` until the run ends, so a run stopped by Ctrl-C, a
crash or ``kill -9`` leaves every finished row readable and says it is incomplete.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from lshprof.files import json_default, write_json_atomic, write_text_atomic
from lshprof.errors import ResultsError

__all__ = ["FORMAT", "FORMAT_VERSION", "RUN_FILE", "TABLE_FILE", "RunWriter", "load_results", "run_folder",
           "read_run", "utc_now"]

FORMAT = "lshprof-run"
FORMAT_VERSION = 1
RUN_FILE = "run.json"
TABLE_FILE = "measurements.csv"
STATUSES = ("running", "complete", "interrupted", "failed")


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


class RunWriter:
    """Writes one run folder. Use as a context manager: leaving the block marks the run
    ``complete``; Ctrl-C marks it ``interrupted`` and an exception ``failed`` (with the
    error), keeping every row written so far.

    ``meta`` goes into ``run.json`` as is (scenario, versions, machine, energy, ...).
    A folder that already holds a run is refused unless ``resume=True``, which keeps
    its rows and appends to them.
    """

    def __init__(self, folder: str | os.PathLike, meta: dict[str, Any], *, resume: bool = False):
        self.folder = Path(folder)
        self.run_path = self.folder / RUN_FILE
        self.table_path = self.folder / TABLE_FILE
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        if self.run_path.exists():
            if not resume:
                raise ResultsError(f"{self.folder} already holds a run; choose another output "
                                   "folder, delete this one, or resume it")
            old = read_run(self.folder)
            old.pop("error", None)
            self.meta = {**old, **meta, "started_at": old.get("started_at"),
                         "resumed_at": [*old.get("resumed_at", []), utc_now()]}
            if self.table_path.exists():
                self._load_rows()
        else:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ResultsError(f"cannot create results folder {self.folder}: "
                                   f"{exc.strerror}; choose another with -o") from None
            self.meta = {**meta, "started_at": utc_now()}
        self.meta.update(format=FORMAT, version=FORMAT_VERSION, status="running",
                         complete=False, ended_at=None, rows=len(self.rows))
        self._write_meta()

    def _load_rows(self) -> None:
        with open(self.table_path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            self.columns = list(reader.fieldnames or [])
            self.rows = [dict(r) for r in reader]

    # -- writing ------------------------------------------------------------------------------
    def _write_meta(self) -> None:
        write_json_atomic(self.run_path, self.meta)

    def add_row(self, row: dict[str, Any]) -> None:
        """Append one finished row and rewrite the table (atomically) at once."""
        self.add_rows([row])

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = [{k: _cell(v) for k, v in r.items()} for r in rows]
        for r in rows:
            for k in r:
                if k not in self.columns:
                    self.columns.append(k)
        self.rows.extend(rows)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        write_text_atomic(self.table_path, buf.getvalue())
        self.meta["rows"] = len(self.rows)
        self._write_meta()

    def drop_rows(self, drop: Callable[[dict[str, str]], bool]) -> list[dict[str, Any]]:
        """Remove the rows for which ``drop(row)`` is true (rows as stored: text values),
        rewrite the table atomically, and return the removed rows. Resuming uses it for the
        epochs of a cell that was cut short and is about to run again."""
        removed = [r for r in self.rows if drop(r)]
        if removed:
            self.rows = [r for r in self.rows if not drop(r)]
            self.add_rows([])
        return removed

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
        raise ResultsError(f"{f} is corrupt (not valid JSON: {exc}); the run's rows may still be "
                           f"in {folder / TABLE_FILE}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ResultsError(f"{f} is not an lshprof run file (no \"format\": \"{FORMAT}\")")
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise ResultsError(f"{f} has results format version {version!r}; this lshprof "
                           f"({_version()}) reads version {FORMAT_VERSION}; use the lshprof "
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
    columns; ``df.attrs["runs"]`` maps each run's folder name to its ``run.json``.
    Incomplete runs are loaded with their finished rows (their ``run_status`` says
    so) unless ``complete_only``. Unknown format versions and corrupt files raise
    :class:`~lshprof.errors.ResultsError`.
    """
    import pandas as pd

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    frames, runs = [], {}
    for folder in _discover(paths):
        meta = read_run(folder)
        if complete_only and not meta.get("complete"):
            continue
        key = folder.name if folder.name not in runs else str(folder)
        runs[key] = meta
        table = folder / TABLE_FILE
        if not table.exists():
            if meta.get("rows"):
                raise ResultsError(f"{table} is missing but {folder / RUN_FILE} records "
                                   f"{meta['rows']} rows")
            continue
        try:
            if not _ends_with_newline(table):  # lshprof ends every table with one
                raise ResultsError(f"{table} is truncated (its last row is cut off); "
                                   "the run was damaged after it was written")
            # only empty cells are missing: a string such as "NA" or "None" stays a string
            df = pd.read_csv(table, keep_default_na=False, na_values=[""])
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
        df.insert(0, "run", key)
        df.insert(1, "run_path", str(folder))
        df.insert(2, "run_status", meta["status"])
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs["runs"] = runs
    return out
