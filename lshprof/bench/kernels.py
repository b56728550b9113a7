"""``lshprof bench``: pyperf micro-benchmarks of each layer kernel at standard shapes.

One benchmark per (shape, method, phase), named ``"{shape}/{method}/{phase}"``:

``forward``   ``layer.forward(x, train=True)``: choose the active nodes and compute
              them, what one training step pays going forward.
``backward``  ``layer.backward(grad, input_grad=True)`` alone; each timed call is
              preceded by an untimed ``zero_grad`` and ``forward`` (backward needs
              the forward's cache), so the time function reads the clock itself.
``select``    ``layer.choose(x, True)``: the choice alone (hashing and querying the
              tables for lsh; the full pre-activation and the choice for
              adaptive_dropout, wta and topk). Dense and dropout choose without
              multiplying, so they have no such benchmark.
``rehash``    (lsh) re-hash the rows one training batch updated, a fixed set.
``rebuild``   (lsh) hash every row and refill every table.

An lsh layer whose budget is every node (``--fraction 1``) computes like dense and
has no tables, so it gets forward and backward only.

pyperf runs every benchmark in fresh worker processes that re-run this entry point
(``python -m lshprof bench --worker --worker-task=I ...``) with our options appended
by ``add_cmdline_args``. The main process only spawns workers and collects their
results, so it builds nothing; a worker builds the layer of its own task only
(task ``I`` is the ``I``-th ``bench_time_func`` call, so every process walks the
same list of benchmarks in the same order). Each layer is built fresh from the
seed, warmed up (numba compilation or cache loading, the first table build) and
measured once untimed, so a benchmark's metadata ``macs`` (the multiply-accumulates
of one timed call, by the layer's own counter) is the same in every process.
``macs / mean time`` is the achieved MAC rate.

Workers get a scrubbed environment from pyperf; the variables that change how our
kernels run (``NUMBA_*``, ``OPENBLAS_*``, ``OMP_*``, ``MKL_*``, ``LSHPROF_*``,
``PYTHONPATH``) are added to its ``--inherit-environ`` list.

numpy and numba are imported only where a kernel runs (a worker, ``--list``).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from lshprof import __version__
from lshprof.errors import ConfigError

__all__ = ["SHAPES", "PHASES", "Shape", "BenchOptions", "BenchSpec", "plan", "prepare",
           "run_bench"]


@dataclass(frozen=True)
class Shape:
    """A layer and batch size to benchmark: ``batch`` samples, ``n_in -> n_out``."""

    batch: int
    n_in: int
    n_out: int
    note: str


#: standard shapes, by name
SHAPES: dict[str, Shape] = {
    "small": Shape(32, 128, 1024, "a small layer"),
    "hidden": Shape(128, 784, 1000, "the paper's MNIST hidden layer"),
    "wide": Shape(128, 128, 100_000, "an extreme-classification output layer"),
}

#: benchmarked phases, in the order they are generated
PHASES = ("forward", "backward", "select", "rehash", "rebuild")

DEFAULT_SHAPES = ("small", "hidden")

#: methods whose choice needs no multiplication (no ``select`` benchmark)
_CHOOSE_FREE = ("dense", "dropout")
#: phases only a layer with hash tables has
_TABLE_PHASES = ("select", "rehash", "rebuild")
#: environment variables that reach pyperf's workers: these prefixes, and PYTHONPATH
_INHERIT_PREFIXES = ("NUMBA_", "OPENBLAS_", "OMP_", "MKL_", "LSHPROF_")

_DESCRIPTIONS = {
    "forward": "forward(x, train=True): choose the active nodes and compute them",
    "backward": "backward(grad, input_grad=True) after an untimed forward",
    "select": "_choose(x, train=True): the choice of active nodes alone",
    "rehash": "_rehash(rows): re-hash the rows one training batch updated",
    "rebuild": "rebuild(): hash every row and refill every table",
}


def _method_names() -> tuple[str, ...]:
    from lshprof.nn.layers import LAYERS

    return tuple(LAYERS)


@dataclass(frozen=True)
class BenchOptions:
    """Our options, checked; the same in the main process and in every worker."""

    shapes: tuple[str, ...]
    methods: tuple[str, ...]
    phases: tuple[str, ...]
    fraction: float
    threads: int
    seed: int

    def argv(self) -> list[str]:
        """These options as command-line arguments (what a worker is given)."""
        return ["--shapes", *self.shapes, "--methods", *self.methods,
                "--phases", *self.phases, "--fraction", repr(self.fraction),
                "--threads", str(self.threads), "--seed", str(self.seed)]


@dataclass(frozen=True)
class BenchSpec:
    """One benchmark: a phase of a method's layer at a shape."""

    shape: str
    method: str
    phase: str

    @property
    def name(self) -> str:
        return f"{self.shape}/{self.method}/{self.phase}"


