"""``lshprof data``: list the data sets, fetch standard files, check them, show folders.

:func:`add_parser` adds the ``data`` command to the main parser; each sub-command's
handler returns an exit code and raises :class:`~lshprof.errors.LshprofError` for the
main command to print as one line.
"""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["add_parser", "cmd_list", "cmd_fetch", "cmd_verify", "cmd_path"]

_ROOT_HELP = ("folder holding one subfolder per source (default: $LSHPROF_DATA, else the user "
              "cache folder)")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data`` and its sub-commands to the main parser's sub-parsers ``sub``."""
    data = sub.add_parser(
        "data", help="list data sets; fetch, verify and locate their files",
        description="Data sets lshprof can train on: generated ones, standard files fetched "
                    "once into a cache folder and checked by SHA-256, and your own arrays.")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    def show_help(args: argparse.Namespace) -> int:
        data.print_help()
        return 2

    data.set_defaults(func=show_help)

    ls = dsub.add_parser("list", help="list every data set with its origin and file status",
                         description="List every data set: its origin (generated, file, "
                                     "package, user), summary and, for file ones, whether "
                                     "the files are present and where.")
    ls.add_argument("--root", metavar="DIR", default=None, help=_ROOT_HELP)
    ls.set_defaults(func=cmd_list)

    fe = dsub.add_parser(
        "fetch", help="download a data set's files once and check their SHA-256",
        description="Download each missing file of a source (or of the source a data set "
                    "uses, e.g. mnist8m -> mnist), trying --mirror, then "
                    "$LSHPROF_MIRROR_<NAME>, then the built-in mirrors; a file is kept only "
                    "when its size and SHA-256 match. Files already present and correct "
                    "are left alone.")
    fe.add_argument("name", metavar="NAME", help="source or data set name (see 'lshprof data list')")
    fe.add_argument("--root", metavar="DIR", default=None, help=_ROOT_HELP)
    fe.add_argument("--mirror", metavar="URL", action="append", default=None,
                    help="base URL (or local folder) to try first; file URL = base + file name "
                         "(may be repeated)")
    fe.add_argument("--force", action="store_true",
                    help="download again even when the files are present and correct")
    fe.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    fe.set_defaults(func=cmd_fetch)

    ve = dsub.add_parser("verify", help="hash a data set's files and report each one",
                         description="Hash every file of a source and report ok, missing or "
                                     "bad checksum; exit 1 when any is not ok.")
    ve.add_argument("name", metavar="NAME", help="source or data set name")
    ve.add_argument("--root", metavar="DIR", default=None, help=_ROOT_HELP)
    ve.set_defaults(func=cmd_verify)

    pa = dsub.add_parser("path", help="print the data folder, or one source's folder",
                         description="Print the folder holding every source's subfolder, or "
                                     "with NAME the folder of that source's files.")
    pa.add_argument("name", metavar="NAME", nargs="?", default=None, help="source or data set name")
    pa.add_argument("--root", metavar="DIR", default=None, help=_ROOT_HELP)
    pa.set_defaults(func=cmd_path)
    return data


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 140)


def cmd_list(args: argparse.Namespace) -> int:
    """``lshprof data list``: a table of every data set."""
    from rich.table import Table
    from rich.text import Text

    from lshprof.data import DATASETS, fetch as _fetch

    table = Table(title="lshprof data sets")
    for col in ("name", "origin", "summary", "status", "folder"):
        table.add_column(col, overflow="fold")
    table_sources = _fetch.sources()
    for name, ds in DATASETS.items():
        status = folder = "-"
        if ds.fetch is not None and ds.fetch in table_sources:
            src = table_sources[ds.fetch]
            where = _fetch.folder(src, args.root)
            absent = [f for f in src.files if not _fetch.local_file(where, f.name).is_file()]
            differ = len(_fetch.missing(src, args.root)) - len(absent)
            if absent:
                status = f"missing {len(absent)} of {len(src.files)} files"
            elif differ:
                status = f"present ({differ} not as published; see lshprof data verify)"
            else:
                status = "present"
            folder = str(where)
        table.add_row(*(Text(str(v)) for v in (name, ds.origin, ds.summary, status, folder)))
    _console().print(table)
    return 0


def _plain_progress():
    """A progress callback that prints one line per tenth of a file (for logs)."""
    seen: dict[str, int] = {}

    def progress(name: str, done: int, total: int | None) -> None:
        if not total:
            return
        step = done * 10 // total
        if step > seen.get(name, -1) and 0 < step < 10:
            print(f"  {name}: {done * 100 // total}% of {total:,} bytes", flush=True)
        seen[name] = step

    return progress


def cmd_fetch(args: argparse.Namespace) -> int:
    """``lshprof data fetch NAME``: download what is missing and check it."""
    from lshprof.data import fetch as _fetch

    src = _fetch.get_source(args.name)
    where = _fetch.folder(src, args.root)
    if args.quiet:
        _fetch.fetch(src, root=args.root, mirror=args.mirror, force=args.force)
        return 0
    if src.name != args.name:
        print(f"{args.name} uses the files of {src.name}")
    print(f"{src.name}: {len(src.files)} files in {where}", flush=True)
    if not sys.stdout.isatty():
        def report(name: str, message: str) -> None:
            print(f"  {name}: {message}", flush=True)

        _fetch.fetch(src, root=args.root, mirror=args.mirror, force=args.force,
                     progress=_plain_progress(), report=report)
        return 0

    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    with Progress(TextColumn("  {task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        def report(name: str, message: str) -> None:
            if name in tasks:
                bar.remove_task(tasks.pop(name))
            bar.console.print(f"  {name}: {message}", markup=False, highlight=False)

        _fetch.fetch(src, root=args.root, mirror=args.mirror, force=args.force,
                     progress=progress, report=report)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``lshprof data verify NAME``: hash each file; exit 1 when any is missing or bad."""
    from rich.table import Table
    from rich.text import Text

    from lshprof.data import fetch as _fetch

    src = _fetch.get_source(args.name)
    where = _fetch.folder(src, args.root)
    result = _fetch.verify(src, args.root)
    table = Table(title=Text(f"{src.name} in {where}"))  # a path is text, not markup
    table.add_column("file", overflow="fold")
    table.add_column("status")
    for name, status in result.items():
        table.add_row(Text(name), Text(status, style="" if status == "ok" else "bold red"))
    out = _console()
    out.print(table)
    bad = [n for n, s in result.items() if s != "ok"]
    if not bad:
        return 0
    command = f"lshprof data fetch {src.name}"
    if args.root:
        command += f" --root {shlex.quote(args.root)}"
    out.print(f"{len(bad)} of {len(result)} files not ok; fetch them with: {command}",
              markup=False, highlight=False)
    return 1


def cmd_path(args: argparse.Namespace) -> int:
    """``lshprof data path [NAME]``: print the data folder or a source's folder."""
    from lshprof.data import fetch as _fetch

    print(_fetch.folder(args.name, args.root) if args.name else _fetch.data_home(args.root))
    return 0
