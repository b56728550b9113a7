"""The ``lshprof`` command: one sub-command per job, each handled by a ``cmd_*`` function.

Heavy modules (numba, the kernels) are imported inside the command that needs
them, so ``lshprof --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import sys

from lshprof import __version__
from lshprof.errors import LshprofError
from lshprof.names import FAMILIES, POLICIES, TIME_CLOCKS, TRANSFORMS

__all__ = ["main", "build_parser", "EXIT_USAGE", "output_target", "output_folder",
           "write_error", "write_output", "write_results", "plain"]

EXIT_USAGE = 2


# -- output files: checked before any work, written whole or not at all -------------------------
def write_error(path, exc: OSError, option: str | None = None) -> "LshprofError":
    """The one-line error for ``exc``, met while writing file ``path`` (given by ``option``):
    the path as the user gave it, the system's reason and the fix
    (:func:`lshprof.files.write_error_message`)."""
    from lshprof.errors import ConfigError
    from lshprof.files import write_error_message

    return ConfigError(write_error_message(path, exc, kind="file", option=option))


def _writable_folder(folder, option: str, p) -> None:
    """Fail when no file can be written in existing ``folder`` (for output ``p`` of
    ``option``): a read-only file system, no permission, or no space left."""
    import os

    from lshprof.errors import ConfigError

    try:
        vfs = os.statvfs(folder)
    except (AttributeError, OSError):  # not on every OS
        vfs = None
    if vfs is not None and vfs.f_flag & getattr(os, "ST_RDONLY", 1):
        raise ConfigError(f"{option} {p}: {folder} is on a read-only file system; choose a "
                          "path on a writable one")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{option} {p}: no permission to write in {folder}; choose a path "
                          "you may write to")
    root = getattr(os, "geteuid", lambda: -1)() == 0  # root may use the reserved blocks
    if vfs is not None and vfs.f_blocks and (vfs.f_bfree if root else vfs.f_bavail) == 0:
        raise ConfigError(f"{option} {p}: no space left on the device of {folder}; free "
                          "space or choose another path")


def _stat_error(exc: OSError, option: str, p):
    """The one-line error for a path ``p`` (of ``option``) that cannot be looked at."""
    import errno

    from lshprof.errors import ConfigError

    why = {errno.ENOTDIR: "a part of it is a file, not a folder",
           errno.ELOOP: "a loop of symbolic links"}.get(exc.errno, exc.strerror)
    return ConfigError(f"{option} {p}: {why}; choose another path")


def output_target(path, option: str):
    """Fail before any work when an output file cannot be written at ``path`` (given by
    command-line ``option``): it names a folder or something other than a regular file,
    its folder is missing or is a file, is read-only or on a full disk. Returns the path."""
    import os
    import stat
    from pathlib import Path

    from lshprof.errors import ConfigError

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _stat_error(exc, option, p) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{option} {p} is a folder; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{option} {p} exists and is not a regular file (a device, FIFO or "
                          "socket); give the name of a file to write")
    folder = p.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {p}: folder {folder} does not exist; create it first")
    _writable_folder(folder, option, p)
    return p


def output_folder(path, option: str):
    """Fail before any work when a run folder cannot be written at ``path`` (given by
    ``option``): it is a file, a part of it is a file, or the folder it would be made in
    (its nearest existing one) is read-only or on a full disk. Returns the path."""
    import os
    import stat
    from pathlib import Path

    from lshprof.errors import ConfigError

    p = here = Path(os.path.abspath(path))
    while True:
        try:
            st = os.stat(here)
            break
        except FileNotFoundError:
            here = here.parent
        except OSError as exc:
            raise _stat_error(exc, option, Path(path)) from None
    if not stat.S_ISDIR(st.st_mode):
        what = "is a file" if here == p else f"is inside {here}, which is a file"
        raise ConfigError(f"{option} {path} {what}, not a folder; choose another path")
    _writable_folder(here, option, path)
    return Path(path)


def write_output(path, text: str, option: str | None = None) -> None:
    """Write ``text`` to ``path`` atomically (a failed write leaves the old file, or none,
    and no temporary file); an OS error is one line naming the file and the fix."""
    from lshprof.files import write_text_atomic

    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise write_error(path, exc, option) from None


def write_results(args: argparse.Namespace, results) -> None:
    """A command's ``--json`` file (its arguments and its results), as :func:`write_output`."""
    from lshprof.files import write_results_json

    try:
        write_results_json(args, results)
    except OSError as exc:
        raise write_error(args.json, exc, "--json") from None