def _names(values, option: str, valid) -> tuple[str, ...]:
    """``values`` (order kept, repeats dropped), each one of ``valid``."""
    for v in values:
        if v not in valid:
            raise ConfigError(f"unknown {option[2:].rstrip('s')} {v!r} for {option}; "
                              f"valid: {', '.join(valid)}")
    return tuple(dict.fromkeys(values))


def _options(args) -> BenchOptions:
    """Check the parsed arguments; every mistake is one ConfigError line."""
    methods = _method_names()
    try:
        fraction = float(args.fraction)
    except ValueError:
        fraction = math.nan
    if not (0.0 < fraction <= 1.0):
        raise ConfigError(f"--fraction must be a number in (0, 1], got {args.fraction!r}; "
                          "e.g. --fraction 0.05")
    values = {}
    for opt, low in (("threads", 1), ("seed", 0)):
        text = getattr(args, opt)
        try:
            values[opt] = int(text)
        except ValueError:
            values[opt] = low - 1
        if values[opt] < low:
            raise ConfigError(f"--{opt} must be an integer >= {low}, got {text!r}")
    return BenchOptions(
        shapes=_names(args.shapes, "--shapes", tuple(SHAPES)),
        methods=_names(args.methods if args.methods is not None else methods, "--methods",
                       methods),
        phases=_names(args.phases, "--phases", PHASES),
        fraction=fraction, threads=values["threads"], seed=values["seed"])


def _phases_of(method: str, shape: Shape, fraction: float) -> tuple[str, ...]:
    """The phases ``method`` has at ``shape``: forward and backward always."""
    if method in _CHOOSE_FREE:
        return ("forward", "backward")
    if method != "lsh":
        return ("forward", "backward", "select")
    from lshprof.nn.layers import active_budget

    if active_budget(fraction, shape.n_out) == shape.n_out:  # computes like dense
        return ("forward", "backward")
    return PHASES


def plan(opts: BenchOptions) -> list[BenchSpec]:
    """Every benchmark of ``opts``, by shape, then method, then phase."""
    out = []
    for s in opts.shapes:
        for m in opts.methods:
            have = _phases_of(m, SHAPES[s], opts.fraction)
            out.extend(BenchSpec(s, m, p) for p in opts.phases if p in have)
    return out


# -- building and measuring one benchmark ---------------------------------------------------
def _mac_total(counts) -> int:
    """MACs of the MAC phases only (not dense_equivalent, traffic, adds or quality)."""
    from lshprof.measure.macs import PHASES as MAC_PHASES

    return sum(getattr(counts, p) for p in MAC_PHASES)


def prepare(spec: BenchSpec, opts: BenchOptions) -> tuple[Callable[[int], float],
                                                          dict[str, Any]]:
    """Build, warm up and measure one benchmark: ``(time_func, metadata)``.

    ``time_func(loops)`` returns the seconds ``loops`` timed calls took (pyperf's
    ``bench_time_func`` protocol). Call it with the thread pools already limited.
    """
    import numpy as np

    from lshprof.nn.layers import make_layer
    from lshprof.measure.macs import PHASES as MAC_PHASES
    from lshprof.experiment.sweep import sweep_params

    shape = SHAPES[spec.shape]
    params = sweep_params(spec.method, opts.fraction)
    layer = make_layer(spec.method, shape.n_in, shape.n_out, seed=opts.seed, **params)
    data_ss, grad_ss = np.random.SeedSequence(opts.seed).spawn(2)
    x = np.random.default_rng(data_ss).standard_normal((shape.batch, shape.n_in),
                                                       dtype=np.float32)
    # gradient values for any active set: the first nnz entries of one seeded draw
    pool = np.random.default_rng(grad_ss).standard_normal(shape.batch * shape.n_out,
                                                          dtype=np.float32)

    def grad_for(out):
        return out.with_values(pool[:out.nnz])

    # warm-up: compile or load the kernels, build the lsh tables, mark touched rows
    out = layer.forward(x, train=True)
    layer.backward(grad_for(out), input_grad=True)
    rows = np.flatnonzero(layer.touched)  # the rows one training batch updated
    layer.zero_grad()
    clock = _clock()

    if spec.phase == "backward":
        layer.zero_grad()
        g = grad_for(layer.forward(x, train=True))
        layer.macs.reset()
        layer.backward(g, input_grad=True)
        counts = layer.macs.counts()

        def time_func(loops: int) -> float:
            spent = 0.0
            for _ in range(loops):
                layer.zero_grad()
                g = grad_for(layer.forward(x, train=True))
                t0 = clock()
                layer.backward(g, input_grad=True)
                spent += clock() - t0
            return spent
    else:
        if spec.phase == "forward":
            def call():
                return layer.forward(x, train=True)
        elif spec.phase == "select":
            xin = layer.prepare_input(x)

            def call():
                return layer.choose(xin, True)
        elif spec.phase == "rehash":
            def call():
                return layer.rehash(rows)
        else:  # rebuild
            call = layer.rebuild
        layer.macs.reset()
        call()
        counts = layer.macs.counts()

        def time_func(loops: int) -> float:
            f = call
            t0 = clock()
            for _ in range(loops):
                f()
            return clock() - t0

    meta: dict[str, Any] = {
        "macs": _mac_total(counts),
        "shape": spec.shape, "method": spec.method, "phase": spec.phase,
        "batch": shape.batch, "n_in": shape.n_in, "n_out": shape.n_out,
        "threads": opts.threads, "seed": opts.seed, "lshprof_version": __version__,
        "description": (f"{spec.method} {_DESCRIPTIONS[spec.phase]}; batch {shape.batch}, "
                        f"{shape.n_in} -> {shape.n_out} ({shape.note}), float32"),
    }
    for p in MAC_PHASES:  # the breakdown, where a phase did any work
        if getattr(counts, p):
            meta[f"macs_{p}"] = getattr(counts, p)
    if counts.dense_equivalent:
        meta["macs_dense_equivalent"] = counts.dense_equivalent
    if spec.method != "dense":
        meta["fraction"] = opts.fraction
    if params:
        meta["params"] = ", ".join(f"{k}={v}" for k, v in params.items())
    try:
        import numba

        meta["numba_threads"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return time_func, meta


def _clock():
    import pyperf

    return pyperf.perf_counter


def _not_here(loops: int) -> float:  # pragma: no cover - pyperf skips it
    raise AssertionError("a benchmark of another worker task ran here")


# -- the command ------------------------------------------------------------------------------
def _add_options(parser) -> None:
    g = parser.add_argument_group(
        "lshprof options", "what to benchmark (every worker process is given the same)")
    g.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), metavar="NAME",
                   help="shapes: " + "; ".join(
                       f"{k} (batch {s.batch}, {s.n_in} -> {s.n_out}, {s.note})"
                       for k, s in SHAPES.items())
                   + f" (default: {' '.join(DEFAULT_SHAPES)})")
    g.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="layer methods: dense, dropout, adaptive_dropout, wta, topk, lsh "
                        "(default: all)")
    g.add_argument("--phases", nargs="+", default=list(PHASES), metavar="NAME",
                   help=f"phases: {', '.join(PHASES)} (default: all; a phase a method lacks "
                        "is skipped)")
    g.add_argument("--fraction", default="0.05", metavar="F",
                   help="active fraction of the sparse methods, in (0, 1] (default 0.05)")
    g.add_argument("--threads", default="1", metavar="N",
                   help="BLAS and numba threads in the process that runs the kernels "
                        "(default 1)")
    g.add_argument("--seed", default="0", metavar="S",
                   help="seed of the weights and data (default 0)")
    g.add_argument("--list", action="store_true",
                   help="print each benchmark's name and the MACs of one call, then exit "
                        "without timing")


def _inherit_environ(args) -> None:
    """Let our thread and cache settings reach pyperf's (scrubbed) worker environment."""
    names = list(args.inherit_environ or [])
    for k in sorted(os.environ):
        if (k.startswith(_INHERIT_PREFIXES) or k == "PYTHONPATH") and k not in names:
            names.append(k)
    args.inherit_environ = names


def _print_list(specs: list[BenchSpec], opts: BenchOptions) -> None:
    from lshprof.measure.threads import limit_threads

    width = max((len(s.name) for s in specs), default=0)
    with limit_threads(opts.threads):
        for spec in specs:
            _, meta = prepare(spec, opts)
            print(f"{spec.name:<{width}}  {meta['macs']:>14d} MACs", flush=True)