def plain(text) -> "Text":
    """``text`` for a rich console or table cell as it is: square brackets in a label, a
    description or a path (``[/bold]``, ``lsh[/]``) are neither markup nor an error."""
    from rich.text import Text

    return Text(str(text))


def _number(text: str, convert, ok, expect: str):
    """An argparse value: ``convert(text)``, accepted when ``ok`` says so."""
    try:
        v = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"expected {expect}, got {v}")
    return v


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def _fraction(text: str) -> float:
    return _number(text, float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")


def _seed(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a seed (an integer >= 0)")


def _nonnegative_float(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v < float("inf"), "a number >= 0")


def _seconds(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v < float("inf"), "seconds (a number >= 0)")


def _positive_seconds(text: str) -> float:
    return _number(text, float, lambda v: 0.0 < v < float("inf"), "seconds (a number > 0)")


def _add_energy_options(p: argparse.ArgumentParser, *, backend: bool = True) -> None:
    if backend:
        from lshprof.measure.energy import BACKENDS  # light: no numba

        p.add_argument("--energy", choices=BACKENDS, default="auto",
                       help="energy backend (default auto: powercap if readable, else a labelled "
                            "estimate)")
    p.add_argument("--powercap-root", metavar="DIR", default=None,
                   help="powercap sysfs folder (default $LSHPROF_POWERCAP_ROOT or "
                        "/sys/class/powercap)")
    p.add_argument("--energy-model", metavar="FILE", default=None,
                   help="calibrated model for the estimate backend (default $LSHPROF_ENERGY_MODEL "
                        "or published per-operation figures)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lshprof",
        description="Measure what hash-selected sparse layers save: multiplications, time, "
                    "energy and accuracy.",
    )
    parser.add_argument("--version", action="version", version=f"lshprof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="train the built-in demo network with every method; print accuracy and MACs",
        description="Train one MLP per method on generated data (Gaussian clusters) and print "
                    "accuracy, measured active fraction and exact MACs per method.")
    demo.add_argument("--fraction", type=_fraction, default=0.05,
                      help="active fraction of the hidden layer for the sparse methods (default 0.05)")
    demo.add_argument("--hidden", type=_positive_int, nargs="+", default=[1000],
                      help="hidden layer widths (default 1000)")
    demo.add_argument("--epochs", type=_positive_int, default=5, help="epochs (default 5)")
    demo.add_argument("--batch-size", type=_positive_int, default=32, help="mini-batch size (default 32)")
    demo.add_argument("--n-train", type=_positive_int, default=5000, help="training samples (default 5000)")
    demo.add_argument("--n-test", type=_positive_int, default=1000, help="test samples (default 1000)")
    demo.add_argument("--optimizer", default="adam", help="sgd, adagrad or adam (default adam)")
    demo.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    demo.add_argument("--methods", nargs="+", default=None,
                      help="methods to run (default: every method)")
    demo.add_argument("--seed", type=int, default=0, help="seed for data, weights and masks (default 0)")
    demo.add_argument("--threads", type=_positive_int, default=1,
                      help="BLAS and numba threads for every method (default 1)")
    demo.add_argument("--json", metavar="PATH", default=None,
                      help="also write the per-method results as JSON to PATH")
    demo.add_argument("-o", "--out", metavar="DIR", default=None,
                      help="also write the measurements as a run folder (run.json, "
                           "cells/) to DIR")
    _add_energy_options(demo)
    demo.add_argument("--idle-baseline", type=_seconds, default=0.0, metavar="SECONDS",
                      help="measure idle power for SECONDS first and report energy above idle "
                           "(default 0: off)")
    demo.set_defaults(func=cmd_demo)

    q = sub.add_parser(
        "quality", help="score LSH selection against the exact top-k for one layer",
        description="Train one dense n_in -> n_out ReLU layer briefly on generated data, then "
                    "let LSH tables of each hash family and policy choose nodes for held-out "
                    "samples, and report recall of the exact top-k and the activation mass "
                    "captured, next to a random set of the same size.")
    q.add_argument("--n-in", type=_positive_int, default=784, help="layer inputs (default 784)")
    q.add_argument("--n-out", type=_positive_int, default=1000, help="layer nodes (default 1000)")
    q.add_argument("--fractions", type=_fraction, nargs="+", default=[0.05, 0.1],
                   help="active fractions (default 0.05 0.1)")
    q.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="FAMILY", help=f"hash families: {', '.join(FAMILIES)} (default: all)")
    q.add_argument("--policies", nargs="+", default=list(POLICIES), metavar="POLICY", help=f"selection policies: {', '.join(POLICIES)} "
                                          "(default: all)")
    q.add_argument("--K", type=_positive_int, default=6,
                   help="bits per table for srp and srp_sparse (default 6)")
    q.add_argument("--wta-K", type=_positive_int, default=2,
                   help="WTA digits per table for wta and dwta (default 2: 6 bits with bin 8)")
    q.add_argument("--bin-size", type=_positive_int, default=8, help="WTA bin size (default 8)")
    q.add_argument("--L", type=_positive_int, default=50, help="tables (default 50)")
    q.add_argument("--probes", type=int, default=4, help="extra buckets per table for multiprobe (default 4)")
    q.add_argument("--transform", default="none", metavar="TRANSFORM",
                   help=f"{', '.join(TRANSFORMS)} (default none)")
    q.add_argument("--pool", type=_positive_int, default=1, help="mean-pool block size (default 1: none)")
    q.add_argument("--train-epochs", type=int, default=1,
                   help="dense training epochs before scoring (default 1; 0: random weights)")
    q.add_argument("--n-train", type=_positive_int, default=5000, help="training samples (default 5000)")
    q.add_argument("--n-queries", type=_positive_int, default=500, help="held-out queries (default 500)")
    q.add_argument("--seed", type=int, default=0, help="seed for data, weights and hashes (default 0)")
    q.add_argument("--threads", type=_positive_int, default=1, help="BLAS and numba threads (default 1)")
    q.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON to PATH")
    q.set_defaults(func=cmd_quality)

    run = sub.add_parser(
        "run", help="run a scenario: train every method of its sweep, measure, write results",
        description="Read a scenario (a built-in name or a TOML file; default quickstart), "
                    "check it, build the data, then train and evaluate every cell of its sweep "
                    "(method x fraction x seed x threads) with exact MAC counts, phase times "
                    "and energy, writing each epoch's row as it ends. Re-running into the same "
                    "folder (-o) skips finished cells.")
    run.add_argument("scenario", nargs="?", default=None, metavar="SCENARIO",
                     help="built-in scenario name (see lshprof scenarios) or a .toml file "
                          "(default quickstart)")
    run.add_argument("-o", "--out", metavar="DIR", default=None,
                     help="run folder (default runs/NAME-TIME); an existing run of the same "
                          "settings is resumed")
    from lshprof.measure.energy import BACKENDS

    run.add_argument("--energy", choices=BACKENDS, default=None,
                     help="energy backend, instead of the scenario's")
    run.add_argument("--threads", type=_positive_int, default=None,
                     help="BLAS and numba threads for every cell (replaces a thread sweep)")
    run.add_argument("--seeds", type=_seed, nargs="+", default=None,
                     help="model seeds, instead of the scenario's")
    run.add_argument("--epochs", type=_positive_int, default=None,
                     help="epochs, instead of the scenario's")
    run.add_argument("--fractions", type=_fraction, nargs="+", default=None,
                     help="active fractions, instead of the scenario's")
    run.add_argument("--methods", nargs="+", default=None, metavar="LABEL",
                     help="run only these methods of the scenario")
    run.add_argument("--quick", action="store_true",
                     help="a reduced size for a smoke run: the scenario's [quick] table and "
                          "smaller data")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress output: only the final table and errors (for CI)")
    _add_energy_options(run, backend=False)
    run.add_argument("--idle-baseline", type=_seconds, default=None, metavar="SECONDS",
                     help="seconds of idle power measured first, instead of the scenario's")
    run.add_argument("--no-report", dest="report", action="store_false",
                     help="do not write the HTML report (DIR/report.html) at the end")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser(
        "report", help="write an interactive HTML report of one or more runs",
        description="Write one self-contained, interactive HTML page (plotly) of one or more "
                    "run folders: the paper's claims with verdicts computed from the "
                    "measurements, figures of accuracy, MACs, time, energy, realized saving, LSH "
                    "selection quality, training curves and (for several runs) a comparison, "
                    "the raw numbers and the run metadata. It works offline.")
    rep.add_argument("runs", nargs="+", metavar="RUN",
                     help="run folder(s), run.json file(s) or folder(s) of runs")
    rep.add_argument("-o", "--out", metavar="FILE", default=None,
                     help="page to write (default reports/RUN.html)")
    from lshprof.analysis.report import PLOTLYJS_MODES  # light: plotly is imported when a page is built

    rep.add_argument("--plotlyjs", choices=PLOTLYJS_MODES, default="embed",
                     help="embed plotly.js in the page (default), or write it beside the page "
                          "once and load it from there (smaller pages that share one copy)")
    rep.set_defaults(func=cmd_report)

    chk = sub.add_parser(
        "check", help="compare a run with a baseline; exit 1 on a regression (for CI)",
        description="Compare a run (or a baseline file) with a baseline (a file from lshprof "
                    "baseline, or another run of the same settings): MACs and other work "
                    "counts and active-set sizes exactly, accuracy within a tolerance, time "
                    "(and measured energy) as ratios to dense within each run, failing only "
                    "when the ratio grew by more than a factor and a Mann-Whitney U test over "
                    "the repeats (epochs x seeds) says it is significant. Exit status: 0 no "
                    "regression, 1 regression, 2 usage or input error.")
    chk.add_argument("current", metavar="CURRENT", help="run folder (or baseline file) to check")
    chk.add_argument("--baseline", "-b", metavar="BASELINE", required=True,
                     help="baseline file (lshprof baseline) or run folder to compare with")
    for name, help_ in (
            ("macs-tolerance", "relative increase allowed in MACs, counts and active-set sizes "
                               "(default 0: exact)"),
            ("accuracy-tolerance", "accuracy drop allowed, absolute (default 0.02)"),
            ("time-factor", "time-vs-dense growth that fails when significant (default 1.25)"),
            ("energy-factor", "as --time-factor, for measured energy (default 1.25)"),
            ("alpha", "significance level of the Mann-Whitney U test (default 0.01)")):
        chk.add_argument(f"--{name}", type=_nonnegative_float, default=None, metavar="X",
                         help=help_ + "; overrides the scenario's [check] table")
    chk.add_argument("--time-clock", choices=TIME_CLOCKS, default=None,
                     help="compare process CPU time (immune to other jobs on the machine), "
                          "wall time, or auto: CPU time at 1 thread, wall time at more "
                          "(default auto); overrides the scenario's [check] table")
    chk.add_argument("--markdown", metavar="FILE", default=None,
                     help="also write the result as Markdown (a pull-request comment)")
    chk.add_argument("--junit", metavar="FILE", default=None,
                     help="also write the result as JUnit XML (CI test reports)")
    chk.add_argument("-q", "--quiet", action="store_true",
                     help="list only what is not ok (regressions, improvements, skips)")
    chk.set_defaults(func=cmd_check)

    bl = sub.add_parser(
        "baseline", help="write a compact baseline file of a run, to commit for lshprof check",
        description="Write what lshprof check compares of a complete run (work counts, "
                    "active-set sizes, accuracy, per-epoch time and energy per cell) as a "
                    "small JSON file meant to be committed and used with lshprof check "
                    "--baseline FILE.")
    bl.add_argument("run", metavar="RUN", help="a complete run folder")
    bl.add_argument("-o", "--out", metavar="FILE", required=True, help="baseline file to write")
    bl.set_defaults(func=cmd_baseline)

    bench = sub.add_parser(
        "bench", add_help=False,
        help="pyperf benchmarks of each kernel (forward, backward, select, rehash) at standard "
             "shapes",
        description="pyperf benchmarks of the layer kernels; lshprof bench --help lists the "
                    "options (pyperf's and lshprof's).")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)

    sc = sub.add_parser(
        "scenarios", help="list the built-in scenarios, or print one",
        description="List the scenarios that ship with lshprof (one line each), print one "
                    "(to copy and edit), or print the JSON Schema of scenario files.")
    sc.add_argument("name", nargs="?", default=None,
                    help="print this built-in scenario's file")
    sc.add_argument("--check", metavar="FILE", nargs="+", default=None,
                    help="check scenario files (or names) and report the first mistake in each")
    sc.add_argument("--schema", action="store_true",
                    help="print the JSON Schema of a scenario file")
    sc.set_defaults(func=cmd_scenarios)

    from lshprof.cli.data import add_parser as add_data_parser

    add_data_parser(sub)

    methods = sub.add_parser("methods", help="list the layer methods and their parameters")
    methods.set_defaults(func=cmd_methods)

    si = sub.add_parser(
        "sysinfo", help="print the machine, thread settings and each energy backend's status",
        description="Print what lshprof records about this machine, the BLAS and numba thread "
                    "pools as lshprof sets them, and whether each energy backend can measure "
                    "here (with the reason and the fix when it cannot).")
    _add_energy_options(si, backend=False)
    si.add_argument("--threads", type=_positive_int, default=1,
                    help="thread count to show the pools at (default 1)")
    si.add_argument("--json", metavar="PATH", default=None, help="also write it as JSON to PATH")
    si.set_defaults(func=cmd_sysinfo)

    cal = sub.add_parser(
        "calibrate", help="fit the estimate backend's energy model to RAPL measurements",
        description="Run workloads of known work (idle, BLAS products, memory copies, layer "
                    "training) under a measuring backend, fit picojoules per MAC, per byte and "
                    "static watts, and save the model for --energy estimate --energy-model FILE. "
                    "Needs readable RAPL counters.")
    cal.add_argument("-o", "--output", metavar="FILE", default="energy-model.json",
                     help="model file to write (default energy-model.json)")
    cal.add_argument("--energy", choices=("powercap", "pyrapl"), default="powercap",
                     help="measuring backend (default powercap)")
    _add_energy_options(cal, backend=False)
    cal.add_argument("--seconds", type=_positive_seconds, default=2.0, help="seconds per workload (default 2)")
    cal.add_argument("--repeats", type=_positive_int, default=3, help="repeats (default 3)")
    cal.add_argument("--workloads", nargs="+", default=["idle", "matmul", "stream", "training"],
                     help="workloads to run (default: all)")
    cal.add_argument("--threads", type=_positive_int, default=1,
                     help="BLAS and numba threads (default 1)")
    cal.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["bench"]:  # pyperf parses these, in this process and in its workers
        return _bench(raw[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = raw[raw.index(args.command) + 1:] if args.command in raw else []
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args) or 0
    except LshprofError as exc:
        print(f"lshprof {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the machine's (a full disk, a read-only folder), not a bug
        print(f"lshprof {args.command}: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lshprof: interrupted", file=sys.stderr)
        return 130
    except Exception:
        if args.command != "check":
            raise
        # exit status 1 is check's "regression": a crash must never read as one
        import traceback

        traceback.print_exc()
        print("lshprof check: error: the check could not be made (an internal error, not a "
              "regression); please report it with the files checked", file=sys.stderr)
        return EXIT_USAGE


def _os_error_line(exc: OSError) -> str:
    """One line for an OS error no command turned into a message of its own."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    if exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}: "
    fix = {errno.ENOSPC: "; free space or choose another path",
           errno.EDQUOT: "; free space (your disk quota is full) or choose another path",
           errno.EROFS: "; choose a path on a writable file system"}.get(exc.errno, "")
    return f"{where}{exc.strerror or exc}{fix}"


def cmd_check(args: argparse.Namespace) -> int:
    from lshprof.analysis.check import DEFAULTS, compare, load_profile, print_result, render_junit, render_markdown

    targets = {opt: output_target(path, f"--{opt}")
               for opt, path in (("markdown", args.markdown), ("junit", args.junit)) if path}
    current = load_profile(args.current)
    baseline = load_profile(args.baseline)
    overrides = {k: getattr(args, k) for k in DEFAULTS}  # one option per threshold
    result = compare(current, baseline, overrides)
    texts = {opt: render_markdown(result) if opt == "markdown" else render_junit(result)
             for opt in targets}
    print_result(result, quiet=args.quiet)
    for opt, path in targets.items():
        write_output(path, texts[opt], f"--{opt}")
        print(f"{opt}: {path}")
    return 0 if result.ok else 1


def cmd_baseline(args: argparse.Namespace) -> int:
    from lshprof.analysis.check import baseline_text, make_baseline

    target = output_target(args.out, "-o")
    d = make_baseline(args.run)
    write_output(target, baseline_text(d), "-o")
    n = len(d["cells"])
    print(f"baseline: {args.out} ({n} cells of scenario {d['scenario']}, energy "
          f"{d['energy_source']}); commit it and run lshprof check RUN --baseline {args.out}")
    return 0


def _bench(argv: list[str]) -> int:
    try:
        if any(a == "--suite" or a.startswith("--suite=") for a in argv):
            from lshprof.bench.speed import run_speed

            return run_speed(argv, check_target=output_target) or 0
        from lshprof.bench.kernels import run_bench

        return run_bench(argv, check_target=output_target) or 0
    except LshprofError as exc:
        print(f"lshprof bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"lshprof bench: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def cmd_bench(args: argparse.Namespace) -> int:
    return _bench(args.bench_args)


def cmd_run(args: argparse.Namespace) -> int:
    from lshprof.cli.run import run_scenario

    return run_scenario(args)


def cmd_report(args: argparse.Namespace) -> int:
    import os
    import stat

    from lshprof.analysis.report import default_report_path, write_report
    from lshprof.errors import ConfigError

    try:
        mode = os.stat(args.out).st_mode if args.out else None
    except OSError:
        mode = None  # missing (its folder is made), or said by write_report
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        # an atomic write would rename a file over it (as root, over /dev/null itself)
        raise ConfigError(f"-o {args.out} exists and is not a regular file (a device, FIFO "
                          "or socket); give the name of a file to write")
    out = write_report(args.runs, args.out or default_report_path(args.runs),
                       plotlyjs=args.plotlyjs)
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from lshprof.experiment.scenario import DEFAULT_SCENARIO, builtin_scenarios, load_scenario, scenario_schema

    if args.schema:
        print(json.dumps(scenario_schema(), indent=2))
        return 0
    if args.check:
        bad = 0
        for f in args.check:
            try:
                s = load_scenario(f)
                s.check_data()
                print(f"{f}: ok ({len(s.cells())} cells)")
                note = s.thread_note()
                if note:
                    print(f"{f}: {note}")
            except LshprofError as exc:
                print(f"{exc}", file=sys.stderr)
                bad += 1
        return EXIT_USAGE if bad else 0
    found = builtin_scenarios()
    if args.name:
        if args.name not in found:
            from lshprof.errors import ConfigError

            raise ConfigError(f"no built-in scenario {args.name!r}; built-in: {', '.join(found)}")
        sys.stdout.write(found[args.name].read_text(encoding="utf-8"))
        return 0
    table = Table(title="built-in scenarios (lshprof run NAME; lshprof scenarios NAME prints one)")
    for col in ("name", "cells", "description"):
        table.add_column(col)
    for name in found:
        s = load_scenario(name)
        label = name + (" (default)" if name == DEFAULT_SCENARIO else "")
        table.add_row(plain(label), str(len(s.cells())), plain(s.description))
    Console().print(table)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lshprof.nn.layers import LAYERS

    table = Table(title="lshprof layer methods")
    table.add_column("method")
    table.add_column("parameters (defaults)")
    table.add_column("summary")
    for name, cls in LAYERS.items():
        params = ", ".join(f"{k}={v!r}" for k, v in cls.PARAMS.items()) or "-"
        table.add_row(name, plain(params), plain((cls.__doc__ or "").strip().splitlines()[0]))
    Console().print(table)
    return 0


def cmd_sysinfo(args: argparse.Namespace) -> int:
    from lshprof.cli.sysinfo import run_sysinfo

    return run_sysinfo(args)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from lshprof.cli.calibrate import run_calibrate

    return run_calibrate(args)


def cmd_quality(args: argparse.Namespace) -> int:
    from lshprof.cli.quality import run_quality

    return run_quality(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from lshprof.cli.demo import run_demo

    return run_demo(args)