def _output_files(args, check_target: Callable[[str, str], Any] | None) -> list[tuple]:
    """``(option, final path, temporary path)`` of pyperf's ``-o`` and ``--append`` files
    in the main process. pyperf writes them itself, in place, after each benchmark: each
    is pointed at a hidden temporary file beside the final one (a copy of it for
    ``--append``), renamed over the final one once every benchmark has run, so a full disk
    or an interruption never leaves half a file."""
    import shutil
    from pathlib import Path

    out: list[tuple] = []
    if args.worker:
        return out
    for option, name in (("-o", "output"), ("--append", "append")):
        path = getattr(args, name, None)
        if not path:
            continue
        if check_target is not None:
            check_target(path, option)
        final = Path(path)
        suffix = ".gz" if final.name.endswith(".gz") else ""  # pyperf gzips by the name
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}{suffix}")
        if name == "append" and final.exists():
            try:
                shutil.copyfile(final, tmp)
            except OSError as exc:
                from lshprof.files import write_error_message

                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
                raise ConfigError(write_error_message(final, exc, kind="file",
                                                      option=option)) from None
        out.append((option, final, tmp))
        setattr(args, name, str(tmp))
    return out


def _existing_output(argv: list[str]) -> None:
    """Refuse an ``-o``/``--output`` file that exists (pyperf would say so and exit 1, the
    status of a failure, not of a usage error) or that is a folder."""
    from pathlib import Path

    for i, a in enumerate(argv):
        if a == "--":
            return
        path = None
        if a in ("-o", "--output") and i + 1 < len(argv):
            path = argv[i + 1]
        elif a.startswith("--output="):
            path = a.split("=", 1)[1]
        elif a.startswith("-o") and len(a) > 2 and not a.startswith("--"):
            path = a[2:]
        if path and Path(path).is_dir():
            raise ConfigError(f"-o {path} is a folder; give a file name")
        if path and os.path.lexists(path):
            raise ConfigError(f"-o {path} already exists; choose another name, or add the "
                              "new results to it with --append")


def run_bench(argv: list[str], *, check_target: Callable[[str, str], Any] | None = None) -> int:
    """``lshprof bench ARGS``: in the main process and, re-run by pyperf, in each worker.
    ``check_target(path, option)`` checks an output file before any benchmark runs."""
    import pyperf

    def add_cmdline_args(cmd: list[str], args) -> None:
        # a worker must build exactly our list of benchmarks, or task numbers shift
        cmd.extend(_options(args).argv())

    runner = pyperf.Runner(program_args=("-m", "lshprof", "bench"),
                           add_cmdline_args=add_cmdline_args)
    parser = runner.argparser
    parser.prog = "lshprof bench"
    parser.description = (
        "pyperf benchmarks of lshprof's layer kernels, one per shape/method/phase, with the "
        "exact MACs of one call in each benchmark's metadata. Compare two runs with "
        "python -m pyperf compare_to OLD.json NEW.json.")
    _add_options(parser)
    if "--worker" not in argv:
        _existing_output(argv)
    args = runner.parse_args(argv)
    opts = _options(args)
    _inherit_environ(args)
    specs = plan(opts)
    if not specs:
        raise ConfigError("no benchmark left: none of --phases applies to --methods; "
                          "add forward or backward to --phases")
    if args.list:
        _print_list(specs, opts)
        return 0
    from lshprof.files import write_error_message

    outs = _output_files(args, check_target)
    if not args.worker:
        print(f"lshprof bench: {len(specs)} benchmarks, {opts.threads} BLAS and numba "
              f"thread(s); compare two runs with: python -m pyperf compare_to OLD.json "
              f"NEW.json", file=sys.stderr, flush=True)
    try:
        _bench_all(runner, args, opts, specs)
        for _, final, tmp in outs:
            os.replace(tmp, final)
    except OSError as exc:
        # pyperf's writes of an output file (a full disk, say) are one line; other OS errors
        # (a worker that cannot start) are not about the files and pass on
        for option, final, tmp in outs:
            if exc.filename in (str(final), str(tmp)) or (exc.filename is None and len(outs) == 1):
                raise ConfigError(write_error_message(final, exc, kind="file",
                                                      option=option)) from None
        raise
    finally:
        for _, _, tmp in outs:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
    return 0


def _bench_all(runner, args, opts, specs) -> None:
    """Register every benchmark with pyperf's ``runner`` (which runs them)."""
    for i, spec in enumerate(specs):
        # pyperf runs task i of a worker on the i-th call and skips the others
        # unseen, so only a worker's own task is built (the main process builds none)
        mine = args.worker and args.worker_task in (None, i)
        if not mine:
            runner.bench_time_func(spec.name, _not_here)
            continue
        from lshprof.measure.threads import limit_threads

        with limit_threads(opts.threads):
            time_func, meta = prepare(spec, opts)
            runner.bench_time_func(spec.name, time_func, metadata=meta)
